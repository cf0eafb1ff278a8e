//! When a live agent's next cycle starts: on each new block, or, on a quiet chain (an automine
//! devnet with nothing to mine, a chain that stalls), when `every` passes without one. A waiting
//! agent says why it waits: once per quiet spell that lasts past a second (or half of `every`),
//! at info level under the `defai::wait` target (on by default in the CLI).

use std::time::{Duration, Instant};

use super::error::EvmError;
use super::rpc::{BlockInfo, Chain};

/// What started a cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A block the agent had not seen.
    NewBlock,
    /// `every` passed without a new block.
    Timer,
}

/// One cycle: the latest block, what started the cycle, and the cycle's time.
#[derive(Debug, Clone, PartialEq)]
pub struct Cycle {
    /// The latest block the node reported when the cycle started.
    pub block: BlockInfo,
    /// Whether a new block or the timer started it.
    pub trigger: Trigger,
    /// Unix seconds: the block's timestamp, plus (on a timer cycle) the whole wall-clock seconds
    /// since the block was first seen — time passes on a quiet chain too; always later than the
    /// previous cycle's (a second later when it would not be), so ids built on it are unique.
    pub now: i64,
}

/// Paces cycles by blocks and a timer. `poll` is how often the node is asked for its latest
/// block; `every` (> 0) the longest a cycle waits for a new one.
#[derive(Debug, Clone)]
pub struct CycleClock {
    chain: Chain,
    poll: Duration,
    every: Duration,
    /// No new block for this long is an error (`None`: wait forever, cycling on the timer).
    idle_timeout: Option<Duration>,
    /// The latest block seen, and when it was first seen.
    seen: Option<(u64, Instant)>,
    last_cycle: Option<Instant>,
    /// The wait for the block after `seen` has been logged.
    said: bool,
    /// The last cycle's `now`: each cycle's is later (intent ids carry it).
    last_now: Option<i64>,
}

impl CycleClock {
    /// `every` below 1 ms is raised to 1 ms (the config refuses 0 before this is built).
    pub fn new(chain: Chain, poll: Duration, every: Duration) -> Self {
        Self {
            chain,
            poll: poll.max(Duration::from_millis(1)),
            every: every.max(Duration::from_millis(1)),
            idle_timeout: None,
            seen: None,
            last_cycle: None,
            said: false,
            last_now: None,
        }
    }

    /// Ends the wait with an error when no new block came for `idle` (a chain that stopped, an
    /// RPC stuck on one block); without it a quiet chain cycles on the timer for ever.
    pub fn with_idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = Some(idle);
        self
    }

    /// `t`, or one second past the last cycle's time when `t` is not later: cycle times only
    /// move forward (several cycles in one second, a block stamped like the timer cycle before).
    fn later(&mut self, t: i64) -> i64 {
        let now = match self.last_now {
            Some(last) if t <= last => last.saturating_add(1),
            _ => t,
        };
        self.last_now = Some(now);
        now
    }

    /// The longest a cycle waits for a new block.
    pub fn every(&self) -> Duration {
        self.every
    }

    /// Waits for the next cycle: a new block, or the timer. The first call returns at once
    /// with the latest block.
    ///
    /// # Errors
    /// The node cannot be asked for its latest block (after the RPC's retries), or no new
    /// block came within the idle timeout ([`EvmError::Rpc`], naming the RPC and the wait).
    pub async fn next(&mut self) -> Result<Cycle, EvmError> {
        loop {
            let block = self.chain.block(None).await?;
            let at = Instant::now();
            let seen = match self.seen {
                // Not past the latest seen (a load-balanced RPC may answer an older block): no
                // new block.
                Some((n, first)) if block.number <= n => first,
                _ => {
                    self.seen = Some((block.number, at));
                    self.last_cycle = Some(at);
                    self.said = false;
                    let now = self.later(block.timestamp as i64);
                    return Ok(Cycle {
                        block,
                        trigger: Trigger::NewBlock,
                        now,
                    });
                }
            };
            if let Some(idle) = self.idle_timeout
                && at.duration_since(seen) > idle
            {
                return Err(EvmError::Rpc {
                    method: "eth_getBlockByNumber",
                    detail: format!(
                        "no new block on {} for {idle:?} ([chain] idle_timeout_s)",
                        self.chain.url()
                    ),
                });
            }
            let since = self.last_cycle.map_or(self.every, |t| at.duration_since(t));
            if since >= self.every {
                self.last_cycle = Some(at);
                let now = self.later(
                    (block.timestamp as i64)
                        .saturating_add(at.duration_since(seen).as_secs() as i64),
                );
                return Ok(Cycle {
                    block,
                    trigger: Trigger::Timer,
                    now,
                });
            }
            let left = self.every - since;
            // Normal block spacing is not worth a line; a chain quiet past a second (or half
            // the timer) is, once until the next block.
            if !self.said && at.duration_since(seen) >= Duration::from_secs(1).min(self.every / 2) {
                tracing::info!(
                    target: "defai::wait",
                    block = block.number,
                    rpc = %self.chain.url(),
                    every_ms = self.every.as_millis() as u64,
                    "no new block: waiting for one, cycling on the timer meanwhile ([chain] cycle_interval_s)"
                );
                self.said = true;
            }
            tokio::time::sleep(self.poll.min(left)).await;
        }
    }
}

/// Every cycle of a [`CycleClock`] as a [`agent_core::MarketEvent::Tick`] at the cycle's time:
/// the source of an agent whose venue lists its own markets (a bettor's prediction venue), which
/// decides on each cycle, block or timer alike.
#[derive(Debug, Clone)]
pub struct CycleSource(pub CycleClock);

impl agent_core::MarketSource for CycleSource {
    async fn next_event(
        &mut self,
    ) -> Result<Option<agent_core::MarketEvent>, agent_core::SourceError> {
        let cycle = self
            .0
            .next()
            .await
            .map_err(|e| agent_core::SourceError(e.to_string()))?;
        Ok(Some(agent_core::MarketEvent::Tick { ts: cycle.now }))
    }
}
