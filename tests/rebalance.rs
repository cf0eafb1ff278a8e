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

#[tokio::test]
async fn after_a_price_shock_the_weights_come_back_within_the_band() {
    let bars = flat_then_shock(200, 100);
    let cfg = RebalanceConfig::default();
    let r = defai::rebalance::backtest(&bars, 1, [0.4, 0.3, 0.3], &cfg, 10_000.0)
        .await
        .unwrap();
    // The initial allocation, then the shock: at least two rebalances, and every bar ends
    // within the band (RMS error ≤ the band).
    assert!(r.rebalances >= 2, "{r:?}");
    assert!(r.max_tracking_error_pct <= cfg.band * 100.0, "{r:?}");
    assert!(r.fees_paid > 0.0 && r.gas_paid > 0.0 && r.turnover > 0.0);
}

#[tokio::test]
async fn when_gas_would_eat_the_trade_the_rebalancer_does_nothing() {
    let bars = flat_then_shock(50, 10);
    // 1 % gas budget against trades of a few dUSD: a 100-dUSD portfolio never trades.
    let cfg = RebalanceConfig {
        min_trade: 0.0,
        ..RebalanceConfig::default()
    };
    let r = defai::rebalance::backtest(&bars, 1, [0.4, 0.3, 0.3], &cfg, 100.0)
        .await
        .unwrap();
    assert_eq!(r.trades, 0, "{r:?}");
    assert!(
        r.tracking_error_pct > 5.0,
        "out of its targets, yet nothing was worth trading"
    );
    assert_eq!(r.end_equity, 100.0);
}

#[tokio::test]
async fn on_the_bundled_data_it_tracks_the_targets_and_reports_its_costs() {
    let bars = common::bundled_bars();
    let cfg = RebalanceConfig::default();
    let a = defai::rebalance::backtest(&bars, 7, [0.4, 0.3, 0.3], &cfg, 10_000.0)
        .await
        .unwrap();
    let b = defai::rebalance::backtest(&bars, 7, [0.4, 0.3, 0.3], &cfg, 10_000.0)
        .await
        .unwrap();
    assert_eq!(
        a.end_equity.to_bits(),
        b.end_equity.to_bits(),
        "deterministic"
    );
    assert!(a.max_tracking_error_pct <= 5.0 + 1e-9, "{a:?}");
    assert!(a.trades > 10 && a.fees_paid > 0.0);
    assert!(a.second_series.contains("generated"));
}

/// Today's figures of the rebalancer on the bundled data (seed 7, 40/30/30, band 5 %): the
/// separate simulator it ran on before gave 210 trades in 107 rebalances, 140,717.89 dUSD from
/// 10,000, 2,912.89 of fees and 694.98 of gas; through the one agent loop, the paper AMM venue
/// and the risk gate it gives the same trades (equity within a cent: the venue books fees in
/// integer units).
#[tokio::test]
async fn through_the_agent_loop_the_rebalancer_makes_the_same_trades_as_before() {
    let bars = common::bundled_bars();
    let cfg = RebalanceConfig::default();
    let r = defai::rebalance::backtest(&bars, 7, [0.4, 0.3, 0.3], &cfg, 10_000.0)
        .await
        .unwrap();
    assert_eq!((r.trades, r.rebalances), (210, 107), "{r:?}");
    assert!((r.end_equity - 140_717.89).abs() < 0.01, "{r:?}");
    assert!((r.fees_paid - 2_912.89).abs() < 0.01, "{r:?}");
    assert!((r.gas_paid - 694.98).abs() < 0.01, "{r:?}");
    assert_eq!((r.risk.refused, r.execution_failures), (0, 0), "{r:?}");
}

/// The loss limits value every asset: when WETH and DVT fall, the rebalancer's equity falls
/// with both, the drawdown limit trips, and the kill switch sells every asset into dUSD (not
/// only the agent's first pair), then halts.
#[tokio::test]
async fn a_drawdown_flattens_every_asset_of_the_rebalancer_into_the_quote_token() {
    let bars: Vec<Bar> = (0..120i32)
        .map(|i| {
            // Flat, then a steady fall of 1 % per bar from bar 20.
            let p = 1000.0 * 0.99f64.powi((i - 20).max(0));
            Bar {
                ts: i64::from(i) * 3600,
                open: p,
                high: p,
                low: p,
                close: p,
                volume: 1.0,
            }
        })
        .collect();
    let limits = defai::core::RiskLimits {
        max_drawdown_pct: Some(10.0),
        ..defai::core::RiskLimits::permissive()
    };
    let cfg = RebalanceConfig::default();
    let r =
        defai::rebalance::backtest_with_limits(&bars, 1, [0.4, 0.3, 0.3], &cfg, 10_000.0, limits)
            .await
            .unwrap();
    assert_eq!(
        r.kill_switch.state,
        defai::core::SwitchState::Halted,
        "{r:?}"
    );
    let reason = r.kill_switch.reason.clone().unwrap_or_default();
    assert!(reason.contains("drawdown"), "{r:?}");
    for asset in ["WETH", "DVT"] {
        let left: f64 = r.balances.get(asset).map_or(0.0, |v| v.parse().unwrap());
        assert!(
            left * 1000.0 < 0.01,
            "{asset} left after the flatten: {r:?}"
        );
    }
    assert!(
        r.end_equity < 10_000.0 * 0.9 && r.end_equity > 10_000.0 * 0.7,
        "{r:?}"
    );
}

/// A model that always says the same probability, for the tilt tests.
struct Constant(f64);

impl defai::models::ProbabilityModel for Constant {
    fn probability(&self, _: &[f64]) -> Result<f64, defai::models::ModelError> {
        Ok(self.0)
    }
    fn model_id(&self) -> &str {
        "constant"
    }
}

fn tilted(p: f64, strength: f64) -> defai::strategies::Rebalancer {
    use defai::core::amount::Token;
    let usd = Token::new("dUSD", 6);
    let assets = vec![
        (Token::new("WETH", 18), 0.4),
        (Token::new("DVT", 18), 0.3),
        (usd.clone(), 0.3),
    ];
    defai::strategies::Rebalancer::new(assets, &usd, RebalanceConfig::default())
        .unwrap()
        .with_model(Box::new(Constant(p)), strength)
        .unwrap()
}

/// A model sure that every asset rises (p = 1, strength 0.2) moves WETH to 0.6 and DVT to 0.5
/// before renormalising (0.6 / 0.5 / 0.3 → 43 / 36 / 21 %): the agent holds less dUSD than the
/// untilted 30 %, and every asset's probability after the warm-up is a decision naming the
/// model.
#[tokio::test]
async fn a_model_tilt_moves_the_targets_toward_the_assets_it_expects_to_rise() {
    use defai::core::RiskLimits;
    let bars = &common::bundled_bars()[..2_000];
    let r = defai::rebalance::backtest_strategy(
        bars,
        7,
        tilted(1.0, 0.2),
        10_000.0,
        RiskLimits::permissive(),
    )
    .await
    .unwrap();
    assert_eq!(r.model.as_deref(), Some("constant"));
    assert_eq!(r.model_decisions, 2 * (2_000 - 72), "{r:?}");
    let plain = defai::rebalance::backtest(
        bars,
        7,
        [0.4, 0.3, 0.3],
        &RebalanceConfig::default(),
        10_000.0,
    )
    .await
    .unwrap();
    assert_eq!((plain.model.as_deref(), plain.model_decisions), (None, 0));
    let usd =
        |r: &defai::rebalance::RebalanceReport| -> f64 { r.balances["dUSD"].parse().unwrap() };
    let (share, plain_share) = (usd(&r) / r.end_equity, usd(&plain) / plain.end_equity);
    assert!(
        (share - 0.3 / 1.4).abs() < 0.05,
        "dUSD share {share}: {r:?}"
    );
    assert!(
        share < plain_share - 0.05,
        "tilted {share} against untilted {plain_share}"
    );
}

/// An unusable model output (NaN) is a strategy fault that trips the kill switch at the first
/// bar the model sees (after the 72-bar warm-up): no decision is recorded from it.
#[tokio::test]
async fn a_model_tilt_that_outputs_nan_halts_the_rebalancer() {
    use defai::core::RiskLimits;
    let bars = &common::bundled_bars()[..500];
    let r = defai::rebalance::backtest_strategy(
        bars,
        7,
        tilted(f64::NAN, 0.1),
        10_000.0,
        RiskLimits::permissive(),
    )
    .await
    .unwrap();
    assert_ne!(
        r.kill_switch.state,
        defai::core::SwitchState::Active,
        "{r:?}"
    );
    assert!(
        r.kill_switch
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("model probability"),
        "{r:?}"
    );
    assert_eq!(r.model_decisions, 0, "{r:?}");
}

#[test]
fn a_tilt_strength_outside_zero_to_a_half_is_refused() {
    let usd = defai::core::amount::Token::new("dUSD", 6);
    let r = defai::strategies::Rebalancer::new(
        vec![(usd.clone(), 1.0)],
        &usd,
        RebalanceConfig::default(),
    )
    .unwrap()
    .with_model(Box::new(Constant(0.5)), 0.7);
    assert!(r.unwrap_err().contains("0.7"));
}
