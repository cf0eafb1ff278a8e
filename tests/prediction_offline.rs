//! The prediction-market agent offline: generated markets, paper FPMM fills, the bet gate.

use defai::connectors::paper_fpmm::{GenConfig, PaperFpmmVenue};
use defai::core::prediction::{BettingStrategy, MarketView};
use defai::core::{
    Bet, BetGate, BetLimits, PredictionAgent, PredictionVenue, StrategyError, Token, U256,
};
use defai::strategies::KellyConfig;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_offline_evaluation_is_deterministic_and_an_informed_bettor_beats_trusting_the_market() {
    let rt = rt();
    let kelly = KellyConfig::default();
    let informed = GenConfig::default();
    let run = |seed: u64, g: &GenConfig| {
        rt.block_on(defai::predict::evaluate(seed, g, &kelly, 1000.0))
            .unwrap()
            .0
    };
    let a = run(11, &informed);
    let b = run(11, &informed);
    assert_eq!(
        (a.bets, a.end_bankroll.to_bits()),
        (b.bets, b.end_bankroll.to_bits()),
        "same seed, same bets"
    );
    assert!(a.cycles > 1 && a.redeemed > 0.0);

    // Forecasts less noisy than the market: over several seeds the bettor makes money and its
    // forecasts score better than the market's prices.
    let seeds = 1..=6u64;
    let informed_runs: Vec<_> = seeds.clone().map(|s| run(s, &informed)).collect();
    let mean = |v: &[defai::connectors::paper_fpmm::Evaluation]| {
        v.iter().map(|e| e.return_pct).sum::<f64>() / v.len() as f64
    };
    assert!(
        mean(&informed_runs) > 10.0,
        "{:?}",
        informed_runs
            .iter()
            .map(|e| e.return_pct)
            .collect::<Vec<_>>()
    );
    let brier = |f: fn(&defai::connectors::paper_fpmm::Evaluation) -> f64| {
        informed_runs.iter().map(f).sum::<f64>()
    };
    assert!(brier(|e| e.brier_forecast) < brier(|e| e.brier_market));

    // Forecasts worse than the market: it should not make money that way.
    let noisy = GenConfig {
        forecast_noise: 1.5,
        ..GenConfig::default()
    };
    let noisy_runs: Vec<_> = seeds.map(|s| run(s, &noisy)).collect();
    assert!(mean(&noisy_runs) < mean(&informed_runs));
    assert!(
        mean(&noisy_runs) < 5.0,
        "{:?}",
        noisy_runs.iter().map(|e| e.return_pct).collect::<Vec<_>>()
    );
}

/// Bets 500 dUSD on outcome 0 of every market.
struct BigBettor;
impl BettingStrategy for BigBettor {
    fn name(&self) -> &str {
        "big"
    }
    fn on_market(
        &mut self,
        m: &MarketView,
        _: U256,
        _: U256,
        _: i64,
    ) -> Result<Option<Bet>, StrategyError> {
        Ok(Some(Bet {
            market: m.id.clone(),
            outcome: 0,
            investment: U256::from(500_000_000u64),
            collateral: Token::new("dUSD", 6),
        }))
    }
}

#[test]
fn a_bet_beyond_max_bet_is_refused_by_the_gate_and_nothing_is_bought() {
    let rt = rt();
    let usd = Token::new("dUSD", 6);
    let venue = PaperFpmmVenue::generated(
        3,
        &GenConfig {
            markets: 5,
            ..GenConfig::default()
        },
        usd,
        10_000.0,
    );
    let gate = BetGate {
        limits: BetLimits {
            max_bet: Some(U256::from(100_000_000u64)),
            ..BetLimits::default()
        },
    };
    let mut agent = PredictionAgent::new(venue, Box::new(BigBettor), gate);
    rt.block_on(agent.cycle(0)).unwrap();
    let (report, _) = rt.block_on(agent.finish()).unwrap();
    assert_eq!(report.bets.len(), 0);
    assert_eq!(report.risk.refused, 5);
    assert_eq!(report.risk.refused_by_reason.get("max_bet"), Some(&5));
    assert_eq!(report.end_collateral, report.start_collateral);
}

#[test]
fn a_bet_that_moves_the_outcome_price_past_the_impact_limit_is_refused() {
    let rt = rt();
    let usd = Token::new("dUSD", 6);
    let venue = PaperFpmmVenue::generated(
        4,
        &GenConfig {
            markets: 5,
            ..GenConfig::default()
        },
        usd,
        10_000.0,
    );
    // 500 a bet on the generated markets: far past 100 bps of price impact; on today's main
    // every one of them was approved and filled.
    let mut agent = PredictionAgent::new(venue, Box::new(BigBettor), BetGate::default());
    let markets = rt.block_on(agent.venue_mut().markets()).unwrap();
    rt.block_on(agent.cycle(0)).unwrap();
    let (report, _) = rt.block_on(agent.finish()).unwrap();
    assert_eq!(report.bets.len(), 0, "{:?}", report.bets);
    assert_eq!(report.risk.refused_by_reason.get("price_impact"), Some(&5));
    // And each was indeed over the limit on its market, by the contract's own math.
    for m in markets.iter().filter(|m| !m.resolved) {
        let (ok, bps) = defai::core::risk::impact::bet_impact(
            U256::from(500_000_000u64),
            0,
            &m.pool,
            m.fee,
            100,
        )
        .unwrap();
        assert!(!ok && bps > U256::from(100u32), "{bps}");
    }
}

#[test]
fn the_floor_balance_and_per_market_exposure_hold() {
    let rt = rt();
    let usd = Token::new("dUSD", 6);
    let venue = PaperFpmmVenue::generated(
        4,
        &GenConfig {
            markets: 5,
            ..GenConfig::default()
        },
        usd,
        1_200.0,
    );
    // 500 a bet, floor 100: two bets fit (1,200 → 700 → 200), the third would leave 200 − 500.
    // The floor is under test here, not the price impact of a 500 bet.
    let gate = BetGate {
        limits: BetLimits {
            floor_balance: U256::from(100_000_000u64),
            max_price_impact_bps: None,
            ..BetLimits::default()
        },
    };
    let mut agent = PredictionAgent::new(venue, Box::new(BigBettor), gate);
    rt.block_on(agent.cycle(0)).unwrap();
    let (report, _) = rt.block_on(agent.finish()).unwrap();
    assert_eq!(report.bets.len(), 2);
    assert_eq!(report.risk.refused_by_reason.get("floor_balance"), Some(&3));
    assert_eq!(report.end_collateral, U256::from(200_000_000u64));
}

/// A restarted bettor resumes from its journal: the same cycle's intents are not placed again,
/// and each market's exposure counts what was bet before, so the limit holds across lives.
#[test]
fn a_restart_from_the_journal_neither_repeats_a_bet_nor_exceeds_a_market_exposure() {
    use defai::core::journal::{Journal, JournalObserver};
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let usd = Token::new("dUSD", 6);
    let venue = PaperFpmmVenue::generated(
        4,
        &GenConfig {
            markets: 3,
            ..GenConfig::default()
        },
        usd,
        10_000.0,
    );
    // 500 a bet, at most 600 per market: one bet per market, ever.
    let gate = || BetGate {
        limits: BetLimits {
            max_market_exposure: Some(U256::from(600_000_000u64)),
            max_price_impact_bps: None,
            ..BetLimits::default()
        },
    };
    let journal = || Box::new(JournalObserver::new(Journal::open(&path).unwrap()));
    let mut agent =
        PredictionAgent::new(venue, Box::new(BigBettor), gate()).with_observer(journal());
    rt.block_on(agent.cycle(100)).unwrap();
    let (report, _, venue) = rt.block_on(agent.finish_keep_venue()).unwrap();
    assert_eq!(report.bets.len(), 3, "one bet on each market");

    let resume = Journal::open(&path).unwrap().resume().unwrap();
    assert_eq!(resume.handled.len(), 3);
    assert_eq!(resume.bet_exposure.len(), 3);
    assert!(
        resume
            .bet_exposure
            .values()
            .all(|v| *v == U256::from(500_000_000u64))
    );
    // The same cycle again (the chain's head did not move), then a later one.
    let mut agent = PredictionAgent::new(venue, Box::new(BigBettor), gate())
        .with_observer(journal())
        .resuming(resume.clone());
    rt.block_on(agent.cycle(100)).unwrap();
    rt.block_on(agent.cycle(200)).unwrap();
    let (report, _) = rt.block_on(agent.finish()).unwrap();
    assert_eq!(report.bets.len(), 0, "{:?}", report.bets);
    assert_eq!(
        report.risk.refused_by_reason.get("max_market_exposure"),
        Some(&3),
        "{:?}",
        report.risk
    );

    // Without the journal, the same agent would bet again: the resume is what prevents it.
    let venue = PaperFpmmVenue::generated(
        4,
        &GenConfig {
            markets: 3,
            ..GenConfig::default()
        },
        Token::new("dUSD", 6),
        10_000.0,
    );
    let mut fresh = PredictionAgent::new(venue, Box::new(BigBettor), gate());
    rt.block_on(fresh.cycle(200)).unwrap();
    assert_eq!(rt.block_on(fresh.finish()).unwrap().0.bets.len(), 3);
}
