//! The write stage of an event load: batches written at once and committed in order, each
//! with its rows, dead letters and the watermark in one transaction.

use super::*;

/// Writes decoded batches: rows, dead letters and the watermark in one transaction each.
pub(super) struct Writer<'a> {
    pub(super) sink: &'a Sink<'a>,
    pub(super) spec: &'a EventSpec,
    pub(super) table: String,
    pub(super) columns: &'a [Column],
    pub(super) schema: &'a str,
    /// Off while rebuilding: the old table's watermark stands until the swap.
    pub(super) record_watermark: bool,
}

/// What the writer has committed so far.
#[derive(Debug, Default)]
pub(super) struct Written {
    pub(super) loaded: u64,
    pub(super) dead: u64,
    pub(super) row_count: i64,
    /// The watermark as this load found it, then as its last batch committed it (`None`: no
    /// row yet).
    pub(super) watermark: Option<u64>,
}

/// A batch's open transaction, on either backend.
pub(super) enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl From<sqlx::Transaction<'static, sqlx::Sqlite>> for Tx {
    fn from(tx: sqlx::Transaction<'static, sqlx::Sqlite>) -> Tx {
        Tx::Sqlite(tx)
    }
}

impl From<sqlx::Transaction<'static, sqlx::Postgres>> for Tx {
    fn from(tx: sqlx::Transaction<'static, sqlx::Postgres>) -> Tx {
        Tx::Postgres(tx)
    }
}

/// A batch whose rows and dead letters are in its transaction, not yet committed.
pub(super) struct Staged {
    pub(super) tx: Tx,
    pub(super) written: usize,
    pub(super) dead: usize,
    /// The batch's last sequence: the watermark once it commits.
    pub(super) last: u64,
}

impl Writer<'_> {
    /// Batches a load writes at once: PostgreSQL parses and indexes a batch's rows in its
    /// connection's process, so more connections put the other core to work and cover the
    /// time each spends waiting for its data; SQLite takes one writer at a time.
    pub(super) fn concurrency(&self) -> usize {
        if self.sink.postgres {
            POSTGRES_WRITERS
        } else {
            1
        }
    }

    /// The write stage: writes up to `concurrency` batches at once and commits them in the
    /// order they were read, each after the one before. So the committed batches are always
    /// the first ones, and the watermark (written by each commit) never passes a batch that
    /// is not in the table: a load killed at any point resumes after its last commit. A
    /// batch's commit runs beside the others' writes, which go on meanwhile.
    pub(super) async fn write_all(
        &self,
        mut to_write: tokio::sync::mpsc::Receiver<Decoded>,
        written: &mut Written,
    ) -> anyhow::Result<()> {
        use futures_util::StreamExt as _;
        let mut writing = futures_util::stream::FuturesOrdered::new();
        let mut reading = true;
        // The next batch's turn: the watermark the last batch taken leaves once it has
        // committed (the first batch's is there already: the load's own start).
        let (start, mut turn) = tokio::sync::oneshot::channel();
        let _ = start.send(written.watermark);
        let mut row_count = written.row_count;
        loop {
            tokio::select! {
                // A batch that failed ends the load; those after it roll back.
                Some(done) = writing.next(), if !writing.is_empty() => {
                    let (rows, dead) = done?;
                    written.row_count += rows as i64;
                    written.loaded += rows as u64;
                    written.dead += dead as u64;
                }
                batch = to_write.recv(), if reading && writing.len() < self.concurrency() => {
                    match batch {
                        Some(batch) => {
                            let (done, next) = tokio::sync::oneshot::channel();
                            let after = std::mem::replace(&mut turn, next);
                            row_count += batch.rows.count() as i64;
                            writing.push_back(self.write(batch, after, done, row_count));
                        }
                        None => reading = false,
                    }
                }
                else => break,
            }
        }
        // Every batch committed: the last one's turn holds the watermark it left.
        written.watermark = turn
            .await
            .map_err(|_| anyhow!("the last batch was not written"))?;
        Ok(())
    }

    /// Writes one batch, then commits it once the batch before it has committed (`after`
    /// gives the watermark that commit left, which this one's must find), and passes its own
    /// on (`done`). `row_count` is the table's rows with this batch. Returns its rows and dead
    /// letters, committed.
    pub(super) async fn write(
        &self,
        batch: Decoded,
        after: tokio::sync::oneshot::Receiver<Option<u64>>,
        done: tokio::sync::oneshot::Sender<Option<u64>>,
        row_count: i64,
    ) -> anyhow::Result<(usize, usize)> {
        let staged = self.stage(batch).await?;
        // Dropped unsent: that batch failed, and its error is the load's.
        let expected = after
            .await
            .map_err(|_| anyhow!("a batch before this one was not written"))?;
        let counts = (staged.written, staged.dead);
        // A rebuild leaves the old table's watermark as it is until the swap.
        let leaves = if self.record_watermark {
            Some(staged.last)
        } else {
            expected
        };
        self.commit(staged, expected, row_count).await?;
        let _ = done.send(leaves);
        Ok(counts)
    }

    /// Opens a batch's transaction and writes its rows and dead letters in it.
    pub(super) async fn stage(&self, batch: Decoded) -> anyhow::Result<Staged> {
        let postgres = self.sink.postgres;
        let events = &batch.events;
        let written = batch.rows.count();
        let rows = match batch.rows {
            Rows::Copy(data, _) => Prepared::Copy(data),
            Rows::Bound(bound) => Prepared::Rows(bound),
        };
        let dead: Vec<(&BusEvent, String)> = batch
            .dead
            .into_iter()
            .map(|(i, error)| (&events[i], error))
            .collect();
        let last = events.last().map_or(0, |event| event.seq);
        let tx: Tx = crate::db::dispatch!(self.sink.pool, pool => {
            let mut tx = pool.begin_write().await?;
            if postgres {
                // Rows and watermark are lost together or kept together, so a batch need
                // not wait for its WAL to reach the disk: the load's last commit (the
                // metadata after the last batch) waits, and flushes all before it.
                sqlx::query("SET LOCAL synchronous_commit TO off")
                    .execute(&mut *tx)
                    .await?;
            }
            (*tx).write_rows(&self.table, self.columns, rows).await?;
            if !dead.is_empty() {
                let mut insert = QueryBuilder::new(format!(
                    "INSERT INTO {} ({}, {}, {}, payload, error) ",
                    quote_ident(&dead_letter_table(&self.table)),
                    quote_ident(SEQ),
                    quote_ident(SUBJECT),
                    quote_ident(PUBLISHED)
                ));
                insert.push_values(&dead, |mut values, (event, error)| {
                    values.push_bind(event.seq as i64);
                    values.push_bind(event.subject.clone());
                    push_published(&mut values, event, postgres);
                    values.push_bind(event.payload.clone());
                    values.push_bind(error.clone());
                });
                insert.build().execute(&mut *tx).await?;
            }
            tx.into()
        });
        Ok(Staged {
            tx,
            written,
            dead: dead.len(),
            last,
        })
    }

    /// Records the batch's watermark (over `expected`, the one before it) and the table's
    /// `row_count` in its transaction, and commits it.
    pub(super) async fn commit(
        &self,
        staged: Staged,
        expected: Option<u64>,
        row_count: i64,
    ) -> anyhow::Result<()> {
        macro_rules! finish {
            ($tx:ident) => {{
                let mut $tx = $tx;
                if self.record_watermark {
                    upsert_meta!(
                        $tx,
                        self.spec,
                        self.schema,
                        expected,
                        staged.last,
                        row_count
                    );
                }
                $tx.commit().await?;
            }};
        }
        match staged.tx {
            Tx::Sqlite(tx) => finish!(tx),
            Tx::Postgres(tx) => finish!(tx),
        }
        Ok(())
    }
}

/// A batch's rows, ready for their backend.
pub(super) enum Prepared {
    /// Binary `COPY` data (PostgreSQL).
    Copy(Vec<u8>),
    /// Values to bind (SQLite).
    Rows(BoundRows),
}

/// How a batch's rows get into the table on each backend.
pub(super) trait WriteRows {
    async fn write_rows(
        &mut self,
        table: &str,
        columns: &[Column],
        rows: Prepared,
    ) -> anyhow::Result<()>;
}

/// The column list of an event table: its own columns, then the message's.
pub(super) fn column_list(columns: &[Column]) -> String {
    let mut list = vec![
        quote_ident(SEQ),
        quote_ident(SUBJECT),
        quote_ident(PUBLISHED),
    ];
    list.extend(columns.iter().map(|column| quote_ident(&column.name)));
    list.join(", ")
}

/// PostgreSQL: one binary `COPY`.
impl WriteRows for sqlx::PgConnection {
    async fn write_rows(
        &mut self,
        table: &str,
        columns: &[Column],
        rows: Prepared,
    ) -> anyhow::Result<()> {
        let data = match rows {
            Prepared::Copy(data) => data,
            Prepared::Rows(..) => {
                anyhow::bail!("rows to bind are for SQLite; PostgreSQL takes COPY data")
            }
        };
        let mut copy = self
            .copy_in_raw(&format!(
                "COPY {} ({}) FROM STDIN (FORMAT binary)",
                quote_ident(table),
                column_list(columns)
            ))
            .await?;
        match copy.send(data).await {
            Ok(_) => {
                copy.finish().await?;
                Ok(())
            }
            Err(err) => {
                let _ = copy.abort("the batch could not be sent").await;
                Err(err.into())
            }
        }
    }
}

/// SQLite: one prepared single-row `INSERT`, bound from the batch's memory a row at a time
/// through SQLite's C API ([`super::sqlite`]). It runs on this thread while sqlx's thread for
/// the connection waits: a batch of 10,000 rows holds it for some milliseconds.
impl WriteRows for sqlx::SqliteConnection {
    async fn write_rows(
        &mut self,
        table: &str,
        columns: &[Column],
        rows: Prepared,
    ) -> anyhow::Result<()> {
        let rows = match rows {
            Prepared::Rows(rows) => rows,
            Prepared::Copy(_) => anyhow::bail!("COPY data is for PostgreSQL, not SQLite"),
        };
        let width = columns.len() + 3;
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            quote_ident(table),
            column_list(columns),
            vec!["?"; width].join(", ")
        );
        let mut handle = self.lock_handle().await?;
        let mut insert = RowInsert::prepare(&mut handle, &sql)?;
        let mut values = Vec::with_capacity(width);
        for row in rows.cells.chunks_exact(width) {
            values.clear();
            values.extend(row.iter().map(|cell| rows.value(cell)));
            insert.insert(&values).with_context(|| match row.first() {
                Some(Cell::Int(seq)) => format!("cannot insert the event of seq {seq}"),
                _ => "cannot insert an event".into(),
            })?;
        }
        Ok(())
    }
}

/// Binds a publish time as each backend stores it.
pub(super) fn push_published<'q, DB>(
    values: &mut sqlx::query_builder::Separated<'q, DB, &'static str>,
    event: &BusEvent,
    postgres: bool,
) where
    DB: sqlx::Database,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let text = published_text(event.published_ms, postgres);
    if postgres {
        values.push("CAST(");
        values.push_bind_unseparated(text);
        values.push_unseparated(" AS TIMESTAMPTZ)");
    } else {
        values.push_bind(text);
    }
}

pub(super) fn published_text(ms: i64, postgres: bool) -> String {
    let mut out = String::with_capacity(32);
    columns::push_published(&mut out, ms, postgres);
    out
}
