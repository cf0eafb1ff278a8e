//! [`LimitGate`]: the configured limits, checked on every intent, failing closed.

use std::collections::VecDeque;

use crate::amount::{U256, base_to_quote, price_to_units};
use crate::intent::{Fill, Intent, IntentId, Quote, Swap};

use super::impact;
use super::{
    BetQuote, Refusal, RiskBaselines, RiskContext, RiskGate, Verdict, check_affordable,
    check_intent,
};
use crate::intent::Bet;

/// Risk limits. Every field has a default chosen to protect capital without getting in the way
/// of a sane strategy; `None` switches a limit off.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskLimits {
    /// Largest notional of one exposure-increasing trade, in quote units. Default: none.
    pub max_trade_notional: Option<U256>,
    /// Largest value of one asset as a share of equity, percent. Default 100 (no leverage).
    pub max_position_pct: f64,
    /// Largest value of all non-quote assets as a share of equity, percent. Default 100.
    pub max_gross_exposure_pct: f64,
    /// Loss from the UTC day's starting equity that trips the kill switch, percent. Default 20.
    pub max_daily_loss_pct: Option<f64>,
    /// Fall from peak equity that trips the kill switch, percent. Default 50.
    pub max_drawdown_pct: Option<f64>,
    /// Every swap's minimum output is this far below the quote. Default 100 bps.
    pub max_slippage_bps: u32,
    /// How far a swap's average execution price (from the venue's quote, LP fee excluded) may be
    /// from the venue's marginal price before it, bps. Applies to every swap: an
    /// exposure-increasing one is resized down to the largest size within it, a reducing one
    /// (and a flatten) sells the largest allowed slice per cycle; only the operator's
    /// `flatten_now` ignores it. Default 100.
    pub max_price_impact_bps: Option<u32>,
    /// Refuse when the transaction's gas price is higher, wei. Default 200 gwei.
    pub max_gas_price_wei: Option<U256>,
    /// Gas the agent may burn per UTC day, native units (wei). Default: none.
    pub max_gas_spend_per_day: Option<U256>,
    /// Exposure-increasing trades per rolling hour. Default 60.
    pub max_trades_per_hour: Option<u32>,
    /// Seconds between exposure-increasing trades. Default 0.
    pub min_seconds_between_trades: i64,
    /// Token symbols the agent may trade. Default: none (only the agent's pair, always).
    pub allowed_tokens: Option<Vec<String>>,
    /// Contract addresses a live venue may send transactions to. Default: none (the venue's own
    /// router only; enforced by the on-chain venue).
    pub allowed_contracts: Option<Vec<String>>,
    /// Refuse when the venue's price is further than this from the reference (the latest bar's
    /// close), bps. Default 300.
    pub max_price_deviation_bps: Option<u32>,
    /// Refuse new intents on data older than this, seconds (the clock's now minus the bar's
    /// time). Default: none — replayed data has no age; set it for live trading.
    pub max_data_age_s: Option<i64>,
}

impl Default for RiskLimits {
    fn default() -> Self {
        Self {
            max_trade_notional: None,
            max_position_pct: 100.0,
            max_gross_exposure_pct: 100.0,
            max_daily_loss_pct: Some(20.0),
            max_drawdown_pct: Some(50.0),
            max_slippage_bps: 100,
            max_price_impact_bps: Some(100),
            max_gas_price_wei: Some(U256::from(200_000_000_000u64)),
            max_gas_spend_per_day: None,
            max_trades_per_hour: Some(60),
            min_seconds_between_trades: 0,
            allowed_tokens: None,
            allowed_contracts: None,
            max_price_deviation_bps: Some(300),
            max_data_age_s: None,
        }
    }
}

impl RiskLimits {
    /// The loss, gas-price, trade-rate and price-deviation limits off (for tests and research
    /// runs); the slippage guard, the position caps and the price-impact limit stay on.
    pub fn permissive() -> Self {
        Self {
            max_daily_loss_pct: None,
            max_drawdown_pct: None,
            max_gas_price_wei: None,
            max_trades_per_hour: None,
            max_price_deviation_bps: None,
            ..Self::default()
        }
    }
}

/// The risk gate that enforces [`RiskLimits`]. Exposure-increasing intents are checked against
/// every limit and resized down to the sizing limits; exposure-reducing ones (selling into the
/// quote token) skip the sizing and rate limits — limits on taking risk never block removing it —
/// but still face the slippage, price, gas and data checks.
#[derive(Debug, Clone)]
pub struct LimitGate {
    limits: RiskLimits,
    day: Option<i64>,
    day_start: f64,
    peak: f64,
    daily_breached: bool,
    drawdown_breached: bool,
    recent_trades: VecDeque<i64>,
    last_trade: Option<i64>,
    gas_day: i64,
    gas_today: U256,
    /// The gas of the last bet placed, wei: the estimate for the next one's budget check.
    last_bet_gas: U256,
    /// The trade and gas counters at the last checkpoint.
    saved: Option<Counters>,
}

/// What [`RiskGate::checkpoint`] saves: the counters fills move.
#[derive(Debug, Clone)]
struct Counters {
    recent_trades: VecDeque<i64>,
    last_trade: Option<i64>,
    gas_day: i64,
    gas_today: U256,
}

fn pct_to_ppm(pct: f64) -> Option<U256> {
    (pct.is_finite() && pct >= 0.0).then(|| U256::from((pct.min(1e6) * 10_000.0).round() as u64))
}

impl LimitGate {
    /// A gate enforcing `limits`, with no history: no baseline equity yet (the first mark sets
    /// the day's start and the peak), no trades and no gas counted. Continue a previous run's
    /// counters with [`RiskGate::restore_baselines`].
    pub fn new(limits: RiskLimits) -> Self {
        Self {
            limits,
            day: None,
            day_start: 0.0,
            peak: 0.0,
            daily_breached: false,
            drawdown_breached: false,
            recent_trades: VecDeque::new(),
            last_trade: None,
            gas_day: i64::MIN,
            gas_today: U256::ZERO,
            last_bet_gas: U256::ZERO,
            saved: None,
        }
    }

    /// The limits this gate enforces.
    pub fn limits(&self) -> &RiskLimits {
        &self.limits
    }

    fn refuse(code: &'static str, detail: String) -> Verdict {
        Verdict::Refuse(Refusal::new(code, detail))
    }
}

impl Default for LimitGate {
    fn default() -> Self {
        Self::new(RiskLimits::default())
    }
}

/// A loss limit crossed for the first time: sets `breached` and says by how much.
fn loss_breach(
    limit_pct: Option<f64>,
    breached: &mut bool,
    reference: f64,
    equity: f64,
    code: &'static str,
    from_what: &str,
) -> Option<Refusal> {
    let max = limit_pct?;
    if *breached || reference <= 0.0 {
        return None;
    }
    let loss = (1.0 - equity / reference) * 100.0;
    if loss >= max {
        *breached = true;
        Some(loss_refusal(code, loss, from_what, max))
    } else {
        None
    }
}

/// The breach of an equity that is not a finite non-negative number.
#[cold]
#[inline(never)]
fn bad_equity(equity: f64) -> Refusal {
    Refusal::new("bad_equity", format!("equity is {equity}"))
}

/// The refusal of a loss limit's breach: built once per breach, kept out of the per-bar mark.
#[cold]
#[inline(never)]
fn loss_refusal(code: &'static str, loss: f64, from_what: &str, max: f64) -> Refusal {
    Refusal::new(
        code,
        format!("down {loss:.2} % {from_what} (limit {max} %)"),
    )
}

impl LimitGate {
    /// The data-age and token checks every intent faces, whichever way it moves exposure.
    fn input_checks(&self, tokens: &[&crate::Token], ctx: &RiskContext<'_>) -> Result<(), Refusal> {
        let l = &self.limits;
        if let Some(max_age) = l.max_data_age_s {
            let age = ctx.data_age_s;
            if age > max_age {
                return Err(Refusal::new(
                    "stale_data",
                    format!("latest data is {age} s old (max {max_age})"),
                ));
            }
        }
        if let Some(allowed) = &l.allowed_tokens {
            for t in tokens {
                if !allowed.iter().any(|a| a == t.symbol()) {
                    return Err(Refusal::new(
                        "token_not_allowed",
                        format!("{t} is not in allowed_tokens"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The checks on taking risk before a quote: the loss limits not breached, the trade rate
    /// and the spacing since the last exposure-increasing trade.
    fn increase_checks(&mut self, now: i64) -> Result<(), Refusal> {
        let l = &self.limits;
        if self.daily_breached {
            return Err(Refusal::new(
                "max_daily_loss",
                "daily loss limit breached today",
            ));
        }
        if self.drawdown_breached {
            return Err(Refusal::new("max_drawdown", "drawdown limit breached"));
        }
        if let Some(max) = l.max_trades_per_hour {
            while self.recent_trades.front().is_some_and(|t| *t <= now - 3600) {
                self.recent_trades.pop_front();
            }
            if self.recent_trades.len() >= max as usize {
                return Err(Refusal::new(
                    "trade_rate",
                    format!("{max} trades in the last hour"),
                ));
            }
        }
        if let Some(last) = self.last_trade
            && now - last < l.min_seconds_between_trades
        {
            return Err(Refusal::new(
                "trade_spacing",
                format!(
                    "{} s since the last trade (min {})",
                    now - last,
                    l.min_seconds_between_trades
                ),
            ));
        }
        Ok(())
    }

    /// An exposure-increasing trade at `now`: the rolling hour keeps only the last hour's
    /// (bounded whether or not a rate limit is set), and it is the last trade.
    fn count_trade(&mut self, now: i64) {
        while self.recent_trades.front().is_some_and(|t| *t <= now - 3600) {
            self.recent_trades.pop_front();
        }
        self.recent_trades.push_back(now);
        self.last_trade = Some(now);
    }

    /// Gas spent today (UTC day of `now`), wei.
    fn gas_spent_today(&self, now: i64) -> U256 {
        if now.div_euclid(86_400) == self.gas_day {
            self.gas_today
        } else {
            U256::ZERO
        }
    }

    /// The checks on the market a swap would meet, whatever its size: the venue's price
    /// against the reference (`price_deviation`, in bps), the gas price (`gas_price`, wei)
    /// and the day's gas budget. `reference` is the latest close in quote units.
    fn market_checks(&self, quote: &Quote, reference: U256, now: i64) -> Result<(), Refusal> {
        let l = &self.limits;
        if let Some(max_bps) = l.max_price_deviation_bps {
            let diff = quote.venue_price.abs_diff(reference);
            let Some(bps) = diff
                .checked_mul(U256::from(10_000u32))
                .map(|d| d / reference)
            else {
                return Err(Refusal::new("overflow", "price deviation overflows"));
            };
            if bps > U256::from(max_bps) {
                return Err(Refusal::new(
                    "price_deviation",
                    format!(
                        "venue price {} is {bps} bps from the reference {reference} (max {max_bps})",
                        quote.venue_price
                    ),
                ));
            }
        }
        if let Some(max) = l.max_gas_price_wei
            && quote.gas_price_wei > max
        {
            return Err(Refusal::new(
                "gas_price",
                format!("gas price {} wei exceeds {max}", quote.gas_price_wei),
            ));
        }
        self.gas_budget_check(quote.gas_native, now)
    }

    /// Sizes a swap that increases exposure: cut to the trade's notional cap, then to the room
    /// left under the position and gross-exposure caps (the tighter applies), sized against
    /// equity net of this trade's gas. Returns the amount to sell (units of `swap.sell`) and
    /// the reason for a cut; refuses when no room is left or a limit is not a usable fraction.
    fn size_increase(
        &self,
        swap: &Swap,
        quote: &Quote,
        ctx: &RiskContext<'_>,
        reference: U256,
    ) -> Result<(U256, Option<Refusal>), Refusal> {
        let l = &self.limits;
        let mut amount = swap.amount_in;
        let mut cut: Option<Refusal> = None;
        // An increasing swap spends quote on a non-quote asset: its notional is amount_in
        // when selling quote, otherwise its value at the reference.
        let value = |amount: U256| {
            if swap.sell == ctx.pair.quote {
                amount
            } else {
                base_to_quote(amount, swap.sell.decimals(), reference)
            }
        };
        let notional = value(amount);
        if let Some(cap) = l.max_trade_notional
            && notional > cap
        {
            amount = amount.saturating_mul(cap) / notional.max(U256::from(1u8));
            cut = Some(Refusal::new(
                "max_trade_notional",
                format!("notional {notional} cut to {cap}"),
            ));
        }
        let (Some(pos_ppm), Some(gross_ppm)) = (
            pct_to_ppm(l.max_position_pct),
            pct_to_ppm(l.max_gross_exposure_pct),
        ) else {
            return Err(Refusal::new(
                "bad_limit",
                "position limits must be finite and non-negative",
            ));
        };
        // Size against equity net of this trade's gas, so fees and gas can only lower the
        // resulting share.
        let gas_quote = if quote.gas_cost.0 == ctx.pair.quote {
            quote.gas_cost.1
        } else {
            U256::ZERO
        };
        let equity = ctx.equity(reference).saturating_sub(gas_quote);
        let held = base_to_quote(
            ctx.portfolio.balance(&ctx.pair.base),
            ctx.pair.base.decimals(),
            reference,
        );
        // The asset's own cap, and the cap on all non-quote assets together (this one and
        // the others the agent holds): the tighter room applies.
        let cap_of = |ppm: U256| equity.saturating_mul(ppm) / U256::from(1_000_000u32);
        let (pos_cap, gross_cap) = (cap_of(pos_ppm), cap_of(gross_ppm));
        let gross_held = held.saturating_add(ctx.others_value);
        let pos_room = pos_cap.saturating_sub(held);
        let gross_room = gross_cap.saturating_sub(gross_held);
        let (room, cap, code) = if pos_room <= gross_room {
            (pos_room, pos_cap, "max_position")
        } else {
            (gross_room, gross_cap, "max_gross_exposure")
        };
        if room.is_zero() {
            return Err(Refusal::new(
                code,
                format!("position {held} already at the cap {cap}"),
            ));
        }
        let current = value(amount);
        if current > room {
            amount = amount.saturating_mul(room) / current;
            cut = Some(Refusal::new(
                code,
                format!(
                    "position would be {} of cap {cap}",
                    held.saturating_add(current)
                ),
            ));
        }
        Ok((amount, cut))
    }

    /// `max_gas_spend_per_day`: refuses when `gas` more would pass the day's budget.
    fn gas_budget_check(&self, gas: U256, now: i64) -> Result<(), Refusal> {
        if let Some(budget) = self.limits.max_gas_spend_per_day {
            let spent = self.gas_spent_today(now);
            if spent.saturating_add(gas) > budget {
                return Err(Refusal::new(
                    "gas_budget",
                    format!("gas today {spent} + {gas} wei exceeds {budget}"),
                ));
            }
        }
        Ok(())
    }

    /// `allowed_contracts` for a bet: the market's contract must be listed (its id is its
    /// address on chain; an id that is not an address is never listed).
    fn contract_check(&self, market: &str) -> Result<(), Refusal> {
        let Some(allowed) = &self.limits.allowed_contracts else {
            return Ok(());
        };
        let addr = market.parse::<alloy_primitives::Address>().ok();
        let listed = addr.is_some_and(|a| {
            allowed
                .iter()
                .any(|s| s.parse::<alloy_primitives::Address>().is_ok_and(|x| x == a))
        });
        if listed {
            Ok(())
        } else {
            Err(Refusal::new(
                "contract_not_allowed",
                format!("market {market} is not in allowed_contracts"),
            ))
        }
    }
}

impl RiskGate for LimitGate {
    /// A swap: the data age and tokens, then, if it adds exposure, the loss, rate and spacing
    /// limits. A bet (always adding exposure): the same, plus its market's contract.
    fn pre_check(
        &mut self,
        _id: &IntentId,
        intent: &Intent,
        ctx: &RiskContext<'_>,
    ) -> Result<(), Refusal> {
        check_intent(intent, ctx)?;
        match intent {
            Intent::Swap(swap) => {
                self.input_checks(&[&swap.sell, &swap.buy], ctx)?;
                if ctx.pair.reduces_exposure(&swap.sell, &swap.buy) {
                    return Ok(());
                }
                self.increase_checks(ctx.now)
            }
            Intent::Bet(bet) => {
                self.input_checks(&[&bet.collateral], ctx)?;
                self.contract_check(&bet.market)?;
                self.increase_checks(ctx.now)
            }
            Intent::Redeem(_) | Intent::Bundle(_) => Err(Refusal::new(
                "unsupported_intent",
                "the limit gate judges swaps and bets",
            )),
        }
    }

    /// Every `[risk]` limit that concerns a bet, in collateral units: `max_price_deviation_bps`
    /// (the venue's quote against what the market as listed gives, by the FPMM's
    /// `calcBuyAmount`: a market that moved since it was listed), `max_gas_spend_per_day` (the
    /// last bet's gas as the estimate), `max_trade_notional` (the investment),
    /// `max_position_pct` (this market's position after the bet — its value at marginal prices
    /// plus the investment — of equity) and `max_gross_exposure_pct` (every market's, so). The
    /// transaction sender enforces `max_gas_price_gwei`; the bet limits, slippage and price
    /// impact.
    fn check_bet(
        &mut self,
        _id: &IntentId,
        bet: &Bet,
        quote: &BetQuote<'_>,
        ctx: &RiskContext<'_>,
    ) -> Result<(), Refusal> {
        let l = &self.limits;
        if let Some(max_bps) = l.max_price_deviation_bps {
            let m = quote.market;
            let listed = crate::fpmm::calc_buy_amount(bet.investment, bet.outcome, &m.pool, m.fee)
                .ok()
                .filter(|t| !t.is_zero())
                .ok_or_else(|| {
                    Refusal::new(
                        "no_reference_price",
                        format!("market {} as listed gives nothing for the bet", bet.market),
                    )
                })?;
            let bps = quote
                .tokens
                .abs_diff(listed)
                .saturating_mul(U256::from(10_000u32))
                / listed;
            if bps > U256::from(max_bps) {
                return Err(Refusal::new(
                    "price_deviation",
                    format!(
                        "the venue quotes {} outcome tokens, {bps} bps from the {listed} the listed market gives (max {max_bps})",
                        quote.tokens
                    ),
                ));
            }
        }
        // The next bet's gas is estimated at the last one's (none yet after a start): a day's
        // budget already spent refuses the bet whatever the estimate.
        self.gas_budget_check(self.last_bet_gas, ctx.now)?;
        if let Some(budget) = l.max_gas_spend_per_day
            && self.gas_spent_today(ctx.now) >= budget
        {
            return Err(Refusal::new(
                "gas_budget",
                format!(
                    "gas today {} wei has used the budget {budget}",
                    self.gas_spent_today(ctx.now)
                ),
            ));
        }
        if let Some(cap) = l.max_trade_notional
            && bet.investment > cap
        {
            return Err(Refusal::new(
                "max_trade_notional",
                format!("bet {} exceeds max_trade_notional {cap}", bet.investment),
            ));
        }
        for (pct, held, code, what) in [
            (
                l.max_position_pct,
                quote.market_value,
                "max_position",
                "in this market",
            ),
            (
                l.max_gross_exposure_pct,
                quote.total_value,
                "max_gross_exposure",
                "in all markets",
            ),
        ] {
            let Some(ppm) = pct_to_ppm(pct) else {
                return Err(Refusal::new(
                    "bad_limit",
                    "position limits must be finite and non-negative",
                ));
            };
            let cap = quote.equity.saturating_mul(ppm) / U256::from(1_000_000u32);
            let after = held.saturating_add(bet.investment);
            if after > cap {
                return Err(Refusal::new(
                    code,
                    format!(
                        "{after} {what} after the bet exceeds {pct} % of equity {}",
                        quote.equity
                    ),
                ));
            }
        }
        Ok(())
    }
    fn evaluate(
        &mut self,
        _id: &IntentId,
        intent: &Intent,
        quote: &Quote,
        ctx: &RiskContext<'_>,
    ) -> Verdict {
        let Some(swap) = intent.as_swap() else {
            return Self::refuse("unsupported_intent", "only swaps are supported".into());
        };
        if let Err(r) = check_affordable(swap, quote, ctx) {
            return Verdict::Refuse(r);
        }
        let Some(reference) = price_to_units(ctx.bar.close, ctx.pair.quote.decimals()) else {
            return Self::refuse(
                "no_reference_price",
                format!("latest close {} is unusable", ctx.bar.close),
            );
        };
        if let Err(r) = self.market_checks(quote, reference, ctx.now) {
            return Verdict::Refuse(r);
        }
        let reduces = ctx.pair.reduces_exposure(&swap.sell, &swap.buy);
        let (mut amount, mut cut) = if reduces {
            (swap.amount_in, None)
        } else {
            match self.size_increase(swap, quote, ctx, reference) {
                Ok(sized) => sized,
                Err(r) => return Verdict::Refuse(r),
            }
        };
        // Price impact, on every swap: reducing ones too (an unwind does not dump into a thin
        // pool), unless the operator's `flatten_now` asked for the exit whatever the price.
        if let Some(max_bps) = self.limits.max_price_impact_bps
            && !(ctx.ignore_price_impact && reduces)
        {
            match impact::limit_swap(swap, amount, quote, ctx.pair, max_bps, reduces) {
                Err(r) => return Verdict::Refuse(r),
                Ok(None) => {}
                Ok(Some((a, reason))) => {
                    amount = a;
                    cut = Some(reason);
                }
            }
        }
        impact::sized_verdict(swap, amount, cut, quote, self.limits.max_slippage_bps)
    }

    fn record_fill(&mut self, fill: &Fill, ctx: &RiskContext<'_>) {
        self.record_gas(fill.gas_native, ctx);
        if !ctx.pair.reduces_exposure(&fill.sell, &fill.buy) {
            self.count_trade(ctx.now);
        }
    }

    fn checkpoint(&mut self) -> bool {
        self.saved = Some(Counters {
            recent_trades: self.recent_trades.clone(),
            last_trade: self.last_trade,
            gas_day: self.gas_day,
            gas_today: self.gas_today,
        });
        true
    }

    fn rollback(&mut self) {
        if let Some(c) = self.saved.take() {
            self.recent_trades = c.recent_trades;
            self.last_trade = c.last_trade;
            self.gas_day = c.gas_day;
            self.gas_today = c.gas_today;
        }
    }

    /// A bet adds exposure: it counts toward the trade rate and spacing, and its gas toward the
    /// day's budget (and is the next bet's gas estimate).
    fn record_bet(&mut self, fill: &crate::prediction::BetFill, ctx: &RiskContext<'_>) {
        self.record_gas(fill.gas_native, ctx);
        self.last_bet_gas = fill.gas_native;
        self.count_trade(ctx.now);
    }

    fn record_gas(&mut self, gas_native: U256, ctx: &RiskContext<'_>) {
        let day = ctx.now.div_euclid(86_400);
        if day != self.gas_day {
            self.gas_day = day;
            self.gas_today = U256::ZERO;
        }
        self.gas_today = self.gas_today.saturating_add(gas_native);
    }

    fn on_mark(&mut self, ts: i64, equity: f64) -> Option<Refusal> {
        if !equity.is_finite() || equity < 0.0 {
            return Some(bad_equity(equity));
        }
        let day = ts.div_euclid(86_400);
        if self.day != Some(day) {
            self.day = Some(day);
            self.day_start = equity;
            self.daily_breached = false;
        }
        self.peak = self.peak.max(equity);
        let l = &self.limits;
        loss_breach(
            l.max_daily_loss_pct,
            &mut self.daily_breached,
            self.day_start,
            equity,
            "max_daily_loss",
            "today",
        )
        .or_else(|| {
            loss_breach(
                l.max_drawdown_pct,
                &mut self.drawdown_breached,
                self.peak,
                equity,
                "max_drawdown",
                "from peak",
            )
        })
    }

    fn on_resume(&mut self) {
        // The operator accepted the loss: measure from here.
        self.peak = 0.0;
        self.day = None;
        self.daily_breached = false;
        self.drawdown_breached = false;
    }

    fn baselines(&self) -> Option<RiskBaselines> {
        Some(RiskBaselines {
            peak_equity: self.peak,
            day: self.day,
            day_start_equity: self.day_start,
            daily_breached: self.daily_breached,
            drawdown_breached: self.drawdown_breached,
            recent_trades: self.recent_trades.iter().copied().collect(),
            last_trade: self.last_trade,
            gas_day: (self.gas_day != i64::MIN).then_some(self.gas_day),
            gas_today_wei: self.gas_today.to_string(),
        })
    }

    fn restore_baselines(&mut self, b: RiskBaselines) -> Result<(), String> {
        let finite = |v: f64, what: &str| {
            if v.is_finite() && v >= 0.0 {
                Ok(v)
            } else {
                Err(format!("saved {what} {v} is not a non-negative number"))
            }
        };
        self.peak = finite(b.peak_equity, "peak_equity")?;
        self.day_start = finite(b.day_start_equity, "day_start_equity")?;
        self.day = b.day;
        self.daily_breached = b.daily_breached;
        self.drawdown_breached = b.drawdown_breached;
        self.recent_trades = b.recent_trades.into();
        self.last_trade = b.last_trade;
        self.gas_day = b.gas_day.unwrap_or(i64::MIN);
        self.gas_today = b
            .gas_today_wei
            .parse()
            .map_err(|e| format!("saved gas_today_wei `{}`: {e}", b.gas_today_wei))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amount::Token;
    use crate::market::{Bar, Pair};
    use crate::portfolio::Portfolio;
    use crate::prediction::{BetFill, MarketView};

    #[test]
    fn a_mark_breaches_each_loss_limit_once_with_its_code_and_refuses_an_unusable_equity() {
        let mut gate = LimitGate::new(RiskLimits {
            max_daily_loss_pct: Some(10.0),
            max_drawdown_pct: Some(20.0),
            ..RiskLimits::default()
        });
        let day = 86_400;
        assert!(gate.on_mark(0, 100.0).is_none());
        assert!(gate.on_mark(60, 90.5).is_none(), "down 9.5 % today");
        let daily = gate.on_mark(120, 89.0).expect("down 11 % today");
        assert_eq!(daily.code, "max_daily_loss");
        assert_eq!(daily.detail, "down 11.00 % today (limit 10 %)");
        // Latched for the day: a deeper loss within it (15 % today, under the 20 % drawdown
        // limit) says nothing more.
        assert!(gate.on_mark(180, 85.0).is_none());
        // The next day starts from its first mark; the peak is still 100.
        let drawdown = gate.on_mark(day, 79.0).expect("down 21 % from the peak");
        assert_eq!(drawdown.code, "max_drawdown");
        assert_eq!(drawdown.detail, "down 21.00 % from peak (limit 20 %)");
        // Latched too: 25 % from the peak, 5 % today.
        assert!(gate.on_mark(day + 60, 75.0).is_none());
        for bad in [f64::NAN, f64::INFINITY, -1.0] {
            let refusal = gate.on_mark(day + 120, bad).expect("an unusable equity");
            assert_eq!(refusal.code, "bad_equity", "{bad}");
        }
    }

    /// A bettor's cycle bar at `ts`: prices 1 (collateral in collateral).
    fn unit_bar(ts: i64) -> Bar {
        Bar {
            ts,
            open: 1.0,
            high: 1.0,
            low: 1.0,
            close: 1.0,
            volume: 0.0,
        }
    }

    fn usd() -> Token {
        Token::new("dUSD", 6)
    }

    fn market() -> MarketView {
        MarketView {
            id: "0x0000000000000000000000000000000000000001".into(),
            pool: vec![U256::from(1_000_000_000u64); 2],
            fee: U256::from(20_000_000_000_000_000u64),
            prices: vec![0.5, 0.5],
            closes_at: None,
            resolved: false,
            held: vec![U256::ZERO; 2],
            features: Vec::new(),
        }
    }

    fn bet(investment: u64) -> Bet {
        Bet {
            market: market().id,
            outcome: 0,
            investment: U256::from(investment),
            collateral: usd(),
        }
    }

    /// Judges `bet` with the venue quoting `tokens`, from 1,000 dUSD with nothing bet yet.
    fn judge(gate: &mut LimitGate, bet: &Bet, tokens: U256, now: i64) -> Result<(), Refusal> {
        let pair = Pair::new(Token::new("positions", 6), usd());
        let book = Portfolio::with_balances([(usd(), U256::from(1_000_000_000u64))]);
        let bar = unit_bar(now);
        let ctx = RiskContext::new(&pair, &book, &bar, now);
        let id = IntentId::new("t", now, 0);
        let m = market();
        gate.pre_check(&id, &Intent::Bet(bet.clone()), &ctx)?;
        let quote = BetQuote {
            market: &m,
            tokens,
            market_value: U256::ZERO,
            total_value: U256::ZERO,
            equity: U256::from(1_000_000_000u64),
        };
        gate.check_bet(&id, bet, &quote, &ctx)
    }

    fn listed(investment: u64) -> U256 {
        let m = market();
        crate::fpmm::calc_buy_amount(U256::from(investment), 0, &m.pool, m.fee).unwrap()
    }

    #[test]
    fn a_bet_quoted_away_from_what_the_listed_market_gives_is_refused_as_a_price_deviation() {
        let mut gate = LimitGate::new(RiskLimits {
            max_price_deviation_bps: Some(100),
            ..RiskLimits::permissive()
        });
        let b = bet(10_000_000);
        let t = listed(10_000_000);
        assert_eq!(
            judge(&mut gate, &b, t, 0),
            Ok(()),
            "the quote is the listing"
        );
        let within = t - t * U256::from(99u32) / U256::from(10_000u32);
        assert_eq!(judge(&mut gate, &b, within, 0), Ok(()), "99 bps off");
        let off = t - t * U256::from(102u32) / U256::from(10_000u32);
        let r = judge(&mut gate, &b, off, 0).unwrap_err();
        assert_eq!(r.code, "price_deviation", "{r:?}");
    }

    #[test]
    fn bets_count_their_gas_toward_the_days_budget_and_their_trades_toward_the_rate() {
        let mut gate = LimitGate::new(RiskLimits {
            max_gas_spend_per_day: Some(U256::from(1_000u32)),
            max_trades_per_hour: Some(5),
            ..RiskLimits::permissive()
        });
        let b = bet(10_000_000);
        let t = listed(10_000_000);
        let pair = Pair::new(Token::new("positions", 6), usd());
        let book = Portfolio::new();
        let bar = unit_bar(0);
        let placed = |gate: &mut LimitGate, gas: u32, now: i64| {
            let fill = BetFill {
                id: IntentId::new("t", now, 0),
                market: b.market.clone(),
                outcome: 0,
                investment: b.investment,
                tokens: t,
                gas_native: U256::from(gas),
                tx_hash: None,
            };
            gate.record_bet(&fill, &RiskContext::new(&pair, &book, &bar, now));
        };
        assert_eq!(judge(&mut gate, &b, t, 10), Ok(()));
        placed(&mut gate, 600, 10);
        // 600 spent, the next bet estimated at the last one's 600: over 1,000.
        let r = judge(&mut gate, &b, t, 20).unwrap_err();
        assert_eq!(r.code, "gas_budget", "{r:?}");
        // A new UTC day starts a new budget.
        assert_eq!(judge(&mut gate, &b, t, 86_400 + 10), Ok(()));
        // The rate counts bets: five in the hour, then no sixth.
        let mut gate = LimitGate::new(RiskLimits {
            max_trades_per_hour: Some(5),
            ..RiskLimits::permissive()
        });
        for k in 0..5 {
            assert_eq!(judge(&mut gate, &b, t, k), Ok(()));
            placed(&mut gate, 0, k);
        }
        assert_eq!(judge(&mut gate, &b, t, 6).unwrap_err().code, "trade_rate");
        assert_eq!(judge(&mut gate, &b, t, 3_601), Ok(()), "an hour later");
    }

    #[test]
    fn the_rolling_hour_of_trades_stays_an_hour_long_without_a_rate_limit() {
        let mut gate = LimitGate::new(RiskLimits::permissive());
        assert_eq!(gate.limits().max_trades_per_hour, None);
        let pair = Pair::new(Token::new("positions", 6), usd());
        let book = Portfolio::new();
        let bar = unit_bar(0);
        for k in 0..10_000i64 {
            let fill = BetFill {
                id: IntentId::new("t", k * 60, 0),
                market: market().id,
                outcome: 0,
                investment: U256::from(1u8),
                tokens: U256::from(1u8),
                gas_native: U256::ZERO,
                tx_hash: None,
            };
            gate.record_bet(&fill, &RiskContext::new(&pair, &book, &bar, k * 60));
        }
        let kept = gate.baselines().unwrap().recent_trades;
        assert_eq!(
            kept.len(),
            60,
            "one an minute for the last hour, not all 10,000"
        );
        assert_eq!(kept.last(), Some(&(9_999 * 60)));
    }

    #[test]
    fn a_bet_in_another_token_than_the_numeraire_is_refused_before_any_limit() {
        let mut gate = LimitGate::new(RiskLimits::permissive());
        let mut b = bet(10_000_000);
        b.collateral = Token::new("WXDAI", 18);
        let r = judge(&mut gate, &b, listed(10_000_000), 0).unwrap_err();
        assert_eq!(r.code, "token_not_allowed", "{r:?}");
    }

    #[test]
    fn a_gate_that_does_not_know_bets_refuses_them() {
        struct SwapsOnly;
        impl RiskGate for SwapsOnly {
            fn evaluate(
                &mut self,
                _: &IntentId,
                _: &Intent,
                _: &Quote,
                _: &RiskContext<'_>,
            ) -> Verdict {
                Verdict::Refuse(Refusal::new("x", "x"))
            }
        }
        let m = market();
        let pair = Pair::new(Token::new("positions", 6), usd());
        let book = Portfolio::new();
        let bar = unit_bar(0);
        let quote = BetQuote {
            market: &m,
            tokens: U256::from(1u8),
            market_value: U256::ZERO,
            total_value: U256::ZERO,
            equity: U256::ZERO,
        };
        let r = SwapsOnly
            .check_bet(
                &IntentId::new("t", 0, 0),
                &bet(1),
                &quote,
                &RiskContext::new(&pair, &book, &bar, 0),
            )
            .unwrap_err();
        assert_eq!(r.code, "unsupported_intent");
    }
}
