//! A PostgreSQL database of a benchmark's own, on the server of `DATABASE_URL` (default the
//! local server), for the benchmarks that need one.

use pipeline_core::sqlx::{self, AssertSqlSafe, Connection as _, PgConnection};

/// A benchmark's database, dropped with this value: at the benchmark's end, and when it fails
/// (a panic unwinds through it), so that a failed benchmark leaves no database behind.
pub struct BenchDatabase {
    /// The server's URL (`DATABASE_URL`).
    pub admin: String,
    pub name: String,
    pub url: String,
}

/// A new database `<prefix>_<pid>` on the server of `DATABASE_URL`.
pub async fn create(prefix: &str) -> BenchDatabase {
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
    BenchDatabase { admin, name, url }
}

impl Drop for BenchDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // On a thread of its own: it may be dropped inside a runtime, which cannot start
        // another.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    let _ = sqlx::query(AssertSqlSafe(format!(
                        "DROP DATABASE \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        });
        let _ = dropped.join();
    }
}
