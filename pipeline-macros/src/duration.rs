//! Durations written as strings in attributes: `"500ms"`, `"30s"`, `"15m"`, `"1h30m"`, `"2d"`.

/// The accepted forms, quoted in every error so the user can fix the value at once.
pub const ACCEPTED: &str = "use a whole number followed by a unit (ms, s, m, h, d), e.g. \"500ms\", \"30s\", \"15m\", \"1h30m\"";

/// Parses a duration into milliseconds, or says why it cannot.
pub fn parse_millis(text: &str) -> Result<u64, String> {
    let invalid = || format!("invalid duration {text:?}: {ACCEPTED}");
    if text.is_empty() {
        return Err(invalid());
    }
    let bytes = text.as_bytes();
    let mut total: u64 = 0;
    let mut at = 0;
    while at < bytes.len() {
        let digits_start = at;
        while at < bytes.len() && bytes[at].is_ascii_digit() {
            at += 1;
        }
        if at == digits_start {
            return Err(invalid());
        }
        let number: u64 = text[digits_start..at].parse().map_err(|_| invalid())?;
        let unit_start = at;
        while at < bytes.len() && bytes[at].is_ascii_alphabetic() {
            at += 1;
        }
        let unit_millis: u64 = match &text[unit_start..at] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(invalid()),
        };
        total = number
            .checked_mul(unit_millis)
            .and_then(|millis| total.checked_add(millis))
            .ok_or_else(|| format!("duration {text:?} is too large"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::parse_millis;

    #[test]
    fn accepts_units_and_combinations() {
        assert_eq!(parse_millis("500ms"), Ok(500));
        assert_eq!(parse_millis("30s"), Ok(30_000));
        assert_eq!(parse_millis("15m"), Ok(900_000));
        assert_eq!(parse_millis("1h30m"), Ok(5_400_000));
        assert_eq!(parse_millis("2d"), Ok(172_800_000));
        assert_eq!(parse_millis("0s"), Ok(0));
    }

    #[test]
    fn rejects_other_forms() {
        for bad in [
            "",
            "15",
            "15 minutes",
            "m",
            "1.5h",
            "-3s",
            "15min",
            "1h 30m",
            "s30",
        ] {
            let err = parse_millis(bad).expect_err(bad);
            assert!(err.contains("e.g. \"500ms\""), "{bad}: {err}");
        }
        assert!(parse_millis("99999999999999999999d").is_err());
    }
}
