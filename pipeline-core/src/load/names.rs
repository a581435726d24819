//! Names a load creates and accepts. PostgreSQL silently truncates identifiers to 63 bytes, so
//! longer ones are refused rather than loaded under another name; staging names are built to
//! stay within the limit and unique per run.

use anyhow::bail;

use crate::hash::fnv1a;

/// PostgreSQL's identifier limit (NAMEDATALEN - 1).
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// Accepts any identifier that can be quoted safely: quotes, spaces and semicolons are fine
/// (every identifier is quoted), NUL bytes and over-long names are not.
pub fn check_identifier(name: &str) -> anyhow::Result<()> {
    if name.is_empty() {
        bail!("an identifier cannot be empty");
    }
    if name.contains('\0') {
        bail!("an identifier cannot contain a NUL byte");
    }
    if name.len() > MAX_IDENTIFIER_BYTES {
        bail!(
            "identifier is {} bytes long; PostgreSQL keeps only {MAX_IDENTIFIER_BYTES}, so it would silently name another table",
            name.len()
        );
    }
    Ok(())
}

/// `orders` -> `orders_1f2e3d4c__pl_stage_9f3a0b1c`: the table's name cut to fit, a short hash
/// of the full name (so two long names that share a prefix differ), and a hash of the run and
/// the time, unique per load. At most 58 bytes: room for suffixes of derived names.
pub fn staging_name(table: &str, run_id: i64) -> String {
    let unique =
        fnv1a(format!("{table}/{run_id}/{:?}", std::time::SystemTime::now()).as_bytes()) as u32;
    format!("{}{unique:08x}", staging_prefix(table))
}

/// What every staging table of `table` starts with, to find leftovers of failed runs.
pub fn staging_prefix(table: &str) -> String {
    format!(
        "{}_{:08x}__pl_stage_",
        truncate(table, 30),
        fnv1a(table.as_bytes()) as u32
    )
}

/// The name of an object derived from a table (`orders_pkey`), never longer than PostgreSQL
/// keeps and never equal to the table's own name, however long that is: a name that does not
/// fit is cut and told apart by a hash of the whole (`<cut>_1a2b3c4d_pkey`).
pub fn derived(table: &str, suffix: &str) -> String {
    let whole = format!("{table}_{suffix}");
    if whole.len() <= MAX_IDENTIFIER_BYTES {
        return whole;
    }
    let room = MAX_IDENTIFIER_BYTES - suffix.len() - 10;
    format!(
        "{}_{:08x}_{suffix}",
        truncate(table, room),
        fnv1a(table.as_bytes()) as u32
    )
}

/// `name` cut to at most `max` bytes, at a character boundary.
pub fn truncate(name: &str, max: usize) -> &str {
    let mut cut = name.len().min(max);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    &name[..cut]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names_fit_and_differ() {
        let long = "x".repeat(63);
        let name = staging_name(&long, i64::MAX);
        assert!(name.len() <= 58, "{} bytes: {name}", name.len());
        assert!(name.starts_with(&staging_prefix(&long)));
        let unicode = "ä".repeat(31);
        assert!(staging_name(&unicode, 1).len() <= MAX_IDENTIFIER_BYTES);
        let a = format!("{}a", "y".repeat(40));
        let b = format!("{}b", "y".repeat(40));
        assert_ne!(staging_prefix(&a), staging_prefix(&b));
    }

    #[test]
    fn derived_names_fit_and_never_equal_the_table() {
        assert_eq!(derived("orders", "pkey"), "orders_pkey");
        for length in [58, 59, 62, 63] {
            let table = "t".repeat(length);
            let name = derived(&table, "pkey");
            assert!(name.len() <= MAX_IDENTIFIER_BYTES, "{name}");
            assert_ne!(name, table);
            assert!(name.ends_with("_pkey"));
        }
        let wide = "ä".repeat(31);
        assert!(derived(&wide, "pkey").len() <= MAX_IDENTIFIER_BYTES);
    }

    #[test]
    fn identifiers_are_checked() {
        assert!(check_identifier("orders").is_ok());
        assert!(check_identifier("we\"ird; DROP TABLE x; --").is_ok());
        assert!(check_identifier("").is_err());
        assert!(check_identifier("a\0b").is_err());
        assert!(check_identifier(&"x".repeat(64)).is_err());
    }
}
