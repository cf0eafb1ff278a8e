//! Backtest throughput through the real engine path (loop, gate, venue, portfolio).

use std::sync::Arc;

use agent_core::Bar;
use connectors::Series;

use crate::config::Config;
use crate::engine::{RunError, RunSpec, run_shared};

/// `bars` repeated end to end until there are at least `min_len`, timestamps shifted so time
/// keeps moving forward (prices jump at the seams; the engine does not care).
pub fn repeat_bars(bars: &[Bar], min_len: usize) -> Vec<Bar> {
    if bars.is_empty() {
        return Vec::new();
    }
    let span = bars[bars.len() - 1].ts - bars[0].ts + 3600;
    let copies = min_len.div_ceil(bars.len()).max(1);
    let mut out = Vec::with_capacity(copies * bars.len());
    for k in 0..copies as i64 {
        out.extend(bars.iter().map(|b| Bar {
            ts: b.ts + k * span,
            ..*b
        }));
    }
    out
}

/// The default config with the loss limits out of reach: the benchmark measures the engine while
/// the strategy keeps trading, not a halted agent refusing intents.
pub fn bench_config() -> Config {
    Config::parse(
        "[risk]\nmax_drawdown_pct = 100.0\nmax_daily_loss_pct = 100.0\n",
        None,
    )
    .expect("bench config parses")
}

/// One measured run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchRun {
    pub bars: u64,
    pub trades: u64,
    pub elapsed_s: f64,
    pub bars_per_s: f64,
}

/// Runs `ema_cross` with default parameters over `series` repeated to `min_bars`, `runs` times.
pub async fn throughput(
    series: &Series,
    min_bars: usize,
    runs: usize,
) -> Result<Vec<BenchRun>, RunError> {
    let big: Arc<[Bar]> = repeat_bars(&series.bars, min_bars).into();
    let mut out = Vec::new();
    for _ in 0..runs.max(1) {
        let o = run_shared(
            RunSpec::backtest(bench_config()),
            big.clone(),
            &series.report,
        )
        .await?;
        out.push(BenchRun {
            bars: o.summary.bars,
            trades: o.summary.trades,
            elapsed_s: o.summary.elapsed_s,
            bars_per_s: o.summary.bars_per_s,
        });
    }
    Ok(out)
}
