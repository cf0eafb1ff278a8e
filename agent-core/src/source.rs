//! Where market events come from: the [`MarketSource`] trait and an in-memory replay.

use std::future::Future;
use std::sync::Arc;

use crate::market::{Bar, MarketEvent};

/// A market source failed to yield its next event (an unreadable file, a failed RPC read, a
/// malformed row); the message says what and where. The agent stops on it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("market source: {0}")]
pub struct SourceError(pub String);

/// Yields market events in time order; `None` when there are no more.
///
/// # Example
///
/// A flat market: `left` hourly bars at a constant `price`, after `ts` (unix seconds):
///
/// ```
/// use agent_core::{Bar, MarketEvent, MarketSource, SourceError};
///
/// struct Flat { ts: i64, price: f64, left: usize }
///
/// impl MarketSource for Flat {
///     async fn next_event(&mut self) -> Result<Option<MarketEvent>, SourceError> {
///         if self.left == 0 {
///             return Ok(None);
///         }
///         self.left -= 1;
///         self.ts += 3600;
///         let p = self.price;
///         let bar = Bar { ts: self.ts, open: p, high: p, low: p, close: p, volume: 0.0 };
///         Ok(Some(MarketEvent::Bar(bar)))
///     }
///     fn remaining(&self) -> Option<usize> {
///         Some(self.left)
///     }
/// }
/// ```
pub trait MarketSource: Send {
    /// The next event, `Ok(None)` once the source is exhausted. A live source waits here for
    /// the next cycle's data.
    ///
    /// # Errors
    ///
    /// A [`SourceError`] when the next event cannot be read; the agent stops on it.
    fn next_event(
        &mut self,
    ) -> impl Future<Output = Result<Option<MarketEvent>, SourceError>> + Send;

    /// How many events remain, when known (for progress bars).
    fn remaining(&self) -> Option<usize> {
        None
    }
}

/// The first `n` events of a source, then its end (e.g. a live chain source run for `n`
/// cycles).
#[derive(Debug, Clone)]
pub struct TakeEvents<S> {
    inner: S,
    left: usize,
}

impl<S: MarketSource> TakeEvents<S> {
    /// At most `n` events of `inner`.
    pub fn new(inner: S, n: usize) -> Self {
        Self { inner, left: n }
    }
}

impl<S: MarketSource> MarketSource for TakeEvents<S> {
    async fn next_event(&mut self) -> Result<Option<MarketEvent>, SourceError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        self.inner.next_event().await
    }

    fn remaining(&self) -> Option<usize> {
        Some(
            self.inner
                .remaining()
                .map_or(self.left, |r| r.min(self.left)),
        )
    }
}

/// Replays bars held in memory, in order. Cheap to clone: the bars are shared.
#[derive(Debug, Clone)]
pub struct BarReplay {
    bars: Arc<[Bar]>,
    pos: usize,
}

impl BarReplay {
    /// Replays `bars` from the first, each as a [`MarketEvent::Bar`]; they are not validated
    /// or sorted here.
    pub fn new(bars: impl Into<Arc<[Bar]>>) -> Self {
        Self {
            bars: bars.into(),
            pos: 0,
        }
    }
    /// Every bar of the replay, those already yielded included.
    pub fn bars(&self) -> &[Bar] {
        &self.bars
    }
}

impl MarketSource for BarReplay {
    async fn next_event(&mut self) -> Result<Option<MarketEvent>, SourceError> {
        let bar = self.bars.get(self.pos).copied();
        self.pos += 1;
        Ok(bar.map(MarketEvent::Bar))
    }

    fn remaining(&self) -> Option<usize> {
        Some(self.bars.len().saturating_sub(self.pos))
    }
}

/// Replays prepared market events in order (any kind: a multi-asset backtest's
/// [`MarketEvent::Markets`] sets, a test's hand-made sequence).
#[derive(Debug, Clone)]
pub struct EventReplay {
    events: std::vec::IntoIter<MarketEvent>,
}

impl EventReplay {
    /// Replays `events` in the order given.
    pub fn new(events: Vec<MarketEvent>) -> Self {
        Self {
            events: events.into_iter(),
        }
    }
}

impl MarketSource for EventReplay {
    async fn next_event(&mut self) -> Result<Option<MarketEvent>, SourceError> {
        Ok(self.events.next())
    }
}
