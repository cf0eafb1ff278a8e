//! Rebalancing backtest: `rebalancer` over the bundled ETH/USD hourly series plus a *generated*
//! second volatile token (DVT) whose log returns are correlated with ETH's (seeded; said so in
//! every report). It runs through the one agent loop like every backtest: a
//! [`MarketEvent::Markets`] per bar with both pairs, the paper AMM venue of each pair (Uniswap V2
//! integer math, 0.3 % fee, re-centred on each bar's close, gas at the WETH price) behind one
//! [`VenueSet`], the risk gate and the kill switch.

use std::sync::{Arc, Mutex};

use agent_core::amount::{Token, U256, to_f64};
use agent_core::{
    Agent, AuditError, AuditEvent, Bar, EventReplay, LimitGate, MarketEvent, MarketSet, Observer,
    Pair, PairMarket, Portfolio, RiskLimits, VenueSet,
};
use connectors::paper::{PaperAmmConfig, PaperVenue};
use serde::Serialize;
use strategies::rebalancer::{Holding, RebalanceConfig, Rebalancer, tracking_error};
/// A second price series: log returns `rho`-correlated with `bars`' closes, vol scaled by `vol`.
pub fn correlated_series(bars: &[Bar], seed: u64, rho: f64, vol: f64, start: f64) -> Vec<f64> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut normal = || {
        let u1 = rng.f64().max(f64::MIN_POSITIVE);
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * rng.f64()).cos()
    };
    let mut out = Vec::with_capacity(bars.len());
    let mut p = start;
    out.push(p);
    for w in bars.windows(2) {
        let r = (w[1].close / w[0].close).ln();
        let idio = normal() * r.abs().max(0.005);
        p *= (vol * (rho * r + (1.0 - rho * rho).sqrt() * idio)).exp();
        out.push(p);
    }
    out
}

/// What [`backtest`] measured (serialized as the rebalancing report's JSON). Money is in whole
/// dUSD (floats, for reports), returns and tracking errors in percent.
#[derive(Debug, Clone, Serialize)]
pub struct RebalanceReport {
    /// Bars of the series replayed (one event with both pairs each).
    pub bars: usize,
    /// How the second token's prices were made (correlation, scale, seed): they are generated,
    /// not market data.
    pub second_series: String,
    /// The target weight of each token (WETH, DVT, dUSD), fractions summing to 1.
    pub targets: Vec<(String, f64)>,
    /// Equity at the first bar's close before any trade (the `start_quote` given), dUSD.
    pub start_equity: f64,
    /// Equity at the last bar's close, dUSD.
    pub end_equity: f64,
    /// `(end_equity / start_equity - 1) * 100`, percent.
    pub return_pct: f64,
    /// The return, percent, of the mix held after the first bar's trades kept unchanged to the
    /// end (never rebalanced), valued at the last prices.
    pub hold_return_pct: f64,
    /// Legs filled.
    pub trades: u64,
    /// Bars on which the strategy proposed legs.
    pub rebalances: u64,
    /// Value sold (dUSD at each bar's close) over the average equity: a ratio, 1.0 = the
    /// whole portfolio traded once.
    pub turnover: f64,
    /// Swap fees paid, dUSD.
    pub fees_paid: f64,
    /// Gas paid, valued in dUSD.
    pub gas_paid: f64,
    /// Mean over bars (all but the first) of the RMS weight error after that bar's trades,
    /// percent.
    pub tracking_error_pct: f64,
    /// The largest of those RMS weight errors, percent.
    pub max_tracking_error_pct: f64,
    /// What the risk gate decided on the legs.
    pub risk: crate::engine::RiskSummary,
    /// Legs the venue could not fill.
    pub execution_failures: u64,
    /// The kill switch at the end (a loss limit's breach flattens into dUSD, then halts).
    pub kill_switch: crate::engine::KillSwitchSummary,
    /// What the portfolio holds at the end, decimal per token.
    pub balances: std::collections::BTreeMap<String, String>,
    /// The content hash of the model tilting the targets, if one did.
    pub model: Option<String>,
    /// The model's decisions in the audit stream (one per asset per bar once warmed up).
    pub model_decisions: u64,
}

/// The three tokens of the backtest, in its order: WETH (18 decimals), DVT (18) and the quote
/// dUSD (6).
pub fn tokens() -> [Token; 3] {
    [
        Token::new("WETH", 18),
        Token::new("DVT", 18),
        Token::new("dUSD", 6),
    ]
}

/// Follows the audit stream to measure what the report needs beyond the agent's own report:
/// the weights after every bar's trades (tracking error), the traded value and the starting mix.
#[derive(Debug, Default)]
struct Tracker {
    targets: Vec<(Token, f64)>,
    prices: Vec<f64>,
    balances: Vec<U256>,
    traded: f64,
    equity_sum: f64,
    marks: u64,
    te_sum: f64,
    te_max: f64,
    first_mix: Option<Vec<f64>>,
    decisions: u64,
}

impl Tracker {
    /// The value at the last prices of the mix held after the first bar's trades (0 before
    /// any mark).
    fn hold_value(&self) -> f64 {
        self.first_mix
            .as_ref()
            .map(|m| m.iter().zip(&self.prices).map(|(a, p)| a * p).sum())
            .unwrap_or(0.0)
    }

    fn holdings(&self) -> Vec<Holding> {
        self.targets
            .iter()
            .zip(&self.prices)
            .zip(&self.balances)
            .map(|(((token, target), price), balance)| Holding {
                token: token.clone(),
                balance: *balance,
                price: *price,
                target: *target,
            })
            .collect()
    }
}

/// The shared [`Tracker`] as an observer of the agent.
struct TrackerObserver(Arc<Mutex<Tracker>>);

impl Observer for TrackerObserver {
    fn on_audit(&mut self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
        let Ok(mut t) = self.0.lock() else {
            return Ok(());
        };
        let t = &mut *t;
        match event {
            AuditEvent::Market { event, .. } => {
                if let Some(set) = event.markets() {
                    for (k, (token, _)) in t.targets.iter().enumerate() {
                        if let Some(m) = set.of_base(token) {
                            t.prices[k] = m.bar.close;
                        }
                    }
                }
            }
            AuditEvent::Portfolio { balances, .. } => {
                for (k, (token, _)) in t.targets.iter().enumerate() {
                    t.balances[k] = balances
                        .iter()
                        .find(|(b, _)| b == token)
                        .map_or(U256::ZERO, |(_, a)| *a);
                }
            }
            AuditEvent::Decision { .. } => t.decisions += 1,
            AuditEvent::Fill(f) => {
                if let Some(k) = t.targets.iter().position(|(tk, _)| tk == &f.sell) {
                    t.traded += to_f64(f.amount_in, f.sell.decimals()) * t.prices[k];
                }
            }
            AuditEvent::Mark { equity, .. } => {
                let h = t.holdings();
                let te = tracking_error(&h) * 100.0;
                if t.marks > 0 {
                    t.te_sum += te;
                    t.te_max = t.te_max.max(te);
                }
                t.marks += 1;
                t.equity_sum += equity;
                if t.first_mix.is_none() {
                    t.first_mix = Some(
                        h.iter()
                            .map(|x| to_f64(x.balance, x.token.decimals()))
                            .collect(),
                    );
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Runs the rebalancer over the series with the given targets (WETH, DVT, dUSD), starting from
/// `start_quote` dUSD. The gate has the default limits without the loss, gas-price, trade-rate
/// and price-deviation limits ([`RiskLimits::permissive`]: a research run); the slippage guard,
/// the position caps and the 100 bps price-impact limit apply to every leg.
///
/// # Errors
/// The series is empty, a target is refused by the strategy, or the agent stops with an error.
pub async fn backtest(
    bars: &[Bar],
    seed: u64,
    targets: [f64; 3],
    cfg: &RebalanceConfig,
    start_quote: f64,
) -> Result<RebalanceReport, String> {
    backtest_with_limits(
        bars,
        seed,
        targets,
        cfg,
        start_quote,
        RiskLimits::permissive(),
    )
    .await
}

/// [`backtest`] under the risk `limits` given (the loss limits among them: a breach trips the
/// kill switch, which flattens every asset into dUSD and halts).
///
/// # Errors
/// As [`backtest`].
pub async fn backtest_with_limits(
    bars: &[Bar],
    seed: u64,
    targets: [f64; 3],
    cfg: &RebalanceConfig,
    start_quote: f64,
    limits: RiskLimits,
) -> Result<RebalanceReport, String> {
    let [weth, dvt, usd] = tokens();
    let strategy = Rebalancer::new(
        vec![
            (weth, targets[0]),
            (dvt, targets[1]),
            (usd.clone(), targets[2]),
        ],
        &usd,
        cfg.clone(),
    )?;
    backtest_strategy(bars, seed, strategy, start_quote, limits).await
}

/// [`backtest`] of a rebalancer built by the caller — e.g. one whose targets a model tilts
/// ([`Rebalancer::with_model`]) — holding WETH (18 decimals), DVT (18) and the quote dUSD (6)
/// in that order.
///
/// # Errors
/// The strategy holds other tokens than those three, or as [`backtest`].
pub async fn backtest_strategy(
    bars: &[Bar],
    seed: u64,
    strategy: Rebalancer,
    start_quote: f64,
    limits: RiskLimits,
) -> Result<RebalanceReport, String> {
    let assets = strategy.assets().to_vec();
    check_assets(&assets)?;
    let targets: Vec<f64> = assets.iter().map(|(_, w)| *w).collect();
    let model = strategy.model_id().map(str::to_string);
    let dvt = correlated_series(bars, seed, 0.6, 1.3, 2.0);
    let [weth, dvt_token, usd] = tokens();
    let weth_pair = Pair::new(weth.clone(), usd.clone());
    let dvt_pair = Pair::new(dvt_token.clone(), usd.clone());
    let events = market_events(bars, &dvt, &weth_pair, &dvt_pair);
    let venues = paper_venues(&weth_pair, &dvt_pair, &weth)?;
    let stats = strategy.stats();
    let tracker = Arc::new(Mutex::new(Tracker {
        prices: vec![1.0; 3],
        balances: vec![U256::ZERO; 3],
        targets: assets,
        ..Tracker::default()
    }));
    let start = U256::from((start_quote * 1e6).max(0.0) as u128);
    let report = Agent::new(
        weth_pair,
        EventReplay::new(events),
        venues,
        Box::new(strategy),
        Portfolio::with_balances([(usd.clone(), start)]),
    )
    .with_pairs([dvt_pair])?
    .with_gate(Box::new(LimitGate::new(limits)))
    .with_observer(Box::new(TrackerObserver(tracker.clone())))
    .run()
    .await
    .map_err(|e| e.to_string())?;
    let t = tracker.lock().map_err(|e| e.to_string())?;
    let stats = stats.lock().map_err(|e| e.to_string())?;
    let end_equity = usd.to_f64(report.end_equity);
    let start_equity = usd.to_f64(report.start_equity);
    let hold_end = t.hold_value();
    Ok(RebalanceReport {
        bars: bars.len(),
        second_series: format!(
            "DVT generated: log returns 0.6-correlated with ETH, 1.3× its scale, seed {seed}"
        ),
        targets: tokens()
            .iter()
            .zip(&targets)
            .map(|(t, w)| (t.symbol().to_string(), *w))
            .collect(),
        start_equity,
        end_equity,
        return_pct: (end_equity / start_equity - 1.0) * 100.0,
        hold_return_pct: (hold_end / start_equity - 1.0) * 100.0,
        trades: report.fills,
        rebalances: stats.rebalances,
        turnover: t.traded / (t.equity_sum / t.marks.max(1) as f64),
        fees_paid: usd.to_f64(report.portfolio.fees_quote()),
        gas_paid: usd.to_f64(report.portfolio.gas_quote()),
        tracking_error_pct: t.te_sum / (t.marks.saturating_sub(1)).max(1) as f64,
        max_tracking_error_pct: t.te_max,
        risk: (&report.risk).into(),
        execution_failures: report.execution_failures,
        kill_switch: (&report.kill_switch).into(),
        balances: report
            .portfolio
            .balances()
            .iter()
            .map(|(t, a)| (t.symbol().to_string(), t.format(*a)))
            .collect(),
        model,
        model_decisions: t.decisions,
    })
}

/// Refuses a strategy that does not hold WETH, DVT and dUSD in that order (the backtest's
/// pairs and venues are those tokens').
fn check_assets(assets: &[(Token, f64)]) -> Result<(), String> {
    if assets.iter().map(|(t, _)| t).ne(tokens().iter()) {
        return Err(format!(
            "the rebalancing backtest holds WETH, DVT and dUSD in that order; the strategy holds {}",
            assets
                .iter()
                .map(|(t, _)| t.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(())
}

/// One event per bar with both pairs: WETH/dUSD at the bar itself, DVT/dUSD a flat bar at
/// its generated price `dvt`.
fn market_events(bars: &[Bar], dvt: &[f64], weth_pair: &Pair, dvt_pair: &Pair) -> Vec<MarketEvent> {
    bars.iter()
        .zip(dvt)
        .map(|(bar, p)| {
            let flat = Bar {
                ts: bar.ts,
                open: *p,
                high: *p,
                low: *p,
                close: *p,
                volume: 0.0,
            };
            MarketEvent::Markets(Box::new(MarketSet {
                ts: bar.ts,
                markets: vec![
                    PairMarket {
                        pair: weth_pair.clone(),
                        bar: *bar,
                        pool: None,
                        venue: None,
                    },
                    PairMarket {
                        pair: dvt_pair.clone(),
                        bar: flat,
                        pool: None,
                        venue: None,
                    },
                ],
            }))
        })
        .collect()
}

/// The paper AMM venue of each pair behind one venue set; DVT's gas, and the set's gas
/// estimate, priced at WETH.
fn paper_venues(
    weth_pair: &Pair,
    dvt_pair: &Pair,
    weth: &Token,
) -> Result<VenueSet<PaperVenue>, String> {
    let paper = PaperAmmConfig::default_for(weth_pair);
    Ok(VenueSet::new(vec![
        (
            weth_pair.clone(),
            PaperVenue::new(weth_pair.clone(), paper.clone()),
        ),
        (
            dvt_pair.clone(),
            PaperVenue::new(dvt_pair.clone(), paper).gas_priced_by(weth.clone()),
        ),
    ])?
    .gas_estimate_from(weth))
}
