//! `rebalancer`: holds target weights across several tokens. When any weight drifts outside its
//! band it trades back to the targets: overweight tokens are sold into the quote token first,
//! then underweight ones bought with it (a token-to-token move is routed through the quote
//! token, as the router would route a two-hop path where no direct pool exists). Trades smaller
//! than `min_trade` are skipped, and so is any trade whose gas would exceed `max_gas_share` of
//! its value. An optional model `tilt` shifts the targets (then renormalised).

use agent_core::amount::{Token, U256, to_f64};

/// One asset: its token, current balance, price in quote per whole token, and target weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Holding {
    pub token: Token,
    pub balance: U256,
    pub price: f64,
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
    pub sell: Token,
    pub buy: Token,
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
pub fn tilted_targets(holdings: &[Holding], tilt: &[f64]) -> Vec<f64> {
    let raw: Vec<f64> = holdings
        .iter()
        .enumerate()
        .map(|(i, h)| (h.target + tilt.get(i).copied().unwrap_or(0.0)).max(0.0))
        .collect();
    let total: f64 = raw.iter().sum();
    raw.iter()
        .map(|t| if total > 0.0 { t / total } else { 0.0 })
        .collect()
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
