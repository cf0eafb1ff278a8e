//! A paper prediction venue: binary FPMM markets filled with the contract's exact integer math
//! ([`agent_core::fpmm`]), and a seeded generator of markets with known true probabilities, a
//! noisy market price and a (less) noisy forecast — for offline evaluation of betting
//! strategies against "trust the market price".

use std::collections::BTreeMap;

use agent_core::amount::{Token, U256, to_f64};
use agent_core::fpmm::{calc_buy_amount, one, pool_after_buy, prices};
use agent_core::prediction::{BetFill, MarketView, PredictionVenue};
use agent_core::venue::VenueError;
use agent_core::{Bet, IntentId};

/// One simulated market.
#[derive(Debug, Clone, PartialEq)]
pub struct SimMarket {
    /// `sim-0000`, `sim-0001`, ...: the market id bets name.
    pub id: String,
    /// The FPMM's balance of each outcome token (outcome 0, outcome 1), collateral units.
    pub pool: Vec<U256>,
    /// LP fee, 1e18 = 100 %.
    pub fee: U256,
    /// The probability outcome 0 happens.
    pub true_p: f64,
    /// What an informed forecaster says (noisy around `true_p`): the model's feature.
    pub forecast: f64,
    /// The market's price of outcome 0 at creation.
    pub market_price: f64,
    /// The cycle (from 1) at whose [`PaperFpmmVenue::advance`] the winner is drawn.
    pub resolves_at_cycle: u64,
    /// When trading closes, venue seconds: `resolves_at_cycle × 3600`.
    pub closes_at: i64,
    /// Set at resolution.
    pub winner: Option<usize>,
}

/// How markets are generated.
#[derive(Debug, Clone, PartialEq)]
pub struct GenConfig {
    /// Markets to generate.
    pub markets: usize,
    /// Collateral on each side at creation, whole tokens.
    pub liquidity: f64,
    /// LP fee, fraction (0.02 = 2 %).
    pub fee: f64,
    /// Std. dev. of the market price's error, in log-odds.
    pub market_noise: f64,
    /// Std. dev. of the forecast's error, in log-odds.
    pub forecast_noise: f64,
    /// Markets resolve uniformly over this many cycles.
    pub horizon_cycles: u64,
}

impl Default for GenConfig {
    fn default() -> Self {
        Self {
            markets: 100,
            liquidity: 1_000.0,
            fee: 0.02,
            market_noise: 0.6,
            forecast_noise: 0.25,
            horizon_cycles: 20,
        }
    }
}

fn normal(rng: &mut fastrand::Rng) -> f64 {
    let u1 = rng.f64().max(f64::MIN_POSITIVE);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * rng.f64()).cos()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

/// Paper FPMM venue over simulated markets.
#[derive(Debug)]
pub struct PaperFpmmVenue {
    collateral: Token,
    balance: U256,
    markets: Vec<SimMarket>,
    holdings: BTreeMap<String, Vec<U256>>,
    cycle: u64,
    rng: fastrand::Rng,
    /// Seconds per cycle (market close times are in these).
    pub cycle_seconds: i64,
}

impl PaperFpmmVenue {
    /// `markets` generated from `seed`; the agent starts with `bankroll` whole tokens.
    pub fn generated(seed: u64, cfg: &GenConfig, collateral: Token, bankroll: f64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let d = collateral.decimals();
        let unit = |v: f64| U256::from((v * 10f64.powi(i32::from(d))).round() as u128);
        let fee = one() * U256::from((cfg.fee * 1e6).round() as u64) / U256::from(1_000_000u64);
        let markets = (0..cfg.markets)
            .map(|i| {
                let true_p = 0.05 + 0.9 * rng.f64();
                let market_price =
                    sigmoid(logit(true_p) + cfg.market_noise * normal(&mut rng)).clamp(0.02, 0.98);
                let forecast = sigmoid(logit(true_p) + cfg.forecast_noise * normal(&mut rng))
                    .clamp(0.01, 0.99);
                // price0 = b1 / (b0 + b1); liquidity on the smaller side.
                let (b0, b1) = if market_price >= 0.5 {
                    (
                        cfg.liquidity * (1.0 - market_price) / market_price,
                        cfg.liquidity,
                    )
                } else {
                    (
                        cfg.liquidity,
                        cfg.liquidity * market_price / (1.0 - market_price),
                    )
                };
                let resolves_at_cycle = 1 + rng.u64(0..cfg.horizon_cycles.max(1));
                SimMarket {
                    id: format!("sim-{i:04}"),
                    pool: vec![unit(b0), unit(b1)],
                    fee,
                    true_p,
                    forecast,
                    market_price,
                    resolves_at_cycle,
                    closes_at: resolves_at_cycle as i64 * 3600,
                    winner: None,
                }
            })
            .collect();
        Self {
            collateral,
            balance: unit(bankroll),
            markets,
            holdings: BTreeMap::new(),
            cycle: 0,
            rng,
            cycle_seconds: 3600,
        }
    }

    /// The simulated markets with their hidden truth (true probability, winner).
    pub fn markets_sim(&self) -> &[SimMarket] {
        &self.markets
    }

    /// Next cycle: markets due resolve, the winner drawn from their true probability.
    pub fn advance(&mut self) -> u64 {
        self.cycle += 1;
        for m in &mut self.markets {
            if m.winner.is_none() && m.resolves_at_cycle <= self.cycle {
                m.winner = Some(if self.rng.f64() < m.true_p { 0 } else { 1 });
            }
        }
        self.cycle
    }

    /// Now, in the venue's time.
    pub fn now(&self) -> i64 {
        self.cycle as i64 * self.cycle_seconds
    }

    /// Whether every market has a winner.
    pub fn all_resolved(&self) -> bool {
        self.markets.iter().all(|m| m.winner.is_some())
    }
}

impl PredictionVenue for PaperFpmmVenue {
    fn name(&self) -> &str {
        "paper_fpmm"
    }

    fn collateral(&self) -> &Token {
        &self.collateral
    }

    async fn markets(&mut self) -> Result<Vec<MarketView>, VenueError> {
        Ok(self
            .markets
            .iter()
            .map(|m| MarketView {
                id: m.id.clone(),
                prices: prices(&m.pool),
                pool: m.pool.clone(),
                fee: m.fee,
                closes_at: Some(m.closes_at),
                resolved: m.winner.is_some(),
                held: self
                    .holdings
                    .get(&m.id)
                    .cloned()
                    .unwrap_or_else(|| vec![U256::ZERO; 2]),
                features: vec![m.forecast],
            })
            .collect())
    }

    async fn quote_bet(&mut self, bet: &Bet) -> Result<U256, VenueError> {
        let m = self
            .markets
            .iter()
            .find(|m| m.id == bet.market)
            .ok_or_else(|| VenueError::Unsupported(format!("no market {}", bet.market)))?;
        calc_buy_amount(bet.investment, bet.outcome, &m.pool, m.fee)
            .map_err(|e| VenueError::Rejected(e.to_string()))
    }

    async fn buy(
        &mut self,
        id: &IntentId,
        bet: &Bet,
        min_tokens: U256,
    ) -> Result<BetFill, VenueError> {
        if bet.investment > self.balance {
            return Err(VenueError::Rejected(format!(
                "bet {} exceeds the balance {}",
                bet.investment, self.balance
            )));
        }
        let m = self
            .markets
            .iter_mut()
            .find(|m| m.id == bet.market)
            .ok_or_else(|| VenueError::Unsupported(format!("no market {}", bet.market)))?;
        if m.winner.is_some() {
            return Err(VenueError::Rejected(format!("market {} is resolved", m.id)));
        }
        let (tokens, pool) = pool_after_buy(bet.investment, bet.outcome, &m.pool, m.fee)
            .map_err(|e| VenueError::Rejected(e.to_string()))?;
        if tokens < min_tokens {
            return Err(VenueError::Slippage {
                min: min_tokens,
                got: tokens,
            });
        }
        m.pool = pool;
        self.balance -= bet.investment;
        let held = self
            .holdings
            .entry(m.id.clone())
            .or_insert_with(|| vec![U256::ZERO; 2]);
        held[bet.outcome] += tokens;
        Ok(BetFill {
            id: id.clone(),
            market: bet.market.clone(),
            outcome: bet.outcome,
            investment: bet.investment,
            tokens,
            gas_native: U256::ZERO,
            tx_hash: None,
        })
    }

    async fn redeem(&mut self) -> Result<U256, VenueError> {
        let mut total = U256::ZERO;
        for m in &self.markets {
            let Some(w) = m.winner else { continue };
            if let Some(held) = self.holdings.remove(&m.id) {
                // A winning outcome token redeems for one collateral unit; losers for nothing.
                total += held[w];
            }
        }
        self.balance += total;
        Ok(total)
    }

    async fn collateral_balance(&mut self) -> Result<U256, VenueError> {
        Ok(self.balance)
    }

    /// Moves the simulation to the event's time: one [`PaperFpmmVenue::advance`] per
    /// `cycle_seconds` passed, each resolving the markets due.
    fn observe(&mut self, event: &agent_core::MarketEvent) {
        if self.cycle_seconds <= 0 {
            return;
        }
        while self.now() < event.ts() {
            self.advance();
        }
    }
}

/// Result of an offline evaluation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Evaluation {
    /// Markets in the venue.
    pub markets: usize,
    /// Bets the strategy placed.
    pub bets: usize,
    /// Bankroll at the start, whole collateral tokens.
    pub start_bankroll: f64,
    /// Bankroll at the end, whole collateral tokens.
    pub end_bankroll: f64,
    /// `(end / start − 1) × 100`, percent (0 when the start is 0).
    pub return_pct: f64,
    /// Brier score of the forecasts the strategy used vs outcomes.
    pub brier_forecast: f64,
    /// Brier score of "trust the market price" (whose return is 0: it never bets).
    pub brier_market: f64,
    /// Collateral redeemed from winning outcome tokens, whole tokens.
    pub redeemed: f64,
    /// Cycles run.
    pub cycles: u64,
}

impl Evaluation {
    /// Scores a finished run on `venue`: `start`, `end` and `redeemed` are collateral amounts
    /// in its smallest units; the Brier scores are over every market (an unresolved one counts
    /// as outcome 1).
    pub fn summarize(
        venue: &PaperFpmmVenue,
        start: U256,
        end: U256,
        bets: usize,
        redeemed: U256,
        cycles: u64,
    ) -> Self {
        let d = venue.collateral.decimals();
        let n = venue.markets.len().max(1) as f64;
        let y = |m: &SimMarket| if m.winner == Some(0) { 1.0 } else { 0.0 };
        let brier_forecast = venue
            .markets
            .iter()
            .map(|m| (m.forecast - y(m)).powi(2))
            .sum::<f64>()
            / n;
        let brier_market = venue
            .markets
            .iter()
            .map(|m| (m.market_price - y(m)).powi(2))
            .sum::<f64>()
            / n;
        let (s, e) = (to_f64(start, d), to_f64(end, d));
        Self {
            markets: venue.markets.len(),
            bets,
            start_bankroll: s,
            end_bankroll: e,
            return_pct: if s > 0.0 { (e / s - 1.0) * 100.0 } else { 0.0 },
            brier_forecast,
            brier_market,
            redeemed: to_f64(redeemed, d),
            cycles,
        }
    }
}
