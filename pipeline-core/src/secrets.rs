//! Secrets never leave the process in text: passwords in database URLs, webhook URLs, routing
//! keys, API keys set as headers. Every message on its way out (errors, logs, the state store,
//! alerts, `--json`) goes through [`redact`], which hides
//! - the password of any URL in the text, however it is spelled (`/ @ : ? # %` included), and
//! - every secret value the configuration and the loaders registered, raw or percent-decoded,
//!   wherever it shows up (an API that echoes its key in an error body, a driver that quotes
//!   its connection string).

use std::sync::RwLock;

/// What replaces a secret.
pub const MASK: &str = "***";

/// Shorter values are not registered: hiding every `ab` in every message would say nothing.
const MIN_SECRET_BYTES: usize = 6;

static KNOWN: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Remembers a secret value (and its percent-decoded form) so that [`redact`] hides it.
pub fn register(value: &str) {
    let mut forms = vec![value.to_string()];
    let decoded = percent_decode(value);
    if decoded != value {
        forms.push(decoded);
    }
    let mut known = KNOWN
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for form in forms {
        if form.len() >= MIN_SECRET_BYTES && !known.contains(&form) {
            known.push(form);
        }
    }
    // Longest first, so that a secret containing another is hidden whole.
    known.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
}

/// Registers the password of a URL, if it has one.
pub fn register_url(url: &str) {
    if let Some(password) = url_password(url) {
        register(password);
    }
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
    known.iter().fold(structural, |text, secret| {
        if text.contains(secret.as_str()) {
            hide(&text, secret)
        } else {
            text
        }
    })
}

/// Secrets this long are no word of any message: hidden wherever they stand.
const UNMISTAKABLE_BYTES: usize = 16;

/// `text` with `secret` hidden. A short secret may be a word messages use (a password
/// `postgres`): it is hidden where it stands as a word of its own, and not where it names a
/// URL's scheme, user, host or path, which the URL's structure tells apart from its password
/// (already hidden); in a URL's query it is hidden.
fn hide(text: &str, secret: &str) -> String {
    if secret.len() >= UNMISTAKABLE_BYTES {
        return text.replace(secret, MASK);
    }
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
        register(word);
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
    fn registered_secrets_are_hidden_anywhere_raw_or_decoded() {
        register("Zq9%2Fsecret%40value");
        register("abc");
        let text = redact("auth failed for Zq9/secret@value and Zq9%2Fsecret%40value, abc");
        assert_eq!(text, "auth failed for *** and ***, abc");
    }
}
