//! The swap of a rebuild: one short transaction that replaces the old table with the staging
//! one and records the load. Whatever the old table carried is carried over: grants exactly as
//! they were (table and column, with grant options, nothing the schema's defaults added),
//! the owner, row-level security and its policies, triggers and their enabled state, comments,
//! replica identity, storage options, statistics targets, extended statistics and publication
//! membership. What cannot be carried over makes the swap refuse, naming it: views, foreign
//! keys or functions that depend on the table, and constraints of its own besides the primary
//! key. Nothing is dropped silently; a refused swap leaves the old table intact.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use sqlx::postgres::PgPool;
use sqlx::{AssertSqlSafe, Executor as _, PgConnection, Postgres, Row as _, Transaction};

use super::super::names::derived;
use super::super::schema::SourceSchema;
use super::super::{LoadMode, LoadSpec};
use super::write_meta;
use crate::db::quote_ident;

/// First delay between swap tries; doubles, with jitter, up to [`MAX_SWAP_RETRY_DELAY`].
const SWAP_RETRY_DELAY: Duration = Duration::from_millis(200);
const MAX_SWAP_RETRY_DELAY: Duration = Duration::from_secs(5);

/// One swap: the staging table built for `spec`, and what to record with it.
pub(super) struct Swap<'a> {
    pub spec: &'a LoadSpec,
    pub schema: &'a SourceSchema,
    pub target_schema: &'a str,
    pub staging: &'a str,
    /// Whether there is an old table to replace.
    pub exists: bool,
    /// `(temporary, original)` names of the secondary indexes built on the staging table.
    pub indexes: &'a [(String, String)],
    pub high_water: Option<i64>,
    pub rows: u64,
    pub mode: LoadMode,
}

/// What an old table carries that the staging table must get, as statements to run once it
/// has taken the old table's name (`__TABLE__` stands for that name).
#[derive(Default)]
struct Carried {
    /// Must succeed, or the swap is refused.
    required: Vec<(String, String)>,
    /// Settings of columns the source no longer has: dropped with them, and said so.
    gone: Vec<String>,
    /// The old owner, when it is not the loading role: set last.
    owner: Option<String>,
}

impl Swap<'_> {
    /// Swaps, retrying while other sessions hold the old table. Notes on what was dropped
    /// with columns the source no longer has.
    pub async fn run(
        &self,
        target: &PgPool,
        conn: &mut PgConnection,
    ) -> anyhow::Result<Vec<String>> {
        let table = &self.spec.target_table;
        let qtable = self.qualified(table);
        let backend_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *conn)
            .await?;
        let give_up = Instant::now() + self.spec.swap_patience;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let timeout_ms = self.spec.swap_lock_timeout.as_millis().max(1);
            tx.execute(AssertSqlSafe(format!(
                "SET LOCAL lock_timeout = '{timeout_ms}ms'"
            )))
            .await?;
            let mut notes = Vec::new();
            if self.exists {
                match lock(
                    &mut tx,
                    target,
                    &qtable,
                    backend_pid,
                    self.spec.swap_lock_timeout,
                )
                .await?
                {
                    Locked::Yes => {}
                    Locked::Busy(holders) => {
                        tx.rollback().await?;
                        let holders = if holders.is_empty() {
                            "sessions that could not be named".to_string()
                        } else {
                            holders.join("; ")
                        };
                        let delay = crate::task::backoff::delay(SWAP_RETRY_DELAY, attempt)
                            .min(MAX_SWAP_RETRY_DELAY);
                        if Instant::now() + delay >= give_up {
                            bail!(
                                "cannot swap in the new `{table}`: after {attempt} tries in {}, \
                                 other sessions still hold it ({holders}); the old table is intact",
                                crate::date::format_duration(self.spec.swap_patience)
                            );
                        }
                        tracing::info!(
                            "`{table}` is in use by {holders}; swap retried in {}",
                            crate::date::format_duration(delay)
                        );
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                }
                refuse_dependents(&mut tx, table, &qtable).await?;
                let carried = self.carried(&mut tx, &qtable).await?;
                tx.execute(AssertSqlSafe(format!("DROP TABLE {qtable}")))
                    .await?;
                self.rename_staging(&mut tx).await?;
                self.finish_names(&mut tx, &qtable).await?;
                for (what, statement) in &carried.required {
                    let statement = statement.replace("__TABLE__", &qtable);
                    tx.execute(AssertSqlSafe(statement.clone()))
                        .await
                        .with_context(|| {
                            format!(
                                "cannot keep {what} of `{table}` on the new table; the old table \
                                 is intact"
                            )
                        })?;
                }
                if let Some(owner) = &carried.owner {
                    tx.execute(AssertSqlSafe(format!(
                        "ALTER TABLE {qtable} OWNER TO {owner}"
                    )))
                    .await
                    .with_context(|| {
                        format!(
                            "cannot keep the owner {owner} of `{table}`; the old table is intact"
                        )
                    })?;
                }
                for gone in &carried.gone {
                    tracing::warn!("`{table}`: {gone}");
                }
                notes = carried.gone;
            } else {
                self.rename_staging(&mut tx).await?;
                self.finish_names(&mut tx, &qtable).await?;
            }
            write_meta(
                &mut tx,
                self.target_schema,
                table,
                &self.schema.hash,
                self.high_water,
                self.rows as i64,
                self.mode,
            )
            .await?;
            tx.commit().await?;
            return Ok(notes);
        }
    }

    fn qualified(&self, name: &str) -> String {
        format!("{}.{}", quote_ident(self.target_schema), quote_ident(name))
    }

    async fn rename_staging(&self, tx: &mut Transaction<'_, Postgres>) -> anyhow::Result<()> {
        tx.execute(AssertSqlSafe(format!(
            "ALTER TABLE {} RENAME TO {}",
            self.qualified(self.staging),
            quote_ident(&self.spec.target_table)
        )))
        .await?;
        Ok(())
    }

    /// Gives the primary key and the rebuilt indexes their lasting names.
    async fn finish_names(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        qtable: &str,
    ) -> anyhow::Result<()> {
        let pkey: Option<String> = sqlx::query_scalar(
            "SELECT conname::text FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'p'",
        )
        .bind(qtable)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(pkey) = pkey {
            tx.execute(AssertSqlSafe(format!(
                "ALTER TABLE {qtable} RENAME CONSTRAINT {} TO {}",
                quote_ident(&pkey),
                quote_ident(&derived(&self.spec.target_table, "pkey"))
            )))
            .await?;
        }
        for (temporary, original) in self.indexes {
            tx.execute(AssertSqlSafe(format!(
                "ALTER INDEX {} RENAME TO {}",
                self.qualified(temporary),
                quote_ident(original)
            )))
            .await?;
        }
        Ok(())
    }

    /// Reads what the old table carries, as statements for the new one.
    async fn carried(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        qtable: &str,
    ) -> anyhow::Result<Carried> {
        let mut carried = Carried::default();
        let columns: Vec<&str> = self
            .schema
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect();

        let table = sqlx::query(
            "SELECT quote_ident(o.rolname), o.rolname = current_user, c.relrowsecurity, \
                    c.relforcerowsecurity, c.relreplident::text, \
                    coalesce(array_to_string(c.reloptions, ', '), ''), \
                    (SELECT quote_ident(i.relname) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
                     WHERE x.indrelid = c.oid AND x.indisreplident), \
                    pg_has_role(c.relowner, 'MEMBER'), \
                    has_schema_privilege(c.relowner, c.relnamespace, 'CREATE'), \
                    quote_ident(n.nspname), \
                    (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) \
             FROM pg_class c JOIN pg_roles o ON o.oid = c.relowner \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1::regclass",
        )
        .bind(qtable)
        .fetch_one(&mut **tx)
        .await?;
        let (owner, owner_is_me): (String, bool) = (table.try_get(0)?, table.try_get(1)?);
        let (rls, force_rls): (bool, bool) = (table.try_get(2)?, table.try_get(3)?);
        let (identity, options, identity_index): (String, String, Option<String>) =
            (table.try_get(4)?, table.try_get(5)?, table.try_get(6)?);
        if !owner_is_me {
            // PostgreSQL gives a new table to another owner only if the loader may act as that
            // role and the role may create in the schema: say which one is missing, and how to
            // grant it, before anything is dropped.
            let (member, may_create, schema, superuser): (bool, bool, String, bool) = (
                table.try_get(7)?,
                table.try_get(8)?,
                table.try_get(9)?,
                table.try_get(10)?,
            );
            let name = &self.spec.target_table;
            // A superuser gives a table to any role.
            if !superuser && !member {
                bail!(
                    "cannot keep the owner {owner} of `{name}`: the loading role is not a member \
                     of {owner} (GRANT {owner} TO the loading role); the old table is intact"
                );
            }
            if !superuser && !may_create {
                bail!(
                    "cannot keep the owner {owner} of `{name}`: {owner} has no CREATE privilege on \
                     schema {schema} (GRANT CREATE ON SCHEMA {schema} TO {owner}); the old table \
                     is intact"
                );
            }
            carried.owner = Some(owner);
        }

        // Grants exactly as they were: first nothing (the new table got the schema's default
        // privileges), then every grant of the old table, with its grant option.
        let defaults: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END \
             FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a \
             LEFT JOIN pg_roles r ON r.oid = a.grantee \
             WHERE c.oid = $1::regclass AND a.grantee <> c.relowner",
        )
        .bind(self.qualified(self.staging))
        .fetch_all(&mut **tx)
        .await?;
        for grantee in defaults {
            carried.required.push((
                "the grants".into(),
                format!("REVOKE ALL ON __TABLE__ FROM {grantee}"),
            ));
        }
        let grants = sqlx::query(
            "SELECT a.privilege_type, \
                    CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END, a.is_grantable \
             FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a \
             LEFT JOIN pg_roles r ON r.oid = a.grantee \
             WHERE c.oid = $1::regclass AND a.grantee <> c.relowner",
        )
        .bind(qtable)
        .fetch_all(&mut **tx)
        .await?;
        for grant in grants {
            let (privilege, grantee, grantable): (String, String, bool) =
                (grant.try_get(0)?, grant.try_get(1)?, grant.try_get(2)?);
            carried.required.push((
                format!("the grant of {privilege} to {grantee}"),
                format!(
                    "GRANT {privilege} ON __TABLE__ TO {grantee}{}",
                    if grantable { " WITH GRANT OPTION" } else { "" }
                ),
            ));
        }
        let column_grants = sqlx::query(
            "SELECT att.attname::text, a.privilege_type, \
                    CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END, a.is_grantable \
             FROM pg_attribute att CROSS JOIN LATERAL aclexplode(att.attacl) a \
             LEFT JOIN pg_roles r ON r.oid = a.grantee \
             WHERE att.attrelid = $1::regclass AND att.attnum > 0 AND NOT att.attisdropped",
        )
        .bind(qtable)
        .fetch_all(&mut **tx)
        .await?;
        for grant in column_grants {
            let (column, privilege, grantee, grantable): (String, String, String, bool) = (
                grant.try_get(0)?,
                grant.try_get(1)?,
                grant.try_get(2)?,
                grant.try_get(3)?,
            );
            let statement = format!(
                "GRANT {privilege} ({}) ON __TABLE__ TO {grantee}{}",
                quote_ident(&column),
                if grantable { " WITH GRANT OPTION" } else { "" }
            );
            self.for_column(
                &mut carried,
                &columns,
                &column,
                format!("the grant of {privilege} on column {column} to {grantee}"),
                statement,
            );
        }

        if rls {
            carried.required.push((
                "row-level security".into(),
                "ALTER TABLE __TABLE__ ENABLE ROW LEVEL SECURITY".into(),
            ));
        }
        if force_rls {
            carried.required.push((
                "forced row-level security".into(),
                "ALTER TABLE __TABLE__ FORCE ROW LEVEL SECURITY".into(),
            ));
        }
        let policies = sqlx::query(
            "SELECT p.policyname::text, format('CREATE POLICY %I ON __TABLE__ AS %s FOR %s TO %s%s%s', \
                    p.policyname, p.permissive, p.cmd, \
                    (SELECT string_agg(CASE WHEN r = 'public' THEN 'PUBLIC' ELSE quote_ident(r) END, ', ') \
                     FROM unnest(p.roles) AS r), \
                    CASE WHEN p.qual IS NULL THEN '' ELSE ' USING (' || p.qual || ')' END, \
                    CASE WHEN p.with_check IS NULL THEN '' ELSE ' WITH CHECK (' || p.with_check || ')' END) \
             FROM pg_policies p WHERE p.schemaname = $1 AND p.tablename = $2 ORDER BY 1",
        )
        .bind(self.target_schema)
        .bind(&self.spec.target_table)
        .fetch_all(&mut **tx)
        .await?;
        for policy in policies {
            let (name, statement): (String, String) = (policy.try_get(0)?, policy.try_get(1)?);
            carried
                .required
                .push((format!("row-level security policy `{name}`"), statement));
        }

        let triggers = sqlx::query(
            "SELECT t.tgname::text, pg_get_triggerdef(t.oid), t.tgenabled::text \
             FROM pg_trigger t WHERE t.tgrelid = $1::regclass AND NOT t.tgisinternal ORDER BY 1",
        )
        .bind(qtable)
        .fetch_all(&mut **tx)
        .await?;
        for trigger in triggers {
            let (name, definition, enabled): (String, String, String) = (
                trigger.try_get(0)?,
                trigger.try_get(1)?,
                trigger.try_get(2)?,
            );
            let what = format!("trigger `{name}`");
            carried.required.push((what.clone(), definition));
            let state = match enabled.as_str() {
                "D" => Some("DISABLE TRIGGER"),
                "R" => Some("ENABLE REPLICA TRIGGER"),
                "A" => Some("ENABLE ALWAYS TRIGGER"),
                _ => None,
            };
            if let Some(state) = state {
                carried.required.push((
                    what,
                    format!("ALTER TABLE __TABLE__ {state} {}", quote_ident(&name)),
                ));
            }
        }

        match identity.as_str() {
            "f" => carried.required.push((
                "replica identity".into(),
                "ALTER TABLE __TABLE__ REPLICA IDENTITY FULL".into(),
            )),
            "n" => carried.required.push((
                "replica identity".into(),
                "ALTER TABLE __TABLE__ REPLICA IDENTITY NOTHING".into(),
            )),
            "i" => match identity_index {
                Some(index) => carried.required.push((
                    "replica identity".into(),
                    format!("ALTER TABLE __TABLE__ REPLICA IDENTITY USING INDEX {index}"),
                )),
                None => carried
                    .gone
                    .push("its replica identity index is gone; identity is the default".into()),
            },
            _ => {}
        }
        if !options.is_empty() {
            carried.required.push((
                "storage options".into(),
                format!("ALTER TABLE __TABLE__ SET ({options})"),
            ));
        }
        let column_settings = sqlx::query(
            "SELECT attname::text, coalesce(attstattarget::int, -1), \
                    coalesce(array_to_string(attoptions, ', '), '') \
             FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped \
               AND (coalesce(attstattarget::int, -1) >= 0 OR attoptions IS NOT NULL)",
        )
        .bind(qtable)
        .fetch_all(&mut **tx)
        .await?;
        for setting in column_settings {
            let (column, statistics, options): (String, i32, String) = (
                setting.try_get(0)?,
                setting.try_get(1)?,
                setting.try_get(2)?,
            );
            if statistics >= 0 {
                self.for_column(
                    &mut carried,
                    &columns,
                    &column,
                    format!("the statistics target of column {column}"),
                    format!(
                        "ALTER TABLE __TABLE__ ALTER COLUMN {} SET STATISTICS {statistics}",
                        quote_ident(&column)
                    ),
                );
            }
            if !options.is_empty() {
                self.for_column(
                    &mut carried,
                    &columns,
                    &column,
                    format!("the options of column {column}"),
                    format!(
                        "ALTER TABLE __TABLE__ ALTER COLUMN {} SET ({options})",
                        quote_ident(&column)
                    ),
                );
            }
        }
        let comments = sqlx::query(
            "SELECT NULL::text, format('COMMENT ON TABLE __TABLE__ IS %L', d.description) \
             FROM pg_description d WHERE d.objoid = $1::regclass AND d.classoid = 'pg_class'::regclass \
               AND d.objsubid = 0 \
             UNION ALL \
             SELECT a.attname::text, format('COMMENT ON COLUMN __TABLE__.%I IS %L', a.attname, d.description) \
             FROM pg_description d JOIN pg_attribute a ON a.attrelid = d.objoid AND a.attnum = d.objsubid \
             WHERE d.objoid = $1::regclass AND d.classoid = 'pg_class'::regclass AND d.objsubid > 0",
        )
        .bind(qtable)
        .fetch_all(&mut **tx)
        .await?;
        for comment in comments {
            let (column, statement): (Option<String>, String) =
                (comment.try_get(0)?, comment.try_get(1)?);
            match column {
                Some(column) => self.for_column(
                    &mut carried,
                    &columns,
                    &column,
                    format!("the comment on column {column}"),
                    statement,
                ),
                None => carried.required.push(("the comment".into(), statement)),
            }
        }
        let statistics: Vec<(String, String)> = sqlx::query_as(
            "SELECT s.stxname::text, pg_get_statisticsobjdef(s.oid) FROM pg_statistic_ext s \
             WHERE s.stxrelid = $1::regclass ORDER BY 1",
        )
        .bind(qtable)
        .fetch_all(&mut **tx)
        .await?;
        for (name, definition) in statistics {
            carried
                .required
                .push((format!("extended statistics `{name}`"), definition));
        }
        let publications: Vec<String> = sqlx::query_scalar(
            "SELECT quote_ident(p.pubname) FROM pg_publication_rel r \
             JOIN pg_publication p ON p.oid = r.prpubid WHERE r.prrelid = $1::regclass ORDER BY 1",
        )
        .bind(qtable)
        .fetch_all(&mut **tx)
        .await?;
        for publication in publications {
            carried.required.push((
                format!("membership of publication {publication}"),
                format!("ALTER PUBLICATION {publication} ADD TABLE __TABLE__"),
            ));
        }
        Ok(carried)
    }

    /// A setting of one column: required while the source still has the column.
    fn for_column(
        &self,
        carried: &mut Carried,
        columns: &[&str],
        column: &str,
        what: String,
        statement: String,
    ) {
        if columns.contains(&column) {
            carried.required.push((what, statement));
        } else {
            carried.gone.push(format!(
                "{what} was dropped with the column, which the source no longer has"
            ));
        }
    }
}

enum Locked {
    Yes,
    /// The lock timeout passed; the sessions that held the table then.
    Busy(Vec<String>),
}

/// Takes the old table's ACCESS EXCLUSIVE lock under the transaction's lock timeout. While it
/// waits, the sessions it waits for are looked up on another connection, so that a refusal
/// names them (and not the readers queued behind this request).
async fn lock(
    tx: &mut Transaction<'_, Postgres>,
    target: &PgPool,
    qtable: &str,
    backend_pid: i32,
    timeout: Duration,
) -> anyhow::Result<Locked> {
    let statement = format!("LOCK TABLE {qtable} IN ACCESS EXCLUSIVE MODE");
    let locking = tx.execute(AssertSqlSafe(statement));
    tokio::pin!(locking);
    let probe = async {
        let deadline = tokio::time::Instant::now() + timeout.mul_f64(0.6);
        let mut probing = target.acquire().await?;
        tokio::time::sleep_until(deadline).await;
        blockers(&mut probing, backend_pid).await
    };
    tokio::pin!(probe);
    let mut blocking = None;
    let started = Instant::now();
    let locked = loop {
        tokio::select! {
            locked = &mut locking => break locked,
            found = &mut probe, if blocking.is_none() => blocking = Some(found.unwrap_or_default()),
        }
    };
    match locked {
        Ok(_) => Ok(Locked::Yes),
        Err(err)
            if err
                .as_database_error()
                .and_then(|e| e.code())
                .is_some_and(|code| code == "55P03") =>
        {
            tracing::debug!("lock wait ended after {:?}", started.elapsed());
            let mut blocking = blocking.unwrap_or_default();
            if blocking.is_empty() {
                // The wait was too short to look: name the sessions that hold the table now.
                let mut probing = target.acquire().await?;
                blocking = holders(&mut probing, qtable).await.unwrap_or_default();
            }
            Ok(Locked::Busy(blocking))
        }
        Err(err) => Err(err.into()),
    }
}

/// The sessions that block `pid`: `pid 123 (alice, psql, idle in transaction: SELECT ..)`,
/// with what the loading role may see of them.
async fn blockers(conn: &mut PgConnection, pid: i32) -> anyhow::Result<Vec<String>> {
    sessions(
        conn,
        "a.pid = ANY(pg_blocking_pids($1::int))",
        &pid.to_string(),
    )
    .await
}

/// The client sessions holding a lock on the table now.
async fn holders(conn: &mut PgConnection, qtable: &str) -> anyhow::Result<Vec<String>> {
    sessions(
        conn,
        "a.pid IN (SELECT l.pid FROM pg_locks l WHERE l.relation = to_regclass($1) AND l.granted) \
         AND a.pid <> pg_backend_pid()",
        qtable,
    )
    .await
}

/// Client sessions matching `filter` (with `$1` bound to `argument`), described. Another
/// role's session shows no `backend_type` to a loader without `pg_read_all_stats`: it counts
/// as a client, since those are what hold tables (analysts, dashboards).
async fn sessions(
    conn: &mut PgConnection,
    filter: &str,
    argument: &str,
) -> anyhow::Result<Vec<String>> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT a.pid, coalesce(a.usename::text, 'another role'), coalesce(a.application_name, ''), \
                coalesce(a.state, ''), left(coalesce(a.query, ''), 80) \
         FROM pg_stat_activity a WHERE {filter} \
         AND coalesce(a.backend_type, 'client backend') = 'client backend' ORDER BY a.pid"
    )))
    .bind(argument)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let (pid, user, app, state, query): (i32, String, String, String, String) = (
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
            );
            // Another role's session shows neither state nor query to a non-superuser.
            let hidden = query == "<insufficient privilege>" || state.is_empty();
            Ok(if hidden {
                format!("pid {pid} ({user}, {app})")
            } else {
                format!("pid {pid} ({user}, {app}, {state}: {query})")
            })
        })
        .collect()
}

/// Refuses, naming them, objects that depend on the table and would have to be dropped with
/// it, and constraints of its own that the staging table does not have.
async fn refuse_dependents(
    tx: &mut Transaction<'_, Postgres>,
    table: &str,
    qtable: &str,
) -> anyhow::Result<()> {
    let views: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT v.oid::regclass::text FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid \
         JOIN pg_class v ON v.oid = r.ev_class WHERE d.refobjid = $1::regclass AND v.oid <> d.refobjid ORDER BY 1",
    )
    .bind(qtable)
    .fetch_all(&mut **tx)
    .await?;
    if !views.is_empty() {
        bail!(
            "cannot replace `{table}`: views depend on it ({}); they would have to be dropped. \
             Load into another table name, or drop and recreate the views around the load",
            views.join(", ")
        );
    }
    let dependents: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT pg_describe_object(d.classid, d.objid, d.objsubid) FROM pg_depend d \
         WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = $1::regclass AND d.deptype = 'n' \
           AND d.classid <> 'pg_rewrite'::regclass \
           AND NOT (d.classid = 'pg_class'::regclass AND d.objid = d.refobjid) \
           AND NOT (d.classid = 'pg_constraint'::regclass AND EXISTS \
                (SELECT 1 FROM pg_constraint c WHERE c.oid = d.objid AND c.conrelid = d.refobjid)) \
           AND NOT (d.classid = 'pg_policy'::regclass AND EXISTS \
                (SELECT 1 FROM pg_policy p WHERE p.oid = d.objid AND p.polrelid = d.refobjid)) \
           AND NOT (d.classid = 'pg_trigger'::regclass AND EXISTS \
                (SELECT 1 FROM pg_trigger t WHERE t.oid = d.objid AND t.tgrelid = d.refobjid)) \
           AND NOT (d.classid = 'pg_statistic_ext'::regclass AND EXISTS \
                (SELECT 1 FROM pg_statistic_ext s WHERE s.oid = d.objid AND s.stxrelid = d.refobjid)) \
           AND NOT (d.classid = 'pg_attrdef'::regclass AND EXISTS \
                (SELECT 1 FROM pg_attrdef a WHERE a.oid = d.objid AND a.adrelid = d.refobjid)) \
           AND NOT (d.classid = 'pg_class'::regclass AND EXISTS \
                (SELECT 1 FROM pg_index i WHERE i.indexrelid = d.objid AND i.indrelid = d.refobjid)) \
         ORDER BY 1",
    )
    .bind(qtable)
    .fetch_all(&mut **tx)
    .await?;
    if !dependents.is_empty() {
        bail!(
            "cannot replace `{table}`: other objects depend on it ({}); they would have to be \
             dropped. Drop and recreate them around the load, or load into another table name",
            dependents.join("; ")
        );
    }
    let constraints: Vec<String> = sqlx::query_scalar(
        "SELECT format('%s (%s)', conname, pg_get_constraintdef(oid)) FROM pg_constraint \
         WHERE conrelid = $1::regclass AND contype NOT IN ('p', 'n') ORDER BY conname",
    )
    .bind(qtable)
    .fetch_all(&mut **tx)
    .await?;
    if !constraints.is_empty() {
        bail!(
            "cannot replace `{table}`: it has constraints that a rebuild would lose ({}); the \
             primary key comes from the source, other constraints belong in the source or in a \
             model built from this table",
            constraints.join("; ")
        );
    }
    Ok(())
}
