//! `defai rebalance`: the rebalancer's backtest over the bundled ETH series and a generated DVT
//! series correlated with it.

use crate::config::Config;
use crate::engine;
use crate::strategies::Rebalancer;
use anyhow::{Context as _, Result, bail};

/// `defai rebalance`: backtests the rebalancer at `targets` (WETH,DVT,dUSD) and `band`, its
/// targets tilted by `model` (a model name or folder, and the tilt's strength) when given.
pub(super) async fn rebalance(
    targets: &str,
    band: f64,
    seed: u64,
    model: Option<(String, f64)>,
    json: bool,
) -> Result<()> {
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
    let [weth, dvt, usd] = crate::rebalance::tokens();
    let assets = vec![(weth, w), (dvt, d), (usd.clone(), u)];
    let mut strategy = Rebalancer::new(assets, &usd, cfg).map_err(anyhow::Error::msg)?;
    if let Some((name, tilt)) = &model {
        let loaded = crate::models::PriceDirection::named(name)
            .with_context(|| format!("--model {name}"))?;
        strategy = strategy
            .with_model(Box::new(loaded), *tilt)
            .map_err(|e| anyhow::anyhow!("--tilt: {e}"))?;
    }
    let limits = crate::core::RiskLimits::permissive();
    let r = crate::rebalance::backtest_strategy(&series.bars, seed, strategy, 10_000.0, limits)
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
        if let (Some(id), Some((_, tilt))) = (&r.model, &model) {
            println!(
                "  targets tilted by model {id} (tilt {tilt}): {} decisions",
                r.model_decisions
            );
        }
    }
    Ok(())
}
