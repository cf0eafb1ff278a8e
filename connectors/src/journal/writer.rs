//! A replay journal's writer thread: the agent loop hands over finished rows in batches and a
//! thread of its own hashes, inserts and commits them, in order, off the hot path.
//!
//! When the thread falls behind, the loop renders the bodies and intent ids of the batches it
//! hands over itself (the same text the thread would write), so that the two cores share the
//! work instead of the loop finishing early and then waiting for the thread's backlog.
//!
//! Nothing is dropped: the channel is bounded and a full one makes the loop wait. A write that
//! fails is reported by the next [`Writer::push`] (and by [`Writer::finish`]), so the agent halts
//! a few records late; a replay never acts on anything real, and a live journal
//! ([`super::Durability::Full`]) never uses a writer thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use super::{Addresses, Journal, Row};

/// Rows per batch handed to the thread.
const BATCH: usize = 64;
/// Batches in flight before [`Writer::push`] waits for the thread.
const IN_FLIGHT: usize = 32;
/// Batches queued for the thread from which the sender renders the next batch's bodies itself:
/// the thread is behind, so the sender's core would otherwise sit idle at the end of the run.
const LAGGING: usize = 2;

/// The sending side of the writer thread.
pub(super) struct Writer {
    /// Rows not yet handed over.
    batch: Vec<Row>,
    /// `None` once finished.
    tx: Option<SyncSender<(Vec<Row>, Arc<Addresses>)>>,
    /// The token addresses a batch's amounts are formatted with (by the thread, or by
    /// [`Writer::hand_over`] when the thread is behind).
    pub(super) addresses: Arc<Addresses>,
    thread: Option<JoinHandle<()>>,
    /// The thread's first failure.
    failed: Arc<OnceLock<String>>,
    /// The journal's file, for messages.
    path: std::path::PathBuf,
    /// Batches handed over (or being sent) and not yet taken by the thread.
    queued: Arc<AtomicUsize>,
    /// `queued` from which a batch is rendered before it is handed over ([`LAGGING`]).
    render_from: usize,
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
        Self::spawn_rendering_from(journal, LAGGING)
    }

    /// [`Writer::spawn`], rendering a batch before handing it over once `render_from` batches
    /// are queued (0: always, `usize::MAX`: never).
    fn spawn_rendering_from(journal: Journal, render_from: usize) -> Self {
        let (tx, rx) = sync_channel(IN_FLIGHT);
        let failed = Arc::new(OnceLock::new());
        let path = journal.path().to_path_buf();
        let seen = failed.clone();
        let queued = Arc::new(AtomicUsize::new(0));
        let taken = queued.clone();
        let thread = std::thread::Builder::new()
            .name("defai-journal".into())
            .spawn(move || write_all(journal, &rx, &seen, &taken));
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
            queued,
            render_from,
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

    /// Sends the batch to the thread (waiting while `IN_FLIGHT` batches are queued), its bodies
    /// and intent ids rendered first when the thread is behind.
    fn hand_over(&mut self) -> Result<(), String> {
        let mut batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        let Some(tx) = &self.tx else {
            return Err(format!(
                "journal {}: writer already finished",
                self.path.display()
            ));
        };
        if self.queued.load(Ordering::Relaxed) >= self.render_from {
            for row in &mut batch {
                row.render(&self.addresses);
            }
        }
        self.queued.fetch_add(1, Ordering::Relaxed);
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

/// The thread: formats (unless the sender did) and appends every row received, in order, then
/// commits; counts each batch taken off `queued`. After the first
/// failure it records it and stops writing (a gap would make the chain lie), still draining the
/// channel so the sender never blocks on a dead thread.
fn write_all(
    mut journal: Journal,
    rx: &Receiver<(Vec<Row>, Arc<Addresses>)>,
    failed: &OnceLock<String>,
    queued: &AtomicUsize,
) {
    for (batch, addresses) in rx {
        queued.fetch_sub(1, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use agent_core::{Intent, IntentId, Pair, Refusal, U256, Verdict};

    use super::super::{Body, Durability, Filed, book_row, intent_row, verdict_row};
    use super::*;

    /// Intents, refusals and books of `pair` at 300 event times.
    fn rows(pair: &Pair) -> Vec<Row> {
        let refusal = Verdict::Refuse(Refusal::new("cooldown", "too soon"));
        let tokens = Some((pair.quote.clone(), pair.base.clone()));
        (0..300u64)
            .flat_map(|t| {
                let ts = t as i64;
                let id = IntentId::new("s", ts, 0);
                let intent = Intent::swap(&pair.quote, &pair.base, U256::from(t + 1));
                [
                    intent_row(ts, &id, &intent),
                    verdict_row(ts, &id, &refusal, tokens.clone()),
                    book_row(ts, &[(pair.quote.clone(), U256::from(t * 1_000_001))]),
                ]
            })
            .collect()
    }

    #[test]
    fn a_batch_rendered_by_the_sender_writes_the_bytes_the_thread_would() {
        let dir = tempfile::tempdir().unwrap();
        let pair = Pair::eth_usdc();
        let addresses = Arc::new(Addresses(BTreeMap::from([(
            "USDC".to_string(),
            "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48".to_string(),
        )])));
        // Rendered on the sending side, a row's body and intent are text, as the thread writes
        // them.
        let mut row = rows(&pair).swap_remove(0);
        let thread_text = row.body.render(&addresses).into_owned();
        row.render(&addresses);
        assert!(matches!(&row.body, Body::Text(t) if *t == thread_text));
        assert!(matches!(&row.intent, Some(Filed::Text(t)) if t == "s:0:0"));
        assert!(thread_text.contains("0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"));
        // Whole journals: every batch rendered by the sender, or every one by the thread.
        let write = |name: &str, render_from: usize| {
            let path = dir.path().join(name);
            let journal = Journal::open_with(&path, Durability::Replay).unwrap();
            let mut writer = Writer::spawn_rendering_from(journal, render_from);
            writer.addresses = addresses.clone();
            for row in rows(&pair) {
                writer.push(row).unwrap();
            }
            writer.finish().unwrap();
            // Every batch handed over was taken (the count that decides who renders is right).
            assert_eq!(writer.queued.load(Ordering::Relaxed), 0);
            let records = Journal::open(&path).unwrap().records().unwrap();
            records
                .into_iter()
                .map(|r| (r.seq, r.intent_id, r.body, r.hash))
                .collect::<Vec<_>>()
        };
        let by_sender = write("sender.sqlite", 0);
        let by_thread = write("thread.sqlite", usize::MAX);
        assert_eq!(by_sender.len(), 900);
        assert_eq!(by_sender, by_thread);
        // Some batches by each, as the timing falls: the same again.
        assert_eq!(write("mixed.sqlite", 1), by_thread);
    }
}
