//! SQLite to SQLite, for the embedded default: the source file is attached to the warehouse
//! connection and copied in one `BEGIN IMMEDIATE` transaction. In WAL mode readers keep seeing
//! the old table until the commit, so no staging table is needed for atomicity.

use std::path::Path;

use anyhow::{Context as _, bail};
use sqlx::{AssertSqlSafe, Executor as _, Row as _, SqlitePool};

use super::names::fnv1a;
use super::{LoadMode, LoadReport, LoadSpec, meta_create_sql, meta_select_sql, meta_upsert_sql};
use crate::db::quote_ident;

const SOURCE: &str = "pipeline_source";

pub(super) async fn load(
    source_file: &Path,
    target: &SqlitePool,
    spec: &LoadSpec,
) -> anyhow::Result<LoadReport> {
    let mut conn = target
        .acquire()
        .await
        .context("cannot open the warehouse")?;
    let path = source_file.to_string_lossy().replace('\'', "''");
    conn.execute(AssertSqlSafe(format!(
        "ATTACH DATABASE '{path}' AS {SOURCE}"
    )))
    .await
    .context("cannot attach the source")?;
    let loaded = load_attached(&mut conn, spec).await;
    let detached = conn
        .execute(AssertSqlSafe(format!("DETACH DATABASE {SOURCE}")))
        .await;
    let report = loaded?;
    detached?;
    Ok(report)
}

async fn load_attached(
    conn: &mut sqlx::SqliteConnection,
    spec: &LoadSpec,
) -> anyhow::Result<LoadReport> {
    let select_from = match &spec.query {
        Some(query) => format!("({query})"),
        None => format!("{SOURCE}.{}", quote_ident(&spec.source_table)),
    };
    // Columns of what is loaded, in order, with declared types and the primary key.
    let (columns, primary_key) = match &spec.query {
        Some(_) => {
            let described = conn
                .prepare(sqlx::SqlSafeStr::into_sql_str(AssertSqlSafe(format!(
                    "SELECT * FROM {select_from} LIMIT 0"
                ))))
                .await?;
            let columns: Vec<(String, String, bool)> = sqlx::Statement::columns(&described)
                .iter()
                .map(|c| {
                    (
                        sqlx::Column::name(c).to_string(),
                        sqlx::TypeInfo::name(sqlx::Column::type_info(c)).to_string(),
                        false,
                    )
                })
                .collect();
            (columns, Vec::new())
        }
        None => {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT name, type, \"notnull\", pk FROM pragma_table_info({}, '{SOURCE}') ORDER BY cid",
                quote_literal(&spec.source_table)
            )))
            .fetch_all(&mut *conn)
            .await?;
            if rows.is_empty() {
                bail!("the source has no table {}", spec.source_table);
            }
            let mut pk: Vec<(i64, String)> = Vec::new();
            let mut columns = Vec::new();
            for row in &rows {
                let (name, ty, not_null, pk_pos): (String, String, bool, i64) = (
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                );
                if pk_pos > 0 {
                    pk.push((pk_pos, name.clone()));
                }
                columns.push((name, ty, not_null));
            }
            pk.sort();
            (columns, pk.into_iter().map(|(_, name)| name).collect())
        }
    };
    let fingerprint: String = columns
        .iter()
        .map(|(n, t, nn)| format!("{n}\u{1f}{t}\u{1f}{nn}\u{1e}"))
        .collect();
    let hash = format!("{:016x}", fnv1a(fingerprint.as_bytes()));
    if let Some(key) = &spec.incremental_key
        && !columns.iter().any(|(name, _, _)| name == key)
    {
        bail!("the incremental key `{key}` is not a column of the source");
    }
    let table = quote_ident(&spec.target_table);
    let column_list = columns
        .iter()
        .map(|(n, _, _)| quote_ident(n))
        .collect::<Vec<_>>()
        .join(", ");

    let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
    tx.execute(AssertSqlSafe(meta_create_sql("main"))).await?;
    let exists: bool = sqlx::query_scalar(
        "SELECT count(*) > 0 FROM main.sqlite_master WHERE type = 'table' AND name = $1",
    )
    .bind(&spec.target_table)
    .fetch_one(&mut *tx)
    .await?;
    let meta: Option<(String, Option<i64>, i64)> =
        sqlx::query_as(AssertSqlSafe(meta_select_sql("main")))
            .bind(&spec.target_table)
            .fetch_optional(&mut *tx)
            .await?;
    let schema_changed = meta.as_ref().is_some_and(|(h, _, _)| *h != hash);
    let incremental = match (&spec.incremental_key, &meta) {
        (Some(key), Some((_, Some(high_water), row_count))) if exists && !schema_changed => {
            Some((key.clone(), *high_water, *row_count))
        }
        _ => None,
    };

    let (mode, rows, high_water, row_count) = if let Some((key, high_water, row_count)) =
        incremental
    {
        let key = quote_ident(&key);
        let after = high_water.saturating_sub(spec.lookback);
        let gaps: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
            "WITH RECURSIVE k(v) AS (SELECT {} UNION ALL SELECT v + 1 FROM k WHERE v < {high_water}) \
             SELECT v FROM k WHERE NOT EXISTS (SELECT 1 FROM main.{table} AS t WHERE t.{key} = k.v)",
            after.saturating_add(1)
        )))
        .fetch_all(&mut *tx)
        .await?;
        let filter = super::incremental_filter(&key, high_water, &gaps);
        let deleted = tx
            .execute(AssertSqlSafe(format!(
                "DELETE FROM main.{table} WHERE {key} IN (SELECT {key} FROM {select_from} WHERE {filter})"
            )))
            .await?
            .rows_affected();
        let inserted = tx
            .execute(AssertSqlSafe(format!(
                "INSERT INTO main.{table} ({column_list}) SELECT {column_list} FROM {select_from} WHERE {filter}"
            )))
            .await?
            .rows_affected();
        let newest: Option<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT max({key}) FROM main.{table}"
        )))
        .fetch_one(&mut *tx)
        .await?;
        (
            LoadMode::Incremental,
            inserted,
            newest.or(Some(high_water)),
            row_count + inserted as i64 - deleted as i64,
        )
    } else {
        let mode = if exists {
            LoadMode::Full
        } else {
            LoadMode::Initial
        };
        // The warehouse's own indexes on the old table, to rebuild on the new one.
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT sql FROM main.sqlite_master WHERE type = 'index' AND tbl_name = $1 AND sql IS NOT NULL",
        )
        .bind(&spec.target_table)
        .fetch_all(&mut *tx)
        .await?;
        tx.execute(AssertSqlSafe(format!("DROP TABLE IF EXISTS main.{table}")))
            .await?;
        let mut definitions: Vec<String> = columns
            .iter()
            .map(|(n, t, nn)| {
                format!(
                    "{} {}{}",
                    quote_ident(n),
                    t,
                    if *nn { " NOT NULL" } else { "" }
                )
            })
            .collect();
        if !primary_key.is_empty() {
            definitions.push(format!(
                "PRIMARY KEY ({})",
                primary_key
                    .iter()
                    .map(|c| quote_ident(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        tx.execute(AssertSqlSafe(format!(
            "CREATE TABLE main.{table} ({})",
            definitions.join(", ")
        )))
        .await?;
        let rows = tx
            .execute(AssertSqlSafe(format!(
                "INSERT INTO main.{table} ({column_list}) SELECT {column_list} FROM {select_from}"
            )))
            .await?
            .rows_affected();
        for index in indexes {
            if let Err(err) = tx
                .execute(AssertSqlSafe(format!(
                    "SAVEPOINT idx; {index}; RELEASE idx"
                )))
                .await
            {
                tracing::warn!(
                    "index not rebuilt on the new `{}`: {index} ({err})",
                    spec.target_table
                );
                tx.execute("ROLLBACK TO idx; RELEASE idx").await?;
            }
        }
        tx.execute(AssertSqlSafe(format!("ANALYZE main.{table}")))
            .await?;
        let high_water: Option<i64> = match &spec.incremental_key {
            Some(key) => {
                sqlx::query_scalar(AssertSqlSafe(format!(
                    "SELECT max({}) FROM main.{table}",
                    quote_ident(key)
                )))
                .fetch_one(&mut *tx)
                .await?
            }
            None => None,
        };
        (mode, rows, high_water, rows as i64)
    };
    sqlx::query(AssertSqlSafe(meta_upsert_sql("main")))
        .bind(&spec.target_table)
        .bind(&hash)
        .bind(high_water)
        .bind(row_count)
        .bind(mode.as_str())
        .bind(crate::date::now_millis())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(LoadReport {
        table: spec.target_table.clone(),
        mode,
        rows,
        schema_changed,
        high_water,
        duration_ms: 0,
    })
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
