//! `defai rebalance`: the rebalancer's backtest over the bundled ETH series and a generated DVT
//! series correlated with it.

use crate::config::Config;
use crate::engine;
use anyhow::{Context as _, Result, bail};

/// `defai rebalance`: backtests the rebalancer at `targets` (WETH,DVT,dUSD) and `band`.
pub(super) async fn rebalance(targets: &str, band: f64, seed: u64, json: bool) -> Result<()> {
    let t: Vec<f64> = targets
        .split(',')
        .map(|v| v.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--targets {targets:?}: expected three numbers"))?;
    let [w, d, u] = t[..] else {
        bail!(
            "--targets needs three weights (WETH,DVT,dUSD), got {}",
            t.len()
        );
    };
    if t.iter().any(|x| !x.is_finite() || *x < 0.0) || ((w + d + u) - 1.0).abs() > 1e-9 {
        bail!("--targets must be non-negative and sum to 1");
    }
    if !(band.is_finite() && band > 0.0 && band < 1.0) {
        bail!("--band must be in (0, 1)");
    }
    let series = engine::load_data(&Config::default(), None, false)?;
    let cfg = crate::strategies::rebalancer::RebalanceConfig {
        band,
        ..Default::default()
    };
    let r = crate::rebalance::backtest(&series.bars, seed, [w, d, u], &cfg, 10_000.0)
        .await
        .map_err(anyhow::Error::msg)?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "rebalancer {targets} (band {band}), {} hourly bars; {}",
            r.bars, r.second_series
        );
        println!(
            "  equity {:.2} → {:.2} ({:+.2} %), never rebalanced {:+.2} %",
            r.start_equity, r.end_equity, r.return_pct, r.hold_return_pct
        );
        println!(
            "  {} rebalances, {} trades, turnover {:.1}×, fees {:.2}, gas {:.2}",
            r.rebalances, r.trades, r.turnover, r.fees_paid, r.gas_paid
        );
        println!(
            "  tracking error: mean {:.2} %, max {:.2} %",
            r.tracking_error_pct, r.max_tracking_error_pct
        );
    }
    Ok(())
}
