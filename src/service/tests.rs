//! The service's flows on a temporary sled, with a frozen clock: what the
//! HTTP layer and the CLI rely on, checked without either.

use std::borrow::Cow;

use super::Service;
use crate::clock::Clock;
use crate::config::keyfile::KeyMaterial;
use crate::config::Config;
use crate::credentials::{Credential, Place, Presented};
use crate::error::{Kind, Refusal};
use crate::fsutil::TempDir;
use crate::model::{Ban, Identity, UserId, Via};

/// A service on a fresh directory: cheap scrypt, registration open, no
/// operations listener, bans after three failures. For this crate's tests.
pub(crate) fn service(clock: &Clock) -> (TempDir, Service) {
    let dir = TempDir::new("service");
    let service = open(dir.path(), clock);
    (dir, service)
}

/// The configuration [`service`] uses, for data in `dir`.
pub(crate) fn config(dir: &std::path::Path) -> Config {
    let text = format!(
        "data_dir = {:?}\nregistration = \"open\"\ntoken_ttl = 600\n\
         [regulation]\nmax_retries = 3\n[scrypt]\nlog_n = 4\n[ops]\nlisten = \"\"\n",
        dir.display().to_string()
    );
    Config::from_toml(&text).unwrap()
}

fn open(dir: &std::path::Path, clock: &Clock) -> Service {
    open_with(&config(dir), clock)
}

fn open_with(config: &Config, clock: &Clock) -> Service {
    let keys = KeyMaterial {
        current: vec![7; 32],
        previous: Vec::new(),
        storage: Some([9; 32]),
    };
    let database = super::Database::open(&config.data_dir).unwrap();
    Service::open(config, database, &keys, clock.clone()).unwrap()
}

fn bearer(token: &str) -> Presented<'_> {
    Presented {
        credential: Credential::Token(Cow::Borrowed(token)),
        place: Place::Header,
        otp: None,
    }
}

async fn token(s: &Service, name: &str, password: &str) -> String {
    let proven = s.check_password(name, password).await.unwrap();
    s.issue(&proven).await.unwrap().token
}

async fn identity(s: &Service, token: &str) -> Result<Identity, Kind> {
    s.authenticate(&bearer(token)).await.map_err(|e| e.kind())
}

#[tokio::test]
async fn a_password_change_needs_the_old_one_and_ends_earlier_tokens() {
    let clock = Clock::frozen();
    let (_dir, s) = service(&clock);
    let alice = s.register("alice", "alice-password", None).await.unwrap();
    let before = token(&s, "alice", "alice-password").await;
    let wrong = s
        .change_password(alice.id, "not-the-password", "new-password")
        .await
        .unwrap_err();
    assert!(matches!(wrong.kind(), Kind::Forbidden(_)), "{wrong:?}");
    assert!(identity(&s, &before).await.is_ok(), "nothing changed");
    let short = s.change_password(alice.id, "alice-password", "short").await;
    assert!(matches!(short.unwrap_err().kind(), Kind::Invalid(_)));
    s.change_password(alice.id, "alice-password", "new-password")
        .await
        .unwrap();
    assert_eq!(
        identity(&s, &before).await.unwrap_err(),
        Kind::Unauthorized(Refusal::BadToken)
    );
    assert!(s.check_password("alice", "alice-password").await.is_err());
    let after = token(&s, "alice", "new-password").await;
    assert_eq!(identity(&s, &after).await.unwrap().user_id, alice.id);
}

#[tokio::test]
async fn deleting_an_account_needs_its_password_and_frees_the_name() {
    let clock = Clock::frozen();
    let (_dir, s) = service(&clock);
    let alice = s.register("alice", "alice-password", None).await.unwrap();
    let live = token(&s, "alice", "alice-password").await;
    let e = s
        .delete_account("alice", "wrong-password", None)
        .await
        .unwrap_err();
    assert!(matches!(e.kind(), Kind::Unauthorized(_)));
    assert!(s.user(alice.id).unwrap().is_some());
    s.delete_account("alice", "alice-password", None)
        .await
        .unwrap();
    assert!(s.user(alice.id).unwrap().is_none());
    assert!(identity(&s, &live).await.is_err());
    assert!(s.is_deleted(alice.id));
    let again = s.register("ALICE", "other-password", None).await.unwrap();
    assert_ne!(again.id, alice.id, "ids are never reused");
}

#[tokio::test]
async fn keys_come_only_from_a_proof_of_the_current_epoch() {
    let clock = Clock::frozen();
    let (_dir, s) = service(&clock);
    let alice = s.register("alice", "alice-password", None).await.unwrap();
    let proven = s.check_password("alice", "alice-password").await.unwrap();
    let who = s.password_identity(proven.clone());
    let key = s.create_key(&who, "ci", None).await.unwrap();
    let by_key = identity(&s, &key.secret).await.unwrap();
    assert_eq!(by_key.via, Via::ApiKey(key.key.id));
    // A key cannot make a key.
    let e = s.create_key(&by_key, "more", None).await.err().unwrap();
    assert!(matches!(e.kind(), Kind::Forbidden(_)));
    // After logout everywhere, the old proof makes nothing.
    s.logout_all(alice.id).await.unwrap();
    assert!(s.create_key(&who, "late", None).await.is_err());
    assert!(s.issue(&proven).await.is_err());
    // The key made before is a key: it outlives logout everywhere.
    assert!(identity(&s, &key.secret).await.is_ok());
    assert_eq!(s.list_keys(alice.id).unwrap().len(), 1);
    // Another user's id does not reach it.
    assert!(!s.delete_key(UserId::new(99), key.key.id).await.unwrap());
    assert!(s.delete_key(alice.id, key.key.id).await.unwrap());
    assert!(identity(&s, &key.secret).await.is_err());
}

#[tokio::test]
async fn pruning_waits_until_nothing_can_be_refused() {
    let clock = Clock::frozen();
    let (_dir, s) = service(&clock);
    s.register("alice", "alice-password", None).await.unwrap();
    let revoked = token(&s, "alice", "alice-password").await;
    let who = identity(&s, &revoked).await.unwrap();
    let Via::Token(t) = who.via else {
        panic!("a token")
    };
    s.revoke(who.user_id, t).await.unwrap();
    assert_eq!(s.prune().await.unwrap(), 0);
    assert!(identity(&s, &revoked).await.is_err());
    clock.advance(601);
    assert_eq!(s.prune().await.unwrap(), 1, "the expired revocation goes");
    assert!(identity(&s, &revoked).await.is_err(), "and stays expired");
}

#[tokio::test]
async fn groups_reach_forward_auth_at_once() {
    let clock = Clock::frozen();
    let (_dir, s) = service(&clock);
    let alice = s.register("alice", "alice-password", None).await.unwrap();
    let before = s.profile(alice.id).unwrap().unwrap();
    assert!(before.groups.is_empty());
    s.set_groups(&alice, vec!["admins".into()]).await.unwrap();
    let after = s.profile(alice.id).unwrap().unwrap();
    assert_eq!(after.groups, ["admins"]);
    assert_eq!(&after.groups_joined[..], b"admins");
    let e = s.set_groups(&alice, vec!["a,b".into()]).await.unwrap_err();
    assert!(matches!(e.kind(), Kind::Invalid(_)));
}

#[tokio::test]
async fn bans_hold_until_lifted_and_a_lifted_ban_lets_the_password_in() {
    let clock = Clock::frozen();
    let (_dir, s) = service(&clock);
    let alice = s.register("alice", "alice-password", None).await.unwrap();
    for _ in 0..3 {
        assert!(s.check_password("alice", "wrong-password").await.is_err());
    }
    assert!(
        s.check_password("alice", "alice-password").await.is_err(),
        "banned"
    );
    assert!(s.unban(Ban::User(alice.id, 0)).await.unwrap());
    assert!(s.check_password("alice", "alice-password").await.is_ok());
}

#[tokio::test]
async fn a_refused_backup_leaves_no_database_behind() {
    let clock = Clock::frozen();
    let (_dir, s) = service(&clock);
    s.register("alice", "alice-password", None).await.unwrap();
    let mut backup = Vec::new();
    s.export(&mut backup).unwrap();
    let into = TempDir::new("refused");
    let dir = into.path().join("data");
    let cut = &backup[..backup.len() - 20];
    assert!(super::restore_offline(&dir, cut, None, false).is_err());
    // Not even an empty database, which `latch serve` would start on.
    assert!(
        !dir.join("db").exists(),
        "a refused restore made a database"
    );
    let restored = super::restore_offline(&dir, &backup[..], None, false).unwrap();
    assert!(restored > 0);
}

#[tokio::test]
async fn an_export_restores_into_an_empty_directory() {
    let clock = Clock::frozen();
    let (_dir, s) = service(&clock);
    let alice = s
        .register("alice", "alice-password", Some("alice@example.com"))
        .await
        .unwrap();
    let mut backup = Vec::new();
    let entries = s.export(&mut backup).unwrap();
    assert!(entries > 0);
    let into = TempDir::new("restore");
    let restored = super::restore_offline(into.path(), &backup[..], None, false).unwrap();
    assert_eq!(restored, entries);
    // Not twice: the directory is no longer empty.
    assert!(super::restore_offline(into.path(), &backup[..], None, false).is_err());
    // sled lets go of the directory's lock from a thread of its own, a
    // moment after the restore's store is dropped.
    let mut again = Vec::new();
    let exported = loop {
        match super::export_offline(into.path(), &mut again) {
            Err(e) if e.kind() == Kind::Locked => {
                again.clear();
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => break other,
        }
    };
    assert_eq!(exported.unwrap(), entries);
    assert_eq!(again, backup, "the same entries, in the same order");
    // The restored service knows alice, her password and her email.
    let copy = open(into.path(), &clock);
    let restored = copy.user_named("alice").unwrap();
    assert_eq!((restored.id, restored.email), (alice.id, alice.email));
    assert!(copy.check_password("alice", "alice-password").await.is_ok());
    let next = copy.register("bob", "bob-password", None).await.unwrap();
    assert!(next.id > alice.id, "ids go on from the restored ones");
}

#[tokio::test]
async fn a_sign_in_past_the_cap_ends_the_oldest_session_and_its_cookie() {
    let clock = Clock::frozen();
    let (_dir, s) = service(&clock);
    let alice = s.register("alice", "alice-password", None).await.unwrap();
    let proven = s.check_password("alice", "alice-password").await.unwrap();
    let mut cookies = Vec::new();
    for _ in 0..super::store::MAX_SESSIONS_PER_USER + 1 {
        let meta = crate::model::SessionMeta::default();
        cookies.push(s.issue_session(&proven, meta).await.unwrap().token);
        clock.advance(1);
    }
    let oldest = s.authenticate(&by_cookie(&cookies[0])).await;
    assert_eq!(
        oldest.map_err(|e| e.kind()).unwrap_err(),
        Kind::Unauthorized(Refusal::BadToken),
        "the oldest session was ended, its cookie with it"
    );
    for cookie in &cookies[1..] {
        assert!(s.authenticate(&by_cookie(cookie)).await.is_ok());
    }
    let listed = s.list_sessions(alice.id).unwrap();
    assert_eq!(listed.len(), super::store::MAX_SESSIONS_PER_USER);
}

fn by_cookie(token: &str) -> Presented<'_> {
    Presented {
        credential: Credential::Token(Cow::Borrowed(token)),
        place: Place::Cookie,
        otp: None,
    }
}

#[tokio::test]
async fn ending_every_session_ends_idle_ones_too() {
    // Found by review: an idle session was not revoked, only its record
    // dropped, and a cookie without a record is taken at its word.
    let clock = Clock::frozen();
    let dir = TempDir::new("service");
    let mut config = config(dir.path());
    config.forward_auth.session_inactivity = std::time::Duration::from_secs(100);
    let s = open_with(&config, &clock);
    let alice = s.register("alice", "alice-password", None).await.unwrap();
    let proven = s.check_password("alice", "alice-password").await.unwrap();
    let idle = s.issue_session(&proven, Default::default()).await.unwrap();
    clock.advance(101);
    let fresh = s.issue_session(&proven, Default::default()).await.unwrap();
    assert!(s.authenticate(&by_cookie(&idle.token)).await.is_err());
    assert_eq!(
        s.end_all_sessions(alice.id).await.unwrap(),
        1,
        "one was live"
    );
    for cookie in [&idle.token, &fresh.token] {
        let e = s.authenticate(&by_cookie(cookie)).await.unwrap_err();
        assert_eq!(e.kind(), Kind::Unauthorized(Refusal::BadToken));
    }
}
