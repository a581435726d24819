//! "Did you mean ..?" for a misspelt key or value of the DSL: the closest known word, when it
//! is close enough to be what was meant.

/// `; did you mean `known`?` for the known word closest to `given`, or nothing when none is
/// close: fewer edits than half the longer word, and than the given word is long. `retry`
/// finds `retries`, `depends_on` finds nothing.
pub fn did_you_mean<'a>(given: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    let given_lower = given.to_lowercase();
    let given_len = given.chars().count();
    let closest = known
        .into_iter()
        .map(|word| (edit_distance(&given_lower, &word.to_lowercase()), word))
        .filter(|(distance, word)| {
            *distance <= (given_len.max(word.chars().count()) / 2).max(1) && *distance < given_len
        })
        .min();
    match closest {
        Some((_, word)) => format!("; did you mean `{word}`?"),
        None => String::new(),
    }
}

/// Levenshtein distance: insertions, deletions and substitutions of one character.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_only_what_is_close() {
        let keys = crate::attr::KEYS.iter().copied();
        assert_eq!(
            did_you_mean("retry", keys.clone()),
            "; did you mean `retries`?"
        );
        assert_eq!(
            did_you_mean("require", keys.clone()),
            "; did you mean `requires`?"
        );
        assert_eq!(
            did_you_mean("Timeout", keys.clone()),
            "; did you mean `timeout`?"
        );
        assert_eq!(did_you_mean("depends_on", keys.clone()), "");
        assert_eq!(did_you_mean("x", keys), "");
        assert_eq!(
            did_you_mean("warm", ["warn", "error"]),
            "; did you mean `warn`?"
        );
    }
}
