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

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

mod body;
mod compact;
mod writer;

pub use body::{Addresses, SCHEMA, schema_of};

use compact::Compactor;

use agent_core::U256;
use agent_core::agent::{AuditError, AuditEvent, BundleMember, Observer, Resume};
use agent_core::venue::{SettledTx, Settlement, StepRecorder, UnsettledTx, VenueEvent};

/// Why the journal could not be opened, written or read, or why its content cannot be
/// trusted.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// SQLite failed: the file cannot be opened or created, is not a journal database, or a
    /// read, write or commit failed (disk full, locked, I/O error).
    #[error("journal {}: {detail}", path.display())]
    Db {
        /// The journal's database file.
        path: PathBuf,
        /// SQLite's error message.
        detail: String,
    },
    /// The chain is broken at `seq`: the record was altered, or one before it is missing.
    /// [`Journal::resume`] also reports a record it cannot parse this way.
    #[error("journal {}: record {seq} {problem}", path.display())]
    Broken {
        /// The journal's database file.
        path: PathBuf,
        /// The first record at fault.
        seq: i64,
        /// What is wrong with it, e.g. `does not link to the record before it`.
        problem: String,
    },
}

/// One journal record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// The time the record is about, unix seconds: the event time of its bar or intent (the
    /// wall clock for a restart's reconciliation).
    pub ts: i64,
    /// What it records: `run`, `market`, `decision`, `intent`, `verdict`,
    /// `refusals_repeated`, `tx`, `fill`, `bet_fill`, `redeem_fill`, `gas`, `tx_dropped`,
    /// `execution_failed`, `kill_switch`, `reconciled`, `portfolio`, `restart`, `bad_event`,
    /// `strategy_fault` or `bundle_closed`.
    pub kind: String,
    /// The intent it belongs to (`strategy:ts:seq`), if any.
    pub intent_id: Option<String>,
    /// The transaction it concerns, as hex, if any.
    pub tx_hash: Option<String>,
    /// The content, as JSON (amounts as decimal strings of token units).
    pub body: String,
    /// [`Record::hash`] of the record before, hex; 64 zeros for the first.
    pub prev_hash: String,
    /// SHA-256, hex, of `prev_hash`, `seq`, `ts`, `kind`, `intent_id`, `tx_hash` and `body`,
    /// each prefixed with its length.
    pub hash: String,
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// How many records the chain holds, all verified.
    pub records: i64,
    /// The last record's hash (64 zeros for an empty journal): quoting it pins the whole
    /// history.
    pub head: String,
    /// Records whose body is in the legacy format (schema 1: written before bodies were
    /// structured, see [`schema_of`]); they verify like any other.
    pub legacy: i64,
}

/// The format of [`Journal::export`].
///
/// Parsed from `jsonl` or `csv`; any other text is an error naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExportFormat {
    /// One JSON object per line: `seq`, `ts`, `kind`, `intent_id`, `tx_hash`, `schema`, `body`
    /// (the body as JSON: a structured object, or a legacy body as the JSON it is, else its text
    /// as a string), `prev_hash` and `hash`.
    #[default]
    Jsonl,
    /// A header line, then one row per record with the same columns; `body` is the stored
    /// body's text.
    Csv,
}

impl std::str::FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "jsonl" => Ok(Self::Jsonl),
            "csv" => Ok(Self::Csv),
            other => Err(format!(
                "unknown export format {other:?}: expected jsonl or csv"
            )),
        }
    }
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
    let (mut seq_text, mut ts_text) = (itoa::Buffer::new(), itoa::Buffer::new());
    for part in [
        prev,
        seq_text.format(seq),
        ts_text.format(ts),
        kind,
        intent.unwrap_or(""),
        tx.unwrap_or(""),
        body,
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    alloy::primitives::hex::encode(h.finalize())
}

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync on every commit: a record is on disk before the action it records (live).
    Full,
    /// No fsync: for replays, which are reproducible and never act on anything real.
    Replay,
}

/// How much of a run the journal keeps.
///
/// Parsed from `compact` or `full` (`defai backtest --journal`); any other text is an
/// error naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Detail {
    /// What a replay cannot recompute from its input (the `run` record names the input and
    /// the config): intents, verdicts, fills, decisions, kill-switch changes; no `market`
    /// record per bar; a swap intent approved and filled at one event time as one `trade`
    /// record (its intent, verdict and fill bodies); a run of identical refusals (e.g. every
    /// bar after a halt) as the first one in full and one `refusals_repeated` record with the
    /// count and the time range; of the book (`portfolio`), the first and the last.
    #[default]
    Compact,
    /// Every audit event as it happens, a `market` record per bar included (what chain runs
    /// always keep: a restart and `audit explain` need the prices each decision saw).
    Full,
}

impl std::str::FromStr for Detail {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "compact" => Ok(Self::Compact),
            "full" => Ok(Self::Full),
            other => Err(format!(
                "journal detail `{other}` is neither `compact` nor `full`"
            )),
        }
    }
}

impl std::fmt::Display for Detail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Compact => "compact",
            Self::Full => "full",
        })
    }
}

/// An open journal.
pub struct Journal {
    conn: Connection,
    path: PathBuf,
    head: (i64, String),
    /// Replays commit in batches (nothing to be durable for); live commits every record.
    batched: bool,
    pending: u32,
}

/// Records per commit of a replay's journal.
const REPLAY_BATCH: u32 = 512;

impl Drop for Journal {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(target: "defai::journal", error = %e, "journal: last batch not committed");
        }
    }
}

/// Appends records to a [`Journal`] through one prepared statement ([`Journal::inserter`]).
pub(crate) struct Inserter<'j> {
    stmt: rusqlite::CachedStatement<'j>,
    conn: &'j Connection,
    path: &'j Path,
    head: &'j mut (i64, String),
    batched: bool,
    pending: &'j mut u32,
}

impl Inserter<'_> {
    /// Appends one record after the head, chained to it; a replay commits every
    /// `REPLAY_BATCH` records (the rest at [`Journal::flush`]), a live journal every record.
    ///
    /// # Errors
    ///
    /// [`JournalError::Db`] when the insert or its commit fails; the head does not move past
    /// the failed record. A failed commit of a replay's batch leaves that batch's earlier
    /// records uncommitted (rolled back when the journal closes); the writer stops at the first
    /// failure, so nothing is chained onto them. A live journal commits every record.
    pub(crate) fn insert(
        &mut self,
        ts: i64,
        kind: &str,
        intent_id: Option<&str>,
        tx_hash: Option<&str>,
        body: &str,
    ) -> Result<(), JournalError> {
        let seq = self.head.0 + 1;
        let hash = chain_hash(&self.head.1, seq, ts, kind, intent_id, tx_hash, body);
        let db = |e: rusqlite::Error| JournalError::Db {
            path: self.path.to_path_buf(),
            detail: e.to_string(),
        };
        if self.batched && *self.pending == 0 {
            self.conn.execute_batch("BEGIN").map_err(db)?;
        }
        // Every parameter bound in place (no slice of `dyn ToSql` per record), then run; all
        // eight are bound each time, so none keeps a value from the record before.
        let stmt = &mut self.stmt;
        debug_assert_eq!(
            stmt.parameter_count(),
            8,
            "the insert binds eight parameters"
        );
        stmt.raw_bind_parameter(1, seq).map_err(db)?;
        stmt.raw_bind_parameter(2, ts).map_err(db)?;
        stmt.raw_bind_parameter(3, kind).map_err(db)?;
        stmt.raw_bind_parameter(4, intent_id).map_err(db)?;
        stmt.raw_bind_parameter(5, tx_hash).map_err(db)?;
        stmt.raw_bind_parameter(6, body).map_err(db)?;
        stmt.raw_bind_parameter(7, &self.head.1).map_err(db)?;
        stmt.raw_bind_parameter(8, &hash).map_err(db)?;
        stmt.raw_execute().map_err(db)?;
        if self.batched {
            *self.pending += 1;
            if *self.pending >= REPLAY_BATCH {
                *self.pending = 0;
                self.conn.execute_batch("COMMIT").map_err(db)?;
            }
        }
        *self.head = (seq, hash);
        Ok(())
    }
}

/// The indexes a journal's look-ups by transaction and by intent use.
const INDEXES: &str = "CREATE INDEX IF NOT EXISTS records_tx ON records(tx_hash);
    CREATE INDEX IF NOT EXISTS records_intent ON records(intent_id);";

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
    ///
    /// # Errors
    ///
    /// [`JournalError::Db`] when SQLite cannot open or create the file, set its modes or
    /// create the table, or read the last record.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        Self::open_with(path, Durability::Full)
    }

    /// Opens with the given durability. A journal created at [`Durability::Replay`] (the file
    /// did not exist) is written once by one writer and never resumed: it uses 16 KiB pages,
    /// keeps its rollback journal in memory instead of a WAL and leaves its two indexes to the
    /// first reader. Any later open turns the file to WAL and builds the indexes (once), so a
    /// replay that is never read never pays for them, and one that is read pays once. Until
    /// the replay closes it, another connection is not a WAL
    /// reader: `defai audit` on a replay still running (a paced paper replay) turns the file to
    /// WAL between two of the writer's commits, waiting up to SQLite's busy timeout (5 s) for
    /// one, and fails with "database is locked" when none comes in that time.
    ///
    /// # Errors
    ///
    /// As [`Journal::open`]: [`JournalError::Db`] on any SQLite failure.
    pub fn open_with(path: &Path, durability: Durability) -> Result<Self, JournalError> {
        let db = |e: rusqlite::Error| JournalError::Db {
            path: path.to_path_buf(),
            detail: e.to_string(),
        };
        // A replay's new journal: written once by one writer and closed, never resumed.
        let fresh_replay = durability == Durability::Replay && !path.exists();
        let conn = Connection::open(path).map_err(db)?;
        let sync = match durability {
            Durability::Full => "FULL",
            Durability::Replay => "OFF",
        };
        // Before the switch to WAL, which writes the new file's header: a replay's journal is
        // created without an fsync.
        conn.pragma_update(None, "synchronous", sync).map_err(db)?;
        if fresh_replay {
            // Before anything is written (the page size is fixed by the first write): a replay
            // appends thousands of records in batches, and bigger pages take fewer writes and
            // B-tree splits (measured: about 15 % less time per insert than 4 KiB).
            conn.pragma_update(None, "page_size", 16384).map_err(db)?;
        }
        // A replay's new journal keeps its rollback journal in memory: its pages are written
        // once, at each commit, instead of into the WAL and again by the checkpoint at close.
        // (A crash mid-commit can leave it unreadable; the replay is then run again. The next
        // `Journal::open` turns it to WAL.)
        let mode = if fresh_replay { "MEMORY" } else { "WAL" };
        conn.pragma_update(None, "journal_mode", mode).map_err(db)?;
        // A small page cache: an agent appends and rarely reads; many agents share a process.
        // A replay's batch of `REPLAY_BATCH` records (≈ 250 kB of pages) fits in it without
        // spilling to the file (or the WAL) before its commit.
        let cache_kib = match durability {
            Durability::Full => -256,
            Durability::Replay => -1024,
        };
        conn.pragma_update(None, "cache_size", cache_kib)
            .map_err(db)?;
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
            );",
        )
        .map_err(db)?;
        // A replay's new journal leaves them to its first reader (see above).
        if !fresh_replay {
            conn.execute_batch(INDEXES).map_err(db)?;
        }
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
            batched: durability == Durability::Replay,
            pending: 0,
        })
    }

    /// Commits the open batch ([`Journal::flush`]); dropping the journal does the same. Later
    /// calls do nothing.
    ///
    /// # Errors
    ///
    /// [`JournalError::Db`] when the commit fails.
    pub fn close(&mut self) -> Result<(), JournalError> {
        self.flush()
    }

    /// Commits a replay's open batch (live journals have none).
    ///
    /// # Errors
    ///
    /// [`JournalError::Db`] when the commit fails; the batch's records are then not in the
    /// file.
    pub fn flush(&mut self) -> Result<(), JournalError> {
        if self.pending > 0 {
            self.pending = 0;
            self.conn
                .execute_batch("COMMIT")
                .map_err(|e| JournalError::Db {
                    path: self.path.clone(),
                    detail: e.to_string(),
                })?;
        }
        Ok(())
    }

    /// The journal's database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a record (committed, fsynced) and returns it. A replay's journal
    /// ([`Durability::Replay`]) commits in batches instead; see [`Journal::flush`].
    ///
    /// # Errors
    ///
    /// [`JournalError::Db`] when the insert or its commit fails; the head does not move, so
    /// the next append still links to the last record written.
    pub fn append(
        &mut self,
        ts: i64,
        kind: &str,
        intent_id: Option<&str>,
        tx_hash: Option<&str>,
        body: &str,
    ) -> Result<Record, JournalError> {
        let prev_hash = self.head.1.clone();
        self.inserter()?
            .insert(ts, kind, intent_id, tx_hash, body)?;
        Ok(Record {
            seq: self.head.0,
            ts,
            kind: kind.to_string(),
            intent_id: intent_id.map(str::to_string),
            tx_hash: tx_hash.map(str::to_string),
            body: body.to_string(),
            prev_hash,
            hash: self.head.1.clone(),
        })
    }

    /// One prepared insert for a run of [`Inserter::insert`]s (a replay's writer thread takes
    /// one per batch instead of looking the statement up per record).
    ///
    /// # Errors
    ///
    /// [`JournalError::Db`] when the statement cannot be prepared.
    pub(crate) fn inserter(&mut self) -> Result<Inserter<'_>, JournalError> {
        let Journal {
            conn,
            path,
            head,
            batched,
            pending,
        } = self;
        let stmt = conn
            .prepare_cached(
                "INSERT INTO records (seq, ts, kind, intent_id, tx_hash, body, prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(|e| JournalError::Db {
                path: path.clone(),
                detail: e.to_string(),
            })?;
        Ok(Inserter {
            stmt,
            conn,
            path,
            head,
            batched: *batched,
            pending,
        })
    }

    /// Records matching `filter` (the SQL after `FROM records`), bound to `params`.
    fn rows<P: rusqlite::Params>(
        &self,
        filter: &str,
        params: P,
    ) -> Result<Vec<Record>, JournalError> {
        let db = |e: rusqlite::Error| JournalError::Db {
            path: self.path.clone(),
            detail: e.to_string(),
        };
        let sql = format!(
            "SELECT seq, ts, kind, intent_id, tx_hash, body, prev_hash, hash FROM records {filter}"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(db)?;
        let rows = stmt
            .query_map(params, |r| {
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
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }

    /// Every record, in order.
    ///
    /// # Errors
    ///
    /// [`JournalError::Db`] when the query fails.
    pub fn records(&self) -> Result<Vec<Record>, JournalError> {
        self.rows("ORDER BY seq", [])
    }

    /// Recomputes the hash chain; names the first record that was altered or follows a gap.
    ///
    /// # Errors
    ///
    /// [`JournalError::Broken`] at the first record whose `seq` skips one, whose `prev_hash`
    /// is not the previous hash, or whose content does not hash to its `hash`;
    /// [`JournalError::Db`] when the records cannot be read.
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
            legacy: records.iter().filter(|r| schema_of(&r.body) == 1).count() as i64,
        })
    }

    /// Writes every record, in order, to `out` as `format` says, and returns how many it wrote.
    /// The chain is not verified here ([`Journal::verify`] does that); what is written is what
    /// is stored.
    ///
    /// # Errors
    ///
    /// [`JournalError::Db`] when the records cannot be read or `out` cannot be written (the
    /// detail names the I/O error).
    pub fn export(
        &self,
        format: ExportFormat,
        out: &mut dyn std::io::Write,
    ) -> Result<u64, JournalError> {
        let io = |e: &dyn std::fmt::Display| JournalError::Db {
            path: self.path.clone(),
            detail: format!("export: {e}"),
        };
        let records = self.records()?;
        if format == ExportFormat::Jsonl {
            for r in &records {
                let body = serde_json::from_str::<serde_json::Value>(&r.body)
                    .unwrap_or_else(|_| serde_json::Value::String(r.body.clone()));
                let line = serde_json::json!({
                    "seq": r.seq, "ts": r.ts, "kind": r.kind, "intent_id": r.intent_id,
                    "tx_hash": r.tx_hash, "schema": schema_of(&r.body), "body": body,
                    "prev_hash": r.prev_hash, "hash": r.hash,
                });
                writeln!(out, "{line}").map_err(|e| io(&e))?;
            }
            return Ok(records.len() as u64);
        }
        let mut w = csv::Writer::from_writer(out);
        w.write_record([
            "seq",
            "ts",
            "kind",
            "intent_id",
            "tx_hash",
            "schema",
            "body",
            "prev_hash",
            "hash",
        ])
        .map_err(|e| io(&e))?;
        for r in &records {
            w.write_record([
                &r.seq.to_string(),
                &r.ts.to_string(),
                &r.kind,
                r.intent_id.as_deref().unwrap_or(""),
                r.tx_hash.as_deref().unwrap_or(""),
                &schema_of(&r.body).to_string(),
                &r.body,
                &r.prev_hash,
                &r.hash,
            ])
            .map_err(|e| io(&e))?;
        }
        w.flush().map_err(|e| io(&e))?;
        Ok(records.len() as u64)
    }

    /// What led to transaction `tx_hash`, in order: the market snapshot and model decision of
    /// the event that raised the intent, then the intent's own records (intent, risk verdict,
    /// transaction steps, fill). Empty when no record names the hash.
    ///
    /// # Errors
    ///
    /// [`JournalError::Db`] when a query fails.
    pub fn explain_tx(&self, tx_hash: &str) -> Result<Vec<Record>, JournalError> {
        let with_tx = self.rows("WHERE lower(tx_hash) = lower(?1) ORDER BY seq", [tx_hash])?;
        let Some(intent) = with_tx.iter().find_map(|r| r.intent_id.clone()) else {
            return Ok(with_tx);
        };
        let own = self.rows("WHERE intent_id = ?1 ORDER BY seq", [&intent])?;
        let Some(first) = own.first() else {
            return Ok(with_tx);
        };
        // The event's context: written just before its first intent, at the same event time.
        let context = self.rows(
            "WHERE ts = ?1 AND seq < ?2 AND kind IN ('market', 'decision') ORDER BY seq",
            params![first.ts, first.seq],
        )?;
        Ok(context.into_iter().chain(own).collect())
    }
}

/// The journal and what the records being written belong to, shared by the observer and the
/// venue's step recorder.
struct Shared {
    journal: Sink,
    /// With [`Detail::Compact`]: the intent awaiting its verdict, the approved one awaiting its
    /// fill, the run of refusals being counted and the last book. Here, under the lock, so the
    /// venue's step recorder writes a held intent before the steps filed under it.
    compact: Option<Compactor>,
    /// The intent the current venue steps and fills belong to, and its event time.
    intent: Option<Filed>,
    ts: i64,
    /// Token contract addresses for the amounts (a chain run's).
    addresses: Arc<Addresses>,
    /// The sell and buy tokens of the last intent journaled, which its verdict's amounts are
    /// in.
    verdict_tokens: Option<(agent_core::Token, agent_core::Token)>,
    failures: u64,
    /// The first write that failed: the journal is incomplete from there on, so every later
    /// write is refused with it (a gap would make the chain lie about what happened).
    broken: Option<String>,
}

/// Where a record goes: straight into the journal (committed before `append` returns), or to
/// the writer thread of a replay's journal.
enum Sink {
    /// Written and committed by the caller (live: fsynced before the action it records).
    Direct(Journal),
    /// Hashed and inserted by the writer thread, in order ([`Durability::Replay`]).
    Thread(writer::Writer),
}

impl Shared {
    fn append(&mut self, row: Row) -> Result<(), String> {
        if let Some(first) = &self.broken {
            self.failures += 1;
            return Err(format!(
                "journal unusable since an earlier write failed: {first}"
            ));
        }
        if row.kind == "intent" || row.kind == "trade" {
            // What later venue steps and bet fills are filed under.
            self.intent.clone_from(&row.intent);
            self.ts = row.ts;
        }
        let kind = row.kind;
        let written = match &mut self.journal {
            Sink::Direct(j) => j
                .inserter()
                .and_then(|mut i| {
                    i.insert(
                        row.ts,
                        kind,
                        row.intent.as_ref().map(Filed::text).as_deref(),
                        row.tx.as_deref(),
                        &row.body.render(&self.addresses),
                    )
                })
                .map_err(|e| e.to_string()),
            Sink::Thread(w) => w.push(row),
        };
        written.map_err(|e| self.fail(format!("{kind} record not written: {e}")))
    }

    /// Marks the journal broken with `e` (the first failure) and returns it.
    fn fail(&mut self, e: String) -> String {
        self.failures += 1;
        tracing::error!(target: "defai::journal", error = %e, "journal write failed");
        self.broken.get_or_insert_with(|| e.clone());
        e
    }

    /// Commits everything written so far: a replay's open batch, or (writer thread) every
    /// record sent, waiting for the thread to end.
    fn flush(&mut self) -> Result<(), String> {
        let done = match &mut self.journal {
            Sink::Direct(j) => j.flush().map_err(|e| e.to_string()),
            Sink::Thread(w) => w.finish(),
        };
        done.map_err(|e| self.fail(format!("last batch not committed: {e}")))
    }
}

/// Writes the audit stream into a [`Journal`]. A write that fails is returned to the agent as an
/// [`AuditError`], which halts it: nothing is sent that is not on record. After a failure every
/// later write fails too (no gaps in the chain).
///
/// With a [`StepRecorder`] handed to the venue ([`JournalObserver::recorder`]), transaction
/// steps are journaled by the venue as they happen (a signed transaction before its broadcast)
/// and the observer no longer writes the copies that reach the audit stream afterwards.
pub struct JournalObserver {
    shared: Arc<Mutex<Shared>>,
    venue_recorded: bool,
    /// Rows of the event being journaled (reused: no allocation per event).
    rows: Vec<Row>,
    /// Their kinds once written, for the failpoints hit after the lock is released.
    kinds: Vec<&'static str>,
}

impl std::fmt::Debug for JournalObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("JournalObserver");
        // `try_lock`: formatting must not wait on (or deadlock with) a write in progress.
        match self.shared.try_lock() {
            Ok(s) => d
                .field(
                    "journal",
                    match &s.journal {
                        Sink::Direct(j) => j as &dyn std::fmt::Debug,
                        Sink::Thread(w) => w as &dyn std::fmt::Debug,
                    },
                )
                .field("failures", &s.failures)
                .field("broken", &s.broken),
            Err(_) => d.field("journal", &"<in use>"),
        };
        d.field("venue_recorded", &self.venue_recorded)
            .finish_non_exhaustive()
    }
}

impl JournalObserver {
    /// Writes the whole audit stream into `journal` ([`Detail::Full`]), venue steps included
    /// until [`JournalObserver::recorder`] hands their writing to the venue.
    pub fn new(journal: Journal) -> Self {
        Self::with_detail(journal, Detail::Full)
    }

    /// Writes the audit stream into `journal` at `detail`: [`Detail::Compact`] for a replay,
    /// whose input and config the `run` record names.
    pub fn with_detail(journal: Journal, detail: Detail) -> Self {
        Self {
            rows: Vec::new(),
            kinds: Vec::new(),
            shared: Arc::new(Mutex::new(Shared {
                journal: if journal.batched {
                    Sink::Thread(writer::Writer::spawn(journal))
                } else {
                    Sink::Direct(journal)
                },
                intent: None,
                ts: 0,
                addresses: Arc::new(Addresses::default()),
                verdict_tokens: None,
                failures: 0,
                broken: None,
                compact: (detail == Detail::Compact).then(Compactor::default),
            })),
            venue_recorded: false,
        }
    }

    /// Names each token's contract (`symbol` → `0x…` address) in the amounts written from now
    /// on: a chain run's tokens. Off chain amounts have no `address`.
    pub fn with_addresses(self, addresses: Addresses) -> Self {
        if let Ok(mut s) = self.shared.lock() {
            let addresses = Arc::new(addresses);
            if let Sink::Thread(w) = &mut s.journal {
                w.addresses = addresses.clone();
            }
            s.addresses = addresses;
        }
        self
    }

    /// Journal writes that failed so far.
    pub fn failures(&self) -> u64 {
        self.shared.lock().map(|s| s.failures).unwrap_or(u64::MAX)
    }

    /// What the venue should write its steps through.
    pub fn recorder(&mut self) -> Arc<dyn StepRecorder> {
        self.venue_recorded = true;
        Arc::new(JournalRecorder(self.shared.clone()))
    }
}

impl agent_core::JournalBackend for JournalObserver {
    fn recorder(&mut self) -> Arc<dyn StepRecorder> {
        JournalObserver::recorder(self)
    }

    fn resume(&self) -> Result<Resume, AuditError> {
        let shared = self
            .shared
            .lock()
            .map_err(|_| AuditError("journal lock poisoned".into()))?;
        match &shared.journal {
            Sink::Direct(j) => j.resume().map_err(|e| AuditError(format!("journal: {e}"))),
            // A replay's journal starts afresh: there is nothing to resume from.
            Sink::Thread(_) => Err(AuditError(
                "a replay's journal is not resumed from (it starts afresh every run)".into(),
            )),
        }
    }
}

struct JournalRecorder(Arc<Mutex<Shared>>);

impl StepRecorder for JournalRecorder {
    fn record(&self, event: &VenueEvent) -> Result<(), String> {
        {
            let mut s = self
                .0
                .lock()
                .map_err(|_| "journal lock poisoned".to_string())?;
            // A held intent (a bundle leg's, which no verdict follows) goes before its steps.
            let mut held = Vec::new();
            if let Some(c) = &mut s.compact {
                c.write_held(&mut held);
            }
            for r in held {
                s.append(r)?;
            }
            let intent = event.intent_id.clone().map(Filed::Text);
            let (ts, intent) = (s.ts, intent.or_else(|| s.intent.clone()));
            s.append(Row {
                intent,
                tx: event.tx_hash.clone(),
                ..row(ts, "tx", venue_body(event))
            })?;
        }
        crate::failpoint::hit(event.step);
        Ok(())
    }
}

impl Observer for JournalObserver {
    /// A compact journal keeps no record per bar: it takes neither markets nor marks.
    fn takes_bars(&self) -> bool {
        self.shared.lock().map_or(true, |s| s.compact.is_none())
    }

    fn finish(&mut self) -> Result<(), AuditError> {
        let mut shared = self
            .shared
            .lock()
            .map_err(|_| AuditError("journal lock poisoned".into()))?;
        if let Some(first) = &shared.broken {
            return Err(AuditError(first.clone()));
        }
        if let Some(c) = &mut shared.compact {
            c.finish(&mut self.rows);
        }
        write_rows(&mut shared, &mut self.rows, &mut self.kinds)?;
        self.kinds.clear();
        shared.flush().map_err(AuditError)
    }

    fn on_audit(&mut self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
        let Ok(mut shared) = self.shared.lock() else {
            tracing::error!(target: "defai::journal", "journal lock poisoned");
            return Err(AuditError("journal lock poisoned".into()));
        };
        let taken = match &mut shared.compact {
            Some(c) => c.take(event, &mut self.rows),
            None => false,
        };
        let mut written = Ok(());
        if !taken {
            // What compaction let go comes first: a venue step after it is filed under the
            // intent it wrote.
            written = write_rows(&mut shared, &mut self.rows, &mut self.kinds);
            if written.is_ok()
                && let Some(row) = self.row_of(&mut shared, event)
            {
                self.rows.push(row);
            }
        }
        if written.is_ok() && !self.rows.is_empty() {
            written = write_rows(&mut shared, &mut self.rows, &mut self.kinds);
        }
        drop(shared);
        for kind in self.kinds.drain(..) {
            crate::failpoint::hit(kind);
        }
        written
    }
}

/// A run that ended with an error never calls [`Observer::finish`]: what a compact journal
/// held back (the run of refusals, a held intent or approval, the last book) is written here, and the
/// journal committed, as far as it still can be.
impl Drop for JournalObserver {
    fn drop(&mut self) {
        let Ok(mut shared) = self.shared.lock() else {
            return;
        };
        if shared.broken.is_some() {
            return;
        }
        if let Some(c) = &mut shared.compact {
            c.finish(&mut self.rows);
        }
        let written = write_rows(&mut shared, &mut self.rows, &mut self.kinds)
            .map_err(|e| e.0)
            .and_then(|()| shared.flush());
        if let Err(e) = written {
            tracing::error!(target: "defai::journal", error = %e, "journal: records held back not written");
        }
    }
}

/// Appends `rows` in order (draining it), pushing each one's kind onto `kinds` for the
/// failpoints the caller hits once the lock is released.
///
/// # Errors
/// The first append that fails; the rows after it are dropped (the journal refuses every later
/// write anyway).
fn write_rows(
    shared: &mut Shared,
    rows: &mut Vec<Row>,
    kinds: &mut Vec<&'static str>,
) -> Result<(), AuditError> {
    for r in rows.drain(..) {
        let kind = r.kind;
        shared.append(r).map_err(AuditError)?;
        kinds.push(kind);
    }
    Ok(())
}

impl JournalObserver {
    /// The journal row of an audit event, or `None` for what the journal does not keep (marks;
    /// venue events when the venue journals its own). Remembers the current intent and its
    /// time for the records filed under it.
    fn row_of(&self, shared: &mut Shared, event: &AuditEvent<'_>) -> Option<Row> {
        let a = &shared.addresses;
        Some(match event {
            AuditEvent::Intent { ts, id, intent } => {
                shared.verdict_tokens = body::verdict_tokens(intent);
                intent_row(*ts, id, intent)
            }
            AuditEvent::Verdict { ts, id, verdict } => {
                verdict_row(*ts, id, verdict, shared.verdict_tokens.clone())
            }
            AuditEvent::Market { ts, event } => row(*ts, "market", market_body(event)),
            AuditEvent::Run { ts, description } => row(*ts, "run", run_body(description)),
            AuditEvent::Decision { ts, decision } => row(*ts, "decision", decision_body(decision)),
            AuditEvent::Venue { .. } if self.venue_recorded => return None,
            AuditEvent::Venue { ts, event } => Row {
                intent: event
                    .intent_id
                    .clone()
                    .map(Filed::Text)
                    .or_else(|| shared.intent.clone()),
                tx: event.tx_hash.clone(),
                ..row(*ts, "tx", venue_body(event))
            },
            AuditEvent::Fill(f) => typed(f.ts, "fill", Body::Fill(Box::new((*f).clone())))
                .under(&f.id)
                .tx(f.tx_hash.clone()),
            AuditEvent::BetFill(b) => row(shared.ts, "bet_fill", bet_fill_body(b))
                .under(&b.id)
                .tx(b.tx_hash.clone()),
            AuditEvent::Redeemed {
                ts,
                id,
                collateral,
                amount,
            } => {
                let f = serde_json::json!({"collateral": a.amount(collateral, *amount)});
                row(*ts, "redeem_fill", body::body("redeem_fill", f)).under(id)
            }
            AuditEvent::GasCharged {
                ts,
                id,
                label,
                token,
                amount,
                tx_hash,
            } => {
                let f = serde_json::json!({"label": label, "amount": a.amount(token, *amount)});
                row(*ts, "gas", body::body("gas", f))
                    .under(id)
                    .tx(tx_hash.map(str::to_string))
            }
            AuditEvent::TxDropped {
                ts,
                id,
                label,
                nonce,
            } => {
                let f = serde_json::json!({"label": label, "nonce": nonce});
                row(*ts, "tx_dropped", body::body("tx_dropped", f)).under(id)
            }
            AuditEvent::ExecutionFailed { ts, id, error } => {
                let b = body::text("execution_failed", "error", &error.to_string());
                row(*ts, "execution_failed", b).under(id)
            }
            AuditEvent::KillSwitch { ts, change } => {
                row(*ts, "kill_switch", body::kill_switch(change))
            }
            AuditEvent::Reconciled {
                ts,
                token,
                booked,
                actual,
            } => {
                let f = serde_json::json!({"token": a.token(token), "booked": a.amount(token, *booked), "actual": a.amount(token, *actual)});
                row(*ts, "reconciled", body::body("reconciled", f))
            }
            AuditEvent::Portfolio { ts, balances } => book_row(*ts, balances),
            AuditEvent::Restart {
                ts,
                settled,
                problems,
            } => row(*ts, "restart", restart_body(a, settled, problems)),
            AuditEvent::BadEvent { ts, reason } => {
                row(*ts, "bad_event", body::text("bad_event", "reason", reason))
            }
            AuditEvent::StrategyFault { ts, error } => {
                let b = body::text("strategy_fault", "error", &error.to_string());
                row(*ts, "strategy_fault", b)
            }
            // Marks are per bar: the equity curve lives in the run's outputs, not the journal.
            AuditEvent::Mark { .. } => return None,
            AuditEvent::BundleClosed { ts, id, outcome } => {
                let f = serde_json::json!({ "outcome": outcome });
                row(*ts, "bundle_closed", body::body("bundle_closed", f)).under(id)
            }
        })
    }
}

/// A journal record before it is chained.
#[derive(Debug)]
struct Row {
    /// Event time, unix seconds.
    ts: i64,
    /// The record's kind (`intent`, `verdict`, `fill`, ...).
    kind: &'static str,
    /// The intent it is filed under.
    intent: Option<Filed>,
    /// The transaction it is about.
    tx: Option<String>,
    /// The body, or what it is made from.
    body: Body,
}

impl Row {
    /// Turns the intent id and the body into their text now, with `a` (as the writer thread
    /// does when it writes the record: the record's bytes are the same either way).
    fn render(&mut self, a: &Addresses) {
        if let Some(Filed::Id(id)) = &self.intent {
            self.intent = Some(Filed::Text(id.text()));
        }
        if !matches!(self.body, Body::Text(_)) {
            self.body = Body::Text(self.body.render(a).into_owned());
        }
    }
}

/// The intent a record is filed under: an id, turned into its text (`strategy:ts:seq`) only
/// when the record is written (on a replay's writer thread, or when the loop hands a batch to a
/// thread that is behind: [`Row::render`]), or that text.
#[derive(Debug, Clone)]
enum Filed {
    Id(agent_core::IntentId),
    Text(String),
}

impl Filed {
    /// The id's text.
    fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Filed::Id(id) => id.text().into(),
            Filed::Text(t) => t.as_str().into(),
        }
    }
}

/// What a record's body is made from: JSON text already, or the values the records a replay
/// writes most are formatted from, formatted when the record is written (on a replay's writer
/// thread, off the agent's hot path, unless the thread is behind: [`Row::render`]).
#[derive(Debug)]
enum Body {
    /// The body's JSON text.
    Text(String),
    /// An intent and its id ([`body::intent`]).
    Intent(agent_core::IntentId, agent_core::Intent),
    /// A verdict and the sell and buy tokens its amounts are in ([`body::verdict`]).
    Verdict(
        agent_core::Verdict,
        Option<(agent_core::Token, agent_core::Token)>,
    ),
    /// A swap fill ([`body::fill`]).
    Fill(Box<agent_core::Fill>),
    /// A book ([`body::portfolio`]).
    Book(Vec<(agent_core::Token, U256)>),
    /// A compact journal's swap carried out at one event time ([`body::trade`]).
    Trade(Box<Trade>),
}

/// An intent approved (or resized) and filled at one event time: what a compact journal's
/// `trade` record holds.
#[derive(Debug)]
pub(super) struct Trade {
    /// The intent's id (the record is filed under it).
    pub(super) id: agent_core::IntentId,
    pub(super) intent: agent_core::Intent,
    /// Its amounts are in the intent's sell and buy tokens.
    pub(super) verdict: agent_core::Verdict,
    pub(super) fill: agent_core::Fill,
}

impl Body {
    /// The body's JSON text, token amounts naming their contracts from `a`.
    fn render(&self, a: &Addresses) -> std::borrow::Cow<'_, str> {
        match self {
            Body::Text(t) => t.as_str().into(),
            Body::Intent(id, intent) => body::intent(a, id, intent).into(),
            Body::Verdict(v, tokens) => body::verdict(a, v, tokens.as_ref()).into(),
            Body::Fill(f) => body::fill(a, f).into(),
            Body::Book(b) => body::portfolio(a, b).into(),
            Body::Trade(t) => body::trade(a, t).into(),
        }
    }
}

/// A record of `kind` at `ts` with `body`, filed under no intent and no transaction.
fn row(ts: i64, kind: &'static str, body: String) -> Row {
    typed(ts, kind, Body::Text(body))
}

/// A record of `kind` at `ts` whose body is made from `body`.
fn typed(ts: i64, kind: &'static str, body: Body) -> Row {
    Row {
        ts,
        kind,
        intent: None,
        tx: None,
        body,
    }
}

impl Row {
    /// Filed under the intent `id`.
    fn under(mut self, id: &agent_core::IntentId) -> Self {
        self.intent = Some(Filed::Id(id.clone()));
        self
    }

    /// About the transaction `hash`, if any.
    fn tx(mut self, hash: Option<String>) -> Self {
        self.tx = hash;
        self
    }
}

/// The `intent` record of intent `id`, at event time `ts`.
fn intent_row(ts: i64, id: &agent_core::IntentId, intent: &agent_core::Intent) -> Row {
    typed(ts, "intent", Body::Intent(id.clone(), intent.clone())).under(id)
}

/// The `trade` record of `trade`, at its fill's time, filed under its intent and the fill's
/// transaction.
fn trade_row(trade: Trade) -> Row {
    let (ts, tx) = (trade.fill.ts, trade.fill.tx_hash.clone());
    let id = trade.id.clone();
    typed(ts, "trade", Body::Trade(Box::new(trade)))
        .under(&id)
        .tx(tx)
}

/// The `verdict` record on intent `id`, at event time `ts`; its amounts in `tokens` (the
/// intent's sell and buy tokens) when known.
fn verdict_row(
    ts: i64,
    id: &agent_core::IntentId,
    verdict: &agent_core::Verdict,
    tokens: Option<(agent_core::Token, agent_core::Token)>,
) -> Row {
    typed(ts, "verdict", Body::Verdict(verdict.clone(), tokens)).under(id)
}

/// A `portfolio` record of `balances` at `ts`.
fn book_row(ts: i64, balances: &[(agent_core::Token, U256)]) -> Row {
    typed(ts, "portfolio", Body::Book(balances.to_vec()))
}

/// A run's body: the runtime's description (a JSON object) with the schema and kind added;
/// a description that is not an object is kept whole under `description`.
fn run_body(description: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(description) {
        Ok(v @ serde_json::Value::Object(_)) => body::body("run", v),
        _ => body::text("run", "description", description),
    }
}

/// A model decision's body: model and feature hashes, the output and the action taken.
fn decision_body(d: &agent_core::Decision) -> String {
    body::body(
        "decision",
        serde_json::json!({"model": d.model, "features": d.features, "output": d.output, "action": d.action}),
    )
}

/// A venue step's body: the step, what the transaction is for, its nonce and what happened.
fn venue_body(event: &VenueEvent) -> String {
    body::body(
        "tx",
        serde_json::json!({"step": event.step, "label": event.label, "nonce": event.nonce, "detail": event.detail}),
    )
}

/// A bet fill's body: market, outcome, the investment (collateral units), the outcome tokens
/// bought (their units: the collateral's decimals) and the gas burned (wei).
fn bet_fill_body(b: &agent_core::BetFill) -> String {
    body::body(
        "bet_fill",
        serde_json::json!({
            "market": b.market, "outcome": b.outcome,
            "investment": Addresses::bare(b.investment), "tokens": Addresses::bare(b.tokens),
            "gas_native_wei": b.gas_native.to_string(),
        }),
    )
}

/// A market event's body: the close, the pool's block, reserves (units of the pair's base and
/// quote tokens) and gas price (wei), and every pair of a multi-market event (a restart and an
/// auditor see the prices each decision was made on).
fn market_body(event: &agent_core::MarketEvent) -> String {
    let bar = event.as_bar();
    let mut f = serde_json::json!({"close": bar.map(|b| b.close)});
    if let Some(p) = event.pool() {
        f["block"] = p.block.into();
        f["reserve_base"] = p.reserve_base.to_string().into();
        f["reserve_quote"] = p.reserve_quote.to_string().into();
        f["gas_price_wei"] = p.gas_price_wei.to_string().into();
    }
    if let Some(set) = event.markets() {
        f["markets"] = set
            .markets
            .iter()
            .map(|m| {
                let mut e = serde_json::json!({
                    "pair": format!("{}/{}", m.pair.base, m.pair.quote),
                    "close": m.bar.close,
                });
                if let Some(p) = &m.pool {
                    e["block"] = p.block.into();
                    e["reserve_base"] = p.reserve_base.to_string().into();
                    e["reserve_quote"] = p.reserve_quote.to_string().into();
                }
                e
            })
            .collect();
    }
    body::body("market", f)
}

/// A restart's body: each settled transaction (nonce, outcome, hash, block, success, and the
/// amounts it credited and debited, so a later restart still knows) and the problems found.
fn restart_body(a: &Addresses, settled: &[SettledTx], problems: &[String]) -> String {
    let settled: Vec<_> = settled
        .iter()
        .map(|s| {
            let (outcome, hash, block, success) = match &s.outcome {
                Settlement::Mined { hash, block, success } => {
                    ("mined", Some(hash.as_str()), Some(block), Some(success))
                }
                Settlement::Dropped => ("dropped", None, None, None),
                Settlement::Pending { hash } => ("pending", Some(hash.as_str()), None, None),
            };
            serde_json::json!({"nonce": s.nonce, "outcome": outcome, "hash": hash, "block": block, "success": success, "credits": body::moves(a, &s.credits), "debits": body::moves(a, &s.debits)})
        })
        .collect();
    body::body(
        "restart",
        serde_json::json!({ "settled": settled, "problems": problems }),
    )
}

/// What a restart record's settled entry moved (`credits` and `debits`: amount objects, or
/// `[symbol, amount]` pairs in schema 1): `(symbol, in, out)` per token, gas included. `None`
/// when the entry has no such lists (a record from before they were kept).
fn receipt_moves(s: &serde_json::Value) -> Option<Vec<(String, U256, U256)>> {
    let side = |k: &str| -> Option<Vec<(String, U256)>> {
        s[k].as_array()?
            .iter()
            .map(|e| match e {
                serde_json::Value::Array(_) => {
                    Some((e[0].as_str()?.to_string(), body::units_of(&e[1])?))
                }
                _ => Some((body::symbol_of(e)?, body::units_of(e)?)),
            })
            .collect()
    };
    let credits = side("credits")?
        .into_iter()
        .map(|(t, a)| (t, a, U256::ZERO));
    let debits = side("debits")?.into_iter().map(|(t, a)| (t, U256::ZERO, a));
    Some(credits.chain(debits).collect())
}

impl Journal {
    /// What a restart starts from: the last book, the transactions signed but not known to have
    /// finished (and reflected in that book), and every intent id already handled.
    ///
    /// # Errors
    ///
    /// [`JournalError::Broken`] naming the first record a restart needs that does not parse
    /// (a body that is not the JSON its kind writes, an amount that is not an integer);
    /// [`JournalError::Db`] when the records cannot be read. The chain itself is not verified
    /// here: see [`Journal::verify`].
    pub fn resume(&self) -> Result<Resume, JournalError> {
        let mut scan = ResumeScan::default();
        for r in self.rows(
            "WHERE kind IN ('intent', 'tx', 'portfolio', 'restart', 'bet_fill', 'fill', 'trade', 'bundle_closed') ORDER BY seq",
            [],
        )? {
            scan.read(&r).map_err(|what| JournalError::Broken {
                path: self.path.clone(),
                seq: r.seq,
                problem: format!("is not a valid {} record: {what}", r.kind),
            })?;
        }
        Ok(scan.finish())
    }
}

/// A transaction signed but not known to have finished, as the journal has it so far.
struct OpenTx {
    /// The intent it was sent for.
    intent: Option<String>,
    /// What it does (`swap`, `approve`, ...).
    label: String,
    /// Every hash it was signed under (a replacement adds one).
    hashes: Vec<String>,
    /// The record that saw one of its hashes mined, until a later book reflects it.
    mined_seq: Option<i64>,
}

/// What [`Journal::resume`] gathers while reading the records in order.
#[derive(Default)]
struct ResumeScan {
    /// Open transactions by nonce.
    open: BTreeMap<u64, OpenTx>,
    /// The last book and the handled intents, filled as records are read.
    resume: Resume,
    /// Bets by intent id: market and investment (collateral units).
    bets: BTreeMap<String, (String, U256)>,
    /// Intents that may have reached the chain.
    sent: std::collections::BTreeSet<String>,
    /// Bundles by id: their legs and unwinds as sent.
    bundles: BTreeMap<String, Vec<BundleMember>>,
    /// Bundles closed for good.
    closed: std::collections::BTreeSet<String>,
}

/// A record's body as JSON, or why it is not.
fn parse_body<T: serde::de::DeserializeOwned>(r: &Record) -> Result<T, String> {
    serde_json::from_str(&r.body).map_err(|e| e.to_string())
}

impl ResumeScan {
    /// Takes one record into account; `Err` says what is wrong with it.
    fn read(&mut self, r: &Record) -> Result<(), String> {
        match r.kind.as_str() {
            "bundle_closed" => {
                if let Some(id) = &r.intent_id {
                    self.closed.insert(id.clone());
                }
                Ok(())
            }
            "fill" => self.read_fill(r),
            "intent" => self.read_intent(r),
            "trade" => {
                // A compact journal's intent, verdict and fill in one record: read as the
                // intent's and the fill's records.
                let body: serde_json::Value = parse_body(r)?;
                for part in ["intent", "fill"] {
                    if !body[part].is_object() {
                        return Err(format!("a trade without its {part}"));
                    }
                    self.read(&Record {
                        kind: part.to_string(),
                        body: body[part].to_string(),
                        ..r.clone()
                    })?;
                }
                Ok(())
            }
            "bet_fill" => {
                if let Some(id) = &r.intent_id {
                    self.sent.insert(id.clone());
                }
                Ok(())
            }
            "portfolio" => self.read_portfolio(r),
            "restart" => self.read_restart(r),
            _ => self.read_tx(r),
        }
    }

    /// A bundle member's fill: what it moved.
    fn read_fill(&mut self, r: &Record) -> Result<(), String> {
        let Some(id) = &r.intent_id else {
            return Ok(());
        };
        let Some(bundle) = agent_core::IntentId::bundle_of(id) else {
            return Ok(());
        };
        let body: serde_json::Value = parse_body(r)?;
        let field = |k: &str| body::symbol_of(&body[k]);
        let amount =
            |k: &str| body::units_of(&body[k]).ok_or_else(|| format!("{k} is not an amount"));
        // Schema 3 names the tokens in the amounts only; schemas 1 and 2 in `sell` and `buy`.
        let sell = field("sell").or_else(|| field("amount_in"));
        let buy = field("buy").or_else(|| field("amount_out"));
        let (Some(sell), Some(buy)) = (sell, buy) else {
            return Err("no sell or buy token".into());
        };
        let moved = vec![
            (buy, amount("amount_out")?, U256::ZERO),
            (sell, U256::ZERO, amount("amount_in")?),
        ];
        if let Some(m) = self
            .bundles
            .get_mut(&bundle.to_string())
            .and_then(|ms| ms.iter_mut().find(|m| &m.id == id))
        {
            m.moved = moved;
        }
        Ok(())
    }

    /// An intent: handled; a bundle member as sent; a bet's market and investment.
    fn read_intent(&mut self, r: &Record) -> Result<(), String> {
        let Some(id) = &r.intent_id else {
            return Ok(());
        };
        self.resume.handled.insert(id.clone());
        if let Some(bundle) = agent_core::IntentId::bundle_of(id) {
            let body: serde_json::Value = parse_body(r)?;
            // A leg or an unwind as sent, in the format that closes bundles (`venue` key): a
            // journal from before it has no `bundle_closed` records, and its bundles are not
            // taken for open ones.
            if body.get("venue").is_some() {
                self.bundles
                    .entry(bundle.to_string())
                    .or_default()
                    .push(BundleMember {
                        id: id.clone(),
                        venue: body["venue"].as_str().map(str::to_string),
                        moved: Vec::new(),
                        pending: false,
                    });
            }
            return Ok(());
        }
        if r.body.starts_with('{') {
            let body: serde_json::Value = parse_body(r)?;
            if let Some(m) = body["market"].as_str() {
                let inv = body::units_of(&body["investment"])
                    .ok_or_else(|| "investment is not an amount".to_string())?;
                self.bets.insert(id.clone(), (m.to_string(), inv));
            }
        }
        Ok(())
    }

    /// A book read back from the venue: the latest snapshot, reflecting what was mined before.
    fn read_portfolio(&mut self, r: &Record) -> Result<(), String> {
        let body: serde_json::Value = parse_body(r)?;
        let mut snap = Vec::new();
        match (&body["balances"], &body) {
            // Schemas 2 and 3: a list of amounts.
            (serde_json::Value::Array(list), _) => {
                for a in list {
                    let sym = body::symbol_of(&a["symbol"]).ok_or("a balance names no token")?;
                    let units = body::units_of(a).ok_or_else(|| format!("{sym}: not an amount"))?;
                    snap.push((sym, units));
                }
            }
            // Schema 1: symbol to units.
            (_, serde_json::Value::Object(map)) => {
                for (sym, amount) in map {
                    let a =
                        body::units_of(amount).ok_or_else(|| format!("{sym}: not an amount"))?;
                    snap.push((sym.clone(), a));
                }
            }
            _ => return Err("not a book".into()),
        }
        self.resume.snapshot = Some(snap);
        // Mined before this book was read back from the venue: reflected in it.
        self.open.retain(|_, o| o.mined_seq.is_none());
        Ok(())
    }

    /// A restart's settlement: what was mined or dropped is no longer open.
    fn read_restart(&mut self, r: &Record) -> Result<(), String> {
        let body: serde_json::Value = parse_body(r)?;
        // Settled for good: mined or dropped. One still pending stays open, so every later
        // restart asks about it again (and latches reduce_only).
        for s in body["settled"].as_array().into_iter().flatten() {
            let Some(n) = s["nonce"].as_u64() else {
                continue;
            };
            // A bundle's leg mined while the agent was stopped: its effect, as the restart
            // read it from the receipt, is the leg's fill.
            if s["outcome"] == "mined"
                && s["success"] == true
                && let Some(intent) = self.open.get(&n).and_then(|o| o.intent.clone())
                && let Some(bundle) = agent_core::IntentId::bundle_of(&intent)
                && let Some(m) = self
                    .bundles
                    .get_mut(&bundle.to_string())
                    .and_then(|ms| ms.iter_mut().find(|m| m.id == intent))
                && m.moved.is_empty()
                && let Some(moved) = receipt_moves(s)
            {
                m.moved = moved;
            }
            if s["outcome"] != "pending" {
                self.open.remove(&n);
            }
        }
        Ok(())
    }

    /// A transaction step: signed (open), replaced, refused, dropped or mined.
    fn read_tx(&mut self, r: &Record) -> Result<(), String> {
        let body: serde_json::Value = parse_body(r)?;
        let step = body["step"].as_str().unwrap_or("");
        let label = body["label"].as_str().unwrap_or("").to_string();
        if step == "signed"
            && let Some(id) = &r.intent_id
        {
            self.sent.insert(id.clone());
        }
        let (Some(hash), nonce) = (r.tx_hash.clone(), body["nonce"].as_u64()) else {
            return Ok(());
        };
        match (step, nonce) {
            ("signed", Some(n)) => {
                self.open.insert(
                    n,
                    OpenTx {
                        intent: r.intent_id.clone(),
                        label,
                        hashes: vec![hash],
                        mined_seq: None,
                    },
                );
            }
            ("replaced", Some(n)) => {
                if let Some(o) = self.open.get_mut(&n) {
                    o.hashes.push(hash);
                }
            }
            // Signed and on record, but the node never took it.
            ("replace_refused", Some(n)) => {
                if let Some(o) = self.open.get_mut(&n) {
                    o.hashes.retain(|h| h != &hash);
                }
            }
            // Given up on, and the chain settled it as never to be mined.
            ("dropped", Some(n)) => {
                self.open.remove(&n);
            }
            ("mined", _) => {
                if let Some(o) = self.open.values_mut().find(|o| o.hashes.contains(&hash)) {
                    o.mined_seq = Some(r.seq);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The resume point: exposure per market of the bets that may have been sent, the open
    /// bundles (a member still pending when its transaction is open) and the unsettled
    /// transactions.
    fn finish(self) -> Resume {
        let ResumeScan {
            open,
            mut resume,
            bets,
            sent,
            mut bundles,
            closed,
        } = self;
        for id in &sent {
            if let Some((market, inv)) = bets.get(id) {
                let e = resume.bet_exposure.entry(market.clone()).or_default();
                *e = e.saturating_add(*inv);
            }
        }
        // A member whose transaction is still open (signed, not known to have finished):
        // the restart's settlement says what became of it.
        for members in bundles.values_mut() {
            for m in members.iter_mut() {
                m.pending = m.moved.is_empty()
                    && open
                        .values()
                        .any(|o| o.intent.as_deref() == Some(m.id.as_str()));
            }
        }
        resume.open_bundles = bundles
            .into_iter()
            .filter(|(id, _)| !closed.contains(id))
            .collect();
        resume.unsettled = open
            .into_iter()
            .map(|(nonce, o)| UnsettledTx {
                intent_id: o.intent,
                label: o.label,
                nonce,
                hashes: o.hashes,
            })
            .collect();
        resume
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

    fn tx(j: &mut Journal, intent: &str, step: &str, hash: &str, nonce: Option<u64>) {
        let body = serde_json::json!({"step": step, "label": "swap", "nonce": nonce, "detail": ""});
        j.append(1, "tx", Some(intent), Some(hash), &body.to_string())
            .unwrap();
    }

    /// A leg's intent as the agent journals it (the format that closes bundles).
    fn leg(j: &mut Journal, id: &str, venue: &str) {
        let body = serde_json::json!({"intent": "Swap", "sell": "dUSD", "buy": "WETH", "amount_in": "100", "venue": venue});
        j.append(1, "intent", Some(id), None, &body.to_string())
            .unwrap();
    }

    #[test]
    fn resume_finds_the_bundles_left_open_with_what_each_leg_moved() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        // Bundle 1: both legs filled, closed.
        leg(&mut j, "arb#0:1:0", "dex1");
        leg(&mut j, "arb#1:1:0", "dex2");
        j.append(
            1,
            "bundle_closed",
            Some("arb:1:0"),
            None,
            r#"{"outcome":"filled"}"#,
        )
        .unwrap();
        // Bundle 2: the first leg filled, then the stop.
        leg(&mut j, "arb#0:2:0", "dex1");
        let fill = r#"{"sell":"dUSD","buy":"WETH","amount_in":"100","amount_out":"7","fee":"0","gas_native":"0"}"#;
        j.append(2, "fill", Some("arb#0:2:0"), Some("0xf"), fill)
            .unwrap();
        // Bundle 3: the first leg signed, the stop; an earlier restart found it mined.
        leg(&mut j, "arb#0:3:0", "dex2");
        tx(&mut j, "arb#0:3:0", "signed", "0xd1", Some(4));
        let restart = serde_json::json!({"settled": [{"nonce": 4, "outcome": "mined", "success": true,
            "credits": [["WETH", "9"]], "debits": [["dUSD", "120"], ["ETH", "30"]]}], "problems": []});
        j.append(3, "restart", None, None, &restart.to_string())
            .unwrap();
        // Bundle 4: the first leg signed and still open.
        leg(&mut j, "arb#0:4:0", "dex1");
        tx(&mut j, "arb#0:4:0", "signed", "0xe1", Some(5));
        // Bundle 5: journaled before legs carried their venue (no `bundle_closed` then): not
        // taken for an open one.
        j.append(5, "intent", Some("arb#0:5:0"), None, "\"Swap(..)\"")
            .unwrap();

        let open = j.resume().unwrap().open_bundles;
        assert_eq!(
            open.keys().collect::<Vec<_>>(),
            ["arb:2:0", "arb:3:0", "arb:4:0"]
        );
        let m = &open["arb:2:0"][0];
        assert_eq!(m.venue.as_deref(), Some("dex1"));
        assert!(!m.pending);
        assert_eq!(
            m.moved,
            vec![
                ("WETH".into(), U256::from(7u8), U256::ZERO),
                ("dUSD".into(), U256::ZERO, U256::from(100u8)),
            ]
        );
        let m = &open["arb:3:0"][0];
        assert!(!m.pending, "settled by the earlier restart");
        assert!(
            m.moved
                .contains(&("WETH".into(), U256::from(9u8), U256::ZERO))
        );
        assert!(
            m.moved
                .contains(&("ETH".into(), U256::ZERO, U256::from(30u8)))
        );
        assert!(open["arb:4:0"][0].pending, "its transaction is open");
    }

    #[test]
    fn resume_reads_a_trade_record_as_its_intent_and_its_fill() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        let pair = agent_core::Pair::eth_usdc();
        let id = agent_core::IntentId::new("s", 1, 0);
        let intent = agent_core::Intent::swap(&pair.quote, &pair.base, U256::from(100u8));
        let fill = agent_core::Fill {
            id: id.clone(),
            ts: 1,
            sell: pair.quote.clone(),
            buy: pair.base.clone(),
            amount_in: U256::from(100u8),
            amount_out: U256::from(7u8),
            fee: U256::from(1u8),
            fee_quote: U256::from(1u8),
            gas_native: U256::ZERO,
            gas_cost: (pair.quote.clone(), U256::ZERO),
            gas_quote: U256::ZERO,
            tx_hash: None,
        };
        let trade = Trade {
            id: id.clone(),
            intent,
            verdict: agent_core::Verdict::Approve {
                min_amount_out: U256::from(5u8),
            },
            fill,
        };
        let text = body::trade(&Addresses::default(), &trade);
        j.append(1, "trade", Some("s:1:0"), None, &text).unwrap();
        let r = j.resume().unwrap();
        assert!(r.handled.contains("s:1:0"), "{:?}", r.handled);
        assert!(r.unsettled.is_empty());
        // A trade record whose body is not JSON, or lacks a part, is an error naming it, not an
        // intent skipped.
        for (seq, bad) in [(2, "not json"), (3, r#"{"kind":"trade","v":3}"#)] {
            let dir = tempfile::tempdir().unwrap();
            let mut j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
            j.append(seq, "trade", Some("s:2:0"), None, bad).unwrap();
            let err = j.resume().unwrap_err().to_string();
            assert!(err.contains("trade"), "{err}");
        }
    }

    #[test]
    fn resume_names_the_last_book_the_handled_intents_and_only_the_transactions_it_does_not_reflect()
     {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        assert!(j.resume().unwrap().snapshot.is_none(), "a first start");
        j.append(0, "portfolio", None, None, r#"{"ETH":"100","WETH":"5"}"#)
            .unwrap();
        // Intent a: signed, sent, mined, then the book was read back: settled.
        j.append(1, "intent", Some("s:1:0"), None, "\"swap\"")
            .unwrap();
        tx(&mut j, "s:1:0", "signed", "0xa1", Some(7));
        tx(&mut j, "s:1:0", "sent", "0xa1", None);
        tx(&mut j, "s:1:0", "mined", "0xa1", None);
        j.append(1, "portfolio", None, None, r#"{"ETH":"90","WETH":"6"}"#)
            .unwrap();
        // Intent b: signed and replaced, then the crash: open, with both hashes.
        j.append(2, "intent", Some("s:2:0"), None, "\"swap\"")
            .unwrap();
        tx(&mut j, "s:2:0", "signed", "0xb1", Some(8));
        tx(&mut j, "s:2:0", "replaced", "0xb2", Some(8));
        // Intent c: mined after the last book: open too (its effect is not in the book).
        j.append(3, "intent", Some("s:3:0"), None, "\"swap\"")
            .unwrap();
        tx(&mut j, "s:3:0", "signed", "0xc1", Some(9));
        tx(&mut j, "s:3:0", "mined", "0xc1", None);

        let r = j.resume().unwrap();
        assert_eq!(
            r.snapshot,
            Some(vec![
                ("ETH".to_string(), U256::from(90u64)),
                ("WETH".to_string(), U256::from(6u64))
            ])
        );
        assert_eq!(r.handled.len(), 3);
        assert!(r.handled.contains("s:2:0"));
        let open: Vec<(u64, Vec<String>)> = r
            .unsettled
            .iter()
            .map(|u| (u.nonce, u.hashes.clone()))
            .collect();
        assert_eq!(
            open,
            vec![
                (8, vec!["0xb1".to_string(), "0xb2".to_string()]),
                (9, vec!["0xc1".to_string()])
            ]
        );
        assert_eq!(r.unsettled[0].intent_id.as_deref(), Some("s:2:0"));

        // A restart that found nonce 8 still pending keeps it open (the next restart asks
        // again); one that settled nonce 8 and 9 closes them.
        j.append(
            4,
            "restart",
            None,
            None,
            r#"{"settled":[{"nonce":8,"outcome":"pending","hash":"0xb2"},{"nonce":9,"outcome":"mined"}],"problems":[]}"#,
        )
        .unwrap();
        let still: Vec<u64> = j
            .resume()
            .unwrap()
            .unsettled
            .iter()
            .map(|u| u.nonce)
            .collect();
        assert_eq!(
            still,
            [8],
            "a pending transaction stays open across restarts"
        );
        j.append(
            4,
            "restart",
            None,
            None,
            r#"{"settled":[{"nonce":8,"outcome":"dropped"},{"nonce":9,"outcome":"mined"}],"problems":[]}"#,
        )
        .unwrap();
        assert!(j.resume().unwrap().unsettled.is_empty());
        // A transaction the venue gave up on and later saw dropped closes too.
        j.append(
            4,
            "tx",
            Some("s:3:0"),
            Some("0xd1"),
            r#"{"step":"signed","label":"swap","nonce":10,"detail":""}"#,
        )
        .unwrap();
        assert_eq!(j.resume().unwrap().unsettled.len(), 1);
        j.append(
            4,
            "tx",
            Some("s:3:0"),
            Some("0xd1"),
            r#"{"step":"dropped","label":"swap","nonce":10,"detail":""}"#,
        )
        .unwrap();
        assert!(j.resume().unwrap().unsettled.is_empty());

        // A corrupt book is an error naming the record, never an empty book.
        j.append(5, "portfolio", None, None, r#"{"ETH":"ninety"}"#)
            .unwrap();
        let err = j.resume().unwrap_err().to_string();
        assert!(
            err.contains("record 17") && err.contains("portfolio"),
            "{err}"
        );
    }

    /// The same restart story as the schema-1 tests above, written through the observer
    /// (schema 3): the book, a bet's exposure, a bundle leg's fill and a restart's receipt moves
    /// read back alike, and every body names its kind and schema.
    #[test]
    fn a_structured_journal_resumes_like_a_legacy_one() {
        use agent_core::{Bet, Fill, Intent, IntentId, Swap, Token};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        let (usd, eth) = (Token::new("dUSD", 6), Token::new("WETH", 18));
        let mut obs = JournalObserver::new(Journal::open(&path).unwrap())
            .with_addresses(Addresses([("dUSD".to_string(), "0xd0".to_string())].into()));
        let mut emit = |e: AuditEvent<'_>| obs.on_audit(&e).unwrap();
        let book = [
            (usd.clone(), U256::from(900u64)),
            (eth.clone(), U256::from(3u64)),
        ];
        emit(AuditEvent::Portfolio {
            ts: 1,
            balances: &book,
        });
        // A bet, signed: its investment counts towards the market's exposure.
        let bet_id = IntentId::new("kelly", 2, 0);
        let bet = Intent::Bet(Bet {
            market: "0xm".into(),
            outcome: 1,
            investment: U256::from(40u64),
            collateral: usd.clone(),
        });
        emit(AuditEvent::Intent {
            ts: 2,
            id: &bet_id,
            intent: &bet,
        });
        let signed = |nonce: u64, hash: &str, id: &IntentId| VenueEvent {
            step: "signed",
            label: "swap".into(),
            tx_hash: Some(hash.into()),
            nonce: Some(nonce),
            detail: String::new(),
            intent_id: Some(id.to_string()),
        };
        emit(AuditEvent::Venue {
            ts: 2,
            event: &signed(4, "0xb1", &bet_id),
        });
        // Leg 0 of a bundle filled; leg 1 signed, then the crash.
        let bundle = IntentId::new("arb", 3, 0);
        let (leg0, leg1) = (bundle.leg(0), bundle.leg(1));
        let sell = Intent::Swap(Swap::new(&usd, &eth, U256::from(100u64)).on("dex"));
        emit(AuditEvent::Intent {
            ts: 3,
            id: &leg0,
            intent: &sell,
        });
        let fill = Fill {
            id: leg0.clone(),
            ts: 3,
            sell: usd.clone(),
            buy: eth.clone(),
            amount_in: U256::from(100u64),
            amount_out: U256::from(30u64),
            fee: U256::from(1u64),
            fee_quote: U256::from(1u64),
            gas_native: U256::ZERO,
            gas_cost: (eth.clone(), U256::ZERO),
            gas_quote: U256::ZERO,
            tx_hash: None,
        };
        emit(AuditEvent::Fill(&fill));
        let back = Intent::Swap(Swap::new(&eth, &usd, U256::from(30u64)).on("dex2"));
        emit(AuditEvent::Intent {
            ts: 3,
            id: &leg1,
            intent: &back,
        });
        emit(AuditEvent::Venue {
            ts: 3,
            event: &signed(5, "0xc1", &leg1),
        });
        obs.finish().unwrap();
        drop(obs);

        let j = Journal::open(&path).unwrap();
        let v = j.verify().unwrap();
        assert_eq!(v.legacy, 0);
        for r in j.records().unwrap() {
            let b: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(
                (b["v"].as_u64(), b["kind"].as_str()),
                (Some(SCHEMA), Some(r.kind.as_str()))
            );
        }
        let r = j.resume().unwrap();
        assert_eq!(
            r.snapshot,
            Some(vec![
                ("dUSD".into(), U256::from(900u64)),
                ("WETH".into(), U256::from(3u64))
            ])
        );
        assert_eq!(r.bet_exposure["0xm"], U256::from(40u64));
        let members = &r.open_bundles["arb:3:0"];
        assert_eq!(
            members[0].moved,
            vec![
                ("WETH".to_string(), U256::from(30u64), U256::ZERO),
                ("dUSD".to_string(), U256::ZERO, U256::from(100u64)),
            ]
        );
        assert_eq!(members[0].venue.as_deref(), Some("dex"));
        assert!(members[1].pending, "leg 1's transaction is open");
        assert_eq!(r.unsettled.len(), 2);

        // The restart finds leg 1 mined: what its receipt moved is the leg's fill.
        let mut obs = JournalObserver::new(Journal::open(&path).unwrap());
        let settled = [SettledTx {
            nonce: 5,
            outcome: Settlement::Mined {
                hash: "0xc1".into(),
                block: 9,
                success: true,
            },
            credits: vec![(usd.clone(), U256::from(99u64))],
            debits: vec![(eth.clone(), U256::from(30u64))],
        }];
        obs.on_audit(&AuditEvent::Restart {
            ts: 4,
            settled: &settled,
            problems: &[],
        })
        .unwrap();
        drop(obs);
        let r = Journal::open(&path).unwrap().resume().unwrap();
        assert_eq!(
            r.open_bundles["arb:3:0"][1].moved,
            vec![
                ("dUSD".to_string(), U256::from(99u64), U256::ZERO),
                ("WETH".to_string(), U256::ZERO, U256::from(30u64)),
            ]
        );
        assert_eq!(
            r.unsettled.len(),
            1,
            "only the bet's transaction stays open"
        );
        // Off-chain tokens have no address; the chain's named one has.
        let first = &Journal::open(&path).unwrap().records().unwrap()[0];
        let b: serde_json::Value = serde_json::from_str(&first.body).unwrap();
        assert_eq!(b["balances"][0]["address"], "0xd0");
        assert!(b["balances"][1].get("address").is_none(), "{b}");
    }

    /// The chain hashes exactly the bytes docs/journal.md describes (each field prefixed by its
    /// length as a little-endian u64; `seq` and `ts` in decimal, a missing intent or
    /// transaction as empty text; the digest in lowercase hex). The expected digests were
    /// computed outside this code (Python's `hashlib`), so a change to what is hashed fails here
    /// even though `verify` would agree with itself.
    #[test]
    fn the_chain_hash_covers_the_documented_bytes() {
        let first = chain_hash(
            GENESIS,
            7,
            -1_700_000_000,
            "fill",
            Some("ema_cross:1700000000:0"),
            None,
            r#"{"kind":"fill","v":3}"#,
        );
        assert_eq!(
            first,
            "8154d6c0ccc2c947d59c863067fcef8653ce9b7cd581da5d492df73790c4d34d"
        );
        let second = chain_hash(
            &first,
            8,
            1_700_003_600,
            "tx",
            Some("ema_cross:1700000000:0"),
            Some("0xabc"),
            "{}",
        );
        assert_eq!(
            second,
            "2584644dbae06dd3ae2786dab2c787ef8e8d7476715ffb95358ea43d9e189653"
        );
    }

    /// The indexes of the journal at `path` and its journal mode, as SQLite reports them.
    fn indexes_and_mode(path: &Path) -> (Vec<String>, String) {
        let conn = Connection::open(path).unwrap();
        let mut st = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name")
            .unwrap();
        let names = st
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let mode = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0))
            .unwrap();
        (names, mode)
    }

    #[test]
    fn a_replays_new_journal_leaves_its_indexes_to_the_first_reader_which_gets_an_ordinary_wal_journal()
     {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        let mut j = Journal::open_with(&path, Durability::Replay).unwrap();
        for ts in 1..=600 {
            j.append(ts, "intent", Some(&format!("s:{ts}:0")), None, "{}")
                .unwrap();
        }
        // Written in batches, in 16 KiB pages, without the indexes and without a WAL (the
        // writer's rollback journal is in its memory; another connection sees a
        // rollback-journal file), and so it stays once closed.
        j.flush().unwrap();
        assert_eq!(indexes_and_mode(&path), (vec![], "delete".to_string()));
        j.close().unwrap();
        j.close().unwrap();
        drop(j);
        assert_eq!(indexes_and_mode(&path), (vec![], "delete".to_string()));
        let page_size: i64 = rusqlite::Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(page_size, 16384);
        // Opened again (live or replay alike) it is an ordinary WAL journal with both
        // indexes: verified, read by intent through its index, appended to.
        let mut j = Journal::open_with(&path, Durability::Replay).unwrap();
        assert_eq!(
            indexes_and_mode(&path),
            (
                vec!["records_intent".to_string(), "records_tx".to_string()],
                "wal".to_string()
            )
        );
        assert_eq!(j.verify().unwrap().records, 600);
        let plan: String = j
            .conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT * FROM records WHERE intent_id = 's:42:0'",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("records_intent"), "{plan}");
        assert_eq!(j.rows("WHERE intent_id = ?1", ["s:42:0"]).unwrap().len(), 1);
        j.append(601, "intent", Some("s:601:0"), None, "{}")
            .unwrap();
        drop(j);
        assert_eq!(Journal::open(&path).unwrap().verify().unwrap().records, 601);
        // A live journal keeps SQLite's default pages and builds its indexes at once.
        let live = dir.path().join("live.sqlite");
        drop(Journal::open(&live).unwrap());
        assert_eq!(indexes_and_mode(&live).0.len(), 2);
    }

    #[test]
    fn a_replay_journal_that_cannot_write_fails_the_run_and_keeps_a_verifiable_chain() {
        use agent_core::{Bar, MarketEvent, Observer};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        let journal = Journal::open_with(&path, Durability::Replay).unwrap();
        // A full disk for the writer's connection alone: the file may not grow past 8 pages.
        journal
            .conn
            .pragma_update(None, "max_page_count", 8)
            .unwrap();
        // A full journal (a record per bar) behind the writer thread.
        let mut obs = JournalObserver::new(journal);
        let mut refused_at = None;
        for ts in 1..=5_000 {
            let event = MarketEvent::Bar(Bar {
                ts,
                open: 100.0,
                high: 100.0,
                low: 100.0,
                close: 100.0,
                volume: 0.0,
            });
            if let Err(e) = obs.on_audit(&AuditEvent::Market { ts, event: &event }) {
                assert!(e.0.contains("record not written"), "{e:?}");
                refused_at = Some(ts);
                break;
            }
        }
        // The writer's failure reaches the agent: from a later record, or at the end at the
        // latest, never as a run that finished well.
        let e = obs
            .finish()
            .expect_err("a journal that cannot write fails the run");
        assert!(e.0.contains("record not written"), "{e:?}");
        drop(obs);
        // What was written before the failure is on disk with its chain intact, and nothing
        // after it: the writer stopped at the first failure.
        let verified = Journal::open(&path).unwrap().verify().unwrap();
        assert!(
            verified.records > 0 && verified.records < 5_000,
            "{} records",
            verified.records
        );
        if let Some(ts) = refused_at {
            assert!(
                verified.records < ts,
                "{} records, refused at {ts}",
                verified.records
            );
        }
    }

    /// A compact replay journal at `dir/j.sqlite`, its observer and a swap intent to feed it.
    fn compact_replay(dir: &Path) -> (PathBuf, JournalObserver, agent_core::Intent) {
        let path = dir.join("j.sqlite");
        let journal = Journal::open_with(&path, Durability::Replay).unwrap();
        let pair = agent_core::Pair::eth_usdc();
        let intent = agent_core::Intent::swap(&pair.quote, &pair.base, U256::from(5u8));
        let obs = JournalObserver::with_detail(journal, Detail::Compact);
        (path, obs, intent)
    }

    #[test]
    fn a_compact_journal_dropped_without_finish_still_writes_what_it_held_back() {
        use agent_core::{IntentId, Refusal, Verdict};
        let dir = tempfile::tempdir().unwrap();
        let (path, mut obs, intent) = compact_replay(dir.path());
        let verdict = Verdict::Refuse(Refusal::new("kill_switch_halted", "halted"));
        for ts in 1..=3 {
            let id = IntentId::new("s", ts, 0);
            obs.on_audit(&AuditEvent::Intent {
                ts,
                id: &id,
                intent: &intent,
            })
            .unwrap();
            obs.on_audit(&AuditEvent::Verdict {
                ts,
                id: &id,
                verdict: &verdict,
            })
            .unwrap();
        }
        // A run that stops with an error never calls `finish`.
        drop(obs);
        let j = Journal::open(&path).unwrap();
        j.verify().unwrap();
        let kinds: Vec<String> = j.records().unwrap().into_iter().map(|r| r.kind).collect();
        assert_eq!(kinds, ["intent", "verdict", "refusals_repeated"]);
    }

    #[test]
    fn a_compact_journal_writes_a_held_intent_before_the_venue_steps_filed_under_it() {
        use agent_core::IntentId;
        let dir = tempfile::tempdir().unwrap();
        let (path, mut obs, intent) = compact_replay(dir.path());
        let recorder = obs.recorder();
        // A bundle leg's intent: executed without a verdict of its own after it.
        let id = IntentId::new("b", 7, 1);
        obs.on_audit(&AuditEvent::Intent {
            ts: 7,
            id: &id,
            intent: &intent,
        })
        .unwrap();
        recorder
            .record(&VenueEvent {
                step: "signed",
                label: "swap".into(),
                tx_hash: Some("0xab".into()),
                nonce: Some(3),
                detail: String::new(),
                intent_id: None,
            })
            .unwrap();
        obs.finish().unwrap();
        drop(obs);
        let records = Journal::open(&path).unwrap().records().unwrap();
        let rows: Vec<(&str, Option<&str>)> = records
            .iter()
            .map(|r| (r.kind.as_str(), r.intent_id.as_deref()))
            .collect();
        assert_eq!(rows, [("intent", Some("b:7:1")), ("tx", Some("b:7:1"))]);
    }
}
