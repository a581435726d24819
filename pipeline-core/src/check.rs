//! Outcome checks: monitor what the pipeline produced (fresh rows, enough rows, no nulls, unique
//! keys), not only whether its tasks ran. A check is a task declared with `#[check(on = ..)]`
//! that returns a [`Check`]; the helpers on [`Db`] measure the usual outcomes.
//!
//! ```no_run
//! use pipeline_core::prelude::*;
//! # #[task] async fn load_orders(ctx: &Ctx) -> Result<()> { Ok(()) }
//!
//! /// Orders must be at most two hours old.
//! #[check(on = LoadOrders, severity = "error", blocking)]
//! async fn orders_are_fresh(ctx: &Ctx) -> Result<Check> {
//!     ctx.warehouse().await?.freshness("orders", "created_at", Duration::from_secs(2 * 3600)).await
//! }
//! ```

use std::time::Duration;

use anyhow::Context as _;
use sqlx::AssertSqlSafe;

use crate::ctx::Ctx;
use crate::date::format_duration;
use crate::db::{Db, DbPool, dispatch, quote_ident};
use crate::fatal::ResultExt as _;

/// The outcome of a check: passed or not, what it found, and the measured value.
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct Check {
    /// Whether the outcome is as it should be.
    pub passed: bool,
    /// What was found, in a sentence: shown in the summary, `daily status` and alerts.
    pub message: String,
    /// The measured number (a row count, an age in seconds), kept with the attempt.
    pub value: Option<f64>,
}

impl Check {
    /// A check that passed; `message` says what was found (`orders has 0 duplicated keys`).
    pub fn pass(message: impl Into<String>) -> Check {
        Check {
            passed: true,
            message: message.into(),
            value: None,
        }
    }

    /// A check that failed; `message` says what is wrong, for the alert and the summary.
    pub fn fail(message: impl Into<String>) -> Check {
        Check {
            passed: false,
            message: message.into(),
            value: None,
        }
    }

    /// Passes when `condition` holds.
    pub fn expect(condition: bool, message: impl Into<String>) -> Check {
        Check {
            passed: condition,
            message: message.into(),
            value: None,
        }
    }

    /// Records the measured value (a row count, an age in seconds).
    pub fn with_value(mut self, value: f64) -> Check {
        self.value = Some(value);
        self
    }

    /// Notes the result for the summary and the state store; a failed check is an error.
    pub(crate) fn conclude(self, ctx: &Ctx) -> anyhow::Result<()> {
        if let Some(value) = self.value {
            ctx.measured(value);
        }
        if self.passed {
            ctx.detail(format!("passed: {}", self.message));
            Ok(())
        } else {
            Err(anyhow::anyhow!("check failed: {}", self.message))
        }
    }
}

/// Measurements of the usual outcomes, on any configured database.
impl Db {
    /// Passes when `table` has at least `minimum` rows.
    pub async fn row_count_at_least(&self, table: &str, minimum: i64) -> anyhow::Result<Check> {
        self.require(table, &[]).await?;
        let rows = self
            .count(&format!("SELECT count(*) FROM {}", quote_ident(table)))
            .await?;
        Ok(Check::expect(
            rows >= minimum,
            format!(
                "{table} has {} (at least {minimum} expected)",
                plural(rows, "row")
            ),
        )
        .with_value(rows as f64))
    }

    /// Passes when the newest `column` of `table` is at most `max_age` old. The column holds
    /// timestamps (`timestamptz` in PostgreSQL, ISO-8601 text in SQLite).
    pub async fn freshness(
        &self,
        table: &str,
        column: &str,
        max_age: Duration,
    ) -> anyhow::Result<Check> {
        self.require(table, &[column]).await?;
        let (table_q, column_q) = (quote_ident(table), quote_ident(column));
        let sql = match self.own_pool() {
            DbPool::Postgres(_) => {
                format!("SELECT EXTRACT(EPOCH FROM now() - max({column_q}))::float8 FROM {table_q}")
            }
            DbPool::Sqlite(_) => format!(
                "SELECT (julianday('now') - julianday(max({column_q}))) * 86400.0 FROM {table_q}"
            ),
        };
        self.check_access(&sql)?;
        let age: Option<f64> = dispatch!(self.own_pool(), pool => {
            sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(pool).await
        })
        .with_context(|| format!("cannot measure the freshness of {table}.{column}"))?;
        let limit = format_duration(max_age);
        Ok(match age {
            None => Check::fail(format!("{table} has no rows with a {column}")),
            Some(age) => {
                let shown = format_duration(Duration::from_secs_f64(age.max(0.0)));
                Check::expect(
                    age <= max_age.as_secs_f64(),
                    format!("newest {table}.{column} is {shown} old (limit {limit})"),
                )
                .with_value(age)
            }
        })
    }

    /// Passes when no row of `table` has a null `column`.
    pub async fn no_nulls(&self, table: &str, column: &str) -> anyhow::Result<Check> {
        self.require(table, &[column]).await?;
        let nulls = self
            .count(&format!(
                "SELECT count(*) FROM {} WHERE {} IS NULL",
                quote_ident(table),
                quote_ident(column)
            ))
            .await?;
        Ok(Check::expect(
            nulls == 0,
            format!("{table}.{column} has {}", plural(nulls, "null value")),
        )
        .with_value(nulls as f64))
    }

    /// Passes when no two rows of `table` share the same `columns`.
    pub async fn unique_key(&self, table: &str, columns: &[&str]) -> anyhow::Result<Check> {
        self.require(table, columns).await?;
        let key = columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let duplicates = self
            .count(&format!(
                "SELECT count(*) FROM (SELECT 1 FROM {} GROUP BY {key} HAVING count(*) > 1) AS duplicated",
                quote_ident(table)
            ))
            .await?;
        Ok(Check::expect(
            duplicates == 0,
            format!(
                "{table} has {} ({})",
                plural(duplicates, "duplicated key"),
                columns.join(", ")
            ),
        )
        .with_value(duplicates as f64))
    }

    /// Passes when `sql`, a query returning the number of bad rows, returns 0.
    pub async fn holds(&self, description: &str, sql: &str) -> anyhow::Result<Check> {
        let bad = self.count(sql).await?;
        Ok(Check::expect(
            bad == 0,
            format!(
                "{description}: {} {}",
                plural(bad, "row"),
                if bad == 1 { "breaks it" } else { "break it" }
            ),
        )
        .with_value(bad as f64))
    }

    /// Fails, fatally and naming it, when the table or one of the columns does not exist: a
    /// check that measures nothing must not pass (SQLite would read an unknown `"column"` as a
    /// string and count no nulls in it).
    async fn require(&self, table: &str, columns: &[&str]) -> anyhow::Result<()> {
        let present = self.columns_of(table).await?;
        if present.is_empty() {
            return Err(anyhow::anyhow!(
                "the checked table `{table}` does not exist in database `{}`",
                self.name()
            ))
            .fatal();
        }
        if let Some(missing) = columns.iter().find(|c| !present.iter().any(|p| p == *c)) {
            return Err(anyhow::anyhow!(
                "the checked column `{missing}` is not a column of `{table}` (it has {})",
                present.join(", ")
            ))
            .fatal();
        }
        Ok(())
    }

    async fn count(&self, sql: &str) -> anyhow::Result<i64> {
        self.check_access(sql)?;
        let sql = AssertSqlSafe(sql.to_string());
        let count: i64 =
            dispatch!(self.own_pool(), pool => sqlx::query_scalar(sql).fetch_one(pool).await)
                .with_context(|| format!("check query on database `{}` failed", self.name()))?;
        Ok(count)
    }
}

/// `1 row`, `2 rows`.
fn plural(count: i64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}
