//! Writing API rows into a warehouse table in one transaction, replacing rows by key. The table
//! is created on first use with column types read from the values.

use std::collections::HashMap;

use anyhow::bail;
use serde_json::{Map, Value};
use sqlx::{AssertSqlSafe, QueryBuilder};

use crate::db::{BeginWrite as _, Db, DbPool, dispatch, quote_ident};

/// Rows per INSERT statement.
const ROWS_PER_STATEMENT: usize = 500;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ColumnType {
    Integer,
    Float,
    Boolean,
    Text,
}

impl ColumnType {
    fn of(value: &Value) -> Option<ColumnType> {
        match value {
            Value::Null => None,
            Value::Bool(_) => Some(ColumnType::Boolean),
            Value::Number(n) if n.is_i64() => Some(ColumnType::Integer),
            Value::Number(_) => Some(ColumnType::Float),
            _ => Some(ColumnType::Text),
        }
    }

    /// The wider of two types seen in one column.
    fn widen(self, other: ColumnType) -> ColumnType {
        match (self, other) {
            (a, b) if a == b => a,
            (ColumnType::Integer, ColumnType::Float) | (ColumnType::Float, ColumnType::Integer) => {
                ColumnType::Float
            }
            _ => ColumnType::Text,
        }
    }

    fn sql(self, postgres: bool) -> &'static str {
        match (self, postgres) {
            (ColumnType::Integer, _) => "BIGINT",
            (ColumnType::Float, true) => "DOUBLE PRECISION",
            (ColumnType::Float, false) => "REAL",
            (ColumnType::Boolean, true) => "BOOLEAN",
            (ColumnType::Boolean, false) => "INTEGER",
            (ColumnType::Text, _) => "TEXT",
        }
    }
}

/// Replaces the rows with the same key and inserts the others; rows repeated across pages are
/// kept once (the last one). Returns the rows written.
pub(super) async fn upsert(
    db: &Db,
    table: &str,
    key: &[String],
    rows: Vec<Map<String, Value>>,
) -> anyhow::Result<u64> {
    let mut unique: Vec<Map<String, Value>> = Vec::with_capacity(rows.len());
    let mut position: HashMap<String, usize> = HashMap::new();
    for row in rows {
        let mut identity = Vec::with_capacity(key.len());
        for column in key {
            match row.get(column) {
                None | Some(Value::Null) => bail!(
                    "a row has no value for the key column `{column}`: {}",
                    Value::Object(row)
                ),
                Some(value) => identity.push(value.to_string()),
            }
        }
        match position.get(&identity.join("\u{1f}")) {
            Some(&at) => unique[at] = row,
            None => {
                position.insert(identity.join("\u{1f}"), unique.len());
                unique.push(row);
            }
        }
    }
    let columns = columns(&unique, key);
    let postgres = matches!(db.own_pool(), DbPool::Postgres(_));
    let definitions: Vec<String> = columns
        .iter()
        .map(|(name, ty)| format!("{} {}", quote_ident(name), ty.sql(postgres)))
        .collect();
    let key_list = key
        .iter()
        .map(|k| quote_ident(k))
        .collect::<Vec<_>>()
        .join(", ");
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({key_list}))",
        quote_ident(table),
        definitions.join(", ")
    );
    let column_list = columns
        .iter()
        .map(|(name, _)| quote_ident(name))
        .collect::<Vec<_>>()
        .join(", ");
    let updates: Vec<String> = columns
        .iter()
        .filter(|(name, _)| !key.contains(name))
        .map(|(name, _)| format!("{0} = excluded.{0}", quote_ident(name)))
        .collect();
    let conflict = if updates.is_empty() {
        format!(" ON CONFLICT ({key_list}) DO NOTHING")
    } else {
        format!(
            " ON CONFLICT ({key_list}) DO UPDATE SET {}",
            updates.join(", ")
        )
    };
    dispatch!(db.own_pool(), pool => {
        let mut tx = pool.begin_write().await?;
        sqlx::query(AssertSqlSafe(create)).execute(&mut *tx).await?;
        for chunk in unique.chunks(ROWS_PER_STATEMENT) {
            let mut insert = QueryBuilder::new(format!("INSERT INTO {} ({column_list}) ", quote_ident(table)));
            insert.push_values(chunk, |mut values, row| {
                for (name, ty) in &columns {
                    let value = row.get(name).unwrap_or(&Value::Null);
                    match ty {
                        ColumnType::Integer => values.push_bind(value.as_i64()),
                        ColumnType::Float => values.push_bind(value.as_f64()),
                        ColumnType::Boolean if postgres => values.push_bind(value.as_bool()),
                        ColumnType::Boolean => values.push_bind(value.as_bool().map(i64::from)),
                        ColumnType::Text => values.push_bind(match value {
                            Value::Null => None,
                            Value::String(text) => Some(text.clone()),
                            other => Some(other.to_string()),
                        }),
                    };
                }
            });
            insert.push(&conflict);
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
    });
    Ok(unique.len() as u64)
}

/// Column names in first-seen order, with types that fit every value.
fn columns(rows: &[Map<String, Value>], key: &[String]) -> Vec<(String, ColumnType)> {
    let mut columns: Vec<(String, Option<ColumnType>)> = Vec::new();
    for row in rows {
        for (name, value) in row {
            let seen = ColumnType::of(value);
            match columns.iter_mut().find(|(n, _)| n == name) {
                Some((_, ty)) => {
                    *ty = match (*ty, seen) {
                        (Some(a), Some(b)) => Some(a.widen(b)),
                        (a, b) => a.or(b),
                    }
                }
                None => columns.push((name.clone(), seen)),
            }
        }
    }
    for column in key {
        if !columns.iter().any(|(n, _)| n == column) {
            columns.push((column.clone(), Some(ColumnType::Text)));
        }
    }
    columns
        .into_iter()
        .map(|(name, ty)| (name, ty.unwrap_or(ColumnType::Text)))
        .collect()
}
