//! The spellings of one request path that a rule is tried against.
//!
//! Proxies and apps read a path differently: one decodes `%2F`, one
//! merges `//`, one resolves `/../`, a Java app drops `;jsessionid=...`,
//! a Windows one reads `\` as `/` and `ADMIN` as `admin`, a Node one stops
//! at `#`, and an app routes on the path without its query. A rule must
//! hold for all of them, so the path is tried as sent and in each of these
//! forms, and the strictest answer stands.
//!
//! It owns path normalisation; it knows nothing of rules.

/// Calls `f` with each distinct spelling of `path_and_query`: as sent
/// first, then without the query (a slice, no allocation), then, when the
/// path holds something a reader might normalise, every normal form with
/// and without the query (the query stays as sent). `f` returns whether
/// to go on.
pub(super) fn for_each_spelling(path_and_query: &str, mut f: impl FnMut(&str) -> bool) {
    if !f(path_and_query) {
        return;
    }
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    // A query read up to a raw `#`, as most readers take it (found by a
    // review: `/api?op=delete#x` met no rule on `op=delete`).
    let query_cut = query
        .and_then(|q| q.split_once('#'))
        .map(|(before, _)| before);
    let cut_query = query_cut.map(|q| format!("{path}?{q}"));
    if let Some(spelling) = &cut_query {
        if !f(spelling) {
            return;
        }
    }
    // Every reading is one more spelling, never a replacement of the path
    // the next reading starts from: `/public/#/../../admin` is cut at `#`
    // by one reader and resolved to `/admin` by another.
    let cut = path.split('#').next().unwrap_or("");
    if path.len() < path_and_query.len() && !f(path) {
        return;
    }
    if cut.len() < path.len() && !f(cut) {
        return;
    }
    if !needs_normalising(path) {
        return;
    }
    let mut seen: Vec<String> = vec![path_and_query.to_owned(), path.to_owned(), cut.to_owned()];
    seen.extend(cut_query);
    let queries: Vec<&str> = query.into_iter().chain(query_cut).collect();
    for form in normal_forms(path) {
        let with_query: Vec<String> = queries.iter().map(|q| format!("{form}?{q}")).collect();
        for spelling in std::iter::once(form).chain(with_query) {
            if !seen.contains(&spelling) {
                if !f(&spelling) {
                    return;
                }
                seen.push(spelling);
            }
        }
    }
}

/// Every normal form of `path` a reader might route on: decoded once and
/// fully, `\\` as `/`, whole and cut at a decoded `#` or `?`, dot segments
/// resolved with and without `;params`, as written and in lower case.
fn normal_forms(path: &str) -> Vec<String> {
    let once = percent_decode(path.as_bytes());
    let fully = decode_fully(once.clone());
    let mut forms = Vec::with_capacity(16);
    for decoded in [once, fully] {
        let decoded = decoded.replace('\\', "/");
        // Whole, and as a reader that stops at a decoded `#` or `?` sees it.
        let mut wholes = vec![decoded.as_str()];
        wholes.extend(decoded.split_once('#').map(|(before, _)| before));
        wholes.extend(decoded.split_once('?').map(|(before, _)| before));
        for whole in wholes {
            for form in [resolve(whole), resolve(&strip_params(whole))] {
                let lower = form.to_ascii_lowercase();
                forms.push(form);
                forms.push(lower);
            }
        }
    }
    forms
}

/// Whether the path holds something a reader might normalise away (or
/// read in another case).
fn needs_normalising(path: &str) -> bool {
    path.contains(['%', '\\', ';', '#'])
        || path.contains("//")
        || path.contains("/.")
        || path.bytes().any(|b| b.is_ascii_uppercase())
}

/// Decodes every `%XX`; a `%` not followed by two hex digits stays as is.
/// Bytes that are not UTF-8 become U+FFFD.
fn percent_decode(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let value = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(value).unwrap_or(b'%'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes until nothing changes (a server that decodes twice reads
/// `%252F` as `/`), at most a few rounds.
fn decode_fully(mut text: String) -> String {
    for _ in 0..4 {
        if !text.contains('%') {
            break;
        }
        let next = percent_decode(text.as_bytes());
        if next == text {
            break;
        }
        text = next;
    }
    text
}

/// Empty and `.` segments dropped, `..` removing the segment before it
/// (never above the root). A trailing slash is kept.
fn resolve(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing = false;
    for segment in path.split('/') {
        trailing = false;
        match segment {
            "" => trailing = true,
            "." => trailing = true,
            ".." => {
                segments.pop();
                trailing = true;
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing || out.is_empty() {
        out.push('/');
    }
    out
}

/// Each segment without its `;params` (`/a;x=1/b` is `/a/b`).
fn strip_params(path: &str) -> String {
    let stripped: Vec<&str> = path
        .split('/')
        .map(|s| s.split(';').next().unwrap_or(""))
        .collect();
    stripped.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spellings(path: &str) -> Vec<String> {
        let mut all = Vec::new();
        for_each_spelling(path, |s| {
            all.push(s.to_owned());
            true
        });
        all
    }

    #[test]
    fn a_plain_path_has_one_spelling_and_one_without_its_query() {
        assert_eq!(spellings("/app/x?y=1"), ["/app/x?y=1", "/app/x"]);
        assert_eq!(spellings("/"), ["/"]);
        assert_eq!(spellings("/admin#x"), ["/admin#x", "/admin"]);
    }

    #[test]
    fn a_fragment_cut_never_hides_what_follows() {
        for sent in ["/public/#/../../internal/", "/public/%23/../../internal/"] {
            let all = spellings(sent);
            assert!(all.contains(&"/public/".to_owned()), "{sent}: {all:?}");
            assert!(all.contains(&"/internal/".to_owned()), "{sent}: {all:?}");
        }
    }

    /// Found by a review: a raw `#` in the query hid the query most
    /// readers see.
    #[test]
    fn a_query_is_also_read_up_to_a_raw_fragment() {
        let all = spellings("/api?op=delete#x");
        assert!(all.contains(&"/api?op=delete".to_owned()), "{all:?}");
        let all = spellings("/API?op=delete#x");
        assert!(all.contains(&"/api?op=delete".to_owned()), "{all:?}");
    }

    #[test]
    fn case_is_one_more_spelling() {
        let all = spellings("/ADMIN/x?Q=1");
        assert!(all.contains(&"/admin/x".to_owned()), "{all:?}");
        assert!(all.contains(&"/admin/x?Q=1".to_owned()), "{all:?}");
    }

    #[test]
    fn encodings_and_dot_segments_are_resolved() {
        let cases = [
            ("/%61dmin/x", "/admin/x"),
            ("/admin%2Fx", "/admin/x"),
            ("//admin//x", "/admin/x"),
            ("/./admin/./x", "/admin/x"),
            ("/public/../admin/x", "/admin/x"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/../../admin", "/admin"),
            ("/admin\\x", "/admin/x"),
            ("/x/..;/admin/y", "/admin/y"),
            ("/admin;jsessionid=1/x", "/admin/x"),
            ("/%252e%252e/admin", "/admin"),
            ("/admin/", "/admin/"),
            ("/admin/.", "/admin/"),
        ];
        for (sent, wanted) in cases {
            let all = spellings(sent);
            assert_eq!(all[0], sent);
            assert!(all.iter().any(|s| s == wanted), "{sent}: {all:?}");
        }
    }

    #[test]
    fn the_query_is_kept_as_sent() {
        let all = spellings("/a/../b?x=%2F..");
        assert!(all.contains(&"/b?x=%2F..".to_owned()), "{all:?}");
    }

    #[test]
    fn broken_escapes_and_bytes_do_not_panic() {
        for sent in ["/%", "/%zz", "/%ff%fe", "/%c3", "/;;;", "/..", "/\\\\"] {
            assert!(!spellings(sent).is_empty());
        }
    }
}
