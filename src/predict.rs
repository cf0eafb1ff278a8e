//! Prediction-market runs: the offline evaluation on generated markets (paper FPMM) and its
//! benchmark.

use agent_core::amount::units_from_f64;
use agent_core::{BetGate, BetLimits, PredictionAgent, Token};
use connectors::paper_fpmm::{Evaluation, GenConfig, PaperFpmmVenue};
use models::calibration::FeatureProbability;
use strategies::{KellyBettor, KellyConfig};

/// Bet limits matching a Kelly config (the gate enforces what the strategy promised).
pub fn bet_limits(cfg: &KellyConfig, collateral: &Token) -> BetLimits {
    let d = collateral.decimals();
    BetLimits {
        max_bet: units_from_f64(cfg.max_bet, d).ok(),
        floor_balance: units_from_f64(cfg.floor_balance, d).unwrap_or_default(),
        max_market_exposure: units_from_f64(cfg.max_market_exposure, d).ok(),
        max_slippage_bps: 100,
    }
}

/// Runs `kelly_bettor` over generated markets until all resolve and are redeemed.
pub async fn evaluate(
    seed: u64,
    gen_cfg: &GenConfig,
    kelly: &KellyConfig,
    bankroll: f64,
) -> Result<(Evaluation, f64), agent_core::VenueError> {
    let usd = Token::new("dUSD", 6);
    let venue = PaperFpmmVenue::generated(seed, gen_cfg, usd.clone(), bankroll);
    let strategy = KellyBettor::new(
        Box::new(FeatureProbability::new(0)),
        usd.clone(),
        kelly.clone(),
    );
    let gate = BetGate {
        limits: bet_limits(kelly, &usd),
    };
    let mut agent = PredictionAgent::new(venue, Box::new(strategy), gate);
    let started = std::time::Instant::now();
    let mut cycles = 0u64;
    loop {
        let now = agent.venue_mut().now();
        agent.cycle(now).await?;
        cycles += 1;
        if agent.venue_mut().all_resolved() && cycles > 1 {
            // One more cycle has redeemed everything.
            break;
        }
        agent.venue_mut().advance();
    }
    let cycles_per_s = cycles as f64 / started.elapsed().as_secs_f64();
    let (report, _, venue) = agent.finish_keep_venue().await?;
    let eval = Evaluation::summarize(
        &venue,
        report.start_collateral,
        report.end_collateral,
        report.bets.len(),
        report.redeemed,
        report.cycles,
    );
    Ok((eval, cycles_per_s))
}
