//! PostgreSQL to PostgreSQL: binary COPY streamed from the source into a staging table (or, for
//! an incremental load, a temporary table), then swapped in or merged in one transaction.

mod swap;

use anyhow::{Context as _, bail};
use sqlx::postgres::PgPool;
use sqlx::{AssertSqlSafe, Executor as _, PgConnection, Row as _};

use super::lock::TableLock;
use super::names::{staging_name, staging_prefix};
use super::schema::{Column, Incremental, Plan, Previous, SourceSchema, plan};
use super::{LoadMode, LoadReport, LoadSpec, meta_create_sql, meta_select_sql, meta_upsert_sql};
use crate::db::quote_ident;
use crate::fatal::ResultExt as _;

/// COPY data is forwarded in batches of about this size: memory stays flat and small.
const COPY_BATCH_BYTES: usize = 256 * 1024;

pub(super) async fn load(
    source: &PgPool,
    target: &PgPool,
    spec: &LoadSpec,
) -> anyhow::Result<LoadReport> {
    let schema = source_schema(source, spec).await?;
    let mut lock = TableLock::acquire(target, &spec.target_table).await?;
    let target_schema = lock.schema.clone();
    let loaded = load_locked(source, target, lock.conn(), spec, &schema, &target_schema).await;
    lock.release().await;
    loaded
}

/// The load, holding the table's load lock.
async fn load_locked(
    source: &PgPool,
    target: &PgPool,
    conn: &mut PgConnection,
    spec: &LoadSpec,
    schema: &SourceSchema,
    target_schema: &str,
) -> anyhow::Result<LoadReport> {
    let conn = &mut *conn;
    let qualified = format!(
        "{}.{}",
        quote_ident(target_schema),
        quote_ident(&spec.target_table)
    );
    // Loads of different tables may be the first at once: one creates the metadata table.
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1)::bigint)")
        .bind(format!("pipeline load metadata {target_schema}"))
        .execute(&mut *tx)
        .await?;
    tx.execute(AssertSqlSafe(meta_create_sql(&quote_ident(target_schema))))
        .await?;
    tx.commit().await?;
    // Under the load lock, a staging table of this table belongs to a load that is gone.
    drop_leftover_staging(conn, target_schema, &spec.target_table).await?;
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&qualified)
        .fetch_one(&mut *conn)
        .await?;
    let previous = read_meta(conn, target_schema, &spec.target_table).await?;
    let (plan, schema_changed) = plan(spec, schema, exists, previous.as_ref())?;
    let mut report = match plan {
        Plan::Incremental(from) => {
            incremental(source, conn, spec, schema, target_schema, from).await?
        }
        Plan::Rebuild(_) if spec.replace_rows && exists && !schema_changed => {
            replace_rows(source, conn, spec, schema, target_schema).await?
        }
        Plan::Rebuild(mode) => {
            rebuild(
                source,
                target,
                conn,
                spec,
                schema,
                target_schema,
                exists,
                mode,
            )
            .await?
        }
    };
    report.schema_changed = schema_changed;
    Ok(report)
}

/// The columns of what is loaded, with their types as the catalogue has them (modifiers
/// included: `character(3)`, `numeric(10,2)`). Read with only `pg_catalog` on the search path,
/// so that every other type comes qualified (`public.citext`, `public.mood`) and resolves in a
/// warehouse or test schema whose search path does not hold the source's schemas.
async fn source_schema(source: &PgPool, spec: &LoadSpec) -> anyhow::Result<SourceSchema> {
    let mut conn = source
        .acquire()
        .await
        .context("cannot connect to the source")?;
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let schema = match &spec.query {
        Some(query) => query_schema(&mut tx, query).await?,
        None => table_schema(&mut tx, spec).await?,
    };
    tx.commit().await?;
    Ok(schema)
}

async fn query_schema(conn: &mut PgConnection, query: &str) -> anyhow::Result<SourceSchema> {
    let described = conn
        .prepare(sqlx::SqlSafeStr::into_sql_str(AssertSqlSafe(format!(
            "SELECT * FROM ({query}) AS source LIMIT 0"
        ))))
        .await
        .context("the custom source query is not valid")?;
    // The query is read with the source's own search path; its types without it.
    conn.execute("SET LOCAL search_path TO pg_catalog").await?;
    let mut columns = Vec::new();
    for column in sqlx::Statement::columns(&described) {
        // A column read from a table has that column's exact type; a computed one its type
        // without modifiers (`bpchar` rather than `character`, which would mean one character).
        let type_sql: String = sqlx::query_scalar(
            "SELECT coalesce( \
                (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
                 WHERE a.attrelid = $1::oid AND a.attnum = $2 AND $1 <> 0), \
                CASE WHEN $3::oid = 'bpchar'::regtype THEN 'bpchar' ELSE format_type($3::oid, NULL) END)",
        )
        .bind(column.relation_id().map_or(0, |oid| i64::from(oid.0)))
        .bind(column.relation_attribute_no().unwrap_or(0))
        .bind(
            sqlx::Column::type_info(column)
                .oid()
                .map_or(0, |oid| i64::from(oid.0)),
        )
        .fetch_one(&mut *conn)
        .await?;
        columns.push(Column {
            name: sqlx::Column::name(column).to_string(),
            type_sql,
            not_null: false,
        });
    }
    Ok(SourceSchema::new(columns, Vec::new()))
}

async fn table_schema(conn: &mut PgConnection, spec: &LoadSpec) -> anyhow::Result<SourceSchema> {
    conn.execute("SET LOCAL search_path TO pg_catalog").await?;
    let rows = sqlx::query(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
    )
    .bind(&spec.source_schema)
    .bind(&spec.source_table)
    .fetch_all(&mut *conn)
    .await
    .context("cannot read the source table's columns")?;
    if rows.is_empty() {
        return Err(anyhow::anyhow!(
            "the source has no table {}.{}",
            spec.source_schema,
            spec.source_table
        ))
        .fatal();
    }
    let columns = rows
        .iter()
        .map(|row| {
            Ok(Column {
                name: row.try_get(0)?,
                type_sql: row.try_get(1)?,
                not_null: row.try_get(2)?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let primary_key: Vec<String> = sqlx::query_scalar(
        "SELECT a.attname FROM pg_index i \
         JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
         WHERE n.nspname = $1 AND c.relname = $2 AND i.indisprimary \
         ORDER BY array_position(i.indkey::int2[], a.attnum)",
    )
    .bind(&spec.source_schema)
    .bind(&spec.source_table)
    .fetch_all(&mut *conn)
    .await?;
    let unique: Vec<String> = sqlx::query_scalar(
        "SELECT a.attname FROM pg_index i \
         JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
         WHERE n.nspname = $1 AND c.relname = $2 AND i.indisunique AND i.indnkeyatts = 1 \
           AND i.indpred IS NULL AND i.indexprs IS NULL",
    )
    .bind(&spec.source_schema)
    .bind(&spec.source_table)
    .fetch_all(&mut *conn)
    .await?;
    Ok(SourceSchema::new(columns, primary_key).with_unique(unique))
}

/// `COPY (..) TO STDOUT` of what to load: everything, or the rows matching `filter`.
fn copy_out_sql(spec: &LoadSpec, schema: &SourceSchema, filter: Option<&str>) -> String {
    let select = match (&spec.query, filter) {
        (Some(query), _) => format!("SELECT * FROM ({query}) AS source"),
        (None, Some(filter)) => format!(
            "SELECT {} FROM {}.{} WHERE {filter}",
            schema.column_list(),
            quote_ident(&spec.source_schema),
            quote_ident(&spec.source_table),
        ),
        (None, None) => format!(
            "SELECT {} FROM {}.{}",
            schema.column_list(),
            quote_ident(&spec.source_schema),
            quote_ident(&spec.source_table)
        ),
    };
    format!("COPY ({select}) TO STDOUT (FORMAT binary)")
}

/// Streams the source's COPY output into `COPY {into} FROM STDIN` on `conn`. Never leaves the
/// COPY half-done: on any error it is aborted, which keeps the connection usable.
async fn stream_copy(
    source: &PgPool,
    copy_out: &str,
    conn: &mut PgConnection,
    into: &str,
) -> anyhow::Result<u64> {
    let mut source_conn = source
        .acquire()
        .await
        .context("cannot connect to the source")?;
    let mut copy_in = conn
        .copy_in_raw(&format!("COPY {into} FROM STDIN (FORMAT binary)"))
        .await?;
    let streamed: anyhow::Result<()> = async {
        let mut stream = source_conn
            .copy_out_raw(copy_out)
            .await
            .context("the source refused the COPY")?;
        // The source sends one message per row: forward them in large batches.
        let mut batch = Vec::with_capacity(COPY_BATCH_BYTES);
        while let Some(chunk) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
            batch.extend_from_slice(&chunk.context("reading from the source failed")?);
            if batch.len() >= COPY_BATCH_BYTES {
                copy_in
                    .send(batch.as_slice())
                    .await
                    .context("writing to the warehouse failed")?;
                batch.clear();
            }
        }
        if !batch.is_empty() {
            copy_in
                .send(batch.as_slice())
                .await
                .context("writing to the warehouse failed")?;
        }
        Ok(())
    }
    .await;
    match streamed {
        Ok(()) => Ok(copy_in.finish().await?),
        Err(err) => {
            let _ = copy_in.abort("the source stream failed").await;
            Err(err)
        }
    }
}

async fn read_meta(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
) -> anyhow::Result<Option<Previous>> {
    let row = sqlx::query(AssertSqlSafe(meta_select_sql(&quote_ident(schema))))
        .bind(table)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|row| {
        Ok(Previous {
            hash: row.try_get(0)?,
            high_water: row.try_get(1)?,
            row_count: row.try_get(2)?,
        })
    })
    .transpose()
}

pub(super) async fn write_meta(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
    hash: &str,
    high_water: Option<i64>,
    row_count: i64,
    mode: LoadMode,
) -> anyhow::Result<()> {
    sqlx::query(AssertSqlSafe(meta_upsert_sql(&quote_ident(schema))))
        .bind(table)
        .bind(hash)
        .bind(high_water)
        .bind(row_count)
        .bind(mode.as_str())
        .bind(crate::date::now_millis())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Staging tables of this table left by runs that died.
async fn drop_leftover_staging(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
) -> anyhow::Result<()> {
    let pattern = format!(
        "{}%",
        staging_prefix(table)
            .replace('\\', "\\\\")
            .replace('_', "\\_")
            .replace('%', "\\%")
    );
    let leftovers: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname LIKE $2",
    )
    .bind(schema)
    .bind(pattern)
    .fetch_all(&mut *conn)
    .await?;
    for leftover in leftovers {
        tracing::info!("dropping staging table {leftover} left by an earlier failed load");
        conn.execute(AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS {}.{}",
            quote_ident(schema),
            quote_ident(&leftover)
        )))
        .await?;
    }
    Ok(())
}

async fn incremental(
    source: &PgPool,
    conn: &mut PgConnection,
    spec: &LoadSpec,
    schema: &SourceSchema,
    target_schema: &str,
    Incremental {
        key,
        high_water,
        row_count,
    }: Incremental,
) -> anyhow::Result<LoadReport> {
    let (qkey, qualified) = (
        quote_ident(&key),
        format!(
            "{}.{}",
            quote_ident(target_schema),
            quote_ident(&spec.target_table)
        ),
    );
    let after = high_water.saturating_sub(spec.lookback);
    // Usually the window is complete and a count (from the index) says so; only otherwise
    // are the missing keys listed.
    let present: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(DISTINCT {qkey}) FROM {qualified} WHERE {qkey} > $1 AND {qkey} <= $2"
    )))
    .bind(after)
    .bind(high_water)
    .fetch_one(&mut *conn)
    .await?;
    let gaps: Vec<i64> = if present >= high_water - after {
        Vec::new()
    } else {
        sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT k FROM generate_series($1::bigint, $2::bigint) AS k \
             WHERE NOT EXISTS (SELECT 1 FROM {qualified} AS t WHERE t.{qkey} = k) ORDER BY k"
        )))
        .bind(after.saturating_add(1))
        .bind(high_water)
        .fetch_all(&mut *conn)
        .await?
    };
    let filter = super::incremental_filter(&qkey, high_water, &gaps);
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    tx.execute(AssertSqlSafe(format!(
        "CREATE TEMP TABLE pipeline_incoming (LIKE {qualified}) ON COMMIT DROP"
    )))
    .await?;
    let rows = stream_copy(
        source,
        &copy_out_sql(spec, schema, Some(&filter)),
        &mut tx,
        "pipeline_incoming",
    )
    .await?;
    let deleted = tx
        .execute(AssertSqlSafe(format!(
            // An array of keys lets the planner probe the index instead of scanning the table.
            "DELETE FROM {qualified} WHERE {qkey} = ANY(ARRAY(SELECT {qkey} FROM pipeline_incoming))"
        )))
        .await?
        .rows_affected();
    let inserted = tx
        .execute(AssertSqlSafe(format!(
            "INSERT INTO {qualified} SELECT * FROM pipeline_incoming"
        )))
        .await?
        .rows_affected();
    let newest: Option<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT max({qkey})::bigint FROM pipeline_incoming"
    )))
    .fetch_one(&mut *tx)
    .await?;
    let high_water = newest.map_or(high_water, |n| n.max(high_water));
    let total = row_count + inserted as i64 - deleted as i64;
    write_meta(
        &mut tx,
        target_schema,
        &spec.target_table,
        &schema.hash,
        Some(high_water),
        total,
        LoadMode::Incremental,
    )
    .await?;
    tx.commit().await?;
    Ok(LoadReport::new(
        spec,
        LoadMode::Incremental,
        rows,
        Some(high_water),
    ))
}

/// The high-water mark a rebuild leaves: the largest incremental key in `table`.
async fn max_key(
    conn: &mut PgConnection,
    spec: &LoadSpec,
    table: &str,
) -> anyhow::Result<Option<i64>> {
    let Some(key) = &spec.incremental_key else {
        return Ok(None);
    };
    let max = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT max({})::bigint FROM {table}",
        quote_ident(key)
    )))
    .fetch_one(&mut *conn)
    .await?;
    Ok(max)
}

/// A rebuild that keeps the table: its rows are deleted and the source's copied in, in one
/// transaction. Readers are never blocked and keep their snapshots.
async fn replace_rows(
    source: &PgPool,
    conn: &mut PgConnection,
    spec: &LoadSpec,
    schema: &SourceSchema,
    target_schema: &str,
) -> anyhow::Result<LoadReport> {
    let qualified = format!(
        "{}.{}",
        quote_ident(target_schema),
        quote_ident(&spec.target_table)
    );
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    tx.execute(AssertSqlSafe(format!("DELETE FROM {qualified}")))
        .await?;
    let into = format!("{qualified} ({})", schema.column_list());
    let rows = stream_copy(source, &copy_out_sql(spec, schema, None), &mut tx, &into).await?;
    let high_water = max_key(&mut tx, spec, &qualified).await?;
    write_meta(
        &mut tx,
        target_schema,
        &spec.target_table,
        &schema.hash,
        high_water,
        rows as i64,
        LoadMode::Full,
    )
    .await?;
    tx.commit().await?;
    Ok(LoadReport::new(spec, LoadMode::Full, rows, high_water))
}

#[allow(clippy::too_many_arguments)]
async fn rebuild(
    source: &PgPool,
    target: &PgPool,
    conn: &mut PgConnection,
    spec: &LoadSpec,
    schema: &SourceSchema,
    target_schema: &str,
    exists: bool,
    mode: LoadMode,
) -> anyhow::Result<LoadReport> {
    let staging = staging_name(&spec.target_table, spec.run_id);
    let qschema = quote_ident(target_schema);
    let qstaging = format!("{qschema}.{}", quote_ident(&staging));
    // The staging table lives in one transaction with its swap: a load that fails, is
    // cancelled mid-COPY (its future dropped) or killed leaves nothing behind, and no other
    // session ever sees the staging table.
    let mut build = sqlx::Connection::begin(&mut *conn).await?;
    build
        .execute(AssertSqlSafe(format!(
            "CREATE TABLE {qstaging} ({})",
            schema.column_definitions().join(", ")
        )))
        .await?;
    let rows = stream_copy(
        source,
        &copy_out_sql(spec, schema, None),
        &mut build,
        &qstaging,
    )
    .await?;
    if !schema.primary_key.is_empty() {
        let pk: Vec<String> = schema.primary_key.iter().map(|c| quote_ident(c)).collect();
        build
            .execute(AssertSqlSafe(format!(
                "ALTER TABLE {qstaging} ADD PRIMARY KEY ({})",
                pk.join(", ")
            )))
            .await?;
    }
    let mut dropped = Vec::new();
    let indexes = if exists {
        copy_indexes(
            &mut build,
            target_schema,
            &spec.target_table,
            &staging,
            &mut dropped,
        )
        .await?
    } else {
        Vec::new()
    };
    build
        .execute(AssertSqlSafe(format!("ANALYZE {qstaging}")))
        .await?;
    let high_water = max_key(&mut build, spec, &qstaging).await?;
    let swap = swap::Swap {
        spec,
        schema,
        target_schema,
        staging: &staging,
        exists,
        indexes: &indexes,
        high_water,
        rows,
        mode,
    };
    dropped.extend(swap.run(target, &mut build).await?);
    build.commit().await?;
    Ok(LoadReport {
        dropped,
        ..LoadReport::new(spec, mode, rows, high_water)
    })
}

/// Builds the old table's secondary indexes on the staging table under temporary names;
/// returns `(temporary, original)` names to rename after the swap. An index on a column the
/// source no longer has is not rebuilt, and said so in `dropped`.
async fn copy_indexes(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
    staging: &str,
    dropped: &mut Vec<String>,
) -> anyhow::Result<Vec<(String, String)>> {
    let rows = sqlx::query(
        "SELECT i.relname, pg_get_indexdef(x.indexrelid), x.indisunique \
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = $1 AND t.relname = $2 AND NOT x.indisprimary ORDER BY i.relname",
    )
    .bind(schema)
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    let mut renames = Vec::new();
    for (n, row) in rows.iter().enumerate() {
        let (name, definition, unique): (String, String, bool) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        // pg_get_indexdef gives `CREATE [UNIQUE] INDEX name ON schema.table USING ...`.
        let names: (String, String, String) =
            sqlx::query_as("SELECT quote_ident($1), quote_ident($2), quote_ident($3)")
                .bind(&name)
                .bind(schema)
                .bind(table)
                .fetch_one(&mut *conn)
                .await?;
        let prefix = format!(
            "CREATE {}INDEX {} ON {}.{} ",
            if unique { "UNIQUE " } else { "" },
            names.0,
            names.1,
            names.2
        );
        let Some(rest) = definition.strip_prefix(&prefix) else {
            bail!("cannot rebuild index {name} of {table}: unexpected definition {definition}");
        };
        // Staging names leave room for this suffix within PostgreSQL's 63 bytes.
        let temporary = format!("{staging}_i{n}");
        let statement = format!(
            "CREATE {}INDEX {} ON {}.{} {rest}",
            if unique { "UNIQUE " } else { "" },
            quote_ident(&temporary),
            quote_ident(schema),
            quote_ident(staging)
        );
        // In a savepoint of its own: the load's transaction goes on when it is refused.
        let mut index = sqlx::Connection::begin(&mut *conn).await?;
        let created = index.execute(AssertSqlSafe(statement)).await;
        if created.is_ok() {
            index.commit().await?;
        } else {
            index.rollback().await?;
        }
        match created {
            Ok(_) => renames.push((temporary, name)),
            // The source dropped a column the index is on: the index goes with it.
            Err(err)
                if err
                    .as_database_error()
                    .and_then(|e| e.code())
                    .is_some_and(|code| code == "42703") =>
            {
                dropped.push(format!(
                    "index {name} was dropped: {}",
                    err.as_database_error()
                        .map_or(String::new(), |e| e.message().to_string())
                ));
            }
            Err(err) => {
                return Err(anyhow::Error::new(err).context(format!("cannot rebuild index {name}")));
            }
        }
    }
    Ok(renames)
}
