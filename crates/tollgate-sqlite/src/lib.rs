//! Prepared SQLite statements kept across batches and bound from borrowed
//! text: the workspace's only `unsafe` code, kept in this one small crate
//! behind a safe API (every other crate has `unsafe_code = "forbid"`).
//!
//! Why it exists: rusqlite binds every text as `SQLITE_TRANSIENT`, so
//! SQLite mallocs and copies each text before an insert copies it again
//! into the row; for the ledger that was 9.7 k of the 21 k instructions a
//! row cost (callgrind, bench/history/LEDGER.md). rusqlite offers no
//! borrowed binding and no access to its statements' handles, so the
//! statements here are prepared, bound (`SQLITE_STATIC`), stepped, reset
//! and finalized through `rusqlite::ffi`.
//!
//! Safety argument, in one place:
//! - A statement is prepared on, used with and finalized before the
//!   connection that owns it: [`Prepared`] holds both, the statements in a
//!   field that drops first, and lends them out only together with that
//!   connection ([`Batch`]).
//! - A borrowed text is read by SQLite only during the `sqlite3_step` of
//!   the [`Batch::run`] call that bound it; `run` resets the statement and
//!   clears every binding before it returns, while the borrow is still live.
//! - One thread at a time uses a statement: `Prepared` is `Send` but not
//!   `Sync`, and every use goes through `&mut`.

use std::ffi::{c_int, c_uint, CStr};
use std::ptr::NonNull;

use rusqlite::{ffi, Connection, TransactionBehavior};

/// One value bound to a statement parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Int(i64),
    Real(f64),
    /// Bound borrowed: SQLite does not copy it.
    Text(&'a str),
    Null,
}

/// A connection and the statements prepared on it once, for its lifetime.
pub struct Prepared {
    // Field order matters: fields drop in declaration order, so every
    // statement is finalized before the connection closes.
    stmts: Vec<Stmt>,
    conn: Connection,
}

impl Prepared {
    /// Prepares each of `sqls` (persistent statements) on `conn`.
    pub fn new(conn: Connection, sqls: &[&str]) -> Result<Self, rusqlite::Error> {
        let mut stmts = Vec::with_capacity(sqls.len());
        for sql in sqls {
            stmts.push(Stmt::prepare(&conn, sql)?);
        }
        Ok(Self { stmts, conn })
    }

    /// The connection, for pragmas and plain rusqlite use.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Runs `f` in one `BEGIN IMMEDIATE … COMMIT`; an error from `f` or
    /// the commit rolls the whole transaction back.
    pub fn transaction<F>(&mut self, f: F) -> Result<(), rusqlite::Error>
    where
        F: FnOnce(&mut Batch<'_>) -> Result<(), rusqlite::Error>,
    {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut batch = Batch {
            stmts: &mut self.stmts,
            conn: &tx,
        };
        f(&mut batch)?;
        // An error above drops `tx`, which rolls the batch back.
        tx.commit()
    }
}

/// The prepared statements inside one transaction.
pub struct Batch<'a> {
    stmts: &'a mut [Stmt],
    conn: &'a Connection,
}

impl Batch<'_> {
    /// Binds `values` to statement `index`'s parameters 1, 2, … in order,
    /// runs it once (to completion: an `INSERT`, `UPDATE` or `DELETE`), then
    /// resets it and clears its bindings.
    pub fn run<'v>(
        &mut self,
        index: usize,
        values: impl IntoIterator<Item = Value<'v>>,
    ) -> Result<(), rusqlite::Error> {
        let Some(stmt) = self.stmts.get_mut(index) else {
            return Err(failure(
                ffi::SQLITE_MISUSE,
                Some(format!("no prepared statement {index}")),
            ));
        };
        stmt.run(self.conn, values)
    }
}

struct Stmt(NonNull<ffi::sqlite3_stmt>);

// SAFETY: SQLite lets a statement move between threads when one thread at a
// time uses it (the library is built thread-safe); it lives in `Prepared`
// beside its connection and is only used through `&mut`.
unsafe impl Send for Stmt {}

impl Stmt {
    fn prepare(conn: &Connection, sql: &str) -> Result<Self, rusqlite::Error> {
        let len = c_int::try_from(sql.len()).map_err(|_| failure(ffi::SQLITE_TOOBIG, None))?;
        let mut stmt = std::ptr::null_mut();
        // SAFETY: `conn.handle()` is the open connection; SQLite reads
        // `len` bytes of `sql` during the call only (the tail is not asked for).
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                conn.handle(),
                sql.as_ptr().cast(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT as c_uint,
                &mut stmt,
                std::ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(error(conn, rc));
        }
        NonNull::new(stmt)
            .map(Self)
            .ok_or_else(|| failure(ffi::SQLITE_MISUSE, Some("empty statement".into())))
    }

    fn run<'v>(
        &mut self,
        conn: &Connection,
        values: impl IntoIterator<Item = Value<'v>>,
    ) -> Result<(), rusqlite::Error> {
        let stmt = self.0.as_ptr();
        let mut rc = ffi::SQLITE_OK;
        for (i, v) in values.into_iter().enumerate() {
            // Parameters are numbered from 1.
            let Ok(idx) = c_int::try_from(i + 1) else {
                rc = ffi::SQLITE_RANGE;
                break;
            };
            rc = bind(stmt, idx, v);
            if rc != ffi::SQLITE_OK {
                break;
            }
        }
        if rc == ffi::SQLITE_OK {
            // SAFETY: a prepared statement of this connection, every
            // parameter bound to memory borrowed for this call.
            rc = match unsafe { ffi::sqlite3_step(stmt) } {
                ffi::SQLITE_DONE => ffi::SQLITE_OK,
                ffi::SQLITE_ROW => ffi::SQLITE_MISUSE,
                other => other,
            };
        }
        let result = if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(error(conn, rc))
        };
        // SAFETY: same statement; after this no binding points into `values`.
        unsafe {
            ffi::sqlite3_reset(stmt);
            ffi::sqlite3_clear_bindings(stmt);
        }
        result
    }
}

impl Drop for Stmt {
    fn drop(&mut self) {
        // SAFETY: finalized once, before its connection closes (`Prepared`'s
        // field order).
        unsafe {
            ffi::sqlite3_finalize(self.0.as_ptr());
        }
    }
}

fn bind(stmt: *mut ffi::sqlite3_stmt, idx: c_int, v: Value<'_>) -> c_int {
    // SAFETY: `stmt` is a prepared statement and `idx` one of its
    // parameters (SQLite checks the range). A text is borrowed
    // (`SQLITE_STATIC`); `Stmt::run` clears the binding before the borrow
    // ends. An empty text points at a static "".
    unsafe {
        match v {
            Value::Int(n) => ffi::sqlite3_bind_int64(stmt, idx, n),
            Value::Real(x) => ffi::sqlite3_bind_double(stmt, idx, x),
            Value::Null => ffi::sqlite3_bind_null(stmt, idx),
            Value::Text(t) => {
                let Ok(len) = c_int::try_from(t.len()) else {
                    return ffi::SQLITE_TOOBIG;
                };
                let ptr = if t.is_empty() {
                    "".as_ptr()
                } else {
                    t.as_ptr()
                };
                ffi::sqlite3_bind_text(stmt, idx, ptr.cast(), len, ffi::SQLITE_STATIC())
            }
        }
    }
}

/// The connection's message for a failed call.
fn error(conn: &Connection, rc: c_int) -> rusqlite::Error {
    // SAFETY: the open connection's message (never null: SQLite returns a
    // static text when it has none), copied out at once.
    let msg = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(conn.handle())) }
        .to_string_lossy()
        .into_owned();
    failure(rc, Some(msg))
}

fn failure(rc: c_int, msg: Option<String>) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(ffi::Error::new(rc), msg)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn table() -> Prepared {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a INTEGER, b REAL, c TEXT, d TEXT)")
            .unwrap();
        Prepared::new(
            conn,
            &[
                "INSERT INTO t VALUES (?, ?, ?, ?)",
                "DELETE FROM t WHERE a = ?",
            ],
        )
        .unwrap()
    }

    fn rows(p: &Prepared) -> Vec<(i64, f64, String, Option<String>)> {
        let mut q = p
            .connection()
            .prepare("SELECT a, b, c, d FROM t ORDER BY a")
            .unwrap();
        q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn binds_borrowed_text_and_reuses_statements() {
        let mut p = table();
        p.transaction(|b| {
            for i in 0..3 {
                let text = format!("row {i}");
                b.run(
                    0,
                    [
                        Value::Int(i),
                        Value::Real(0.5),
                        Value::Text(&text),
                        Value::Null,
                    ],
                )?;
            }
            b.run(
                0,
                [
                    Value::Int(9),
                    Value::Real(1.0),
                    Value::Text(""),
                    Value::Text("x"),
                ],
            )?;
            b.run(1, [Value::Int(1)])
        })
        .unwrap();
        assert_eq!(
            rows(&p),
            vec![
                (0, 0.5, "row 0".into(), None),
                (2, 0.5, "row 2".into(), None),
                (9, 1.0, String::new(), Some("x".into())),
            ]
        );
    }

    #[test]
    fn an_error_rolls_the_transaction_back() {
        let mut p = table();
        let r = p.transaction(|b| {
            b.run(
                0,
                [
                    Value::Int(1),
                    Value::Real(0.0),
                    Value::Text("a"),
                    Value::Null,
                ],
            )?;
            // Too many values: SQLite refuses the fifth parameter.
            b.run(
                0,
                [
                    Value::Int(2),
                    Value::Real(0.0),
                    Value::Text("b"),
                    Value::Null,
                    Value::Null,
                ],
            )
        });
        assert!(r.is_err());
        assert!(rows(&p).is_empty());
        let r = p.transaction(|b| b.run(7, [Value::Int(1)]));
        assert!(r.is_err(), "an unknown statement index is an error");
    }
}
