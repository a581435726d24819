//! SQLite to SQLite, for the embedded default: the source file is attached to the warehouse
//! connection and copied in one `BEGIN IMMEDIATE` transaction. In WAL mode readers keep seeing
//! the old table until the commit, so no staging table is needed for atomicity.

use std::path::Path;

use anyhow::{Context as _, bail};
use sqlx::{AssertSqlSafe, Executor as _, Row as _, SqlitePool};

use super::schema::{Column, Incremental, Plan, Previous, SourceSchema, plan};
use super::{LoadMode, LoadReport, LoadSpec, meta_create_sql, meta_select_sql, meta_upsert_sql};
use crate::db::{quote_ident, quote_literal};

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
    let schema = source_schema(conn, spec, &select_from).await?;
    let table = quote_ident(&spec.target_table);
    let column_list = schema.column_list();

    let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
    tx.execute(AssertSqlSafe(meta_create_sql("main"))).await?;
    let exists: bool = sqlx::query_scalar(
        "SELECT count(*) > 0 FROM main.sqlite_master WHERE type = 'table' AND name = $1",
    )
    .bind(&spec.target_table)
    .fetch_one(&mut *tx)
    .await?;
    let previous: Option<(String, Option<i64>, i64)> =
        sqlx::query_as(AssertSqlSafe(meta_select_sql("main")))
            .bind(&spec.target_table)
            .fetch_optional(&mut *tx)
            .await?;
    let previous = previous.map(|(hash, high_water, row_count)| Previous {
        hash,
        high_water,
        row_count,
    });
    let (plan, schema_changed) = plan(spec, &schema, exists, previous.as_ref())?;

    let mut dropped = Vec::new();
    let (mode, rows, high_water, row_count) = match plan {
        Plan::Incremental(Incremental {
            key,
            high_water,
            row_count,
        }) => {
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
        }
        Plan::Rebuild(mode) => {
            // The warehouse's own indexes on the old table, to rebuild on the new one.
            let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT sql FROM main.sqlite_master WHERE type = 'index' AND tbl_name = $1 AND sql IS NOT NULL",
        )
        .bind(&spec.target_table)
        .fetch_all(&mut *tx)
        .await?;
            tx.execute(AssertSqlSafe(format!("DROP TABLE IF EXISTS main.{table}")))
                .await?;
            let mut definitions = schema.column_definitions();
            if !schema.primary_key.is_empty() {
                definitions.push(format!(
                    "PRIMARY KEY ({})",
                    schema
                        .primary_key
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
                    dropped.push(format!("index was dropped: {index} ({err})"));
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
        }
    };
    sqlx::query(AssertSqlSafe(meta_upsert_sql("main")))
        .bind(&spec.target_table)
        .bind(&schema.hash)
        .bind(high_water)
        .bind(row_count)
        .bind(mode.as_str())
        .bind(crate::date::now_millis())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(LoadReport {
        schema_changed,
        dropped,
        ..LoadReport::new(spec, mode, rows, high_water)
    })
}

/// The columns of the table (or query) being loaded, in order, with the primary key.
async fn source_schema(
    conn: &mut sqlx::SqliteConnection,
    spec: &LoadSpec,
    select_from: &str,
) -> anyhow::Result<SourceSchema> {
    if spec.query.is_some() {
        let described = conn
            .prepare(sqlx::SqlSafeStr::into_sql_str(AssertSqlSafe(format!(
                "SELECT * FROM {select_from} LIMIT 0"
            ))))
            .await?;
        return Ok(SourceSchema::of_query(&described));
    }
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT name, type, \"notnull\", pk FROM pragma_table_info({}, '{SOURCE}') ORDER BY cid",
        quote_literal(&spec.source_table)
    )))
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        bail!("the source has no table {}", spec.source_table);
    }
    let mut primary_key: Vec<(i64, String)> = Vec::new();
    let mut columns = Vec::new();
    for row in &rows {
        let (name, type_sql, not_null, pk_position): (String, String, bool, i64) = (
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
        );
        if pk_position > 0 {
            primary_key.push((pk_position, name.clone()));
        }
        columns.push(Column {
            name,
            type_sql,
            not_null,
        });
    }
    primary_key.sort();
    let unique: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT min(ii.name) FROM pragma_index_list({table}, '{SOURCE}') AS il, \
                pragma_index_info(il.name, '{SOURCE}') AS ii \
         WHERE il.\"unique\" = 1 AND il.partial = 0 GROUP BY il.name HAVING count(*) = 1",
        table = quote_literal(&spec.source_table)
    )))
    .fetch_all(&mut *conn)
    .await?;
    Ok(SourceSchema::new(
        columns,
        primary_key.into_iter().map(|(_, name)| name).collect(),
    )
    .with_unique(unique))
}
