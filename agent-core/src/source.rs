//! Where market events come from: the [`MarketSource`] trait and an in-memory replay.

use std::future::Future;
use std::sync::Arc;

use crate::market::{Bar, MarketEvent};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("market source: {0}")]
pub struct SourceError(pub String);

/// Yields market events in time order; `None` when there are no more.
pub trait MarketSource: Send {
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
    pub fn new(bars: impl Into<Arc<[Bar]>>) -> Self {
        Self {
            bars: bars.into(),
            pos: 0,
        }
    }
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
