//! The [`Strategy`] trait: market events in, intents out.

use std::collections::BTreeMap;
use std::fmt;

use crate::amount::{
    Token, U256, base_to_quote, pow10_f64, price_representable, price_to_units, quote_to_base,
};
use crate::intent::Intent;
use crate::market::{Bar, MarketEvent, Pair};
use crate::portfolio::Portfolio;

/// A trading idea. It sees each market event with a read-only view of the agent's state and
/// returns the intents it wants executed; the risk gate and the venue do the rest. The same
/// strategy runs unchanged in backtest, paper and live mode.
///
/// A strategy must be deterministic given its inputs (no wall clock, no unseeded randomness), so
/// a backtest gives the same trades on every run.
///
/// # Example
///
/// Hold the base token while the close is above the previous close, else stay in quote:
///
/// ```
/// use agent_core::{Context, Intent, MarketEvent, Strategy, StrategyError};
///
/// struct Momentum { last: Option<f64> }
///
/// impl Strategy for Momentum {
///     fn name(&self) -> &str { "momentum" }
///     fn on_event(&mut self, event: &MarketEvent, ctx: &Context<'_>)
///         -> Result<Vec<Intent>, StrategyError> {
///         let Some(bar) = event.as_bar() else { return Ok(vec![]) };
///         let up = self.last.is_some_and(|prev| bar.close > prev);
///         self.last = Some(bar.close);
///         let target = if up { 0.9 } else { 0.0 };
///         Ok(ctx.target_exposure(target)?.into_iter().collect())
///     }
/// }
/// ```
pub trait Strategy: Send {
    /// A short stable name; it prefixes intent ids.
    fn name(&self) -> &str;

    /// Called once per market event, after the venue has seen it. Return no intents to do
    /// nothing. An error is a strategy fault: the agent records it and sends nothing for this
    /// event.
    ///
    /// # Errors
    ///
    /// A [`StrategyError`] when the strategy cannot decide on this event. The agent records it
    /// as an [`crate::AuditEvent::StrategyFault`]; a [`StrategyError::NonFinite`] or
    /// [`StrategyError::OutOfRange`] (an unusable model output) also halts the kill switch.
    fn on_event(
        &mut self,
        event: &MarketEvent,
        ctx: &Context<'_>,
    ) -> Result<Vec<Intent>, StrategyError>;

    /// What a model-driven strategy decided on the last event (model, its output), for the
    /// audit stream; rule-based strategies return `None`.
    fn decision(&self) -> Option<Decision> {
        None
    }

    /// Every decision of the last event, in order, for the audit stream: a strategy deciding
    /// on several markets in one event (a bettor) returns one per market. Default: the one
    /// [`Strategy::decision`].
    fn decisions(&mut self) -> Vec<Decision> {
        self.decision().map_or_else(Vec::new, |d| vec![d])
    }
}

/// A model's part in a decision: which model (its content hash) said what.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Content hash of the model (weights and metadata).
    pub model: String,
    /// Content hash of the features the model saw, when it saw a feature vector.
    pub features: Option<String>,
    /// The model's output (e.g. a probability).
    pub output: f64,
    /// What the strategy made of it (e.g. the target exposure).
    pub action: String,
}

/// A strategy output the agent refuses to act on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StrategyError {
    /// An output (a model's probability, a target exposure) is NaN or infinite; the agent
    /// halts on it.
    #[error("strategy output `{what}` is not finite ({value})")]
    NonFinite {
        /// Which output, e.g. `target exposure`.
        what: &'static str,
        /// The value produced.
        value: f64,
    },
    /// An output is finite but outside its allowed range; the agent halts on it.
    #[error("strategy output `{what}` = {value} is outside [{min}, {max}]")]
    OutOfRange {
        /// Which output, e.g. `target exposure`.
        what: &'static str,
        /// The value produced.
        value: f64,
        /// The smallest allowed value.
        min: f64,
        /// The largest allowed value.
        max: f64,
    },
    /// The bar's close cannot be turned into an integer price (not finite, not positive, or
    /// outside what [`crate::amount::price_to_units`] represents), so no amount can be computed
    /// from it.
    #[error("no usable price: close = {0}")]
    NoPrice(f64),
    /// Any other reason a strategy cannot decide, in its own words.
    #[error("{0}")]
    Other(String),
}

impl StrategyError {
    /// `value` itself when it is a fraction in `[0, 1]` (a probability, a target exposure);
    /// `what` names it in the error.
    ///
    /// # Errors
    /// [`StrategyError::NonFinite`] for NaN or an infinity, [`StrategyError::OutOfRange`]
    /// outside `[0, 1]`: outputs the agent halts on rather than act.
    pub fn check_fraction(what: &'static str, value: f64) -> Result<f64, StrategyError> {
        if !value.is_finite() {
            return Err(StrategyError::NonFinite { what, value });
        }
        if !(0.0..=1.0).contains(&value) {
            return Err(StrategyError::OutOfRange {
                what,
                value,
                min: 0.0,
                max: 1.0,
            });
        }
        Ok(value)
    }
}

/// What a strategy may look at when it decides: the pair, the portfolio, the latest bar and the
/// venue's estimate of one swap's gas in quote tokens.
#[derive(Debug)]
pub struct Context<'a> {
    /// The agent's pair: intents trade its base against its quote.
    pub pair: &'a Pair,
    /// The agent's book, balances in token units.
    pub portfolio: &'a Portfolio,
    /// The latest bar of the pair (for a betting cycle, a bar with every price 1).
    pub bar: &'a Bar,
    /// What the venue expects one swap's gas to cost, in whole quote tokens (float:
    /// [`crate::Venue::gas_estimate_quote`]); 0 on a venue without gas.
    pub gas_estimate: f64,
}

/// [`Context::target_exposure`] proposes no trade whose estimated gas exceeds this share of its
/// notional: such a trade loses more to gas than any signal on hourly bars is worth.
pub const MAX_GAS_SHARE: f64 = 0.05;

impl Context<'_> {
    /// Quote units held.
    pub fn quote_balance(&self) -> U256 {
        self.portfolio.balance(&self.pair.quote)
    }
    /// Base units held.
    #[inline]
    pub fn base_balance(&self) -> U256 {
        self.portfolio.balance(&self.pair.base)
    }
    /// Portfolio value in quote at the latest close (float, for signals).
    pub fn equity(&self) -> f64 {
        self.portfolio.equity_f64(self.pair, self.bar.close)
    }
    /// Share of equity held in the base token, in [0, 1] (float, for signals).
    #[inline]
    pub fn exposure(&self) -> f64 {
        // The terms of `equity` (quote + base * close), the balances looked up once.
        let (quote, base) = self.portfolio.pair_balances_f64(self.pair);
        let base = base * self.bar.close;
        let eq = quote + base;
        if eq <= 0.0 {
            return 0.0;
        }
        base / eq
    }

    /// The swap that moves the base token's share of equity to `fraction` (0 = all quote,
    /// 1 = all base) at the latest close, computed in exact units. `None` when the position is
    /// already within 0.1 % of equity of the target (so a strategy can call this every bar without
    /// churning) or when gas would exceed [`MAX_GAS_SHARE`] of the trade. A buy leaves the
    /// estimated gas in quote; `fraction = 0` sells the whole base balance, leaving no dust.
    ///
    /// # Errors
    ///
    /// - [`StrategyError::NonFinite`] if `fraction` is NaN or infinite;
    /// - [`StrategyError::OutOfRange`] if it is outside `[0, 1]`;
    /// - [`StrategyError::NoPrice`] if the bar's close is not a usable price.
    pub fn target_exposure(&self, fraction: f64) -> Result<Option<Intent>, StrategyError> {
        let fraction = StrategyError::check_fraction("target exposure", fraction)?;
        let (base, quote) = (&self.pair.base, &self.pair.quote);
        let gas = self.gas_estimate.max(0.0);
        let base_held = self.base_balance();
        // Nothing to sell, or dust not worth its gas (a strategy left holding dust asks on every
        // bar): answered before the integer price is built, for a usable close only (an
        // unusable one is still the error below).
        if fraction == 0.0
            && price_representable(self.bar.close, quote.decimals())
            && (base_held.is_zero() || !worth_gas_at_most(gas, base_held, base, quote, self.bar))
        {
            return Ok(None);
        }
        let price = price_to_units(self.bar.close, quote.decimals())
            .ok_or(StrategyError::NoPrice(self.bar.close))?;
        let worth_gas = |notional: U256| gas <= MAX_GAS_SHARE * quote.to_f64(notional);
        if fraction == 0.0 {
            let value = base_to_quote(base_held, base.decimals(), price);
            // Something is held here: nothing held returned `None` above.
            let sell = worth_gas(value);
            return Ok(sell.then(|| Intent::swap(base, quote, base_held)));
        }
        let equity = self.portfolio.equity(self.pair, price);
        let ppm = U256::from((fraction * 1e6).round() as u64);
        let target = equity.saturating_mul(ppm) / U256::from(1_000_000u64);
        let current = base_to_quote(base_held, base.decimals(), price);
        let tolerance = equity / U256::from(1000u64);
        if target > current {
            let units_per_token: f64 = quote.one().into();
            let gas_units = U256::from((gas * units_per_token).ceil() as u128);
            let spend = (target - current).min(self.quote_balance().saturating_sub(gas_units));
            let trade = spend > tolerance && !spend.is_zero() && worth_gas(spend);
            Ok(trade.then(|| Intent::swap(quote, base, spend)))
        } else {
            let excess = current - target;
            let sell = quote_to_base(excess, base.decimals(), price).min(base_held);
            let trade = excess > tolerance && !sell.is_zero() && worth_gas(excess);
            Ok(trade.then(|| Intent::swap(base, quote, sell)))
        }
    }
}

/// `false` when `held` units of `base` are surely not worth `gas` (whole `quote` tokens) at
/// `bar`'s close: [`MAX_GAS_SHARE`] of an upper bound of their value, in floats, is below it.
/// The bound takes the close one quote unit higher (the integer price rounds to the nearest
/// unit) and adds 1e-9 relative, far above the few ulps the float arithmetic can be off, so a
/// `false` here is the exact 256-bit valuation's answer too, without its cost: a strategy left
/// holding dust asks on every bar. `true` decides nothing (the exact check follows).
fn worth_gas_at_most(gas: f64, held: U256, base: &Token, quote: &Token, bar: &Bar) -> bool {
    let unit = 1.0 / pow10_f64(quote.decimals());
    // Through `u128` when it fits: the same nearest float, without the 256-bit conversion.
    let held_units = u128::try_from(held).map_or_else(|_| f64::from(held), |v| v as f64);
    let held_tokens = held_units / pow10_f64(base.decimals());
    let bound = held_tokens * (bar.close + unit) * (1.0 + 1e-9);
    gas <= MAX_GAS_SHARE * bound
}

/// One parameter value from a config file or the command line.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// A whole number (`fast = 12`, `--param fast=12`).
    Int(i64),
    /// A number with a fraction or exponent (`threshold = 0.55`).
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// Anything else, as text (`model = "models/eth.json"`).
    Str(String),
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Int(v) => write!(f, "{v}"),
            ParamValue::Float(v) => write!(f, "{v}"),
            ParamValue::Bool(v) => write!(f, "{v}"),
            ParamValue::Str(v) => write!(f, "\"{v}\""),
        }
    }
}

impl ParamValue {
    /// Parses a command-line value: integer, float, bool, else string.
    pub fn parse(s: &str) -> Self {
        if let Ok(i) = s.parse::<i64>() {
            ParamValue::Int(i)
        } else if let Ok(f) = s.parse::<f64>() {
            ParamValue::Float(f)
        } else if let Ok(b) = s.parse::<bool>() {
            ParamValue::Bool(b)
        } else {
            ParamValue::Str(s.to_string())
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            ParamValue::Int(_) => "integer",
            ParamValue::Float(_) => "float",
            ParamValue::Bool(_) => "bool",
            ParamValue::Str(_) => "string",
        }
    }
}

/// A strategy parameter that cannot be used, with where it came from (`origin`: e.g.
/// `config.toml line 14`, `--param fast=x`, or `default` for a default the strategy rejected).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    /// A key the strategy does not read (a typo, a parameter of another strategy).
    #[error(
        "{origin}: unknown parameter `{key}` for strategy `{strategy}` (expected one of: {expected})"
    )]
    Unknown {
        /// The strategy's name.
        strategy: String,
        /// The unknown key.
        key: String,
        /// Where the key was set.
        origin: String,
        /// The keys the strategy read, comma-separated.
        expected: String,
    },
    /// A value of the wrong type for its key (a string where a number is read).
    #[error("{origin}: parameter `{key}` of strategy `{strategy}` {problem}")]
    WrongType {
        /// The strategy's name.
        strategy: String,
        /// The key.
        key: String,
        /// Where the value was set.
        origin: String,
        /// e.g. "must be a finite number, found string `x`"
        problem: String,
    },
    /// A value of the right type that the strategy rejects (built by [`Params::invalid`]).
    #[error("{origin}: parameter `{key}` of strategy `{strategy}`: {reason}")]
    Invalid {
        /// The strategy's name.
        strategy: String,
        /// The key.
        key: String,
        /// Where the value was set, or `default`.
        origin: String,
        /// Why the value cannot be used, e.g. "must be at least 1".
        reason: String,
    },
}

/// A strategy's parameters with where each came from, so a bad value is reported as
/// `config.toml line 14: …` or `--param fast=x: …`. A strategy reads what it knows with the typed
/// getters, then calls [`Params::finish`], which rejects any key it did not read.
#[derive(Debug, Clone, Default)]
pub struct Params {
    strategy: String,
    entries: BTreeMap<String, (ParamValue, String)>,
    known: Vec<&'static str>,
    // Where each value already read came from, for errors found after reading.
    read_from: BTreeMap<&'static str, String>,
}

impl Params {
    /// No parameters yet, for the strategy named `strategy` (named in every error).
    pub fn new(strategy: &str) -> Self {
        Self {
            strategy: strategy.to_string(),
            ..Self::default()
        }
    }
    /// Sets a value; a later insert of the same key overrides (command line over config file).
    pub fn insert(&mut self, key: &str, value: ParamValue, origin: impl Into<String>) {
        self.entries.insert(key.to_string(), (value, origin.into()));
    }
    /// Whether no value is left: none was inserted, or every one has been read.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `key` holds a value not yet read.
    pub fn is_set(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    fn take(&mut self, key: &'static str) -> Option<(ParamValue, String)> {
        self.known.push(key);
        let entry = self.entries.remove(key);
        if let Some((_, origin)) = &entry {
            self.read_from.insert(key, origin.clone());
        }
        entry
    }

    fn wrong(
        &self,
        key: &str,
        origin: String,
        expected: &'static str,
        v: &ParamValue,
    ) -> ParamError {
        ParamError::WrongType {
            strategy: self.strategy.clone(),
            key: key.to_string(),
            origin,
            problem: format!("must be {expected}, found {} `{v}`", v.kind()),
        }
    }

    /// Builds a [`ParamError::Invalid`] for a value of the right type but a bad value.
    pub fn invalid(&self, key: &str, reason: impl Into<String>) -> ParamError {
        ParamError::Invalid {
            strategy: self.strategy.clone(),
            key: key.to_string(),
            origin: self
                .read_from
                .get(key)
                .cloned()
                .unwrap_or_else(|| "default".to_string()),
            reason: reason.into(),
        }
    }

    /// A finite float (integers are accepted); `default` when the key is not set.
    ///
    /// # Errors
    ///
    /// [`ParamError::WrongType`] if the value is a bool, a string or a non-finite float.
    pub fn f64(&mut self, key: &'static str, default: f64) -> Result<f64, ParamError> {
        match self.take(key) {
            None => Ok(default),
            Some((ParamValue::Float(v), _)) if v.is_finite() => Ok(v),
            Some((ParamValue::Int(v), _)) => Ok(v as f64),
            Some((v, origin)) => Err(self.wrong(key, origin, "a finite number", &v)),
        }
    }

    /// A non-negative integer; `default` when the key is not set.
    ///
    /// # Errors
    ///
    /// [`ParamError::WrongType`] if the value is not an integer, or is negative.
    pub fn usize(&mut self, key: &'static str, default: usize) -> Result<usize, ParamError> {
        match self.take(key) {
            None => Ok(default),
            Some((ParamValue::Int(v), _)) if v >= 0 => Ok(v as usize),
            Some((v, origin)) => Err(self.wrong(key, origin, "a non-negative integer", &v)),
        }
    }

    /// A bool; `default` when the key is not set.
    ///
    /// # Errors
    ///
    /// [`ParamError::WrongType`] if the value is not `true` or `false`.
    pub fn bool(&mut self, key: &'static str, default: bool) -> Result<bool, ParamError> {
        match self.take(key) {
            None => Ok(default),
            Some((ParamValue::Bool(v), _)) => Ok(v),
            Some((v, origin)) => Err(self.wrong(key, origin, "true or false", &v)),
        }
    }

    /// A string; `default` when the key is not set.
    ///
    /// # Errors
    ///
    /// [`ParamError::WrongType`] if the value is a number or a bool.
    pub fn string(&mut self, key: &'static str, default: &str) -> Result<String, ParamError> {
        match self.take(key) {
            None => Ok(default.to_string()),
            Some((ParamValue::Str(v), _)) => Ok(v),
            Some((v, origin)) => Err(self.wrong(key, origin, "a string", &v)),
        }
    }

    /// Fails on the first key no getter asked for.
    ///
    /// # Errors
    ///
    /// [`ParamError::Unknown`] naming the first unread key (in key order) and the keys that
    /// were read.
    pub fn finish(self) -> Result<(), ParamError> {
        match self.entries.into_iter().next() {
            None => Ok(()),
            Some((key, (_, origin))) => Err(ParamError::Unknown {
                strategy: self.strategy,
                key,
                origin,
                expected: self.known.join(", "),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amount::Token;

    fn ctx_parts() -> (Pair, Portfolio, Bar) {
        let pair = Pair::eth_usdc();
        let p = Portfolio::with_balances([(pair.quote.clone(), U256::from(10_000_000_000u64))]);
        let bar = Bar {
            ts: 0,
            open: 2000.0,
            high: 2000.0,
            low: 2000.0,
            close: 2000.0,
            volume: 1.0,
        };
        (pair, p, bar)
    }

    #[test]
    fn target_exposure_buys_the_exact_quote_amount() {
        let (pair, p, bar) = ctx_parts();
        let ctx = Context {
            pair: &pair,
            portfolio: &p,
            bar: &bar,
            gas_estimate: 0.0,
        };
        let intent = ctx.target_exposure(0.95).unwrap().unwrap();
        let swap = intent.as_swap().unwrap();
        assert_eq!(swap.sell, pair.quote);
        assert_eq!(swap.amount_in, U256::from(9_500_000_000u64));
        assert_eq!(ctx.target_exposure(0.0).unwrap(), None, "nothing to sell");
    }

    #[test]
    fn target_exposure_rejects_non_finite_and_out_of_range() {
        let (pair, p, bar) = ctx_parts();
        let ctx = Context {
            pair: &pair,
            portfolio: &p,
            bar: &bar,
            gas_estimate: 0.0,
        };
        assert!(matches!(
            ctx.target_exposure(f64::NAN),
            Err(StrategyError::NonFinite { .. })
        ));
        assert!(matches!(
            ctx.target_exposure(1.5),
            Err(StrategyError::OutOfRange { .. })
        ));
    }

    #[test]
    fn flat_target_sells_whole_base_balance() {
        let (pair, mut p, bar) = ctx_parts();
        p.set_balance(&Token::new("ETH", 18), U256::from(123_456_789u64));
        let ctx = Context {
            pair: &pair,
            portfolio: &p,
            bar: &bar,
            gas_estimate: 0.0,
        };
        let intent = ctx.target_exposure(0.0).unwrap().unwrap();
        assert_eq!(
            intent.as_swap().unwrap().amount_in,
            U256::from(123_456_789u64)
        );
    }

    #[test]
    fn selling_dust_is_decided_as_by_the_exact_valuation_on_both_sides_of_the_gas_threshold() {
        let (pair, mut p, _) = ctx_parts();
        let eth = Token::new("ETH", 18);
        let mut checked = 0;
        for close in [0.000_001_3, 0.37, 1.0, 1_999.999_999, 2000.0, 2.5e9] {
            let bar = Bar {
                ts: 0,
                open: close,
                high: close,
                low: close,
                close,
                volume: 0.0,
            };
            let price = price_to_units(close, 6).unwrap();
            for gas in [0.0, 1e-6, 0.2, 5.0] {
                // Held amounts whose exact value is right at, just under and just over
                // `gas / MAX_GAS_SHARE`, and far from it.
                let at = gas / MAX_GAS_SHARE / close * 1e18;
                for held in [
                    1.0,
                    at * 0.5,
                    at - 2e9,
                    at - 1.0,
                    at,
                    at + 1.0,
                    at + 2e9,
                    at * 2.0,
                ] {
                    if !(1.0..1e30).contains(&held) {
                        continue;
                    }
                    let held = U256::from(held as u128);
                    p.set_balance(&eth, held);
                    let ctx = Context {
                        pair: &pair,
                        portfolio: &p,
                        bar: &bar,
                        gas_estimate: gas,
                    };
                    let exact =
                        gas <= MAX_GAS_SHARE * pair.quote.to_f64(base_to_quote(held, 18, price));
                    let sells = ctx.target_exposure(0.0).unwrap().is_some();
                    assert_eq!(sells, exact, "close {close}, gas {gas}, held {held}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 100, "{checked} cases");
    }

    #[test]
    fn target_exposure_leaves_gas_and_skips_trades_gas_would_eat() {
        let (pair, p, bar) = ctx_parts();
        // 10,000 USDC, gas 5 USDC: buy 100 % leaves the 5 for gas.
        let ctx = Context {
            pair: &pair,
            portfolio: &p,
            bar: &bar,
            gas_estimate: 5.0,
        };
        let swap = ctx.target_exposure(1.0).unwrap().unwrap();
        assert_eq!(
            swap.as_swap().unwrap().amount_in,
            U256::from(9_995_000_000u64)
        );
        // Gas of 600 USDC is more than 5 % of a 9,500 USDC trade: no intent.
        let ctx = Context {
            pair: &pair,
            portfolio: &p,
            bar: &bar,
            gas_estimate: 600.0,
        };
        assert_eq!(ctx.target_exposure(0.95).unwrap(), None);
    }

    #[test]
    fn params_report_origin_and_reject_unknown_keys() {
        let mut p = Params::new("ema_cross");
        p.insert("fast", ParamValue::Str("x".into()), "cfg.toml line 3");
        let err = p.usize("fast", 12).unwrap_err().to_string();
        assert!(
            err.contains("cfg.toml line 3") && err.contains("fast"),
            "{err}"
        );

        let mut p = Params::new("ema_cross");
        p.insert("fsat", ParamValue::Int(3), "--param fsat=3");
        assert_eq!(p.usize("fast", 12).unwrap(), 12);
        let err = p.finish().unwrap_err().to_string();
        assert!(
            err.contains("fsat") && err.contains("--param") && err.contains("fast"),
            "{err}"
        );
    }
}
