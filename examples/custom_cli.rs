//! A user's own binary that reuses the whole `defai` command line with a strategy of its own
//! registered by name: `backtest`, `paper` and `run` (state folder, journal, kill switch,
//! control API, dashboard) all run it from a config or `--strategy`. Only the public API.
//!
//! ```text
//! cargo run --release --example custom_cli -- backtest --strategy momentum --param lookback=12
//! ```
use std::collections::VecDeque;

use defai::core::{Context, Intent, MarketEvent, Params, Strategy, StrategyError};
use defai::strategies::{BuildError, Registry};

/// Holds `size` of equity while the close is above its close `lookback` bars ago; flat
/// otherwise.
struct Momentum {
    lookback: usize,
    size: f64,
    closes: VecDeque<f64>,
}

impl Strategy for Momentum {
    fn name(&self) -> &str {
        "momentum"
    }

    fn on_event(
        &mut self,
        event: &MarketEvent,
        ctx: &Context<'_>,
    ) -> Result<Vec<Intent>, StrategyError> {
        let Some(bar) = event.as_bar() else {
            return Ok(vec![]);
        };
        self.closes.push_back(bar.close);
        if self.closes.len() <= self.lookback {
            return Ok(vec![]);
        }
        let then = self.closes.pop_front().unwrap_or(bar.close);
        let target = if bar.close > then { self.size } else { 0.0 };
        Ok(ctx.target_exposure(target)?.into_iter().collect())
    }
}

/// `momentum` from its parameters: `lookback` (bars, default 24), `size` (of equity, 0.5).
fn momentum(mut params: Params) -> Result<Box<dyn Strategy>, BuildError> {
    let lookback = params.usize("lookback", 24)?;
    let size = params.f64("size", 0.5)?;
    params.finish()?;
    Ok(Box::new(Momentum {
        lookback,
        size,
        closes: VecDeque::new(),
    }))
}

fn main() -> anyhow::Result<()> {
    let mut registry = Registry::builtin();
    registry.register("momentum", momentum)?;
    defai::cli::main_with(registry)
}
