//! The journal: an append-only, hash-chained record of what the agent saw, decided and did, in
//! embedded SQLite (WAL mode) in the agent's state folder. Each record carries the hash of the one
//! before it, so [`Journal::verify`] finds the first altered or missing record.
//!
//! [`JournalObserver`] writes the audit stream into it: intents, risk verdicts, decisions (model
//! hash and output), venue steps (simulated, signed, sent, mined), fills, reconciliations and
//! kill-switch changes.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::agent::{AuditEvent, Observer};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {}: {detail}", path.display())]
    Db { path: PathBuf, detail: String },
    /// The chain is broken at `seq`: the record was altered, or one before it is missing.
    #[error("journal {}: record {seq} {problem}", path.display())]
    Broken {
        path: PathBuf,
        seq: i64,
        problem: String,
    },
}

/// One journal record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub seq: i64,
    pub ts: i64,
    pub kind: String,
    pub intent_id: Option<String>,
    pub tx_hash: Option<String>,
    pub body: String,
    pub prev_hash: String,
    pub hash: String,
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub records: i64,
    pub head: String,
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn chain_hash(
    prev: &str,
    seq: i64,
    ts: i64,
    kind: &str,
    intent: Option<&str>,
    tx: Option<&str>,
    body: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [
        prev,
        &seq.to_string(),
        &ts.to_string(),
        kind,
        intent.unwrap_or(""),
        tx.unwrap_or(""),
        body,
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    format!("{:x}", h.finalize())
}

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync on every commit: a record is on disk before the action it records (live).
    Full,
    /// No fsync: for replays, which are reproducible and never act on anything real.
    Replay,
}

/// An open journal.
pub struct Journal {
    conn: Connection,
    path: PathBuf,
    head: (i64, String),
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .field("seq", &self.head.0)
            .finish()
    }
}

impl Journal {
    /// Opens (or creates) the journal at `path`, in WAL mode with full fsync on commit.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        Self::open_with(path, Durability::Full)
    }

    /// Opens with the given durability.
    pub fn open_with(path: &Path, durability: Durability) -> Result<Self, JournalError> {
        let db = |e: rusqlite::Error| JournalError::Db {
            path: path.to_path_buf(),
            detail: e.to_string(),
        };
        let conn = Connection::open(path).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        let sync = match durability {
            Durability::Full => "FULL",
            Durability::Replay => "OFF",
        };
        conn.pragma_update(None, "synchronous", sync).map_err(db)?;
        // A small page cache: an agent appends and rarely reads; many agents share a process.
        conn.pragma_update(None, "cache_size", -256).map_err(db)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS records (
                seq INTEGER PRIMARY KEY,
                ts INTEGER NOT NULL,
                kind TEXT NOT NULL,
                intent_id TEXT,
                tx_hash TEXT,
                body TEXT NOT NULL,
                prev_hash TEXT NOT NULL,
                hash TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS records_tx ON records(tx_hash);
            CREATE INDEX IF NOT EXISTS records_intent ON records(intent_id);",
        )
        .map_err(db)?;
        let head = conn
            .query_row(
                "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()
            .map_err(db)?
            .unwrap_or((0, GENESIS.to_string()));
        Ok(Self {
            conn,
            path: path.to_path_buf(),
            head,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a record (committed, fsynced) and returns it.
    pub fn append(
        &mut self,
        ts: i64,
        kind: &str,
        intent_id: Option<&str>,
        tx_hash: Option<&str>,
        body: &str,
    ) -> Result<Record, JournalError> {
        let seq = self.head.0 + 1;
        let hash = chain_hash(&self.head.1, seq, ts, kind, intent_id, tx_hash, body);
        self.conn
            .execute(
                "INSERT INTO records (seq, ts, kind, intent_id, tx_hash, body, prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![seq, ts, kind, intent_id, tx_hash, body, self.head.1, hash],
            )
            .map_err(|e| JournalError::Db {
                path: self.path.clone(),
                detail: e.to_string(),
            })?;
        let rec = Record {
            seq,
            ts,
            kind: kind.to_string(),
            intent_id: intent_id.map(str::to_string),
            tx_hash: tx_hash.map(str::to_string),
            body: body.to_string(),
            prev_hash: self.head.1.clone(),
            hash: hash.clone(),
        };
        self.head = (seq, hash);
        Ok(rec)
    }

    fn rows(&self, sql: &str, arg: Option<&str>) -> Result<Vec<Record>, JournalError> {
        let db = |e: rusqlite::Error| JournalError::Db {
            path: self.path.clone(),
            detail: e.to_string(),
        };
        let mut stmt = self.conn.prepare(sql).map_err(db)?;
        let map = |r: &rusqlite::Row<'_>| {
            Ok(Record {
                seq: r.get(0)?,
                ts: r.get(1)?,
                kind: r.get(2)?,
                intent_id: r.get(3)?,
                tx_hash: r.get(4)?,
                body: r.get(5)?,
                prev_hash: r.get(6)?,
                hash: r.get(7)?,
            })
        };
        let rows = match arg {
            Some(a) => stmt.query_map([a], map),
            None => stmt.query_map([], map),
        }
        .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    /// Every record, in order.
    pub fn records(&self) -> Result<Vec<Record>, JournalError> {
        self.rows(
            "SELECT seq, ts, kind, intent_id, tx_hash, body, prev_hash, hash FROM records ORDER BY seq",
            None,
        )
    }

    /// Recomputes the hash chain; names the first record that was altered or follows a gap.
    pub fn verify(&self) -> Result<Verified, JournalError> {
        let mut prev = GENESIS.to_string();
        let records = self.records()?;
        for (expect, r) in (1i64..).zip(records.iter()) {
            let broken = |problem: String| JournalError::Broken {
                path: self.path.clone(),
                seq: r.seq,
                problem,
            };
            if r.seq != expect {
                return Err(broken(format!("follows a gap: record {expect} is missing")));
            }
            if r.prev_hash != prev {
                return Err(broken("does not link to the record before it".into()));
            }
            let h = chain_hash(
                &prev,
                r.seq,
                r.ts,
                &r.kind,
                r.intent_id.as_deref(),
                r.tx_hash.as_deref(),
                &r.body,
            );
            if h != r.hash {
                return Err(broken(format!(
                    "was altered: its content hashes to {h}, not {}",
                    r.hash
                )));
            }
            prev = r.hash.clone();
        }
        Ok(Verified {
            records: records.len() as i64,
            head: prev,
        })
    }

    /// The records of the intent that produced transaction `tx_hash`, in order: what led to it.
    pub fn explain_tx(&self, tx_hash: &str) -> Result<Vec<Record>, JournalError> {
        let with_tx = self.rows(
            "SELECT seq, ts, kind, intent_id, tx_hash, body, prev_hash, hash FROM records WHERE lower(tx_hash) = lower(?1) ORDER BY seq",
            Some(tx_hash),
        )?;
        let Some(intent) = with_tx.iter().find_map(|r| r.intent_id.clone()) else {
            return Ok(with_tx);
        };
        self.rows(
            "SELECT seq, ts, kind, intent_id, tx_hash, body, prev_hash, hash FROM records WHERE intent_id = ?1 ORDER BY seq",
            Some(&intent),
        )
    }
}

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// Writes the audit stream into a [`Journal`]. A write failure is logged and counted; the
/// agent's kill switch policy decides what to do with a journal it cannot trust.
pub struct JournalObserver {
    journal: Journal,
    /// The intent the current venue steps and fills belong to.
    current_intent: Option<String>,
    pub failures: u64,
}

impl JournalObserver {
    pub fn new(journal: Journal) -> Self {
        Self {
            journal,
            current_intent: None,
            failures: 0,
        }
    }
}

impl Observer for JournalObserver {
    fn on_audit(&mut self, event: &AuditEvent<'_>) {
        let (ts, kind, intent, tx, body): (i64, &str, Option<String>, Option<String>, String) = match event {
            AuditEvent::Intent { ts, id, intent } => {
                self.current_intent = Some(id.to_string());
                (*ts, "intent", Some(id.to_string()), None, json_str(&format!("{intent:?}")))
            }
            AuditEvent::Verdict { ts, id, verdict } => {
                (*ts, "verdict", Some(id.to_string()), None, json_str(&format!("{verdict:?}")))
            }
            AuditEvent::Decision { ts, decision } => (
                *ts,
                "decision",
                None,
                None,
                serde_json::json!({"model": decision.model, "output": decision.output, "action": decision.action}).to_string(),
            ),
            AuditEvent::Venue { ts, event } => (
                *ts,
                "tx",
                self.current_intent.clone(),
                event.tx_hash.clone(),
                serde_json::json!({"step": event.step, "label": event.label, "nonce": event.nonce, "detail": event.detail}).to_string(),
            ),
            AuditEvent::Fill(f) => (
                f.ts,
                "fill",
                Some(f.id.to_string()),
                f.tx_hash.clone(),
                serde_json::json!({
                    "sell": f.sell.symbol(), "buy": f.buy.symbol(),
                    "amount_in": f.amount_in.to_string(), "amount_out": f.amount_out.to_string(),
                    "fee": f.fee.to_string(), "gas_native": f.gas_native.to_string(),
                })
                .to_string(),
            ),
            AuditEvent::ExecutionFailed { ts, id, error } => {
                (*ts, "execution_failed", Some(id.to_string()), None, json_str(&error.to_string()))
            }
            AuditEvent::KillSwitch { ts, change } => (*ts, "kill_switch", None, None, json_str(&format!("{change:?}"))),
            AuditEvent::Reconciled { ts, token, booked, actual } => (
                *ts,
                "reconciled",
                None,
                None,
                serde_json::json!({"token": token.symbol(), "booked": booked.to_string(), "actual": actual.to_string()}).to_string(),
            ),
            AuditEvent::Portfolio { ts, balances } => (
                *ts,
                "portfolio",
                None,
                None,
                serde_json::Value::Object(
                    balances
                        .iter()
                        .map(|(t, a)| (t.symbol().to_string(), serde_json::Value::String(a.to_string())))
                        .collect(),
                )
                .to_string(),
            ),
            AuditEvent::BadEvent { ts, reason } => (*ts, "bad_event", None, None, json_str(reason)),
            AuditEvent::StrategyFault { ts, error } => (*ts, "strategy_fault", None, None, json_str(&error.to_string())),
            // Marks are per bar: the equity curve lives in the run's outputs, not the journal.
            AuditEvent::Mark { .. } => return,
        };
        if let Err(e) = self
            .journal
            .append(ts, kind, intent.as_deref(), tx.as_deref(), &body)
        {
            self.failures += 1;
            tracing::error!(target: "defai::journal", error = %e, "journal write failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_verifies_and_names_the_first_altered_or_missing_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        {
            let mut j = Journal::open(&path).unwrap();
            for i in 0..10 {
                j.append(i, "intent", Some(&format!("s:{i}:0")), None, "{}")
                    .unwrap();
            }
        }
        // Reopening continues the chain.
        let mut j = Journal::open(&path).unwrap();
        j.append(10, "fill", Some("s:9:0"), Some("0xabc"), "{\"a\":1}")
            .unwrap();
        assert_eq!(j.verify().unwrap().records, 11);
        assert_eq!(
            j.explain_tx("0xABC").unwrap().len(),
            2,
            "the intent's records"
        );

        let conn = Connection::open(&path).unwrap();
        conn.execute("UPDATE records SET body = '{\"a\":2}' WHERE seq = 11", [])
            .unwrap();
        let err = Journal::open(&path)
            .unwrap()
            .verify()
            .unwrap_err()
            .to_string();
        assert!(err.contains("record 11 was altered"), "{err}");
        conn.execute("UPDATE records SET body = '{\"a\":1}' WHERE seq = 11", [])
            .unwrap();
        conn.execute("DELETE FROM records WHERE seq = 4", [])
            .unwrap();
        let err = Journal::open(&path)
            .unwrap()
            .verify()
            .unwrap_err()
            .to_string();
        assert!(err.contains("record 5 follows a gap"), "{err}");
    }
}
