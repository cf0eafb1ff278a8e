//! Prediction-market runs: the offline evaluation on generated markets (paper FPMM) and its
//! benchmark.

use agent_core::amount::{Rounding, limit_units_from_f64};
use agent_core::{
    Agent, BetLimits, Betting, Bettor, EventReplay, LimitGate, MarketEvent, Pair, Portfolio,
    RiskLimits, Token,
};
use connectors::paper_fpmm::{Evaluation, GenConfig, PaperFpmmVenue};
use models::calibration::FeatureProbability;
use strategies::{KellyBettor, KellyConfig};

/// Bet limits matching a Kelly config (the gate enforces what the strategy promised), in exact
/// collateral units and failing closed: the maxima round down, the floor rounds up, and a value
/// that cannot be represented is an error naming the parameter, never a limit switched off.
/// The slippage limit is fixed at 100 bps; the price-impact limit is the config's, in bps.
///
/// # Errors
/// A message naming the `strategy.params` key at fault when `max_bet`,
/// `max_market_exposure` or `floor_balance` is negative, not finite or too large for the
/// collateral's units, or when `max_bet` or `max_market_exposure` rounds down to zero units
/// (it would refuse every bet): fix that parameter in the config.
pub fn bet_limits(cfg: &KellyConfig, collateral: &Token) -> Result<BetLimits, String> {
    let d = collateral.decimals();
    let units = |v: f64, key: &str, rounding: Rounding| {
        limit_units_from_f64(v, d, rounding).map_err(|e| {
            format!("strategy.params.{key}: {e} (collateral {collateral}, {d} decimals)")
        })
    };
    let max_bet = units(cfg.max_bet, "max_bet", Rounding::Down)?;
    let max_market_exposure = units(
        cfg.max_market_exposure,
        "max_market_exposure",
        Rounding::Down,
    )?;
    for (v, key) in [
        (max_bet, "max_bet"),
        (max_market_exposure, "max_market_exposure"),
    ] {
        if v.is_zero() {
            return Err(format!(
                "strategy.params.{key}: rounds to zero units of {collateral} ({d} decimals)"
            ));
        }
    }
    Ok(BetLimits {
        max_bet: Some(max_bet),
        floor_balance: units(cfg.floor_balance, "floor_balance", Rounding::Up)?,
        max_market_exposure: Some(max_market_exposure),
        max_slippage_bps: 100,
        max_price_impact_bps: cfg.max_price_impact_bps,
    })
}

/// Runs `kelly_bettor` over generated markets until all resolve and are redeemed: one cycle
/// per simulated hour through the one agent loop (the bet limits, the kill switch, the journal
/// stream), the paper FPMM venue's clock following the cycles.
///
/// # Errors
/// The Kelly config's limits cannot be represented, or the agent stops with an error.
pub async fn evaluate(
    seed: u64,
    gen_cfg: &GenConfig,
    kelly: &KellyConfig,
    bankroll: f64,
) -> Result<(Evaluation, f64), agent_core::VenueError> {
    let usd = Token::new("dUSD", 6);
    let venue = PaperFpmmVenue::generated(seed, gen_cfg, usd.clone(), bankroll);
    // Cycles 0 ..= the last resolution: the last one redeems what it resolved.
    let last = venue
        .markets_sim()
        .iter()
        .map(|m| m.resolves_at_cycle)
        .max()
        .unwrap_or(0);
    let ticks = (0..=last)
        .map(|c| MarketEvent::Tick {
            ts: c as i64 * venue.cycle_seconds,
        })
        .collect();
    let strategy = KellyBettor::new(
        Box::new(FeatureProbability::new(0)),
        usd.clone(),
        kelly.clone(),
    );
    let limits = bet_limits(kelly, &usd).map_err(agent_core::VenueError::Rejected)?;
    let agent = Agent::new(
        Pair::new(Token::new("positions", usd.decimals()), usd.clone()),
        EventReplay::new(ticks),
        Betting(venue),
        Box::new(Bettor::new(Box::new(strategy))),
        Portfolio::new(),
    )
    .with_gate(Box::new(LimitGate::new(RiskLimits::permissive())))
    .with_bet_limits(limits);
    let started = std::time::Instant::now();
    let (report, Betting(venue)) = agent
        .run_keeping_venue()
        .await
        .map_err(|e| agent_core::VenueError::Rejected(e.to_string()))?;
    let cycles_per_s = report.bars as f64 / started.elapsed().as_secs_f64();
    let eval = Evaluation::summarize(
        &venue,
        report.start_equity,
        report.portfolio.balance(&usd),
        report.bets.len(),
        report.redeemed,
        report.bars,
    );
    Ok((eval, cycles_per_s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_core::U256;

    #[test]
    fn bet_limits_round_toward_strict_and_never_switch_off() {
        let usd = Token::new("dUSD", 6);
        let cfg = KellyConfig {
            max_bet: 100.1234567,
            floor_balance: 50.0000001,
            max_market_exposure: 250.9999999,
            ..KellyConfig::default()
        };
        let l = bet_limits(&cfg, &usd).unwrap();
        assert_eq!(
            l.max_bet,
            Some(U256::from(100_123_456u64)),
            "a maximum rounds down"
        );
        assert_eq!(
            l.floor_balance,
            U256::from(50_000_001u64),
            "a floor rounds up"
        );
        assert_eq!(l.max_market_exposure, Some(U256::from(250_999_999u64)));
        let tiny = KellyConfig {
            max_bet: 0.0000001,
            min_bet: 0.00000001,
            ..KellyConfig::default()
        };
        let err = bet_limits(&tiny, &usd).unwrap_err();
        assert!(err.contains("strategy.params.max_bet"), "{err}");
        let huge = KellyConfig {
            floor_balance: 1e300,
            ..KellyConfig::default()
        };
        let err = bet_limits(&huge, &usd).unwrap_err();
        assert!(err.contains("strategy.params.floor_balance"), "{err}");
    }
}
