//! `kelly_bettor`: bets on prediction markets where a model's probability beats the market's
//! price by at least `min_edge`, sized by fractional Kelly *under the FPMM's price impact*: the
//! expected log-growth of the bankroll is evaluated, with the contract's exact integer buy math,
//! over candidate sizes, and a `fraction` of the best size is bet. Caps: `max_bet`, `min_bet`,
//! `floor_balance`, per-market exposure; markets closing within `min_time_to_close_s` or with
//! less than `min_liquidity` are skipped.

use agent_core::amount::{Token, U256, to_f64};
use agent_core::fpmm::calc_buy_amount;
use agent_core::prediction::{BettingStrategy, MarketView};
use agent_core::risk::impact::max_bet;
use agent_core::{Bet, Decision, ParamError, Params, StrategyError};
use models::ProbabilityModel;

/// Sizing settings (collateral amounts in whole tokens).
#[derive(Debug, Clone, PartialEq)]
pub struct KellyConfig {
    /// Share of the full-Kelly size to bet (0.25 = quarter Kelly).
    pub fraction: f64,
    /// Smallest edge worth a bet: the model's probability minus the market's marginal price,
    /// in probability points (0.03 = 3 points).
    pub min_edge: f64,
    /// Smallest bet, whole collateral tokens; it is also the first candidate size searched.
    pub min_bet: f64,
    /// Largest single bet, whole collateral tokens.
    pub max_bet: f64,
    /// Bankroll kept back: a bet never takes the bankroll below this, whole collateral tokens.
    pub floor_balance: f64,
    /// Most value held in one market (current exposure plus the new bet), whole collateral
    /// tokens.
    pub max_market_exposure: f64,
    /// Markets whose pool is worth less than this, whole collateral tokens, are skipped.
    pub min_liquidity: f64,
    /// Markets that close within this many seconds of the event's time are skipped.
    pub min_time_to_close_s: i64,
    /// The price-impact limit the bet gate applies (`[risk] max_price_impact_bps`, set by the
    /// runtime): a size it would refuse is cut to the largest one within it. `None`: no cut.
    pub max_price_impact_bps: Option<u32>,
}

impl Default for KellyConfig {
    fn default() -> Self {
        Self {
            fraction: 0.25,
            min_edge: 0.03,
            min_bet: 1.0,
            max_bet: 100.0,
            floor_balance: 0.0,
            max_market_exposure: 250.0,
            min_liquidity: 100.0,
            min_time_to_close_s: 3600,
            max_price_impact_bps: Some(100),
        }
    }
}

/// The chosen bet.
#[derive(Debug, Clone, PartialEq)]
pub struct Sizing {
    /// Index of the outcome to buy, in the market's outcome order.
    pub outcome: usize,
    /// Collateral to invest, in the collateral token's smallest units (its `decimals`).
    pub investment: U256,
    /// Outcome tokens that investment buys, by the FPMM's `calcBuyAmount` (same units as the
    /// collateral).
    pub tokens: U256,
    /// The model's probability minus the market's marginal price for this outcome, in
    /// probability points.
    pub edge: f64,
    /// Expected log-growth of the bankroll at the chosen size.
    pub growth: f64,
}

/// Expected log-growth of betting `x` for `tokens` of an outcome with probability `p`, from a
/// bankroll `w` (all in collateral units as floats).
fn growth(p: f64, w: f64, x: f64, tokens: f64) -> f64 {
    p * ((w - x + tokens) / w).ln() + (1.0 - p) * ((w - x) / w).ln()
}

/// Best bet on `market` for outcome probabilities `probs` (binary: `[p, 1 − p]`), or `None`.
///
/// `bankroll` and `exposure` (what is already held in this market) are in `collateral`'s
/// smallest units. `None` when no outcome has `cfg.min_edge`, the caps leave less than
/// `cfg.min_bet`, the price-impact limit allows less than `cfg.min_bet`, or no size has positive
/// expected log-growth.
pub fn size_bet(
    probs: &[f64],
    market: &MarketView,
    bankroll: U256,
    exposure: U256,
    collateral: &Token,
    cfg: &KellyConfig,
) -> Option<Sizing> {
    let d = collateral.decimals();
    // Round candidate sizes down to whole collateral units (a float size is only a candidate).
    let to_units = |v: f64| {
        let scaled = (v.max(0.0) * 10f64.powi(i32::from(d))).floor();
        (scaled.is_finite() && scaled < 1e30).then(|| U256::from(scaled as u128))
    };
    let w = to_f64(bankroll, d);
    let room_market = cfg.max_market_exposure - to_f64(exposure, d);
    // The bankroll bounds the search for the full-Kelly size; the caps bound the bet.
    let reach = w - cfg.floor_balance;
    let cap = cfg.max_bet.min(reach).min(room_market);
    if cap.is_nan() || cap < cfg.min_bet || w <= 0.0 {
        return None;
    }
    let mut best: Option<Sizing> = None;
    for (outcome, (&p, &price)) in probs.iter().zip(&market.prices).enumerate() {
        let edge = p - price;
        if edge.is_nan() || edge < cfg.min_edge {
            continue;
        }
        // Candidate sizes, log-spaced from min_bet to the whole usable bankroll; the exact
        // tokens for each.
        let mut full: Option<(f64, U256, f64)> = None;
        let steps = 48;
        for k in 0..=steps {
            let x = cfg.min_bet * (reach / cfg.min_bet).powf(k as f64 / steps as f64);
            let Some(xu) = to_units(x) else { continue };
            let Ok(tokens) = calc_buy_amount(xu, outcome, &market.pool, market.fee) else {
                continue;
            };
            let g = growth(p, w, to_f64(xu, d), to_f64(tokens, d));
            if full.is_none_or(|(_, _, bg)| g > bg) {
                full = Some((to_f64(xu, d), tokens, g));
            }
        }
        let Some((x_full, _, g_full)) = full else {
            continue;
        };
        if g_full <= 0.0 {
            continue;
        }
        let x = (x_full * cfg.fraction).max(cfg.min_bet).min(cap);
        let Some(mut xu) = to_units(x) else { continue };
        // Within the gate's price-impact limit: the largest size it would let through.
        if let Some(max_bps) = cfg.max_price_impact_bps {
            let Ok(within) = max_bet(outcome, &market.pool, market.fee, xu, max_bps) else {
                continue;
            };
            if to_f64(within, d) < cfg.min_bet {
                continue;
            }
            xu = within;
        }
        let Ok(tokens) = calc_buy_amount(xu, outcome, &market.pool, market.fee) else {
            continue;
        };
        let g = growth(p, w, to_f64(xu, d), to_f64(tokens, d));
        if g > 0.0 && best.as_ref().is_none_or(|b| g > b.growth) {
            best = Some(Sizing {
                outcome,
                investment: xu,
                tokens,
                edge,
                growth: g,
            });
        }
    }
    best
}

/// The betting strategy: a [`ProbabilityModel`] on each market's features, then [`size_bet`].
pub struct KellyBettor {
    model: Box<dyn ProbabilityModel>,
    collateral: Token,
    cfg: KellyConfig,
    last: Option<Decision>,
}

impl std::fmt::Debug for KellyBettor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KellyBettor")
            .field("model", &self.model.model_id())
            .field("collateral", &self.collateral)
            .field("cfg", &self.cfg)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl KellyBettor {
    /// Bets `collateral` on binary markets with `model`'s probability of outcome 0, sized by
    /// `cfg`. The model reads each market's [`MarketView::features`]; a market without
    /// features gets no bet.
    pub fn new(model: Box<dyn ProbabilityModel>, collateral: Token, cfg: KellyConfig) -> Self {
        Self {
            model,
            collateral,
            cfg,
            last: None,
        }
    }
}

impl KellyConfig {
    /// Reads `fraction`, `min_edge`, `min_bet`, `max_bet`, `floor_balance`,
    /// `max_market_exposure`, `min_liquidity` (collateral in whole tokens) and
    /// `min_time_to_close_s`; defaults as in [`KellyConfig::default`].
    ///
    /// # Errors
    /// [`ParamError`] if a value is not a finite number, `fraction` is outside (0, 1],
    /// `min_bet` is not positive or exceeds `max_bet`, or `min_edge` or `floor_balance` is
    /// negative or `max_market_exposure` is not positive. Unknown keys are left for the caller's
    /// [`Params::finish`].
    pub fn from_params(p: &mut Params) -> Result<Self, ParamError> {
        let d = KellyConfig::default();
        let cfg = KellyConfig {
            fraction: p.f64("fraction", d.fraction)?,
            min_edge: p.f64("min_edge", d.min_edge)?,
            min_bet: p.f64("min_bet", d.min_bet)?,
            max_bet: p.f64("max_bet", d.max_bet)?,
            floor_balance: p.f64("floor_balance", d.floor_balance)?,
            max_market_exposure: p.f64("max_market_exposure", d.max_market_exposure)?,
            min_liquidity: p.f64("min_liquidity", d.min_liquidity)?,
            min_time_to_close_s: p.f64("min_time_to_close_s", d.min_time_to_close_s as f64)? as i64,
            max_price_impact_bps: d.max_price_impact_bps,
        };
        if !(cfg.fraction > 0.0 && cfg.fraction <= 1.0) {
            return Err(p.invalid(
                "fraction",
                format!("must be in (0, 1], got {}", cfg.fraction),
            ));
        }
        if cfg.min_bet <= 0.0 || cfg.max_bet < cfg.min_bet {
            return Err(p.invalid(
                "max_bet",
                format!(
                    "need 0 < min_bet ({}) <= max_bet ({})",
                    cfg.min_bet, cfg.max_bet
                ),
            ));
        }
        if cfg.min_edge < 0.0 || cfg.floor_balance < 0.0 || cfg.max_market_exposure <= 0.0 {
            return Err(p.invalid(
                "min_edge",
                "min_edge and floor_balance must be >= 0, max_market_exposure > 0",
            ));
        }
        Ok(cfg)
    }
}

impl BettingStrategy for KellyBettor {
    fn name(&self) -> &str {
        "kelly_bettor"
    }

    fn on_market(
        &mut self,
        market: &MarketView,
        bankroll: U256,
        exposure: U256,
        now: i64,
    ) -> Result<Option<Bet>, StrategyError> {
        self.last = None;
        if market.prices.len() != 2 {
            return Ok(None);
        }
        if market
            .closes_at
            .is_some_and(|c| c - now < self.cfg.min_time_to_close_s)
        {
            return Ok(None);
        }
        if to_f64(market.liquidity(), self.collateral.decimals()) < self.cfg.min_liquidity {
            return Ok(None);
        }
        // No features, no model input: no opinion on this market.
        if market.features.is_empty() {
            return Ok(None);
        }
        let p = self
            .model
            .probability(&market.features)
            .map_err(|e| StrategyError::Other(format!("model: {e}")))?;
        let p = StrategyError::check_fraction("model probability", p)?;
        let sizing = size_bet(
            &[p, 1.0 - p],
            market,
            bankroll,
            exposure,
            &self.collateral,
            &self.cfg,
        );
        self.last = Some(Decision {
            model: self.model.model_id().to_string(),
            features: None,
            output: p,
            action: match &sizing {
                Some(s) => format!(
                    "bet {} on outcome {} (edge {:.3})",
                    s.investment, s.outcome, s.edge
                ),
                None => format!("no bet (market {:.3})", market.prices[0]),
            },
        });
        Ok(sizing.map(|s| Bet {
            market: market.id.clone(),
            outcome: s.outcome,
            investment: s.investment,
            collateral: self.collateral.clone(),
        }))
    }

    fn decision(&self) -> Option<Decision> {
        self.last.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_core::fpmm::{one, prices};

    fn market(pool: [u64; 2]) -> MarketView {
        let pool: Vec<U256> = pool.iter().map(|v| U256::from(*v)).collect();
        MarketView {
            id: "m".into(),
            prices: prices(&pool),
            pool,
            fee: one() / U256::from(50u64),
            closes_at: None,
            resolved: false,
            held: vec![U256::ZERO; 2],
            features: vec![],
        }
    }

    #[test]
    fn bets_the_underpriced_side_and_more_with_more_edge() {
        let usd = Token::new("dUSD", 6);
        // Market says 50 %; 10,000 dUSD a side.
        let m = market([10_000_000_000, 10_000_000_000]);
        let bank = U256::from(1_000_000_000u64); // 1,000 dUSD
        let cfg = KellyConfig::default();
        let small = size_bet(&[0.58, 0.42], &m, bank, U256::ZERO, &usd, &cfg).unwrap();
        let big = size_bet(&[0.70, 0.30], &m, bank, U256::ZERO, &usd, &cfg).unwrap();
        assert_eq!(small.outcome, 0);
        assert!(big.investment > small.investment, "{small:?} {big:?}");
        let other = size_bet(&[0.30, 0.70], &m, bank, U256::ZERO, &usd, &cfg).unwrap();
        assert_eq!(other.outcome, 1);
        // No edge after the fee and the minimum: no bet.
        assert!(size_bet(&[0.51, 0.49], &m, bank, U256::ZERO, &usd, &cfg).is_none());
    }

    #[test]
    fn sizing_stays_within_the_gates_price_impact_limit() {
        let usd = Token::new("dUSD", 6);
        let bank = U256::from(1_000_000_000_000u64);
        let thin = market([200_000_000, 200_000_000]);
        let free = KellyConfig {
            max_bet: 1e6,
            max_market_exposure: 1e6,
            max_price_impact_bps: None,
            ..KellyConfig::default()
        };
        let limited = KellyConfig {
            max_price_impact_bps: Some(100),
            ..free.clone()
        };
        let big = size_bet(&[0.8, 0.2], &thin, bank, U256::ZERO, &usd, &free).unwrap();
        let cut = size_bet(&[0.8, 0.2], &thin, bank, U256::ZERO, &usd, &limited).unwrap();
        let impact = |b: &Sizing| {
            agent_core::risk::impact::bet_impact(b.investment, b.outcome, &thin.pool, thin.fee, 100)
                .unwrap()
        };
        assert!(
            !impact(&big).0,
            "without the limit Kelly sizes past it: {big:?}"
        );
        assert!(impact(&cut).0, "{cut:?} is within 100 bps");
        assert!(
            !agent_core::risk::impact::bet_impact(
                cut.investment + U256::from(1u8),
                cut.outcome,
                &thin.pool,
                thin.fee,
                100
            )
            .unwrap()
            .0,
            "and is the largest size within it"
        );
    }

    #[test]
    fn price_impact_and_caps_bound_the_size() {
        let usd = Token::new("dUSD", 6);
        let bank = U256::from(1_000_000_000_000u64); // 1M dUSD: caps must bind
        let cfg = KellyConfig {
            max_bet: 100.0,
            ..KellyConfig::default()
        };
        let deep = size_bet(
            &[0.8, 0.2],
            &market([1_000_000_000_000, 1_000_000_000_000]),
            bank,
            U256::ZERO,
            &usd,
            &cfg,
        )
        .unwrap();
        assert_eq!(deep.investment, U256::from(100_000_000u64), "max_bet binds");
        // A thin pool: price impact makes a small bet optimal even with a big edge.
        let thin_cfg = KellyConfig {
            max_bet: 1e6,
            max_market_exposure: 1e6,
            ..KellyConfig::default()
        };
        let thin = size_bet(
            &[0.8, 0.2],
            &market([200_000_000, 200_000_000]),
            bank,
            U256::ZERO,
            &usd,
            &thin_cfg,
        )
        .unwrap();
        assert!(thin.investment < U256::from(200_000_000u64), "{thin:?}");
        // Exposure already at the per-market cap: nothing more.
        let full = size_bet(
            &[0.8, 0.2],
            &market([1_000_000_000_000, 1_000_000_000_000]),
            bank,
            U256::from(250_000_000u64),
            &usd,
            &cfg,
        );
        assert!(full.is_none());
    }
}
