//! The risk gate: every intent passes through it before any venue sees it.

use crate::amount::U256;
use crate::intent::{Bet, Fill, Intent, IntentId, Quote, Swap};
use crate::market::{Bar, Pair};
use crate::portfolio::Portfolio;
use crate::prediction::{BetFill, MarketView};

/// Why an intent was refused: a stable machine code (counted in summaries) and a human detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Stable snake_case code, e.g. `max_drawdown`, `price_impact`, `insufficient_balance`;
    /// reports count refusals by it, so it never changes with the figures.
    pub code: &'static str,
    /// What exactly was wrong, with the figures (amounts in token units, limits in bps or
    /// percent), for logs and the audit stream.
    pub detail: String,
}

impl Refusal {
    /// A refusal with machine `code` and human `detail`.
    pub fn new(code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }
}

/// The gate's decision on one intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Execute as asked, refusing any fill below `min_amount_out`.
    Approve {
        /// The least output the venue may fill: units of the token bought (outcome tokens for
        /// a bet), usually the quote less the slippage limit.
        min_amount_out: U256,
    },
    /// Execute a smaller amount (never larger), with the reason it was cut.
    Resize {
        /// The new input, units of the token sold; non-zero and never above the intent's.
        amount_in: U256,
        /// The least output the venue may fill for the smaller input, units of the token
        /// bought.
        min_amount_out: U256,
        /// The limit that cut the trade (e.g. code `price_impact`, `max_trade_notional`).
        reason: Refusal,
    },
    /// Do not execute.
    Refuse(Refusal),
}

/// What the gate may consult: the pair the intent trades, the portfolio, that pair's latest bar
/// (the reference price) and the clock's time (event time in simulation, wall time live).
#[derive(Debug)]
pub struct RiskContext<'a> {
    /// The pair of the intent judged (an agent holding several assets judges each swap on its
    /// own pair; every pair's quote token is the agent's numéraire).
    pub pair: &'a Pair,
    /// The agent's book: the balances an intent may spend, in token units.
    pub portfolio: &'a Portfolio,
    /// The pair's latest bar; its close is the reference price a venue's price is compared
    /// with (`max_price_deviation_bps`).
    pub bar: &'a Bar,
    /// The clock's now, unix seconds: event time when simulated or replayed, wall time live
    /// ([`crate::Clock::now`]). Trade-rate and daily limits count in it.
    pub now: i64,
    /// The operator's `flatten_now`: this unwind ignores the price-impact limit.
    pub ignore_price_impact: bool,
    /// How old the latest bar is, seconds: `now − bar.ts`, or the wall clock minus the bar's
    /// time for a live source stamped with chain time (see [`crate::Agent::with_wall_data_age`]).
    pub data_age_s: i64,
    /// The value of the holdings outside `pair` (other assets of a multi-asset agent), in
    /// quote-token units at their latest prices: part of equity for the position limits.
    pub others_value: U256,
}

impl<'a> RiskContext<'a> {
    /// A context at `now` (unix seconds) with the data age `now − bar.ts`, no holdings outside
    /// `pair` and the price-impact limit in force.
    pub fn new(pair: &'a Pair, portfolio: &'a Portfolio, bar: &'a Bar, now: i64) -> Self {
        Self {
            pair,
            portfolio,
            bar,
            now,
            ignore_price_impact: false,
            data_age_s: now - bar.ts,
            others_value: U256::ZERO,
        }
    }

    /// Equity in quote units with the pair's base at `price_units` (quote units per whole base):
    /// the pair's two balances plus [`RiskContext::others_value`], rounded down.
    pub fn equity(&self, price_units: U256) -> U256 {
        self.portfolio
            .equity(self.pair, price_units)
            .saturating_add(self.others_value)
    }
}

/// What a gate judges a bet on, beside the bet itself: the market as listed this cycle, the
/// venue's quote and the agent's exposure and equity, all in collateral units (the collateral
/// is the agent's numéraire, [`RiskContext::pair`]'s quote token).
#[derive(Debug, Clone, Copy)]
pub struct BetQuote<'a> {
    /// The market as the venue listed it at the start of the cycle (pool before the bet).
    pub market: &'a MarketView,
    /// Outcome tokens the venue says the bet buys now.
    pub tokens: U256,
    /// Our position in this market at its outcomes' marginal prices
    /// ([`MarketView::position_value`]).
    pub market_value: U256,
    /// Our positions in every unresolved market together (this one included), valued so.
    pub total_value: U256,
    /// Collateral held plus [`BetQuote::total_value`].
    pub equity: U256,
}

/// Decides on every intent. Implementations must fail closed: when a limit cannot be evaluated
/// (missing price, overflow), the answer is [`Verdict::Refuse`].
///
/// # Example
///
/// Approve swaps of at most `max_in` units with 50 bps of slippage; refuse everything else:
///
/// ```
/// use agent_core::risk::min_out_for_slippage;
/// use agent_core::{Intent, IntentId, Quote, Refusal, RiskContext, RiskGate, U256, Verdict};
///
/// struct Capped { max_in: U256 }
///
/// impl RiskGate for Capped {
///     fn evaluate(&mut self, _id: &IntentId, intent: &Intent, quote: &Quote,
///                 _ctx: &RiskContext<'_>) -> Verdict {
///         let too_big = intent.as_swap().is_none_or(|s| s.amount_in > self.max_in);
///         match min_out_for_slippage(quote.amount_out, 50) {
///             Some(min_amount_out) if !too_big => Verdict::Approve { min_amount_out },
///             _ => Verdict::Refuse(Refusal::new("max_trade", "over the cap")),
///         }
///     }
/// }
/// ```
pub trait RiskGate: Send {
    /// Checks what can be judged from the intent alone, before the venue is asked for a quote
    /// (in live mode a quote is an RPC call, and a disallowed token is never worth one).
    ///
    /// # Errors
    ///
    /// A [`Refusal`] when the intent must not go further; the default is [`check_intent`]'s
    /// (wrong pair or collateral, zero amount, insufficient balance, an unsupported intent).
    fn pre_check(
        &mut self,
        id: &IntentId,
        intent: &Intent,
        ctx: &RiskContext<'_>,
    ) -> Result<(), Refusal> {
        let _ = id;
        check_intent(intent, ctx)
    }

    /// Judges `intent`, given the venue's `quote` for it. Only called for an intent that passed
    /// [`RiskGate::pre_check`], so it need not repeat those checks.
    fn evaluate(
        &mut self,
        id: &IntentId,
        intent: &Intent,
        quote: &Quote,
        ctx: &RiskContext<'_>,
    ) -> Verdict;

    /// Judges a bet that passed [`RiskGate::pre_check`], given the venue's quote. A bet is never
    /// resized (the strategy sized it for a reason; a different size is a different bet): each
    /// part of the gate passes it or refuses it, and the bet limits
    /// ([`crate::prediction::BetGate`]) then set its minimum of outcome tokens. The default
    /// refuses every bet: a gate that does not know bets fails closed.
    ///
    /// # Errors
    ///
    /// A [`Refusal`] when a part of the gate refuses the bet; the default always returns one,
    /// with code `unsupported_intent`.
    fn check_bet(
        &mut self,
        _id: &IntentId,
        _bet: &Bet,
        _quote: &BetQuote<'_>,
        _ctx: &RiskContext<'_>,
    ) -> Result<(), Refusal> {
        Err(Refusal::new(
            "unsupported_intent",
            "this risk gate does not judge bets",
        ))
    }

    /// Marks the counters fills move (trade rate, spacing, the day's gas) so that fills
    /// recorded tentatively — a bundle's legs, each counted before the next is judged — can be
    /// taken back with [`RiskGate::rollback`]. Returns whether the gate can (the default
    /// cannot: then nothing is recorded tentatively).
    fn checkpoint(&mut self) -> bool {
        false
    }

    /// Puts the counters back as they were at the last [`RiskGate::checkpoint`].
    fn rollback(&mut self) {}

    /// Told of every fill, for limits that count trades or spend.
    fn record_fill(&mut self, _fill: &Fill, _ctx: &RiskContext<'_>) {}

    /// Told of every bet placed, for limits that count trades or spend (the default counts its
    /// gas, as [`RiskGate::record_gas`]).
    fn record_bet(&mut self, fill: &BetFill, ctx: &RiskContext<'_>) {
        self.record_gas(fill.gas_native, ctx);
    }

    /// Told of gas (`gas_native`, wei) burned by a transaction that filled nothing (a revert,
    /// an approval whose swap failed): it counts toward the day's gas spend like a fill's.
    fn record_gas(&mut self, _gas_native: U256, _ctx: &RiskContext<'_>) {}

    /// Told the equity at each bar's close; returns a loss-limit breach the first time one is
    /// crossed (the kill switch acts on it).
    fn on_mark(&mut self, _ts: i64, _equity: f64) -> Option<Refusal> {
        None
    }

    /// The operator resumed after a trip: loss limits restart from the current equity.
    fn on_resume(&mut self) {}

    /// What the loss and rate limits measure from, to persist across restarts; `None` for a
    /// gate that keeps no such state.
    fn baselines(&self) -> Option<RiskBaselines> {
        None
    }

    /// Continues from baselines saved by an earlier run of the same agent. Errors when they
    /// cannot be used (the run must not start from "no baseline").
    ///
    /// # Errors
    ///
    /// A message saying which saved value cannot be used (e.g. a negative or non-finite
    /// equity, an unparsable gas amount); the agent then refuses to start. The default accepts
    /// anything and keeps no state.
    fn restore_baselines(&mut self, _saved: RiskBaselines) -> Result<(), String> {
        Ok(())
    }
}

/// What the loss and rate limits measure from: peak equity, the UTC day and its starting
/// equity, gas spent that day and the times of recent exposure-increasing trades. A restart
/// continues from the saved copy, so a loss limit measures the agent's whole loss, not the loss
/// since the restart; only an operator resume re-bases it. Equity in quote tokens (float, as
/// the loss limits compare ratios), gas in wei as a decimal string, times in unix seconds.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskBaselines {
    /// The highest equity marked since the start (or the last operator resume), quote tokens:
    /// what `max_drawdown_pct` measures from.
    pub peak_equity: f64,
    /// The UTC day (unix s / 86400) whose starting equity is `day_start_equity`.
    pub day: Option<i64>,
    /// Equity at the first mark of `day`, quote tokens: what `max_daily_loss_pct` measures
    /// from.
    pub day_start_equity: f64,
    /// The daily loss limit tripped during `day`: no exposure-increasing trade until the next
    /// UTC day or an operator resume.
    pub daily_breached: bool,
    /// The drawdown limit tripped: no exposure-increasing trade until an operator resume.
    pub drawdown_breached: bool,
    /// Times of the exposure-increasing trades of the last hour, unix seconds, oldest first,
    /// for `max_trades_per_hour`.
    pub recent_trades: Vec<i64>,
    /// Time of the last exposure-increasing trade, unix seconds, for
    /// `min_seconds_between_trades`.
    pub last_trade: Option<i64>,
    /// The UTC day `gas_today_wei` counts.
    pub gas_day: Option<i64>,
    /// Gas burned on `gas_day`, wei, as a decimal integer string (a `U256` does not fit a
    /// JSON number), for `max_gas_spend_per_day`.
    pub gas_today_wei: String,
}

/// Persists [`RiskBaselines`] (the binary: a file in the state folder, replaced atomically and
/// fsynced, like the kill switch).
///
/// # Example
///
/// Keep the last saved copy in memory:
///
/// ```
/// use agent_core::{BaselineStore, RiskBaselines};
///
/// #[derive(Default)]
/// struct Memory(Option<RiskBaselines>);
///
/// impl BaselineStore for Memory {
///     fn save(&mut self, baselines: &RiskBaselines) -> Result<(), String> {
///         self.0 = Some(baselines.clone());
///         Ok(())
///     }
/// }
/// ```
pub trait BaselineStore: Send {
    /// Saves durably; an error stops the agent (it would otherwise forget what it lost).
    ///
    /// # Errors
    ///
    /// A message saying why the baselines could not be written durably (I/O, serialisation).
    fn save(&mut self, baselines: &RiskBaselines) -> Result<(), String>;
}

/// The minimum output `slippage_bps` below `quoted` (rounded down). `None` if bps > 10,000.
pub fn min_out_for_slippage(quoted: U256, slippage_bps: u32) -> Option<U256> {
    let keep = 10_000u32.checked_sub(slippage_bps)?;
    Some(quoted.checked_mul(U256::from(keep))? / U256::from(10_000u32))
}

/// Checks any gate makes before quoting: a non-zero swap of the agent's pair, or a non-zero bet
/// in the agent's numéraire, that the portfolio holds enough of.
///
/// # Errors
///
/// A [`Refusal`] with code:
/// - `unsupported_intent` for any other intent (a redeem, a bundle as a whole);
/// - `token_not_allowed` for a swap not of `ctx.pair`, or a bet whose collateral is not the
///   pair's quote token;
/// - `zero_amount` for a swap of zero `amount_in` or a bet of zero `investment`;
/// - `insufficient_balance` when the portfolio holds less than the amount.
pub fn check_intent(intent: &Intent, ctx: &RiskContext<'_>) -> Result<(), Refusal> {
    if let Intent::Bet(bet) = intent {
        return check_bet_intent(bet, ctx);
    }
    let Some(swap) = intent.as_swap() else {
        return Err(Refusal::new(
            "unsupported_intent",
            "only swaps are supported",
        ));
    };
    if !ctx.pair.trades(&swap.sell, &swap.buy) {
        return Err(Refusal::new(
            "token_not_allowed",
            format!("{} → {} is not the agent's pair", swap.sell, swap.buy),
        ));
    }
    if swap.amount_in.is_zero() {
        return Err(Refusal::new("zero_amount", "amount_in is zero"));
    }
    let have = ctx.portfolio.balance(&swap.sell);
    if have < swap.amount_in {
        return Err(Refusal::new(
            "insufficient_balance",
            format!(
                "needs {} units of {}, holds {have}",
                swap.amount_in, swap.sell
            ),
        ));
    }
    Ok(())
}

/// [`check_intent`] for a bet: its collateral is the agent's numéraire (every bet limit is in
/// it), the amount is not zero and the book holds it.
fn check_bet_intent(bet: &Bet, ctx: &RiskContext<'_>) -> Result<(), Refusal> {
    if bet.collateral != ctx.pair.quote {
        return Err(Refusal::new(
            "token_not_allowed",
            format!(
                "a bet in {} is not in the agent's numéraire {}",
                bet.collateral, ctx.pair.quote
            ),
        ));
    }
    if bet.investment.is_zero() {
        return Err(Refusal::new("zero_amount", "bet of zero"));
    }
    let have = ctx.portfolio.balance(&bet.collateral);
    if have < bet.investment {
        return Err(Refusal::new(
            "insufficient_balance",
            format!(
                "needs {} units of {}, holds {have}",
                bet.investment, bet.collateral
            ),
        ));
    }
    Ok(())
}

/// Checks any gate makes on the quote of a swap that passed [`check_intent`]: non-zero output,
/// and the amount plus gas affordable.
///
/// # Errors
///
/// A [`Refusal`] with code:
/// - `zero_output` when the quote's `amount_out` is zero;
/// - `insufficient_gas` when gas is paid in the token sold and the balance does not cover the
///   amount plus gas, or in a third token whose balance does not cover the gas (gas paid in
///   the token bought is not checked here);
/// - `overflow` when the amount plus gas exceeds 256 bits.
pub fn check_affordable(swap: &Swap, quote: &Quote, ctx: &RiskContext<'_>) -> Result<(), Refusal> {
    if quote.amount_out.is_zero() {
        return Err(Refusal::new("zero_output", "the venue quotes zero output"));
    }
    let (gas_token, gas) = &quote.gas_cost;
    if gas_token == &swap.sell {
        let need = swap
            .amount_in
            .checked_add(*gas)
            .ok_or_else(|| Refusal::new("overflow", "amount plus gas overflows"))?;
        let have = ctx.portfolio.balance(&swap.sell);
        if have < need {
            return Err(Refusal::new(
                "insufficient_gas",
                format!("needs {need} units of {} with gas, holds {have}", swap.sell),
            ));
        }
    } else if gas_token != &swap.buy {
        let have_gas = ctx.portfolio.balance(gas_token);
        if have_gas < *gas {
            return Err(Refusal::new(
                "insufficient_gas",
                format!("needs {gas} units of {gas_token} for gas, holds {have_gas}"),
            ));
        }
    }
    Ok(())
}

pub mod impact;
mod limits;
pub use limits::{LimitGate, RiskLimits};
