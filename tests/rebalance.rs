//! The rebalancer over real and generated prices.

mod common;

use defai::core::Bar;
use defai::strategies::rebalancer::RebalanceConfig;

fn flat_then_shock(n: usize, shock_at: usize) -> Vec<Bar> {
    (0..n)
        .map(|i| {
            let p = if i < shock_at { 1000.0 } else { 2000.0 };
            Bar {
                ts: i as i64 * 3600,
                open: p,
                high: p,
                low: p,
                close: p,
                volume: 1.0,
            }
        })
        .collect()
}

#[test]
fn after_a_price_shock_the_weights_come_back_within_the_band() {
    let bars = flat_then_shock(200, 100);
    let cfg = RebalanceConfig::default();
    let r = defai::rebalance::backtest(&bars, 1, [0.4, 0.3, 0.3], &cfg, 10_000.0);
    // The initial allocation, then the shock: at least two rebalances, and every bar ends
    // within the band (RMS error ≤ the band).
    assert!(r.rebalances >= 2, "{r:?}");
    assert!(r.max_tracking_error_pct <= cfg.band * 100.0, "{r:?}");
    assert!(r.fees_paid > 0.0 && r.gas_paid > 0.0 && r.turnover > 0.0);
}

#[test]
fn when_gas_would_eat_the_trade_the_rebalancer_does_nothing() {
    let bars = flat_then_shock(50, 10);
    // 1 % gas budget against trades of a few dUSD: a 100-dUSD portfolio never trades.
    let cfg = RebalanceConfig {
        min_trade: 0.0,
        ..RebalanceConfig::default()
    };
    let r = defai::rebalance::backtest(&bars, 1, [0.4, 0.3, 0.3], &cfg, 100.0);
    assert_eq!(r.trades, 0, "{r:?}");
    assert!(
        r.tracking_error_pct > 5.0,
        "out of its targets, yet nothing was worth trading"
    );
    assert_eq!(r.end_equity, 100.0);
}

#[test]
fn on_the_bundled_data_it_tracks_the_targets_and_reports_its_costs() {
    let bars = common::bundled_bars();
    let cfg = RebalanceConfig::default();
    let a = defai::rebalance::backtest(&bars, 7, [0.4, 0.3, 0.3], &cfg, 10_000.0);
    let b = defai::rebalance::backtest(&bars, 7, [0.4, 0.3, 0.3], &cfg, 10_000.0);
    assert_eq!(
        a.end_equity.to_bits(),
        b.end_equity.to_bits(),
        "deterministic"
    );
    assert!(a.max_tracking_error_pct <= 5.0 + 1e-9, "{a:?}");
    assert!(a.trades > 10 && a.fees_paid > 0.0);
    assert!(a.second_series.contains("generated"));
}
