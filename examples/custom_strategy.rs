//! A strategy of your own, run through [`AgentBuilder`] with everything the `defai` commands
//! give it (risk gate, kill switch, journal, restart): mean reversion on the z-score of the
//! close against its rolling mean. Only the public API.
//!
//! ```text
//! cargo run --release --example custom_strategy                  # backtest, bundled data
//! DEFAI_PRIVATE_KEY=<an anvil test key> cargo run --release --example custom_strategy -- \
//!     devnet.json state/mean-reversion 50                         # live on `defai devnet`
//! ```
use std::collections::VecDeque;

use defai::AgentBuilder;
use defai::config::Config;
use defai::core::{Context, Intent, MarketEvent, Strategy, StrategyError};

/// Buys `size` of equity when the close is `entry_z` standard deviations below its mean over
/// `window` bars; goes flat once it is back above the mean.
struct MeanReversion {
    window: usize,
    entry_z: f64,
    size: f64,
    closes: VecDeque<f64>,
}

impl Strategy for MeanReversion {
    fn name(&self) -> &str {
        "mean_reversion"
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
        if self.closes.len() > self.window {
            self.closes.pop_front();
        }
        if self.closes.len() < self.window {
            return Ok(vec![]);
        }
        let n = self.closes.len() as f64;
        let mean = self.closes.iter().sum::<f64>() / n;
        let var = self.closes.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / n;
        if var <= 0.0 {
            return Ok(vec![]);
        }
        let z = (bar.close - mean) / var.sqrt();
        let holding = ctx.exposure() > self.size / 2.0;
        let target = match (holding, z) {
            (false, z) if z < -self.entry_z => self.size,
            (true, z) if z > 0.0 => 0.0,
            _ => return Ok(vec![]),
        };
        Ok(ctx.target_exposure(target)?.into_iter().collect())
    }
}

/// The devnet's WETH/dUSD pool, the gate's limits and the kill switch; the addresses come from
/// the `devnet.json` `defai devnet` wrote, the key from `DEFAI_PRIVATE_KEY`.
const LIVE: &str = r#"
[market]
base = "WETH"
quote = "dUSD"
quote_decimals = 6
[venue]
kind = "uniswap_v2"
deadline_s = 7200    # the devnet's replay moves chain time an hour per bar: give a swap two
[chain]
poll_interval_ms = 20
[risk]
max_trade_notional = 20000.0
max_slippage_bps = 100
[kill_switch]
on_breach = "flatten"
max_consecutive_failures = 3
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (window, entry_z) = if args.is_empty() { (48, 2.5) } else { (8, 1.0) };
    let strategy = Box::new(MeanReversion {
        window,
        entry_z,
        size: 0.9,
        closes: VecDeque::new(),
    });
    let out = match args.as_slice() {
        [] => {
            let config = Config::default();
            let series = defai::engine::load_data(&config, None, false)?;
            let agent = AgentBuilder::new(config).strategy(strategy);
            agent.backtest(&series).await?
        }
        [devnet, state, cycles] => {
            let agent = AgentBuilder::new(Config::parse(LIVE, None)?).strategy(strategy);
            let agent = agent.devnet(devnet).state_dir(state);
            agent.max_cycles(cycles.parse()?).live().await?
        }
        _ => return Err("usage: custom_strategy [DEVNET_JSON STATE_DIR CYCLES]".into()),
    };
    println!("{}", serde_json::to_string(&out.summary)?);
    Ok(())
}
