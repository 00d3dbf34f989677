//! The configuration as written: plain serde types, every field optional,
//! unknown keys refused. Nothing here is checked; `validate.rs` does that.
//!
//! It owns the schema's shape; it never holds a default or a rule.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

/// The file as written. Unknown keys are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub secret_key: Option<String>,
    pub secret_key_file: Option<PathBuf>,
    pub previous_keys: Option<Vec<String>>,
    pub previous_key_files: Option<Vec<PathBuf>>,
    pub public_url: Option<String>,
    pub token_ttl: Option<RawDuration>,
    pub registration: Option<String>,
    pub query_token: Option<bool>,
    pub log_level: Option<String>,
    pub log_format: Option<String>,
    #[serde(default)]
    pub scrypt: RawScrypt,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub forward_auth: RawForwardAuth,
    #[serde(default)]
    pub regulation: RawRegulation,
    #[serde(default)]
    pub api: RawApi,
    #[serde(default)]
    pub ops: RawOps,
    #[serde(default)]
    pub access_control: RawAccessControl,
    #[serde(default)]
    pub ui: RawUi,
    #[serde(default)]
    pub storage: RawStorage,
    #[serde(default)]
    pub totp: RawTotp,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorage {
    pub encryption_key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTotp {
    pub issuer: Option<String>,
    pub enrol_on_demand: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUi {
    pub title: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScrypt {
    pub log_n: Option<u8>,
    pub r: Option<u32>,
    pub p: Option<u32>,
    pub max_concurrent: Option<usize>,
    pub max_queue: Option<usize>,
    pub cache_ttl: Option<RawDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub max_body: Option<usize>,
    pub header_read_timeout: Option<RawDuration>,
    pub max_connections: Option<usize>,
    pub workers: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawForwardAuth {
    pub cookie_domain: Option<String>,
    pub cookie_name: Option<String>,
    pub cookie_secure: Option<bool>,
    pub session_ttl: Option<RawDuration>,
    pub session_inactivity: Option<RawDuration>,
    pub remember_me_ttl: Option<RawDuration>,
    pub login_url: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub domains: Option<Vec<RawSite>>,
}

/// One `[[forward_auth.domains]]` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSite {
    pub cookie_domain: Option<String>,
    pub public_url: Option<String>,
    pub login_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegulation {
    pub max_retries: Option<u32>,
    pub max_retries_per_source: Option<u32>,
    pub find_time: Option<RawDuration>,
    pub ban_time: Option<RawDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    pub public_profiles: Option<bool>,
    pub reauth_window: Option<RawDuration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOps {
    pub listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccessControl {
    pub default_policy: Option<String>,
    pub rules: Option<Vec<RawRule>>,
    pub tests: Option<PathBuf>,
}

/// One `[[access_control.rules]]` entry. `domain` and `subject` take a
/// string or a list, as Authelia's do.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub domain: Option<OneOrMany>,
    pub resources: Option<OneOrMany>,
    pub methods: Option<OneOrMany>,
    pub networks: Option<OneOrMany>,
    pub subject: Option<OneOrMany>,
    pub policy: Option<String>,
}

/// A string or a list of strings.
#[derive(Debug)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings (nested lists are not supported)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<OneOrMany, A::Error> {
                let mut items = Vec::new();
                while let Some(Item(item)) = seq.next_element::<Item>()? {
                    items.push(item);
                }
                Ok(OneOrMany::Many(items))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// One string of a [`OneOrMany`] list.
struct Item(String);

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Item;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string (nested lists are not supported)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Item, E> {
                Ok(Item(v.to_owned()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A duration as written: whole seconds, or a string such as `"90s"`,
/// `"10m"`, `"12h"`, `"7d"`.
#[derive(Debug)]
pub(super) enum RawDuration {
    Seconds(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a positive number of seconds or a string like \"10m\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<RawDuration, E> {
                Ok(RawDuration::Seconds(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<RawDuration, E> {
                u64::try_from(v)
                    .map(RawDuration::Seconds)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: serde::de::Error>(
                self,
                v: &str,
            ) -> std::result::Result<RawDuration, E> {
                Ok(RawDuration::Text(v.to_owned()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl RawDuration {
    /// The number of seconds written, if it reads as one.
    pub fn seconds(&self) -> Option<u64> {
        match self {
            RawDuration::Seconds(s) => Some(*s),
            RawDuration::Text(t) => parse_duration(t),
        }
    }
}

/// `"90"`, `"90s"`, `"10m"`, `"12h"`, `"7d"` in seconds.
fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    n.checked_mul(mult)
}
