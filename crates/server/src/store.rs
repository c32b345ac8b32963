//! SQLite storage: users, calls with their members, the call event log, quality summaries.
//!
//! WAL mode with `synchronous=FULL`: a commit returns only once it is on disk, and the server
//! replies to a request only after its records are committed, so a `kill -9` loses nothing a
//! client saw acknowledged. Calls are upserted whole (their snapshot as JSON plus the columns
//! queries need), so restoring after a restart is reading the calls that have not ended.

use std::path::Path;
use std::sync::{Arc, Mutex};

use calldock_protocol::{CallPhase, CallSnapshot, Direction, EndReason, History, HistoryEntry, UserId};
use calldock_switchboard::Record;
use rusqlite::{Connection, OptionalExtension, params};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or written.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored row could not be decoded; the file was written by something else.
    #[error("stored call {call_id} is unreadable: {reason}")]
    Corrupt { call_id: String, reason: String },
    /// The database was written by a newer server.
    #[error(
        "the database schema version {found} is newer than this server understands ({supported}); use a newer calldock"
    )]
    TooNew { found: i64, supported: i64 },
}

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    user TEXT PRIMARY KEY,
    display_name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
    call_id TEXT PRIMARY KEY,
    conversation TEXT NOT NULL,
    caller TEXT NOT NULL,
    phase TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    ended_at INTEGER,
    end_reason TEXT,
    snapshot TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_open ON calls(phase) WHERE phase != 'ended';
CREATE TABLE IF NOT EXISTS call_members (
    call_id TEXT NOT NULL,
    user TEXT NOT NULL,
    PRIMARY KEY (call_id, user)
);
CREATE INDEX IF NOT EXISTS call_members_user ON call_members(user);
CREATE TABLE IF NOT EXISTS call_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    user TEXT,
    device TEXT,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS call_events_call ON call_events(call_id);
CREATE TABLE IF NOT EXISTS quality_summaries (
    call_id TEXT NOT NULL,
    user TEXT NOT NULL,
    at INTEGER NOT NULL,
    summary TEXT NOT NULL,
    PRIMARY KEY (call_id, user)
);
CREATE TABLE IF NOT EXISTS secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
";

/// One SQLite database. Cloning shares the connection.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (creating if needed) the database at `path`, or an in-memory one for `None`.
    pub fn open(path: Option<&Path>) -> Result<Self, StoreError> {
        let conn = match path {
            Some(p) => Connection::open(p)?,
            None => Connection::open_in_memory()?,
        };
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew { found, supported: SCHEMA_VERSION });
        }
        conn.execute_batch(SCHEMA)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll
        // back), so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Commits records in one transaction.
    pub fn commit(&self, records: &[Record]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        for record in records {
            match record {
                Record::User { user, display_name } => {
                    tx.execute(
                        "INSERT INTO users(user, display_name) VALUES (?1, ?2)
                         ON CONFLICT(user) DO UPDATE SET display_name = excluded.display_name",
                        params![user.as_str(), display_name],
                    )?;
                }
                Record::Call(call) => {
                    let snapshot = serde_json::to_string(call).map_err(|e| StoreError::Corrupt {
                        call_id: call.call_id.to_string(),
                        reason: e.to_string(),
                    })?;
                    tx.execute(
                        "INSERT INTO calls(call_id, conversation, caller, phase, created_at, ended_at, end_reason, snapshot)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                         ON CONFLICT(call_id) DO UPDATE SET phase = excluded.phase, ended_at = excluded.ended_at,
                           end_reason = excluded.end_reason, snapshot = excluded.snapshot",
                        params![
                            call.call_id.as_str(),
                            call.conversation.as_str(),
                            call.caller.as_str(),
                            phase_name(call.phase),
                            call.created_at.0 as i64,
                            call.ended_at.map(|t| t.0 as i64),
                            call.end_reason.map(end_reason_name),
                            snapshot,
                        ],
                    )?;
                    let members = std::iter::once(&call.caller).chain(call.participants.iter().map(|p| &p.user));
                    for user in members {
                        tx.execute(
                            "INSERT OR IGNORE INTO call_members(call_id, user) VALUES (?1, ?2)",
                            params![call.call_id.as_str(), user.as_str()],
                        )?;
                    }
                }
                Record::Event(e) => {
                    tx.execute(
                        "INSERT INTO call_events(call_id, at, kind, user, device, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![
                            e.call_id.as_str(),
                            e.at.0 as i64,
                            e.kind,
                            e.user.as_ref().map(|u| u.as_str()),
                            e.device.as_ref().map(|d| d.as_str()),
                            e.detail,
                        ],
                    )?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn users(&self) -> Result<Vec<(UserId, String)>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT user, display_name FROM users")?;
        let rows = stmt.query_map([], |r| Ok((UserId(r.get(0)?), r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn display_name(&self, user: &UserId) -> Result<Option<String>, StoreError> {
        let conn = self.lock();
        Ok(conn
            .query_row("SELECT display_name FROM users WHERE user = ?1", params![user.as_str()], |r| r.get(0))
            .optional()?)
    }

    /// Calls that have not ended, to resume after a restart.
    pub fn open_calls(&self) -> Result<Vec<CallSnapshot>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT call_id, snapshot FROM calls WHERE phase != 'ended'")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (call_id, text) = row?;
            out.push(decode(&call_id, &text)?);
        }
        Ok(out)
    }

    /// A user's most recent calls, newest first.
    pub fn history(&self, user: &UserId, limit: usize) -> Result<History, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT c.call_id, c.snapshot FROM calls c JOIN call_members m ON m.call_id = c.call_id
             WHERE m.user = ?1 ORDER BY c.created_at DESC, c.call_id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![user.as_str(), limit as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut calls = Vec::new();
        for row in rows {
            let (call_id, text) = row?;
            let call = decode(&call_id, &text)?;
            let direction = if &call.caller == user { Direction::Outgoing } else { Direction::Incoming };
            // Nobody on this user's devices answered: a missed call, also when the caller gave
            // up before the timeout (as phones show it).
            let missed = direction == Direction::Incoming
                && call.phase == CallPhase::Ended
                && matches!(call.end_reason, Some(EndReason::Missed | EndReason::Canceled))
                && call.participant(user).is_some_and(|p| p.device.is_none());
            calls.push(HistoryEntry { direction, missed, call });
        }
        Ok(History { calls })
    }

    /// Event kinds of a call in order, for the audit log and tests.
    pub fn events(&self, call_id: &str) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT kind, user FROM call_events WHERE call_id = ?1 ORDER BY id")?;
        let rows = stmt.query_map(params![call_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A secret that survives restarts (the token signing key), made on first use.
    pub fn secret(&self, name: &str, make: impl FnOnce() -> Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let conn = self.lock();
        let found: Option<Vec<u8>> =
            conn.query_row("SELECT value FROM secrets WHERE name = ?1", params![name], |r| r.get(0)).optional()?;
        if let Some(v) = found {
            return Ok(v);
        }
        let value = make();
        conn.execute("INSERT INTO secrets(name, value) VALUES (?1, ?2)", params![name, value])?;
        Ok(value)
    }
}

fn decode(call_id: &str, text: &str) -> Result<CallSnapshot, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt { call_id: call_id.to_owned(), reason: e.to_string() })
}

fn phase_name(phase: CallPhase) -> &'static str {
    match phase {
        CallPhase::Ringing => "ringing",
        CallPhase::Active => "active",
        CallPhase::Ended => "ended",
    }
}

fn end_reason_name(reason: EndReason) -> String {
    serde_json::to_value(reason).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}
