//! The agent's clock: simulated (backtest, as fast as possible), replay (paper, N × real time) or
//! wall (live).

use std::time::Duration;

use tokio::time::Instant;

/// Where the agent's "now" comes from and how long it waits between events; see
/// [`Clock::now`] and [`Clock::wait_until`]. Timestamps are unix seconds.
#[derive(Debug, Clone)]
pub enum Clock {
    /// Time is whatever the last event says; never waits.
    Simulated,
    /// Replays event time at `speed` × real time, anchored at the first event.
    Replay {
        /// Event seconds per real second (`60.0` plays a minute of history each second); finite
        /// and positive when built by [`Clock::replay`].
        speed: f64,
        /// The first event's unix timestamp and the instant it was waited for; `None` until the
        /// first [`Clock::wait_until`], which sets it.
        anchor: Option<(i64, Instant)>,
    },
    /// Real time: waits until the event's timestamp has passed on the wall clock.
    Wall,
}

impl Clock {
    /// Replays at `speed` × real time; a non-finite or non-positive speed means as fast as
    /// possible.
    pub fn replay(speed: f64) -> Self {
        if speed.is_finite() && speed > 0.0 {
            Clock::Replay {
                speed,
                anchor: None,
            }
        } else {
            Clock::Simulated
        }
    }

    /// The agent's "now" for an event at `event_ts`: the event's own time when simulated or
    /// replayed, the wall clock when live (so data age means something).
    #[inline]
    pub fn now(&self, event_ts: i64) -> i64 {
        match self {
            Clock::Simulated | Clock::Replay { .. } => event_ts,
            Clock::Wall => unix_now() as i64,
        }
    }

    /// Whether every event is due at once ([`Clock::Simulated`]: a backtest), so
    /// [`Clock::wait_until`] never waits and the loop need not build its future.
    #[inline]
    pub fn never_waits(&self) -> bool {
        matches!(self, Clock::Simulated)
    }

    /// Waits until event time `ts` (unix seconds) is due.
    pub async fn wait_until(&mut self, ts: i64) {
        match self {
            Clock::Simulated => {}
            Clock::Replay { speed, anchor } => {
                let (ts0, t0) = *anchor.get_or_insert((ts, Instant::now()));
                let sim = (ts - ts0).max(0) as f64 / *speed;
                tokio::time::sleep_until(t0 + Duration::from_secs_f64(sim)).await;
            }
            Clock::Wall => {
                let wait = ts as f64 - unix_now();
                if wait > 0.0 {
                    tokio::time::sleep(Duration::from_secs_f64(wait)).await;
                }
            }
        }
    }
}

/// Wall-clock unix time in seconds (0 if the system clock is before 1970).
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The wall clock, unix seconds (0 if the system clock is before 1970).
pub fn wall_s() -> i64 {
    crate::agent::wall_clock_s()
}
