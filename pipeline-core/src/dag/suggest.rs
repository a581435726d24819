//! "Did you mean ..?" for mistyped task names.

/// The candidate closest to `name` by edit distance, if it is close enough to be a typo.
pub fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let limit = (name.chars().count() / 3).max(2);
    candidates
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min()
        .map(|(_, candidate)| candidate.to_string())
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::{closest, edit_distance};

    #[test]
    fn distances() {
        assert_eq!(edit_distance("load_orders", "load_orders"), 0);
        assert_eq!(edit_distance("load_order", "load_orders"), 1);
        assert_eq!(edit_distance("laod_orders", "load_orders"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn suggests_only_near_names() {
        let names = ["load_orders", "load_users", "make_report"];
        assert_eq!(
            closest("load_order", names.into_iter()).as_deref(),
            Some("load_orders")
        );
        assert_eq!(
            closest("load_user", names.into_iter()).as_deref(),
            Some("load_users")
        );
        assert_eq!(closest("vacuum", names.into_iter()), None);
    }
}
