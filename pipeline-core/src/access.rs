//! Test mode holds a task to the tables it declares (`#[task(reads = [..], writes = [..])]`):
//! every script it runs through its databases (`Db::execute_script`), every check helper's
//! query and every query it sends with sqlx through `Db::pool()` (see `db::checked`) is parsed
//! (`sqlparser`, in the database's dialect), the tables it reads and writes are named
//! `database.table`, and one that the task did not declare fails the statement, naming the
//! task, the table and the statement; the loaders check the tables they load into. A refusal
//! is also recorded, so that the attempt fails for good even if the task's code swallows the
//! error (`Declared::take_refused`). A table a task writes it may read too. A task that
//! declares no tables is not held to any; on PostgreSQL every task is held to the test schema
//! (a write that names another schema would reach past its `search_path` to production).

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::Mutex;

use sqlparser::ast::{
    CommentObject, CopySource, Expr, FromTable, GrantObjects, Ident, ObjectName, Query, SetExpr,
    Statement, TableFactor, TableObject, Visit, Visitor,
};
use sqlparser::dialect::{Dialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

use crate::sync::LockUnpoisoned as _;

/// What one task declared, for the databases it opens in test mode.
#[derive(Debug)]
pub(crate) struct Declared {
    pub task: String,
    /// The tables it declared; none for a task that declares none, which is held to none.
    tables: Option<Tables>,
    /// The first access refused since the runner last looked.
    refused: Mutex<Option<String>>,
}

/// A task's declared tables, as `database.table`.
#[derive(Debug, Default)]
pub(crate) struct Tables {
    pub reads: BTreeSet<String>,
    pub writes: BTreeSet<String>,
}

/// The tables one script touches, as `table` (unqualified, as the database folds it).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Touched {
    pub reads: BTreeSet<String>,
    pub writes: BTreeSet<String>,
    /// The writes that name their schema, as `(schema, table)`: past the test schema's
    /// `search_path`.
    pub qualified_writes: BTreeSet<(String, String)>,
}

impl Declared {
    pub fn new(task: String, tables: Option<Tables>) -> Self {
        Declared {
            task,
            tables,
            refused: Mutex::new(None),
        }
    }

    /// Whether the task declared tables to be held to.
    pub fn holds_tables(&self) -> bool {
        self.tables.is_some()
    }

    /// The first access refused since the last call, if any: the attempt that made it fails,
    /// whatever its code did with the error.
    pub fn take_refused(&self) -> Option<String> {
        self.refused.lock_unpoisoned().take()
    }

    /// `refusal` as the error, remembered for `take_refused`.
    fn refuse(&self, refusal: String) -> anyhow::Error {
        self.refused
            .lock_unpoisoned()
            .get_or_insert_with(|| refusal.clone());
        anyhow::anyhow!(refusal)
    }

    /// Refuses `sql`, sent to database `database` (a `backend` of `sqlite` or `postgres`), if it
    /// touches a table the task did not declare, or writes a table past `test_schema` (the
    /// PostgreSQL schema that takes a test run's writes: a write that names another schema
    /// would reach a production table). A script the parser cannot read is let through, with
    /// a warning: test mode checks what it can read, and never refuses SQL the database
    /// accepts only because the parser does not know it.
    pub fn check(
        &self,
        database: &str,
        backend: &str,
        test_schema: Option<&str>,
        sql: &str,
    ) -> anyhow::Result<()> {
        let touched = match touched(backend, sql) {
            Ok(touched) => touched,
            Err(why) => {
                tracing::warn!(
                    task = %self.task,
                    "test mode cannot read a statement to check its tables ({why}): {}",
                    excerpt(sql)
                );
                return Ok(());
            }
        };
        if let Some(test_schema) = test_schema {
            let outside = touched
                .qualified_writes
                .iter()
                .find(|(schema, _)| schema != test_schema && schema != "pg_temp");
            if let Some((schema, table)) = outside {
                return Err(self.refuse(format!(
                    "test mode: task `{}` writes `{schema}.{table}` in database `{database}`, \
                     outside the test schema `{test_schema}`: a test run never writes a \
                     production table; write it unqualified (the test schema then takes it) \
                     (statement: {})",
                    self.task,
                    excerpt(sql)
                )));
            }
        }
        let Some(tables) = &self.tables else {
            return Ok(());
        };
        let full = |table: &str| format!("{database}.{table}");
        for table in &touched.writes {
            if !tables.writes.contains(&full(table)) {
                return Err(self.refuse(format!(
                    "test mode: task `{}` writes `{}`, which it does not declare: add it to \
                     `writes = [..]` (statement: {})",
                    self.task,
                    full(table),
                    excerpt(sql)
                )));
            }
        }
        for table in &touched.reads {
            let name = full(table);
            if !tables.reads.contains(&name) && !tables.writes.contains(&name) {
                return Err(self.refuse(format!(
                    "test mode: task `{}` reads `{name}`, which it does not declare: add it to \
                     `reads = [..]`, and require the task that writes it (statement: {})",
                    self.task,
                    excerpt(sql)
                )));
            }
        }
        Ok(())
    }

    /// Refuses a load into `tables` of database `database` (a loader writes them without a
    /// statement of the task's) unless the task declared writing them.
    pub fn check_load(&self, database: &str, tables: &[&str]) -> anyhow::Result<()> {
        let Some(declared) = &self.tables else {
            return Ok(());
        };
        for table in tables {
            let name = format!("{database}.{table}");
            if !declared.writes.contains(&name) {
                return Err(self.refuse(format!(
                    "test mode: task `{}` loads into `{name}`, which it does not declare: add it \
                     to `writes = [..]`",
                    self.task
                )));
            }
        }
        Ok(())
    }
}

/// The tables `sql` reads and writes.
pub(crate) fn touched(backend: &str, sql: &str) -> Result<Touched, String> {
    let dialect: &dyn Dialect = match backend {
        "postgres" => &PostgreSqlDialect {},
        _ => &SQLiteDialect {},
    };
    let statements = Parser::parse_sql(dialect, sql).map_err(|err| err.to_string())?;
    let mut touched = Touched::default();
    for statement in &statements {
        let targets = written(statement);
        for target in &targets {
            touched.writes.insert(table_name(target));
        }
        for target in targets.iter().chain(&altered(statement)) {
            if let Some(schema) = schema_name(target) {
                touched
                    .qualified_writes
                    .insert((schema, table_name(target)));
            }
        }
        let mut relations = Relations::default();
        let _ = statement.visit(&mut relations);
        for name in relations.names {
            let defined = relations.ctes.contains(&name) || relations.functions.contains(&name);
            if !defined && !is_catalog(&name) {
                touched.reads.insert(name);
            }
        }
    }
    // A table written is not also counted read (`INSERT INTO t SELECT .. FROM t` needs only
    // the write declared).
    let written = touched.writes.clone();
    touched.reads.retain(|table| !written.contains(table));
    // A temporary table the script makes is its scratch, gone with the session: no lineage.
    let temporary: BTreeSet<String> = statements
        .iter()
        .filter_map(|statement| match statement {
            Statement::CreateTable(create) if create.temporary => Some(table_name(&create.name)),
            _ => None,
        })
        .collect();
    touched.reads.retain(|table| !temporary.contains(table));
    touched.writes.retain(|table| !temporary.contains(table));
    Ok(touched)
}

/// The tables a statement writes: their rows or their definition.
fn written(statement: &Statement) -> Vec<ObjectName> {
    match statement {
        Statement::Insert(insert) => match &insert.table {
            TableObject::TableName(name) => vec![name.clone()],
            _ => Vec::new(),
        },
        Statement::Update(update) => relation(&update.table.relation).into_iter().collect(),
        Statement::Delete(delete) => {
            let from = match &delete.from {
                FromTable::WithFromKeyword(tables) | FromTable::WithoutKeyword(tables) => tables,
            };
            let mut targets: Vec<ObjectName> = delete.tables.clone();
            targets.extend(from.iter().filter_map(|table| relation(&table.relation)));
            targets
        }
        Statement::Merge(merge) => relation(&merge.table).into_iter().collect(),
        // `COPY .. FROM` loads the table; `COPY .. TO` reads it.
        Statement::Copy {
            source: CopySource::Table { table_name, .. },
            to: false,
            ..
        } => vec![table_name.clone()],
        Statement::CreateTable(create) => vec![create.name.clone()],
        Statement::CreateView(view) => vec![view.name.clone()],
        Statement::AlterTable(alter) => vec![alter.name.clone()],
        Statement::AlterView(view) => vec![view.name.clone()],
        Statement::RefreshMaterializedView(refresh) => vec![refresh.name.clone()],
        Statement::Drop { names, .. } => names.clone(),
        Statement::Truncate(truncate) => truncate
            .table_names
            .iter()
            .map(|t| t.name.clone())
            .collect(),
        // `WITH .. INSERT ..` and the like: a query whose body is the statement.
        Statement::Query(query) => match &*query.body {
            SetExpr::Insert(inner) | SetExpr::Update(inner) | SetExpr::Delete(inner) => {
                written(inner)
            }
            // `SELECT .. INTO t` makes table `t` (a temporary one is the session's scratch).
            SetExpr::Select(select) => match &select.into {
                Some(into) if !into.temporary => into.targets.iter().filter_map(named).collect(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// The tables a statement changes without writing them: an index, a trigger, a rule or a
/// policy on them, their comments or privileges (as `schema.*` for a whole schema's). No
/// lineage, but past the test schema they would change production tables.
fn altered(statement: &Statement) -> Vec<ObjectName> {
    let in_schemas = |schemas: &[ObjectName]| -> Vec<ObjectName> {
        schemas
            .iter()
            .filter_map(|schema| schema.0.last()?.as_ident().cloned())
            .map(|schema| ObjectName::from(vec![schema, Ident::new("*")]))
            .collect()
    };
    let on_objects = |objects: &Option<GrantObjects>| match objects {
        Some(
            GrantObjects::Tables(names)
            | GrantObjects::Views(names)
            | GrantObjects::Sequences(names),
        ) => names.clone(),
        Some(
            GrantObjects::AllTablesInSchema { schemas }
            | GrantObjects::AllViewsInSchema { schemas }
            | GrantObjects::AllMaterializedViewsInSchema { schemas }
            | GrantObjects::AllSequencesInSchema { schemas },
        ) => in_schemas(schemas),
        _ => Vec::new(),
    };
    match statement {
        Statement::CreateIndex(index) => vec![index.table_name.clone()],
        Statement::AlterIndex { name, .. } => vec![name.clone()],
        Statement::CreateTrigger(trigger) => vec![trigger.table_name.clone()],
        Statement::CreateRule(rule) => vec![rule.table_name.clone()],
        Statement::CreatePolicy(policy) => vec![policy.table_name.clone()],
        Statement::Grant(grant) => on_objects(&grant.objects),
        Statement::Revoke(revoke) => on_objects(&revoke.objects),
        // A column's comment names its table first (`schema.table.column`).
        Statement::Comment {
            object_type: CommentObject::Column,
            object_name,
            ..
        } => {
            let mut parts = object_name.0.clone();
            parts.pop();
            vec![ObjectName(parts)]
        }
        Statement::Comment { object_name, .. } => vec![object_name.clone()],
        _ => Vec::new(),
    }
}

/// The table an `INTO` target names.
fn named(target: &Expr) -> Option<ObjectName> {
    match target {
        Expr::Identifier(ident) => Some(ObjectName::from(vec![ident.clone()])),
        Expr::CompoundIdentifier(idents) => Some(ObjectName::from(idents.clone())),
        _ => None,
    }
}

/// The table a `FROM` item names, if it is one (not a subquery or a function).
fn relation(factor: &TableFactor) -> Option<ObjectName> {
    match factor {
        TableFactor::Table { name, .. } => Some(name.clone()),
        _ => None,
    }
}

/// Every relation a statement names, the names its `WITH` clauses define, and the functions
/// it reads rows from (`FROM generate_series(1, 10)`), which are no tables.
#[derive(Default)]
struct Relations {
    names: BTreeSet<String>,
    ctes: BTreeSet<String>,
    functions: BTreeSet<String>,
}

impl Visitor for Relations {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(fold(&cte.alias.name));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            args: Some(_),
            ..
        } = factor
        {
            self.functions.insert(table_name(name));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        if !in_catalog_schema(relation) {
            self.names.insert(table_name(relation));
        }
        ControlFlow::Continue(())
    }
}

/// The table of a (possibly qualified) name, as the database folds an unquoted identifier.
fn table_name(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|part| part.as_ident())
        .map(fold)
        .unwrap_or_else(|| name.to_string())
}

/// The schema a name gives (`analytics` of `analytics.orders`), as the database folds it.
fn schema_name(name: &ObjectName) -> Option<String> {
    let parts = &name.0;
    let schema = parts
        .len()
        .checked_sub(2)
        .and_then(|at| parts[at].as_ident())?;
    Some(fold(schema))
}

fn fold(ident: &sqlparser::ast::Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

/// The databases' own tables, which no task declares.
fn is_catalog(table: &str) -> bool {
    table.starts_with("pg_") || table.starts_with("sqlite_")
}

/// A name in one of PostgreSQL's catalog schemas (`information_schema.columns`,
/// `pg_catalog.pg_class`): the database's own, whatever the table is called.
fn in_catalog_schema(name: &ObjectName) -> bool {
    schema_name(name)
        .is_some_and(|schema| matches!(schema.as_str(), "information_schema" | "pg_catalog"))
}

/// The statement, shortened for an error message.
fn excerpt(sql: &str) -> String {
    let one_line = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(200) {
        Some((at, _)) => format!("`{}...`", &one_line[..at]),
        None => format!("`{one_line}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn reads_and_writes_of_the_usual_etl_statements() {
        let script = "DROP TABLE IF EXISTS order_model;
             CREATE TABLE order_model AS
             SELECT o.id FROM orders o JOIN Users u ON u.id = o.user_id
             LEFT JOIN \"Rates\" c ON c.currency = o.currency;
             WITH recent AS (SELECT * FROM orders WHERE id > 10)
             INSERT INTO orders_by_city SELECT city, count(*) FROM recent GROUP BY city;
             DELETE FROM stale WHERE id IN (SELECT id FROM archive);
             UPDATE counters SET n = n + 1;
             SELECT count(*) FROM sqlite_master;
             SELECT value FROM generate_series(1, 3);
             CREATE TEMP TABLE scratch AS SELECT * FROM orders;
             INSERT INTO counters SELECT count(*) FROM scratch;";
        for backend in ["sqlite", "postgres"] {
            let touched = touched(backend, script).expect("parsed");
            assert_eq!(
                touched.writes,
                set(&["counters", "order_model", "orders_by_city", "stale"]),
                "{backend}"
            );
            assert_eq!(
                touched.reads,
                set(&["Rates", "archive", "orders", "users"]),
                "{backend}"
            );
        }
    }

    #[test]
    fn merges_copies_into_a_table_and_select_into_write_their_tables() {
        let script = "MERGE INTO totals t USING orders o ON t.id = o.id \
             WHEN MATCHED THEN UPDATE SET n = o.n WHEN NOT MATCHED THEN INSERT VALUES (o.id, o.n);
             COPY (SELECT * FROM users) TO STDOUT;
             SELECT * INTO snapshot FROM orders;
             REFRESH MATERIALIZED VIEW order_totals;
             COPY staged FROM STDIN;";
        let touched = touched("postgres", script).expect("parsed");
        assert_eq!(
            touched.writes,
            set(&["order_totals", "snapshot", "staged", "totals"])
        );
        assert_eq!(touched.reads, set(&["orders", "users"]));
        assert!(touched.qualified_writes.is_empty());
    }

    #[test]
    fn the_catalogs_schemas_are_the_databases_own_whatever_their_tables_are_called() {
        let sql = "SELECT column_name FROM information_schema.columns WHERE table_name = 'x';
             SELECT relname FROM pg_catalog.pg_class;
             SELECT * FROM INFORMATION_SCHEMA.tables t JOIN orders o ON o.name = t.table_name";
        let catalogs = touched("postgres", sql).expect("parsed");
        assert_eq!(catalogs.reads, set(&["orders"]));
        // A table of the task's own schema with such a name is still a table.
        let own = touched("postgres", "SELECT * FROM columns").expect("parsed");
        assert_eq!(own.reads, set(&["columns"]));
    }

    #[test]
    fn an_undeclared_table_fails_naming_task_table_and_statement() {
        let declared = Declared::new(
            "make_model".into(),
            Some(Tables {
                reads: set(&["warehouse.orders"]),
                writes: set(&["warehouse.model"]),
            }),
        );
        let sql = "CREATE TABLE model AS SELECT * FROM orders";
        declared
            .check("warehouse", "sqlite", None, sql)
            .expect("declared");
        let err = declared
            .check(
                "warehouse",
                "sqlite",
                None,
                "INSERT INTO model SELECT * FROM users",
            )
            .expect_err("users is not declared");
        let message = err.to_string();
        assert!(
            message.contains("task `make_model` reads `warehouse.users`"),
            "{message}"
        );
        assert!(
            message.contains("INSERT INTO model SELECT * FROM users"),
            "{message}"
        );
        let err = declared
            .check("warehouse", "postgres", None, "TRUNCATE report")
            .expect_err("report is not declared");
        assert!(
            err.to_string()
                .contains("writes `warehouse.report`, which it does not declare"),
            "{err}"
        );
        declared
            .check("warehouse", "sqlite", None, "THIS IS NOT SQL")
            .expect("what the parser cannot read is let through");
    }

    #[test]
    fn a_statement_nested_past_the_parsers_depth_is_let_through_not_a_crash() {
        let deep = format!("SELECT {}1{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(touched("postgres", &deep).is_err());
        Declared::new("report".into(), None)
            .check("warehouse", "postgres", Some("pipeline_test"), &deep)
            .expect("let through, with a warning");
    }

    #[test]
    fn a_write_past_the_test_schema_is_refused_declared_or_not() {
        let test = Some("pipeline_test");
        for tables in [
            None,
            Some(Tables {
                reads: BTreeSet::new(),
                writes: set(&["warehouse.orders"]),
            }),
        ] {
            let declared = Declared::new("load".into(), tables);
            for sql in [
                "INSERT INTO public.orders VALUES (1)",
                "CREATE TABLE Analytics.orders (id int)",
                "DELETE FROM \"public\".orders",
                "CREATE INDEX orders_by_id ON public.orders (id)",
                "MERGE INTO public.orders o USING staging s ON o.id = s.id \
                 WHEN MATCHED THEN UPDATE SET total = s.total",
                "COPY public.orders FROM STDIN",
                "SELECT * INTO public.orders_copy FROM orders",
                "REFRESH MATERIALIZED VIEW public.order_totals",
                "ALTER VIEW public.recent RENAME TO latest",
                "ALTER INDEX public.orders_by_id RENAME TO by_id",
                "COMMENT ON TABLE public.orders IS 'orders'",
                "COMMENT ON COLUMN public.orders.total IS 'in cents'",
                "GRANT SELECT ON public.orders TO reporting",
                "REVOKE ALL ON public.orders FROM reporting",
                "GRANT SELECT ON ALL TABLES IN SCHEMA public TO reporting",
                "CREATE TRIGGER audit BEFORE INSERT ON public.orders \
                 FOR EACH ROW EXECUTE FUNCTION audit()",
                "CREATE RULE ignore AS ON INSERT TO public.orders DO INSTEAD NOTHING",
                "CREATE POLICY mine ON public.orders USING (true)",
            ] {
                let err = declared
                    .check("warehouse", "postgres", test, sql)
                    .expect_err(sql);
                assert!(
                    err.to_string()
                        .contains("outside the test schema `pipeline_test`"),
                    "{err}"
                );
                assert!(declared.take_refused().is_some(), "{sql}: recorded");
            }
            for sql in [
                "INSERT INTO orders VALUES (1)",
                "INSERT INTO pipeline_test.orders VALUES (1)",
                "CREATE TEMP TABLE scratch AS SELECT 1",
                "SELECT * INTO TEMP scratch FROM public.orders",
                "COMMENT ON TABLE orders IS 'orders'",
                "GRANT SELECT ON orders TO reporting",
                "COPY public.orders TO STDOUT",
            ] {
                declared
                    .check("warehouse", "postgres", test, sql)
                    .expect(sql);
            }
        }
        // Reading past it is what test runs do (sources are read as they are).
        Declared::new("report".into(), None)
            .check("warehouse", "postgres", test, "SELECT * FROM public.orders")
            .expect("a read");
    }
}
