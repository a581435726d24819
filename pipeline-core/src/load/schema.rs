//! What both backends decide the same way: the shape of what is loaded, its fingerprint, and
//! whether the next load is incremental or a rebuild.

use anyhow::bail;

use crate::fatal::ResultExt as _;

use super::{LoadMode, LoadSpec};
use crate::db::quote_ident;
use crate::hash::fnv1a;

/// A column of what is loaded, as the source declares it.
pub(super) struct Column {
    pub name: String,
    pub type_sql: String,
    pub not_null: bool,
}

/// The source's columns in order, its primary key, and their fingerprint.
pub(super) struct SourceSchema {
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
    /// Columns unique on their own in the source (a one-column primary key or unique index).
    pub unique_columns: Vec<String>,
    /// Changes when a column is added, dropped, retyped, made nullable or moved.
    pub hash: String,
}

impl SourceSchema {
    pub fn new(columns: Vec<Column>, primary_key: Vec<String>) -> SourceSchema {
        let fingerprint: String = columns
            .iter()
            .map(|c| format!("{}\u{1f}{}\u{1f}{}\u{1e}", c.name, c.type_sql, c.not_null))
            .collect();
        let hash = format!("{:016x}", fnv1a(fingerprint.as_bytes()));
        let unique_columns = match primary_key.as_slice() {
            [key] => vec![key.clone()],
            _ => Vec::new(),
        };
        SourceSchema {
            columns,
            primary_key,
            unique_columns,
            hash,
        }
    }

    /// The columns of a custom query, from its prepared statement (types without modifiers).
    pub fn of_query<S: sqlx::Statement>(statement: &S) -> SourceSchema {
        let columns = statement
            .columns()
            .iter()
            .map(|c| Column {
                name: sqlx::Column::name(c).to_string(),
                type_sql: sqlx::TypeInfo::name(sqlx::Column::type_info(c)).to_string(),
                not_null: false,
            })
            .collect();
        SourceSchema::new(columns, Vec::new())
    }

    /// Adds columns that a unique index of the source covers on their own.
    pub fn with_unique(mut self, columns: impl IntoIterator<Item = String>) -> SourceSchema {
        for column in columns {
            if !self.unique_columns.contains(&column) {
                self.unique_columns.push(column);
            }
        }
        self
    }

    /// `"a", "b", "c"`.
    pub fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `"a" type NOT NULL, ..`, for a CREATE TABLE.
    pub fn column_definitions(&self) -> Vec<String> {
        self.columns
            .iter()
            .map(|c| {
                format!(
                    "{} {}{}",
                    quote_ident(&c.name),
                    c.type_sql,
                    if c.not_null { " NOT NULL" } else { "" }
                )
            })
            .collect()
    }
}

/// What the warehouse recorded about the last load of a table.
pub(super) struct Previous {
    pub hash: String,
    pub high_water: Option<i64>,
    pub row_count: i64,
}

/// What this load does.
pub(super) enum Plan {
    Incremental(Incremental),
    Rebuild(LoadMode),
}

/// An incremental load: rows by `key` above `high_water` (and gaps below it), into a table
/// that holds `row_count` rows.
pub(super) struct Incremental {
    pub key: String,
    pub high_water: i64,
    pub row_count: i64,
}

/// Incremental when asked for and the table, its metadata and its schema are unchanged;
/// otherwise a rebuild. Also says whether the schema changed since the last load.
pub(super) fn plan(
    spec: &LoadSpec,
    schema: &SourceSchema,
    exists: bool,
    previous: Option<&Previous>,
) -> anyhow::Result<(Plan, bool)> {
    if let Some(key) = &spec.incremental_key {
        check_incremental_key(key, schema).fatal()?;
    }
    let schema_changed = previous.is_some_and(|p| p.hash != schema.hash);
    let plan = match (&spec.incremental_key, previous) {
        (
            Some(key),
            Some(Previous {
                high_water: Some(high_water),
                row_count,
                ..
            }),
        ) if exists && !schema_changed => Plan::Incremental(Incremental {
            key: key.clone(),
            high_water: *high_water,
            row_count: *row_count,
        }),
        _ if exists => Plan::Rebuild(LoadMode::Full),
        _ => Plan::Rebuild(LoadMode::Initial),
    };
    Ok((plan, schema_changed))
}

/// An incremental key must be an integer column that is unique in the source: rows are
/// found by `key > high-water mark`, so a key that repeats (an order's lines by order id)
/// would never bring the lines added later to an order already loaded, and a timestamp or text
/// key has no gaps to find. Both are refused before anything is copied.
fn check_incremental_key(key: &str, schema: &SourceSchema) -> anyhow::Result<()> {
    let Some(column) = schema.columns.iter().find(|c| c.name == key) else {
        bail!("the incremental key `{key}` is not a column of the source");
    };
    let type_sql = column.type_sql.to_ascii_lowercase();
    // smallint, integer, bigint (PostgreSQL); INTEGER, INT, BIGINT (SQLite).
    let integer =
        type_sql.contains("int") && !type_sql.contains("interval") && !type_sql.contains("point");
    if !integer {
        bail!(
            "the incremental key `{key}` is of type {}; it must be an integer that grows with \
             each new row (an id from a sequence). Load this table in full instead",
            column.type_sql
        );
    }
    if !schema.unique_columns.iter().any(|c| c == key) {
        bail!(
            "the incremental key `{key}` is not unique in the source (no primary key or unique \
             index on it alone): rows added later under a key already loaded would never be \
             loaded. Use a unique key, or load this table in full"
        );
    }
    Ok(())
}
