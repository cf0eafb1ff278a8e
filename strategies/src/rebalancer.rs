//! `rebalancer`: holds target weights across several tokens. When any weight drifts outside its
//! band it trades back to the targets: overweight tokens are sold into the quote token first,
//! then underweight ones bought with it (a token-to-token move is routed through the quote
//! token, as the router would route a two-hop path where no direct pool exists). Trades smaller
//! than `min_trade` are skipped, and so is any trade whose gas would exceed `max_gas_share` of
//! its value. An optional model tilt ([`Rebalancer::with_model`]) shifts the targets toward
//! the assets a local model expects to rise (then renormalised).

use std::sync::{Arc, Mutex};

use agent_core::amount::{Token, U256, to_f64};
use agent_core::{Context, Decision, Intent, MarketEvent, Strategy, StrategyError};
use models::{FeatureState, ProbabilityModel};

/// One asset: its token, current balance, price in quote per whole token, and target weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Holding {
    /// The asset.
    pub token: Token,
    /// Balance held, in the token's smallest units (its `decimals`).
    pub balance: U256,
    /// Price in quote tokens per whole token (the quote token itself at 1).
    pub price: f64,
    /// Target share of the total value, in `[0, 1]`.
    pub target: f64,
}

/// Settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RebalanceConfig {
    /// Absolute drift (weight points, 0.05 = 5 %) that triggers a rebalance.
    pub band: f64,
    /// Smallest trade, in quote units (whole tokens).
    pub min_trade: f64,
    /// Skip a trade whose gas costs more than this share of its value.
    pub max_gas_share: f64,
}

impl Default for RebalanceConfig {
    fn default() -> Self {
        Self {
            band: 0.05,
            min_trade: 10.0,
            max_gas_share: 0.01,
        }
    }
}

/// A planned swap: sell `amount_in` of `sell` for `buy`.
#[derive(Debug, Clone, PartialEq)]
pub struct Leg {
    /// Token given.
    pub sell: Token,
    /// Token received (one side is always the quote token).
    pub buy: Token,
    /// Amount of `sell` to swap, in its smallest units.
    pub amount_in: U256,
    /// Value in quote units (float, for reports).
    pub value: f64,
}

/// Current weights (value shares) of `holdings`.
pub fn weights(holdings: &[Holding]) -> Vec<f64> {
    let values: Vec<f64> = holdings
        .iter()
        .map(|h| to_f64(h.balance, h.token.decimals()) * h.price)
        .collect();
    let total: f64 = values.iter().sum();
    values
        .iter()
        .map(|v| if total > 0.0 { v / total } else { 0.0 })
        .collect()
}

/// Root-mean-square distance of the weights from the targets, in weight points.
pub fn tracking_error(holdings: &[Holding]) -> f64 {
    let w = weights(holdings);
    let n = w.len().max(1) as f64;
    (w.iter()
        .zip(holdings)
        .map(|(w, h)| (w - h.target).powi(2))
        .sum::<f64>()
        / n)
        .sqrt()
}

/// Targets shifted by `tilt` (same order as holdings), clamped at 0 and renormalised to 1.
/// A tilt that would clamp every target to 0 leaves the targets untilted (they still sum to 1).
pub fn tilted_targets(holdings: &[Holding], tilt: &[f64]) -> Vec<f64> {
    let raw: Vec<f64> = holdings
        .iter()
        .enumerate()
        .map(|(i, h)| (h.target + tilt.get(i).copied().unwrap_or(0.0)).max(0.0))
        .collect();
    let total: f64 = raw.iter().sum();
    if total > 0.0 && total.is_finite() {
        raw.iter().map(|t| t / total).collect()
    } else {
        holdings.iter().map(|h| h.target).collect()
    }
}

/// The legs that bring `holdings` back to `targets`, sells first; `quote` is the index of the
/// quote token (the routing hub). `gas_quote` is the gas cost of one leg in quote units. Empty
/// when every weight is within the band.
pub fn plan(
    holdings: &[Holding],
    targets: &[f64],
    quote: usize,
    gas_quote: f64,
    cfg: &RebalanceConfig,
) -> Vec<Leg> {
    let w = weights(holdings);
    if w.iter()
        .zip(targets)
        .all(|(w, t)| (w - t).abs() <= cfg.band)
    {
        return Vec::new();
    }
    let total: f64 = holdings
        .iter()
        .map(|h| to_f64(h.balance, h.token.decimals()) * h.price)
        .sum();
    let worth = |value: f64| value >= cfg.min_trade && gas_quote <= cfg.max_gas_share * value;
    let q = &holdings[quote].token;
    let mut sells = Vec::new();
    let mut buys = Vec::new();
    for (i, h) in holdings.iter().enumerate() {
        if i == quote || h.price <= 0.0 {
            continue;
        }
        let delta = (targets[i] - w[i]) * total; // quote value to buy (+) or sell (−)
        if !worth(delta.abs()) {
            continue;
        }
        if delta < 0.0 {
            let units = (-delta / h.price * 10f64.powi(i32::from(h.token.decimals()))).floor();
            let amount = U256::from(units as u128).min(h.balance);
            if !amount.is_zero() {
                sells.push(Leg {
                    sell: h.token.clone(),
                    buy: q.clone(),
                    amount_in: amount,
                    value: -delta,
                });
            }
        } else {
            let units = (delta * 10f64.powi(i32::from(q.decimals()))).floor();
            buys.push(Leg {
                sell: q.clone(),
                buy: h.token.clone(),
                amount_in: U256::from(units as u128),
                value: delta,
            });
        }
    }
    sells.extend(buys);
    sells
}

/// What a [`Rebalancer`] did, for reports: shared with the runner through
/// [`Rebalancer::stats`], since the agent owns the strategy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RebalanceStats {
    /// Events on which the plan proposed legs.
    pub rebalances: u64,
    /// Events with a weight outside its band but no leg worth its gas or `min_trade`.
    pub skipped: u64,
    /// The latest price of each asset (quote per whole token), in the assets' order.
    pub prices: Vec<f64>,
}

/// The rebalancer as a runtime [`Strategy`]: on every market event it values the assets it
/// targets — balances from the agent's portfolio, prices from the event (a
/// [`MarketEvent::Markets`] set, or the agent's own pair's bar), the quote token at 1 — and
/// proposes the legs of [`plan`], sells first. Buys are scaled down, all by the same factor, to
/// the quote the sells bring at the event's prices less 1 % (fees and price impact) and less the
/// legs' estimated gas, so that a buy never asks for more than the wallet will hold.
#[derive(Debug)]
pub struct Rebalancer {
    /// Assets and their target weights (summing to 1), the quote token among them.
    assets: Vec<(Token, f64)>,
    quote: usize,
    cfg: RebalanceConfig,
    stats: Arc<Mutex<RebalanceStats>>,
    tilt: Option<ModelTilt>,
}

/// The bar of the pair `token` is the base of in this event: its entry in a
/// [`MarketEvent::Markets`] set, or the agent's own bar when `token` is its pair's base.
fn bar_of(token: &Token, event: &MarketEvent, ctx: &Context<'_>) -> Option<agent_core::Bar> {
    match event.markets() {
        Some(set) => set.of_base(token).map(|m| m.bar),
        None => (token == &ctx.pair.base).then_some(*ctx.bar),
    }
}

/// A model's tilt of the targets: one feature pipeline per asset (fed that asset's bars), the
/// model's probability `p` that the asset rises, and a shift of `strength × (2p − 1)` weight
/// points to its target; an asset still warming up (fewer than [`models::WARMUP`] bars) is not
/// shifted. The decisions of the last event are kept for the audit stream.
struct ModelTilt {
    model: Box<dyn ProbabilityModel>,
    strength: f64,
    features: Vec<FeatureState>,
    decisions: Vec<Decision>,
}

impl std::fmt::Debug for ModelTilt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelTilt")
            .field("model", &self.model.model_id())
            .field("strength", &self.strength)
            .finish_non_exhaustive()
    }
}

impl ModelTilt {
    /// The shift of every asset's target on this event (0 for the quote token and for assets
    /// still warming up), recording one decision per asset the model saw.
    fn shifts(
        &mut self,
        assets: &[(Token, f64)],
        quote: usize,
        event: &MarketEvent,
        ctx: &Context<'_>,
    ) -> Result<Vec<f64>, StrategyError> {
        self.decisions.clear();
        let mut shifts = vec![0.0; assets.len()];
        for (i, (token, _)) in assets.iter().enumerate() {
            if i == quote {
                continue;
            }
            let Some(features) =
                bar_of(token, event, ctx).and_then(|b| self.features[i].update(&b))
            else {
                continue;
            };
            let p = self
                .model
                .probability(&features)
                .map_err(|e| StrategyError::Other(format!("model: {e}")))?;
            let p = StrategyError::check_fraction("model probability", p)?;
            shifts[i] = self.strength * (2.0 * p - 1.0);
            self.decisions.push(Decision {
                model: self.model.model_id().to_string(),
                features: Some(models::features::features_hash(&features)),
                output: p,
                action: format!("{token} target shift {:+.4}", shifts[i]),
            });
        }
        Ok(shifts)
    }
}

impl Rebalancer {
    /// Holds `assets` (token, target weight) at their targets; `quote` is the numéraire, one of
    /// the assets.
    ///
    /// # Errors
    /// The quote token is not among the assets, an asset is listed twice, or the targets are
    /// not each in `[0, 1]` summing to 1.
    pub fn new(
        assets: Vec<(Token, f64)>,
        quote: &Token,
        cfg: RebalanceConfig,
    ) -> Result<Self, String> {
        let Some(q) = assets.iter().position(|(t, _)| t == quote) else {
            return Err(format!("the quote token {quote} is not among the assets"));
        };
        for (i, (t, w)) in assets.iter().enumerate() {
            if assets[..i].iter().any(|(u, _)| u == t) {
                return Err(format!("asset {t} is listed twice"));
            }
            if !(0.0..=1.0).contains(w) {
                return Err(format!("target of {t} is {w}, outside [0, 1]"));
            }
        }
        let sum: f64 = assets.iter().map(|(_, w)| w).sum();
        if (sum - 1.0).abs() > 1e-9 {
            return Err(format!("targets sum to {sum}, not 1"));
        }
        let stats = RebalanceStats {
            prices: vec![0.0; assets.len()],
            ..RebalanceStats::default()
        };
        Ok(Self {
            assets,
            quote: q,
            cfg,
            stats: Arc::new(Mutex::new(stats)),
            tilt: None,
        })
    }

    /// Tilts the targets by `model`: on every event each asset's target moves by
    /// `strength × (2p − 1)` weight points, `p` the model's probability that the asset rises
    /// (from [`models::FeatureState`] features of that asset's own bars), and the tilted
    /// targets are clamped at 0 and renormalised ([`tilted_targets`]). Each asset's
    /// probability is a [`Decision`] in the audit stream, naming the model; a probability that
    /// is NaN or outside `[0, 1]` is a strategy fault that halts the kill switch.
    ///
    /// # Errors
    /// `strength` is not a finite number in `[0, 0.5]`.
    pub fn with_model(
        mut self,
        model: Box<dyn ProbabilityModel>,
        strength: f64,
    ) -> Result<Self, String> {
        if !(strength.is_finite() && (0.0..=0.5).contains(&strength)) {
            return Err(format!(
                "the model tilt's strength is {strength}, outside [0, 0.5]"
            ));
        }
        self.tilt = Some(ModelTilt {
            model,
            strength,
            features: vec![FeatureState::new(); self.assets.len()],
            decisions: Vec::new(),
        });
        Ok(self)
    }

    /// The assets and their (untilted) target weights, in the order given to
    /// [`Rebalancer::new`].
    pub fn assets(&self) -> &[(Token, f64)] {
        &self.assets
    }

    /// The content hash of the tilting model, if there is one.
    pub fn model_id(&self) -> Option<&str> {
        self.tilt.as_ref().map(|t| t.model.model_id())
    }

    /// The counters and latest prices, updated on every event.
    pub fn stats(&self) -> Arc<Mutex<RebalanceStats>> {
        self.stats.clone()
    }

    /// The price of every asset in this event, in order; `Err` names an asset it lacks.
    fn prices(&self, event: &MarketEvent, ctx: &Context<'_>) -> Result<Vec<f64>, String> {
        self.assets
            .iter()
            .enumerate()
            .map(|(i, (token, _))| {
                if i == self.quote {
                    return Ok(1.0);
                }
                let close = bar_of(token, event, ctx).map(|b| b.close);
                close.ok_or_else(|| format!("the market event has no price for {token}"))
            })
            .collect()
    }
}

impl Strategy for Rebalancer {
    fn name(&self) -> &str {
        "rebalancer"
    }

    fn on_event(
        &mut self,
        event: &MarketEvent,
        ctx: &Context<'_>,
    ) -> Result<Vec<Intent>, StrategyError> {
        if event.as_bar().is_none() {
            return Ok(Vec::new());
        }
        let prices = self.prices(event, ctx).map_err(StrategyError::Other)?;
        let holdings: Vec<Holding> = self
            .assets
            .iter()
            .zip(&prices)
            .map(|((token, target), price)| Holding {
                token: token.clone(),
                balance: ctx.portfolio.balance(token),
                price: *price,
                target: *target,
            })
            .collect();
        let targets: Vec<f64> = match &mut self.tilt {
            None => self.assets.iter().map(|(_, w)| *w).collect(),
            Some(tilt) => {
                let shifts = tilt.shifts(&self.assets, self.quote, event, ctx)?;
                tilted_targets(&holdings, &shifts)
            }
        };
        let gas = ctx.gas_estimate.max(0.0);
        let mut legs = plan(&holdings, &targets, self.quote, gas, &self.cfg);
        let drifted = weights(&holdings)
            .iter()
            .zip(&targets)
            .any(|(w, t)| (w - t).abs() > self.cfg.band);
        if let Ok(mut st) = self.stats.lock() {
            st.prices.clone_from(&prices);
            if !legs.is_empty() {
                st.rebalances += 1;
            } else if drifted {
                st.skipped += 1;
            }
        }
        let quote = &self.assets[self.quote].0;
        let qd = i32::from(quote.decimals());
        let from_sells: f64 = legs
            .iter()
            .filter(|l| &l.buy == quote)
            .map(|l| l.value)
            .sum();
        let reserve = gas * legs.len() as f64;
        let available =
            to_f64(ctx.portfolio.balance(quote), quote.decimals()) + from_sells * 0.99 - reserve;
        let wanted: f64 = legs
            .iter()
            .filter(|l| &l.sell == quote)
            .map(|l| l.value)
            .sum();
        if wanted > 0.0 && available < wanted {
            let scale = (available / wanted).max(0.0);
            for l in legs.iter_mut().filter(|l| &l.sell == quote) {
                let units = (l.value * scale * 10f64.powi(qd)).floor();
                l.amount_in = l.amount_in.min(U256::from(units.max(0.0) as u128));
                l.value *= scale;
            }
            legs.retain(|l| !l.amount_in.is_zero());
        }
        Ok(legs
            .into_iter()
            .map(|l| Intent::swap(&l.sell, &l.buy, l.amount_in))
            .collect())
    }

    fn decisions(&mut self) -> Vec<Decision> {
        self.tilt
            .as_mut()
            .map(|t| std::mem::take(&mut t.decisions))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(sym: &str, dec: u8, whole: f64, price: f64, target: f64) -> Holding {
        Holding {
            token: Token::new(sym, dec),
            balance: U256::from((whole * 10f64.powi(i32::from(dec))) as u128),
            price,
            target,
        }
    }

    fn book() -> Vec<Holding> {
        // 40/30/30 targets; ETH doubled in price, so it is now ~57 % of the value.
        vec![
            h("WETH", 18, 4.0, 2000.0, 0.4),
            h("DVT", 18, 1500.0, 2.0, 0.3),
            h("dUSD", 6, 3000.0, 1.0, 0.3),
        ]
    }

    #[test]
    fn drift_outside_the_band_sells_the_winner_and_buys_the_laggard_through_the_quote() {
        let b = book();
        let targets: Vec<f64> = b.iter().map(|x| x.target).collect();
        let legs = plan(&b, &targets, 2, 1.0, &RebalanceConfig::default());
        assert_eq!(legs[0].sell.symbol(), "WETH");
        assert_eq!(legs[0].buy.symbol(), "dUSD");
        assert!(
            legs.iter()
                .all(|l| l.sell.symbol() == "dUSD" || l.buy.symbol() == "dUSD"),
            "routed via the quote"
        );
        // Sell (8000/14000 − 0.4) × 14,000 = 2,400 dUSD of WETH = 1.2 WETH.
        let weth = to_f64(legs[0].amount_in, 18);
        assert!((weth - 1.2).abs() < 1e-6, "{weth}");
        assert_eq!(legs.len(), 2);
        assert!(tracking_error(&b) > 0.1);
    }

    #[test]
    fn within_the_band_or_when_gas_eats_the_trade_nothing_happens() {
        let even = vec![
            h("WETH", 18, 1.0, 2000.0, 0.4),
            h("DVT", 18, 760.0, 2.0, 0.3),
            h("dUSD", 6, 1480.0, 1.0, 0.3),
        ];
        let t: Vec<f64> = even.iter().map(|x| x.target).collect();
        assert!(plan(&even, &t, 2, 1.0, &RebalanceConfig::default()).is_empty());
        let b = book();
        let targets: Vec<f64> = b.iter().map(|x| x.target).collect();
        // Gas of 50 dUSD per leg against 2,400 and 1,200 dUSD legs, 1 % limit: skip both.
        assert!(plan(&b, &targets, 2, 50.0, &RebalanceConfig::default()).is_empty());
        // A tilt toward DVT changes the plan.
        let tilted = tilted_targets(&b, &[0.0, 0.2, 0.0]);
        assert!((tilted.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        let legs = plan(&b, &tilted, 2, 1.0, &RebalanceConfig::default());
        let dvt_buy = legs.iter().find(|l| l.buy.symbol() == "DVT").unwrap();
        assert!(dvt_buy.value > 1_000.0);
    }
}
