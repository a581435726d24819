//! A PostgreSQL database of a benchmark's own, on the server of `DATABASE_URL` (default the
//! local server), for the benchmarks that need one.

use pipeline_core::sqlx::{self, AssertSqlSafe, Connection as _, PgConnection};

/// The server's URL (`DATABASE_URL`), and the URL of a new database `<prefix>_<pid>` on it.
pub async fn create(prefix: &str) -> (String, String, String) {
    let admin = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("{prefix}_{}", std::process::id());
    let mut conn = PgConnection::connect(&admin)
        .await
        .expect("PostgreSQL on DATABASE_URL");
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .expect("a benchmark database");
    let url = match admin.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("DATABASE_URL has no database part"),
    };
    (admin, name, url)
}
