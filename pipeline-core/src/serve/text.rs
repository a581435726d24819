//! Text that crosses into a page or a URL: HTML escaping, percent-encoding of path segments
//! and query values, and reading a query string. Everything a user or a task wrote (names,
//! errors, log lines) reaches a page through [`escape`] and nothing else.

use std::fmt::Write as _;

/// `text` as HTML text or an attribute value: `&`, `<`, `>`, `"` and `'` escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` as one path segment or query value: everything but unreserved characters
/// (RFC 3986) percent-encoded.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// A percent-encoded segment or value decoded (`+` as a space in query values); `None` when
/// it is not valid UTF-8 or a `%` is not followed by two hex digits.
pub fn decode(text: &str, plus_is_space: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The pairs of a query string, decoded; pairs that do not decode are left out.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode(key, true)?, decode(value, true)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }

    #[test]
    fn names_round_trip_through_urls() {
        for name in ["load[orders]", "a b/c?d#e&f=g", "ünïcode", "%41"] {
            assert_eq!(decode(&encode(name), false).as_deref(), Some(name));
        }
        assert_eq!(encode("load[orders]"), "load%5Borders%5D");
        assert_eq!(decode("%zz", false), None);
        assert_eq!(decode("%", false), None);
        assert_eq!(decode("%ff", false), None, "not UTF-8");
    }

    #[test]
    fn queries_are_read_leniently() {
        assert_eq!(
            query_pairs("status=failed&date=2026-11-26&bad=%zz&flag"),
            [
                ("status".into(), "failed".into()),
                ("date".into(), "2026-11-26".into()),
                ("flag".into(), String::new())
            ]
        );
    }
}
