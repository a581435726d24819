//! A connection of the state store held by one caller that sends a short statement after
//! another: a worker's claims, its outcomes. sqlx's pool checks a connection with a round trip
//! when it hands it out and again when it takes it back, so each such statement cost three
//! round trips, and client and server together spent twice the CPU time on it that a held
//! connection takes (3,000 `SELECT 1` on this project's machine: 0.52 CPU-s through the pool,
//! 0.24 on one connection).

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};

/// The connection is taken from the store's pool at first use and kept; a statement that
/// fails gives it back (the pool closes it if it is broken), and one that failed because the
/// connection was lost is worth one more try on a fresh one (see [`StoreLine::failed`]) if
/// it is safe to send twice: a claim that committed unseen only leaves attempts to be
/// rescued when their leases run out, an outcome is taken once. An insert is not (a
/// coordinator's queue stays on the pool).
#[derive(Debug)]
pub struct StoreLine {
    pool: PgPool,
    conn: Option<PoolConnection<Postgres>>,
}

impl StoreLine {
    pub(super) fn new(pool: PgPool) -> StoreLine {
        StoreLine { pool, conn: None }
    }

    /// The held connection, taken from the pool if there is none.
    pub(super) async fn conn(&mut self) -> Result<&mut PgConnection, sqlx::Error> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => self.pool.acquire().await?,
        };
        Ok(&mut **self.conn.insert(conn))
    }

    /// A statement on the line failed with `err`: the connection goes back to the pool, and
    /// the answer says whether the statement is worth a second try on a new one (the
    /// connection was lost, as when the database restarted; not a statement's own error).
    pub(super) fn failed(&mut self, err: &sqlx::Error) -> bool {
        self.reset();
        connection_lost(err)
    }

    /// Gives the connection back to the pool, which checks it: the next statement takes one
    /// afresh.
    pub(super) fn reset(&mut self) {
        self.conn = None;
    }
}

/// Whether `err` says the connection is gone rather than that the statement was refused.
fn connection_lost(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => true,
        // 08: connection exception; 57P01-57P03: the server shut down or restarts.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::connection_lost;

    #[test]
    fn a_lost_connection_is_told_from_a_refused_statement() {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(connection_lost(&sqlx::Error::Io(reset)));
        assert!(connection_lost(&sqlx::Error::Protocol(
            "unexpected end".into()
        )));
        assert!(!connection_lost(&sqlx::Error::RowNotFound));
        assert!(!connection_lost(&sqlx::Error::PoolTimedOut));
    }
}
