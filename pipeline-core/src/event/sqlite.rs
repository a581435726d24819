//! A batch of rows into SQLite through its C API, on a connection sqlx has handed over.
//!
//! sqlx binds a statement's values through a list of owned arguments that its connection
//! thread copies into SQLite and then frees: for an event load that was most of the write's
//! time (allocations and copies for every cell). Here one prepared `INSERT` of one row is
//! bound straight from the batch's memory (no copy: `SQLITE_STATIC`) and stepped once a row,
//! inside the transaction sqlx opened, while sqlx's thread waits on the handle's lock.

use std::ffi::{CStr, c_int};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use anyhow::{anyhow, bail};
use libsqlite3_sys as ffi;
use sqlx::sqlite::LockedSqliteHandle;

/// A value of a row, borrowed for as long as the row is being inserted.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Bound<'a> {
    Null,
    Int(i64),
    Double(f64),
    Text(&'a str),
    Bytes(&'a [u8]),
}

/// One prepared single-row statement on a locked connection; finalized when dropped.
pub(crate) struct RowInsert<'h> {
    db: NonNull<ffi::sqlite3>,
    statement: NonNull<ffi::sqlite3_stmt>,
    parameters: usize,
    /// The statement lives no longer than the lock on the connection.
    _handle: PhantomData<&'h mut ()>,
}

impl std::fmt::Debug for RowInsert<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowInsert")
            .field("parameters", &self.parameters)
            .finish_non_exhaustive()
    }
}

impl<'h> RowInsert<'h> {
    /// Prepares `sql` (one statement, `?` parameters) on the connection of `handle`.
    pub(crate) fn prepare(
        handle: &'h mut LockedSqliteHandle<'_>,
        sql: &str,
    ) -> anyhow::Result<RowInsert<'h>> {
        let db = handle.as_raw_handle();
        let length = c_int::try_from(sql.len()).map_err(|_| anyhow!("statement too long"))?;
        let mut statement = ptr::null_mut();
        // SAFETY: `db` is an open connection that this thread holds the lock of (the handle,
        // borrowed for 'h); the SQL pointer and length describe a live `&str`.
        let code = unsafe {
            ffi::sqlite3_prepare_v3(
                db.as_ptr(),
                sql.as_ptr().cast(),
                length,
                0,
                &mut statement,
                ptr::null_mut(),
            )
        };
        if code != ffi::SQLITE_OK {
            bail!("cannot prepare the insert: {}", error_message(db));
        }
        let statement = NonNull::new(statement).ok_or_else(|| anyhow!("an empty statement"))?;
        // SAFETY: `statement` was just prepared and is not finalized.
        let parameters = unsafe { ffi::sqlite3_bind_parameter_count(statement.as_ptr()) };
        Ok(RowInsert {
            db,
            statement,
            parameters: usize::try_from(parameters).unwrap_or(0),
            _handle: PhantomData,
        })
    }

    /// Binds `values` to the statement's parameters, in order, and inserts the row. There
    /// must be exactly one value a parameter, so that no binding of a row before survives.
    pub(crate) fn insert(&mut self, values: &[Bound<'_>]) -> anyhow::Result<()> {
        if values.len() != self.parameters {
            bail!(
                "a row of {} values for an insert of {} columns",
                values.len(),
                self.parameters
            );
        }
        let statement = self.statement.as_ptr();
        for (i, value) in values.iter().enumerate() {
            let index = i as c_int + 1; // under the parameter count, itself a c_int
            // SAFETY: the statement is live and `index` is one of its parameters. Texts and
            // bytes are bound without a copy (`SQLITE_STATIC`): `values` outlives this call,
            // the step below is the only use SQLite makes of them, and the next row rebinds
            // every parameter before its step.
            let code = unsafe {
                match *value {
                    Bound::Null => ffi::sqlite3_bind_null(statement, index),
                    Bound::Int(n) => ffi::sqlite3_bind_int64(statement, index, n),
                    Bound::Double(n) => ffi::sqlite3_bind_double(statement, index, n),
                    Bound::Text(text) => ffi::sqlite3_bind_text64(
                        statement,
                        index,
                        text.as_ptr().cast(),
                        text.len() as u64,
                        ffi::SQLITE_STATIC(),
                        ffi::SQLITE_UTF8 as u8,
                    ),
                    Bound::Bytes(bytes) => ffi::sqlite3_bind_blob64(
                        statement,
                        index,
                        bytes.as_ptr().cast(),
                        bytes.len() as u64,
                        ffi::SQLITE_STATIC(),
                    ),
                }
            };
            if code != ffi::SQLITE_OK {
                bail!(
                    "cannot bind value {index} of a row: {}",
                    error_message(self.db)
                );
            }
        }
        // SAFETY: the statement is live and every parameter bound to memory that lives
        // through the step; the reset makes it ready for the next row whatever the outcome.
        let (stepped, reset) =
            unsafe { (ffi::sqlite3_step(statement), ffi::sqlite3_reset(statement)) };
        if stepped != ffi::SQLITE_DONE || reset != ffi::SQLITE_OK {
            bail!("{}", error_message(self.db));
        }
        Ok(())
    }
}

impl Drop for RowInsert<'_> {
    fn drop(&mut self) {
        // SAFETY: the statement is live and finalized once, here.
        unsafe {
            ffi::sqlite3_finalize(self.statement.as_ptr());
        }
    }
}

/// The connection's message for its last error.
fn error_message(db: NonNull<ffi::sqlite3>) -> String {
    // SAFETY: `db` is open; SQLite returns a NUL-terminated text that stays valid until the
    // next call on the connection, and it is copied out at once.
    unsafe {
        let text = ffi::sqlite3_errmsg(db.as_ptr());
        if text.is_null() {
            "unknown SQLite error".into()
        } else {
            CStr::from_ptr(text).to_string_lossy().into_owned()
        }
    }
}
