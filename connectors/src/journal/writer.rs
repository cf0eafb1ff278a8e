//! A replay journal's writer thread: the agent loop hands over finished rows in batches and a
//! thread of its own hashes, inserts and commits them, in order, off the hot path.
//!
//! Nothing is dropped: the channel is bounded and a full one makes the loop wait. A write that
//! fails is reported by the next [`Writer::push`] (and by [`Writer::finish`]), so the agent halts
//! a few records late; a replay never acts on anything real, and a live journal
//! ([`super::Durability::Full`]) never uses a writer thread.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use super::{Addresses, Journal, Row};

/// Rows per batch handed to the thread.
const BATCH: usize = 64;
/// Batches in flight before [`Writer::push`] waits for the thread.
const IN_FLIGHT: usize = 32;

/// The sending side of the writer thread.
pub(super) struct Writer {
    /// Rows not yet handed over.
    batch: Vec<Row>,
    /// `None` once finished.
    tx: Option<SyncSender<(Vec<Row>, Arc<Addresses>)>>,
    /// The token addresses the thread formats the batch's amounts with.
    pub(super) addresses: Arc<Addresses>,
    thread: Option<JoinHandle<()>>,
    /// The thread's first failure.
    failed: Arc<OnceLock<String>>,
    /// The journal's file, for messages.
    path: std::path::PathBuf,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("path", &self.path)
            .field("pending", &self.batch.len())
            .field("failed", &self.failed.get())
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts the thread that writes into `journal`.
    pub(super) fn spawn(journal: Journal) -> Self {
        let (tx, rx) = sync_channel(IN_FLIGHT);
        let failed = Arc::new(OnceLock::new());
        let path = journal.path().to_path_buf();
        let seen = failed.clone();
        let thread = std::thread::Builder::new()
            .name("defai-journal".into())
            .spawn(move || write_all(journal, &rx, &seen));
        let (thread, failed) = match thread {
            Ok(t) => (Some(t), failed),
            Err(e) => {
                let _ = failed.set(format!("journal writer thread not started: {e}"));
                (None, failed)
            }
        };
        Self {
            batch: Vec::with_capacity(BATCH),
            tx: Some(tx),
            addresses: Arc::new(Addresses::default()),
            thread,
            failed,
            path,
        }
    }

    /// Queues `row`; hands the batch over when it is full.
    ///
    /// # Errors
    /// The thread's first failure (every later push fails too), or the thread is gone.
    pub(super) fn push(&mut self, row: Row) -> Result<(), String> {
        if let Some(e) = self.failed.get() {
            return Err(e.clone());
        }
        if self.tx.is_none() {
            return Err(format!(
                "journal {}: writer already finished",
                self.path.display()
            ));
        }
        self.batch.push(row);
        if self.batch.len() >= BATCH {
            self.hand_over()?;
        }
        Ok(())
    }

    /// Sends the batch to the thread (waiting while `IN_FLIGHT` batches are queued).
    fn hand_over(&mut self) -> Result<(), String> {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        let Some(tx) = &self.tx else {
            return Err(format!(
                "journal {}: writer already finished",
                self.path.display()
            ));
        };
        tx.send((batch, self.addresses.clone()))
            .map_err(|_| self.gone())
    }

    /// Why the thread stopped receiving: its failure, or that it ended.
    fn gone(&self) -> String {
        self.failed
            .get()
            .cloned()
            .unwrap_or_else(|| format!("journal {}: writer thread ended", self.path.display()))
    }

    /// Hands over the last rows, waits for the thread to write and commit everything, and
    /// ends it. Later calls do nothing.
    ///
    /// # Errors
    /// The thread's first failure, or it panicked.
    pub(super) fn finish(&mut self) -> Result<(), String> {
        if self.tx.is_some() && !self.batch.is_empty() {
            self.hand_over()?;
        }
        self.tx = None;
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            let _ = self.failed.set(format!(
                "journal {}: writer thread panicked",
                self.path.display()
            ));
        }
        match self.failed.get() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            tracing::error!(target: "defai::journal", error = %e, "journal: last records not written");
        }
    }
}

/// The thread: formats and appends every row received, in order, then commits. After the first
/// failure it records it and stops writing (a gap would make the chain lie), still draining the
/// channel so the sender never blocks on a dead thread.
fn write_all(
    mut journal: Journal,
    rx: &Receiver<(Vec<Row>, Arc<Addresses>)>,
    failed: &OnceLock<String>,
) {
    for (batch, addresses) in rx {
        if failed.get().is_some() {
            continue;
        }
        let mut inserter = match journal.inserter() {
            Ok(i) => i,
            Err(e) => {
                let _ = failed.set(format!("records not written: {e}"));
                continue;
            }
        };
        for r in batch {
            let intent = r.intent.as_ref().map(super::Filed::text);
            let body = r.body.render(&addresses);
            if let Err(e) = inserter.insert(r.ts, r.kind, intent.as_deref(), r.tx.as_deref(), &body)
            {
                let _ = failed.set(format!("{} record not written: {e}", r.kind));
                break;
            }
        }
    }
    if failed.get().is_none()
        && let Err(e) = journal.close()
    {
        let _ = failed.set(format!("journal not closed: {e}"));
    }
}
