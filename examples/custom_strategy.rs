//! A strategy written only against defai's public API: mean reversion on the z-score of the
//! close against its rolling mean. Run it with
//!
//! ```text
//! cargo run --release --example custom_strategy
//! ```
use std::collections::VecDeque;

use defai::connectors::{LoadOptions, PaperAmmConfig, PaperVenue, load_csv_bytes};
use defai::core::{
    Agent, BarReplay, Context, Intent, MarketEvent, Pair, Portfolio, Strategy, StrategyError,
};
use defai::engine::{EMBEDDED_DATA, EMBEDDED_NAME};

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
            (false, z) if z < -self.entry_z => Some(self.size),
            (true, z) if z > 0.0 => Some(0.0),
            _ => None,
        };
        match target {
            Some(t) => Ok(ctx.target_exposure(t)?.into_iter().collect()),
            None => Ok(vec![]),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let series = load_csv_bytes(EMBEDDED_NAME, EMBEDDED_DATA, LoadOptions::default())?;
    let pair = Pair::eth_usdc();
    let venue = PaperVenue::new(pair.clone(), PaperAmmConfig::default_for(&pair));
    let start = pair.quote.parse("10000")?;
    let portfolio = Portfolio::with_balances([(pair.quote.clone(), start)]);
    let strategy = MeanReversion {
        window: 48,
        entry_z: 2.5,
        size: 0.9,
        closes: VecDeque::new(),
    };

    let report = Agent::new(
        pair.clone(),
        BarReplay::new(series.bars),
        venue,
        Box::new(strategy),
        portfolio,
    )
    .run()
    .await?;

    println!("strategy      mean_reversion (window 48, entry z < -2.5)");
    println!("bars          {}", report.bars);
    println!("trades        {}", report.fills);
    println!("refused       {}", report.risk.refused);
    println!(
        "start equity  {} {}",
        pair.quote.format(report.start_equity),
        pair.quote
    );
    println!(
        "end equity    {} {}",
        pair.quote.format(report.end_equity),
        pair.quote
    );
    println!("return        {:+.2} %", report.return_pct());
    println!("buy & hold    {:+.2} %", report.buy_hold_return_pct());
    println!("max drawdown  {:.2} %", report.max_drawdown_pct);
    println!(
        "fees paid     {} {}",
        pair.quote.format(report.portfolio.fees_quote()),
        pair.quote
    );
    println!(
        "gas paid      {} {}",
        pair.quote.format(report.portfolio.gas_quote()),
        pair.quote
    );
    Ok(())
}
