//! Secrets never leave the process in text: passwords in database URLs, webhook URLs, routing
//! keys, API keys set as headers. Every message on its way out (errors, logs, the state store,
//! alerts, `--json`) goes through [`redact`], which hides
//! - the password of any URL in the text, however it is spelled (`/ @ : ? # %` included), and
//! - every secret value the configuration and the loaders registered, raw or percent-decoded,
//!   wherever it shows up (an API that echoes its key in an error body, a driver that quotes
//!   its connection string);
//! - the password of a configured URL also outside its URL, as a word of its own: it may be a
//!   word messages use (a password `postgres`), which a URL's scheme, user, host or path and
//!   the advice around them keep.

use std::sync::RwLock;

/// What replaces a secret.
pub const MASK: &str = "***";

/// Shorter values are not registered: hiding every `ab` in every message would say nothing.
const MIN_SECRET_BYTES: usize = 6;

/// A registered secret, and whether it is hidden wherever it stands (keys, tokens, webhook
/// URLs) or only where it stands as a word outside a URL's structure (a URL's password).
static KNOWN: RwLock<Vec<(String, Reach)>> = RwLock::new(Vec::new());

/// Where a registered secret is hidden.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Reach {
    /// As a word of its own, outside a URL's scheme, user, host and path.
    Word,
    /// Wherever it stands.
    Anywhere,
}

/// Remembers a secret value (and its percent-decoded form) so that [`redact`] hides it
/// wherever it shows up.
pub fn register(value: &str) {
    remember(value, Reach::Anywhere);
}

/// Registers the password of a URL, if it has one: hidden in any URL by its place, and
/// elsewhere as a word of its own.
pub fn register_url(url: &str) {
    if let Some(password) = url_password(url) {
        remember(password, Reach::Word);
    }
}

fn remember(value: &str, reach: Reach) {
    let mut forms = vec![value.to_string()];
    let decoded = percent_decode(value);
    if decoded != value {
        forms.push(decoded);
    }
    let mut known = KNOWN
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for form in forms {
        if form.len() < MIN_SECRET_BYTES {
            continue;
        }
        match known.iter_mut().find(|(secret, _)| *secret == form) {
            // Registered both ways: the wider reach holds.
            Some((_, known_reach)) => *known_reach = (*known_reach).max(reach),
            None => known.push((form, reach)),
        }
    }
    // Longest first, so that a secret containing another is hidden whole.
    known.sort_by_key(|(secret, _)| std::cmp::Reverse(secret.len()));
}

/// `text` with URL passwords and registered secrets replaced by `***`.
pub fn redact(text: &str) -> String {
    // Most lines hold no URL: they are not split into words at all.
    let structural: String = if text.contains("://") || text.contains("password=") {
        text.split_inclusive(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '`')
            .map(|word| {
                if word.contains("://") || word.contains("password=") {
                    redact_url(word)
                } else {
                    word.to_string()
                }
            })
            .collect()
    } else {
        text.to_string()
    };
    let known = KNOWN
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    known
        .iter()
        .fold(structural, |text, (secret, reach)| match reach {
            _ if !text.contains(secret.as_str()) => text,
            Reach::Anywhere => text.replace(secret.as_str(), MASK),
            Reach::Word => hide_word(&text, secret),
        })
}

/// `text` with the password `secret` hidden where it stands as a word of its own, and not
/// where it names a URL's scheme, user, host or path, which the URL's structure tells apart
/// from its password (already hidden); in a URL's query it is hidden.
fn hide_word(text: &str, secret: &str) -> String {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    for (start, _) in text.match_indices(secret) {
        let end = start + secret.len();
        if start < rest {
            continue;
        }
        let (before, after) = (&text[..start], &text[end..]);
        let whole_word = !word(before.chars().next_back()) && !word(after.chars().next());
        // The part of the URL around it, if it is in one: up to the end of the URL's path.
        let gap = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`');
        let url_start = before.rfind(gap).map_or(0, |i| i + 1);
        let url_end = after.find(gap).map_or(text.len(), |i| end + i);
        let url = &text[url_start..url_end];
        let in_query = url.find('?').is_some_and(|q| url_start + q < start);
        let structure = url.contains("://") && !in_query;
        if whole_word && !structure {
            out.push_str(&text[rest..start]);
            out.push_str(MASK);
            rest = end;
        }
    }
    out.push_str(&text[rest..]);
    out
}

/// `postgres://user:secret@host/db` -> `postgres://user:***@host/db`; a `password=` query
/// parameter is hidden too.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some((start, end)) = password_range(url) {
        out.replace_range(start..end, MASK);
    }
    if let Some(start) = out.find("password=") {
        let value_start = start + "password=".len();
        let value_end = out[value_start..]
            .find('&')
            .map_or(out.len(), |i| value_start + i);
        out.replace_range(value_start..value_end, MASK);
    }
    out
}

/// A URL safe to show for an API: no password and no query string (which often carries a
/// token): `https://api.example.com/v1/rates?...`.
pub fn redact_query(url: &str) -> String {
    let without_fragment = url.split('#').next().unwrap_or(url);
    match without_fragment.split_once('?') {
        Some((base, _)) => format!("{}?...", redact_url(base)),
        None => redact_url(without_fragment),
    }
}

/// The password of a URL as written (still percent-encoded), if it has one.
pub fn url_password(url: &str) -> Option<&str> {
    password_range(url).map(|(start, end)| &url[start..end])
}

/// Where the password is: after the first `:` of the user information, up to its last `@`.
/// A password may hold unencoded `/ @ : ? #` (people write them, and drivers accept some), so
/// the user information is taken to end at the URL's last `@`, not at its first `/`: hiding
/// too much is safe, showing a password is not.
fn password_range(url: &str) -> Option<(usize, usize)> {
    let authority = url.find("://")? + 3;
    let at = authority + url[authority..].rfind('@')?;
    let colon = authority + url[authority..at].find(':')?;
    (colon + 1 < at).then_some((colon + 1, at))
}

/// `%2F` -> `/`; anything that is not a valid escape stays as it is.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_hidden_whatever_they_hold() {
        for password in [
            "plain",
            "pa/ss",
            "Pw/Slash_H7",
            "p@ss",
            "p:ss",
            "p?ss",
            "p#ss",
            "p%2Fss",
            "a/b@c:d?e#f",
        ] {
            let url = format!("postgres://etl:{password}@db-host:5432/dwh?sslmode=require");
            let shown = redact_url(&url);
            assert_eq!(
                shown, "postgres://etl:***@db-host:5432/dwh?sslmode=require",
                "{password}"
            );
            let text = redact(&format!("cannot connect to {url}: refused"));
            assert!(!text.contains(password), "{text}");
        }
        assert_eq!(
            redact_url("postgres://etl@db-host/dwh"),
            "postgres://etl@db-host/dwh"
        );
        assert_eq!(
            redact_url("sqlite://.pipeline/state.db"),
            "sqlite://.pipeline/state.db"
        );
        assert_eq!(
            redact_url("postgres://h/db?user=u&password=x/y&sslmode=disable"),
            "postgres://h/db?user=u&password=***&sslmode=disable"
        );
    }

    #[test]
    fn a_password_that_is_a_common_word_hides_only_itself() {
        // As `postgres:postgres@../postgres` would be; a word no other test's message holds.
        let word = "dbadmin9";
        register_url(&format!("postgres://admin:{word}@db/x"));
        let text = redact(&format!(
            "cannot connect to `postgres://{word}:{word}@db:5432/{word}?key={word}`: add \
             replica = `{word}://..`; the password is {word}, not {word}x"
        ));
        assert_eq!(
            text,
            format!(
                "cannot connect to `postgres://{word}:***@db:5432/{word}?key=***`: add \
                 replica = `{word}://..`; the password is ***, not {word}x"
            )
        );
    }

    #[test]
    fn a_short_key_is_hidden_in_a_url_path_and_inside_a_word_too() {
        // Only a URL's password is spared where it names URL structure; a key never is.
        register("k3yQ9z");
        let text = redact("GET https://api.example/v1/k3yQ9z/rates failed: token_k3yQ9z");
        assert_eq!(
            text,
            "GET https://api.example/v1/***/rates failed: token_***"
        );
    }

    #[test]
    fn registered_secrets_are_hidden_anywhere_raw_or_decoded() {
        register("Zq9%2Fsecret%40value");
        register("abc");
        let text = redact("auth failed for Zq9/secret@value and Zq9%2Fsecret%40value, abc");
        assert_eq!(text, "auth failed for *** and ***, abc");
    }
}
