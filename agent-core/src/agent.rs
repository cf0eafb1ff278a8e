//! The agent loop: source → clock → venue sees the event → strategy → risk gate → venue →
//! portfolio, with every step reported to the audit stream. Backtest, paper and live mode run
//! this same loop; only the source, the clock and the venue differ.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use crate::amount::{Token, U256, price_representable, price_to_units};
use crate::clock::Clock;
use crate::intent::{Fill, Intent, IntentId, Order, Quote};
use crate::kill_switch::{KillMode, KillSwitch, SwitchChange, SwitchRecord, SwitchState};
use crate::market::{Bar, BarFault, MarketEvent, MarketSet, Pair};
use crate::metrics::PerformanceTracker;
use crate::portfolio::{Portfolio, PortfolioError};
use crate::risk::{LimitGate, Refusal, RiskBaselines, RiskContext, RiskGate, Verdict};
use crate::source::{MarketSource, SourceError};
use crate::strategy::{Context, Decision, Strategy, StrategyError};
use crate::venue::{Booking, SettledTx, Settlement, UnsettledTx, Venue, VenueError, VenueEvent};

/// One entry of the audit stream. Observers receive every event synchronously, in order; none is
/// ever dropped.
#[derive(Debug)]
pub enum AuditEvent<'a> {
    /// What a run is, written first to its journal by the runtime that starts it: the mode,
    /// the strategy and its parameters, the config and the input's identity (a data file's
    /// path, size in bytes and SHA-256, or the chain), as one JSON object. A replay's journal
    /// keeps what cannot be recomputed from these; the agent loop never emits it.
    Run {
        /// The first bar's time for a replay, the wall clock for a chain run, unix seconds.
        ts: i64,
        /// The run's description, JSON object text.
        description: &'a str,
    },
    /// An event the loop refused to process (bad prices, time going backwards).
    BadEvent {
        /// The bar's time, unix seconds.
        ts: i64,
        /// What is wrong with it (a [`BarFault`], a timestamp not after the previous one, a
        /// multi-market set that does not fit the agent).
        reason: String,
    },
    /// The strategy failed or produced an unusable output.
    StrategyFault {
        /// Event time, unix seconds.
        ts: i64,
        /// What the strategy returned; a non-finite or out-of-range output also halts the
        /// agent.
        error: &'a StrategyError,
    },
    /// The market event the strategy is about to see (its snapshot id is the block, on chain).
    Market {
        /// Event time, unix seconds.
        ts: i64,
        /// The event as the strategy gets it.
        event: &'a MarketEvent,
    },
    /// A model-driven strategy decided (model hash and output).
    Decision {
        /// Event time, unix seconds.
        ts: i64,
        /// What the model said and what the strategy made of it.
        decision: &'a Decision,
    },
    /// A strategy asked for something.
    Intent {
        /// Event time, unix seconds.
        ts: i64,
        /// The intent's deterministic id.
        id: &'a IntentId,
        /// The intent as asked (a bundle leg as it is sent, sized to the previous leg's fill).
        intent: &'a Intent,
    },
    /// The risk gate decided.
    Verdict {
        /// Event time, unix seconds.
        ts: i64,
        /// The intent judged (a bundle's legs are judged under their own ids, then the
        /// bundle as a whole under its id).
        id: &'a IntentId,
        /// What the gate and the kill switch decided.
        verdict: &'a Verdict,
    },
    /// The venue could not fill an approved order.
    ExecutionFailed {
        /// Event time, unix seconds.
        ts: i64,
        /// The intent whose order, bet or redemption failed.
        id: &'a IntentId,
        /// The venue's error.
        error: &'a VenueError,
    },
    /// An order filled and was booked.
    Fill(&'a Fill),
    /// Gas a transaction burned without a fill (a revert, an approval whose swap failed) was
    /// booked: `amount` units of `token` left the wallet.
    GasCharged {
        /// Event time, unix seconds.
        ts: i64,
        /// The intent the transaction served.
        id: &'a IntentId,
        /// What the transaction was for (`approve`, `swap`).
        label: &'a str,
        /// The chain's gas token.
        token: &'a Token,
        /// Gas burned, units of `token` (wei for ETH).
        amount: U256,
        /// The transaction's hash, when known.
        tx_hash: Option<&'a str>,
    },
    /// A transaction given up on can no longer be mined: its intent closes without a fill.
    TxDropped {
        /// Event time, unix seconds.
        ts: i64,
        /// The intent the transaction served.
        id: &'a IntentId,
        /// What the transaction was for (`approve`, `swap`).
        label: &'a str,
        /// The transaction's nonce, now used by another or never to be mined.
        nonce: u64,
    },
    /// A bet was placed (prediction markets).
    BetFill(&'a crate::prediction::BetFill),
    /// Resolved positions were redeemed: `amount` units of `collateral` came in.
    Redeemed {
        /// Event time, unix seconds.
        ts: i64,
        /// The redemption's intent id (sequence [`crate::prediction::REDEEM_SEQ`]).
        id: &'a IntentId,
        /// The collateral token paid out.
        collateral: &'a Token,
        /// Collateral received, its units.
        amount: U256,
    },
    /// The kill switch changed state.
    KillSwitch {
        /// The clock's now at the change, unix seconds (the wall clock before the first
        /// event).
        ts: i64,
        /// From which state to which, and why.
        change: &'a SwitchChange,
    },
    /// A venue step (a chain venue: simulated, signed, sent, replaced, mined).
    Venue {
        /// Event time, unix seconds.
        ts: i64,
        /// The step.
        event: &'a VenueEvent,
    },
    /// The venue's ledger of record (the chain) disagreed with the booked balance; the agent
    /// adopted the venue's.
    Reconciled {
        /// Event time, unix seconds (0 at the start).
        ts: i64,
        /// The token whose balance differed.
        token: &'a Token,
        /// What the book held, units of `token`.
        booked: U256,
        /// What the venue's record holds, units of `token`: the balance adopted.
        actual: U256,
    },
    /// The book after the start, after each execution and after a restart's reconciliation:
    /// what a restart compares the chain with.
    Portfolio {
        /// Event time, unix seconds (0 at the start).
        ts: i64,
        /// Every balance of the book, token units ([`Portfolio::balances`]).
        balances: &'a [(Token, U256)],
    },
    /// A restart settled the transactions the journal left open and compared the book with the
    /// venue's record; `problems` is empty when everything matched exactly.
    Restart {
        /// Wall-clock time of the reconciliation, unix seconds.
        ts: i64,
        /// What became of each transaction the journal left open.
        settled: &'a [SettledTx],
        /// Each mismatch or failure found, in words; any latches the kill switch
        /// `reduce_only`.
        problems: &'a [String],
    },
    /// A bundle is done with: `filled` (every leg), `unwound` (a leg failed; what the earlier
    /// legs bought was offered back), or `unwound_late` (after a restart or a leg's late fill,
    /// what its legs left was offered back), or `nothing_left` (a restart found nothing of it
    /// to sell back). A restart unwinds a bundle with legs sent and no such record.
    BundleClosed {
        /// Event time, unix seconds (the clock's now for `nothing_left`).
        ts: i64,
        /// The bundle's id (its legs' and unwinds' ids derive from it).
        id: &'a IntentId,
        /// `filled`, `unwound`, `unwound_late` or `nothing_left`.
        outcome: &'static str,
    },
    /// End of an event: equity marked at the close (float, for reports).
    Mark {
        /// Event time, unix seconds.
        ts: i64,
        /// The agent's pair's close, quote per whole base token (1 for a betting cycle).
        price: f64,
        /// Every holding valued in the quote token at the latest closes (a betting agent:
        /// collateral plus positions at their marginal prices), whole tokens.
        equity: f64,
    },
}

impl Booking {
    /// The audit event that records this booking at event time `ts` (a late fill is a
    /// [`AuditEvent::Fill`] of its own intent).
    pub fn audit_event(&self, ts: i64) -> AuditEvent<'_> {
        match self {
            Booking::LateFill(fill) => AuditEvent::Fill(fill),
            Booking::Gas {
                id,
                label,
                token,
                amount,
                tx_hash,
            } => AuditEvent::GasCharged {
                ts,
                id,
                label,
                token,
                amount: *amount,
                tx_hash: tx_hash.as_deref(),
            },
            Booking::Dropped { id, label, nonce } => AuditEvent::TxDropped {
                ts,
                id,
                label,
                nonce: *nonce,
            },
        }
    }
}

/// Why an observer could not take an event: for the journal, the record is not on disk. The
/// message says what failed (e.g. the database error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuditError(pub String);

/// Receives the audit stream (progress bars, recorders, journals).
///
/// An observer the agent relies on (the journal) returns an error when it could not take an
/// event: the agent then sends nothing more — its kill switch goes `halted`, latched, with the
/// reason — and the run ends with [`AgentError::Audit`]. Observers that only report (progress,
/// dashboard) return `Ok(())` whatever happens to them.
///
/// # Example
///
/// Count fills and keep the last marked equity:
///
/// ```
/// use agent_core::{AuditError, AuditEvent, Observer};
///
/// #[derive(Default)]
/// struct Tally { fills: u64, equity: f64 }
///
/// impl Observer for Tally {
///     fn on_audit(&mut self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
///         match event {
///             AuditEvent::Fill(_) => self.fills += 1,
///             AuditEvent::Mark { equity, .. } => self.equity = *equity,
///             _ => {}
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait Observer: Send {
    /// Takes one event of the stream, in order, synchronously (the loop waits).
    ///
    /// # Errors
    ///
    /// An [`AuditError`] when the event could not be taken (for a journal: not on disk); the
    /// agent halts and sends nothing more.
    fn on_audit(&mut self, event: &AuditEvent<'_>) -> Result<(), AuditError>;

    /// Whether this observer takes the per-bar events, [`AuditEvent::Market`] and
    /// [`AuditEvent::Mark`] (asked once, when it joins the stream). `false` spares the loop a
    /// call per bar: an observer that keeps neither (a compact journal) says so. Default
    /// `true`.
    fn takes_bars(&self) -> bool {
        true
    }

    /// The run is over: make everything taken durable (a journal commits its last batch).
    ///
    /// # Errors
    ///
    /// An [`AuditError`] when what was taken cannot be made durable; the run ends with
    /// [`AgentError::Audit`].
    fn finish(&mut self) -> Result<(), AuditError> {
        Ok(())
    }
}

/// Why a run ended before its source did (or, for [`AgentError::NoData`], with nothing to
/// report). The kill switch's state at the stop is in the switch's store.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The market source failed to yield its next event.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The venue filled something the portfolio cannot book: state would diverge, so stop.
    #[error("venue fill could not be booked: {0}")]
    Booking(#[from] PortfolioError),
    /// The source ended without one valid bar (or betting cycle): there is no start or end
    /// equity to report.
    #[error("no usable market event: the run saw no valid bar")]
    NoData,
    /// The venue could not report the balances the agent starts from.
    #[error("venue balances: {0}")]
    Balances(VenueError),
    /// A venue read failed (prediction markets: markets, quotes, balances).
    #[error("venue: {0}")]
    Venue(#[from] VenueError),
    /// The journal (or another observer the agent relies on) could not record: the kill switch
    /// is halted and nothing more was sent.
    #[error("journal write failed, agent halted: {0}")]
    Audit(AuditError),
    /// The risk gate's loss and rate baselines could not be saved or restored: a restart would
    /// measure the loss limits from the wrong place, so the agent halts.
    #[error("risk baselines: {0}")]
    Baselines(String),
    /// The agent cannot run as built (e.g. a strategy name the runtime's ids cannot carry).
    #[error("agent setup: {0}")]
    Setup(String),
}

/// Counts of what the risk gate decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RiskCounts {
    /// Verdicts [`Verdict::Approve`] (each leg of a bundle counts).
    pub approved: u64,
    /// Verdicts [`Verdict::Resize`].
    pub resized: u64,
    /// Verdicts [`Verdict::Refuse`], by the gate or the kill switch (a refused bundle also
    /// counts once, as `bundle_leg_refused` or `bundle_leg_cut`, besides its leg's verdict).
    pub refused: u64,
    /// Refusals by [`Refusal::code`] (`max_drawdown`, `kill_switch_halted`, ...).
    pub refused_by_reason: BTreeMap<&'static str, u64>,
    /// Why intents were cut (`max_trade_notional`, `max_position`, `price_impact`, ...).
    pub resized_by_reason: BTreeMap<&'static str, u64>,
    /// Exposure-reducing intents (a flatten's included) cut to the price-impact limit's slice:
    /// the rest is sold in later cycles.
    pub partial_unwinds: u64,
}

impl RiskCounts {
    /// Counts one verdict: approved, resized (by reason) or refused (by reason).
    pub fn record(&mut self, verdict: &Verdict) {
        match verdict {
            Verdict::Approve { .. } => self.approved += 1,
            Verdict::Resize { reason, .. } => {
                self.resized += 1;
                *self.resized_by_reason.entry(reason.code).or_default() += 1;
            }
            Verdict::Refuse(r) => self.refuse(r.code),
        }
    }

    /// Counts a refusal with `code`.
    pub fn refuse(&mut self, code: &'static str) {
        self.refused += 1;
        *self.refused_by_reason.entry(code).or_default() += 1;
    }
}

/// What a run did, in exact units where it is money.
#[derive(Debug, Clone)]
pub struct AgentReport {
    /// The agent's pair; its quote token is the unit of every equity figure.
    pub pair: Pair,
    /// Valid bars processed (for a betting venue: cycles); skipped events and ticks are not
    /// counted.
    pub bars: u64,
    /// Events skipped as unusable ([`AuditEvent::BadEvent`]).
    pub bad_events: u64,
    /// Intents processed: the strategy's, the flatten's, redemptions and bundle unwinds (a
    /// bundle counts once; intents skipped as already journaled do not count).
    pub intents: u64,
    /// What the risk gate and the kill switch decided.
    pub risk: RiskCounts,
    /// Swap fills booked ([`Portfolio::fills`]), late fills included; bets are in `bets`.
    pub fills: u64,
    /// Approved orders, bets and redemptions the venue could not carry out.
    pub execution_failures: u64,
    /// Events on which the strategy returned an error ([`AuditEvent::StrategyFault`]).
    pub strategy_faults: u64,
    /// Balances the venue's record (the chain) corrected after the start: 0 means every fill
    /// and its gas were booked exactly as the chain saw them.
    pub reconciliations: u64,
    /// Intents skipped because the journal shows them handled before a restart.
    pub duplicates_skipped: u64,
    /// Equity in quote units at the first bar's close, before any trade.
    pub start_equity: U256,
    /// Equity in quote units at the last bar's close.
    pub end_equity: U256,
    /// The first valid bar's close, quote per whole base token.
    pub first_price: f64,
    /// The last valid bar's close, quote per whole base token.
    pub last_price: f64,
    /// Largest peak-to-trough fall of the marked equity, percent.
    pub max_drawdown_pct: f64,
    /// Annualised Sharpe ratio of per-bar equity returns ([`PerformanceTracker::sharpe`]).
    pub sharpe: f64,
    /// Each calendar month's (UTC) return of the marked equity: year, month 1–12, percent
    /// ([`PerformanceTracker::monthly_returns`]).
    pub monthly_returns: Vec<(i32, u32, f64)>,
    /// The book at the end of the run.
    pub portfolio: Portfolio,
    /// The kill switch at the end of the run.
    pub kill_switch: SwitchRecord,
    /// Wall-clock time the run took.
    pub elapsed: Duration,
    /// Bets placed (a venue that lists prediction markets), in order.
    pub bets: Vec<crate::prediction::BetFill>,
    /// Collateral received from redemptions, its units.
    pub redeemed: U256,
    /// Open markets looked at, summed over cycles.
    pub markets_seen: u64,
}

impl AgentReport {
    /// Return over the run, percent: end equity over start equity, minus one (0 when the
    /// start equity is zero).
    pub fn return_pct(&self) -> f64 {
        let s = self.pair.quote.to_f64(self.start_equity);
        let e = self.pair.quote.to_f64(self.end_equity);
        if s > 0.0 { (e / s - 1.0) * 100.0 } else { 0.0 }
    }
    /// What holding the base token through the run would have returned, percent: last close
    /// over first close, minus one (0 when the first close is not positive).
    pub fn buy_hold_return_pct(&self) -> f64 {
        if self.first_price > 0.0 {
            (self.last_price / self.first_price - 1.0) * 100.0
        } else {
            0.0
        }
    }
}

/// Worth less than one unit of the quote token at `close`: no venue pays anything for it, so a
/// flatten is done when only this is left.
fn is_dust(amount: U256, token: &Token, quote: &Token, close: f64) -> bool {
    price_to_units(close, quote.decimals())
        .is_some_and(|p| crate::amount::base_to_quote(amount, token.decimals(), p).is_zero())
}

/// Why a bundle is refused when leg `k` is not approved as it stands: cut (`bundle_leg_cut`),
/// refused, or approved without a quote (`bundle_leg_refused`).
fn bundle_leg_refusal(k: usize, verdict: &Verdict) -> Refusal {
    match verdict {
        Verdict::Resize { reason, .. } => Refusal::new(
            "bundle_leg_cut",
            format!(
                "leg {k} would be cut ({}: {}): the legs no longer match",
                reason.code, reason.detail
            ),
        ),
        Verdict::Refuse(r) => Refusal::new(
            "bundle_leg_refused",
            format!("leg {k} refused ({}: {})", r.code, r.detail),
        ),
        Verdict::Approve { .. } => {
            Refusal::new("bundle_leg_refused", format!("leg {k} has no quote"))
        }
    }
}

/// Whether the bar may be traded on, or why not (fail closed on data: bad prices, time not
/// moving forward, a close that has no integer price in quote units).
#[inline]
fn usable_bar(bar: &Bar, last: Option<&Bar>, quote_decimals: u8) -> Result<(), String> {
    bar.validate().map_err(|f| f.to_string())?;
    if let Some(prev) = last
        && bar.ts <= prev.ts
    {
        return Err(format!(
            "timestamp {} is not after the previous {}",
            bar.ts, prev.ts
        ));
    }
    if price_representable(bar.close, quote_decimals) {
        Ok(())
    } else {
        Err(BarFault {
            field: "close",
            problem: "is not representable",
        }
        .to_string())
    }
}

/// Another pair of a multi-asset agent (base priced in the agent's numéraire) and its latest
/// bar, `None` until a [`MarketEvent::Markets`] brought one.
#[derive(Debug, Clone)]
struct OtherMarket {
    pair: Pair,
    bar: Option<Bar>,
}

/// The pair and latest bar a swap of `sell → buy` is judged on: the agent's own pair, or the
/// other pair that trades it. A swap no pair trades is judged on the agent's pair, which refuses
/// it (`token_not_allowed`).
fn market_of<'a>(
    pair: &'a Pair,
    bar: &'a Bar,
    others: &'a [OtherMarket],
    sell: &Token,
    buy: &Token,
) -> (&'a Pair, &'a Bar) {
    if others.is_empty() || pair.trades(sell, buy) {
        return (pair, bar);
    }
    others
        .iter()
        .find_map(|o| match &o.bar {
            Some(b) if o.pair.trades(sell, buy) => Some((&o.pair, b)),
            _ => None,
        })
        .unwrap_or((pair, bar))
}

/// `amount` of the base of a pair whose latest close is `close`, in quote units (rounded down;
/// zero when the close is unusable).
fn base_value(amount: U256, base: &Token, quote: &Token, close: f64) -> U256 {
    if amount.is_zero() {
        return U256::ZERO;
    }
    price_to_units(close, quote.decimals())
        .map(|p| crate::amount::base_to_quote(amount, base.decimals(), p))
        .unwrap_or(U256::ZERO)
}

/// The value in the numéraire of every holding outside `judged`: the other pairs' bases at their
/// latest closes, and the agent's own base when `judged` is another pair.
fn value_outside(
    portfolio: &Portfolio,
    pair: &Pair,
    bar: &Bar,
    others: &[OtherMarket],
    judged: &Pair,
) -> U256 {
    if others.is_empty() {
        return U256::ZERO;
    }
    let mut total = U256::ZERO;
    if judged != pair {
        total = base_value(
            portfolio.balance(&pair.base),
            &pair.base,
            &pair.quote,
            bar.close,
        );
    }
    for o in others {
        if &o.pair != judged
            && let Some(b) = &o.bar
        {
            let v = base_value(
                portfolio.balance(&o.pair.base),
                &o.pair.base,
                &o.pair.quote,
                b.close,
            );
            total = total.saturating_add(v);
        }
    }
    total
}

/// The risk context of a swap `sell → buy` at `now`: its own pair and bar, with the other
/// holdings' value.
#[allow(clippy::too_many_arguments)]
fn risk_ctx<'a>(
    pair: &'a Pair,
    bar: &'a Bar,
    others: &'a [OtherMarket],
    portfolio: &'a Portfolio,
    sell: &Token,
    buy: &Token,
    now: i64,
) -> RiskContext<'a> {
    let (p, b) = market_of(pair, bar, others, sell, buy);
    let mut ctx = RiskContext::new(p, portfolio, b, now);
    ctx.others_value = value_outside(portfolio, pair, bar, others, p);
    ctx
}

pub(crate) fn wall_clock_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// What the kill switch does on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct KillSwitchPolicy {
    /// On a daily-loss or drawdown breach. Default: flatten.
    pub on_breach: KillMode,
    /// Consecutive failed executions that halt the agent. Default 3.
    pub max_consecutive_failures: u32,
    /// Data older than this many × `max_data_age_s` halts the agent. Default 3.
    pub stale_data_multiple: i64,
}

impl Default for KillSwitchPolicy {
    fn default() -> Self {
        Self {
            on_breach: KillMode::Flatten,
            max_consecutive_failures: 3,
            stale_data_multiple: 3,
        }
    }
}

/// Hands `event` to every observer, in order (the audit stream of any agent loop). Every
/// observer sees it even when one fails; the first failure is returned.
///
/// # Errors
///
/// The first [`AuditError`] an observer returned, after every observer had the event.
pub fn notify(
    observers: &mut [Box<dyn Observer>],
    event: AuditEvent<'_>,
) -> Result<(), AuditError> {
    let mut first = Ok(());
    for o in observers.iter_mut() {
        if let Err(e) = o.on_audit(&event)
            && first.is_ok()
        {
            first = Err(e);
        }
    }
    first
}

/// The observers of one agent, and the first failure among them: once an observer failed, the
/// loop stops sending (see [`Observer`]).
#[derive(Default)]
pub struct AuditStream {
    observers: Vec<Box<dyn Observer>>,
    /// Indices into `observers` of those that take the per-bar events
    /// ([`Observer::takes_bars`]).
    bar_observers: Vec<usize>,
    failure: Option<AuditError>,
}

impl std::fmt::Debug for AuditStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditStream")
            .field("observers", &self.observers.len())
            .field("failure", &self.failure)
            .finish()
    }
}

impl AuditStream {
    /// A stream to `observers`, which get every event in this order.
    pub fn new(observers: Vec<Box<dyn Observer>>) -> Self {
        let mut stream = Self::default();
        for o in observers {
            stream.push(o);
        }
        stream
    }

    /// Adds `observer` after the others.
    pub fn push(&mut self, observer: Box<dyn Observer>) {
        if observer.takes_bars() {
            self.bar_observers.push(self.observers.len());
        }
        self.observers.push(observer);
    }

    /// Hands `event` to every observer (a per-bar event only to those that take it), keeping
    /// the first failure.
    #[inline(always)]
    pub fn emit(&mut self, event: AuditEvent<'_>) {
        // A backtest without observers pays nothing per event, nor one whose observers take
        // no per-bar event (a compact journal) per bar. Inlined, the event's variant is known
        // at the call site and only one of the two tests is left.
        let per_bar = matches!(event, AuditEvent::Market { .. } | AuditEvent::Mark { .. });
        let listened = if per_bar {
            !self.bar_observers.is_empty()
        } else {
            !self.observers.is_empty()
        };
        if listened {
            self.emit_to_observers(event);
        }
    }

    /// [`AuditStream::emit`] once there are observers.
    #[inline(never)]
    fn emit_to_observers(&mut self, event: AuditEvent<'_>) {
        let sent = if matches!(event, AuditEvent::Market { .. } | AuditEvent::Mark { .. }) {
            self.emit_bar(&event)
        } else {
            notify(&mut self.observers, event)
        };
        if let Err(e) = sent {
            tracing::error!(target: "defai::audit", error = %e, "audit stream failed: nothing more is sent");
            self.failure.get_or_insert(e);
        }
    }

    /// A per-bar event to the observers that take it, keeping the first failure.
    #[inline]
    fn emit_bar(&mut self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
        let mut first = Ok(());
        for &i in &self.bar_observers {
            if let Err(e) = self.observers[i].on_audit(event)
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        first
    }

    /// The first failure so far, if any.
    pub fn failure(&self) -> Option<&AuditError> {
        self.failure.as_ref()
    }

    /// Once an observer failed: halts `kill` (latched, with the reason), tells the observers
    /// that still listen, and returns [`AgentError::Audit`]; nothing more may be sent. Every
    /// agent loop calls this before it judges or sends anything.
    ///
    /// # Errors
    ///
    /// [`AgentError::Audit`] with the first observer failure, if any observer has failed.
    #[inline]
    pub fn halt_on_failure(&mut self, kill: &mut KillSwitch, now: i64) -> Result<(), AgentError> {
        match &self.failure {
            None => Ok(()),
            Some(_) => self.halt(kill, now),
        }
    }

    /// The slow path of [`AuditStream::halt_on_failure`], kept out of the per-bar check.
    #[cold]
    fn halt(&mut self, kill: &mut KillSwitch, now: i64) -> Result<(), AgentError> {
        let Some(e) = self.failure.clone() else {
            return Ok(());
        };
        tracing::error!(target: "defai::audit", error = %e, "journal failure: agent halted, nothing more is sent");
        if let Some(change) = kill.trip(KillMode::Halt, &format!("journal failure: {e}"), now) {
            self.emit(AuditEvent::KillSwitch {
                ts: now,
                change: &change,
            });
        }
        Err(AgentError::Audit(e))
    }

    /// Ends the stream: every observer makes what it took durable (a replay's journal commits
    /// its last batch); a failure, now or earlier, halts as [`AuditStream::halt_on_failure`].
    ///
    /// # Errors
    ///
    /// [`AgentError::Audit`] with the first failure, of [`Observer::finish`] or of any event
    /// before.
    pub fn finish(&mut self, kill: &mut KillSwitch, now: i64) -> Result<(), AgentError> {
        for o in self.observers.iter_mut() {
            if let Err(e) = o.finish() {
                self.failure.get_or_insert(e);
            }
        }
        self.halt_on_failure(kill, now)
    }
}

/// What the journal says about the agent's previous run: what a restart starts from.
#[derive(Debug, Clone, Default)]
pub struct Resume {
    /// The last journaled book (token symbol, amount), if the agent ran before.
    pub snapshot: Option<Vec<(String, U256)>>,
    /// Transactions signed but not known to have finished when the agent stopped.
    pub unsettled: Vec<UnsettledTx>,
    /// Ids of intents already journaled: an intent is never processed twice.
    pub handled: HashSet<String>,
    /// Collateral put into each prediction market: every bet that may have reached the chain
    /// (filled, or its buy signed), so a restart never bets past a market's exposure limit.
    pub bet_exposure: BTreeMap<String, U256>,
    /// Bundles with legs or unwinds journaled as sent and no [`AuditEvent::BundleClosed`] (a
    /// stop between legs, with one in flight, or before an unwind completed), by bundle id:
    /// what a restart sells back.
    pub open_bundles: BTreeMap<String, Vec<BundleMember>>,
}

/// A leg or an unwind of a bundle a restart found open ([`Resume::open_bundles`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleMember {
    /// The intent's id (`strategy#k:ts:seq` or `strategy#unwind{seq}:ts:k`).
    pub id: String,
    /// The venue key it was sent to ([`crate::Swap::venue`]).
    pub venue: Option<String>,
    /// What it moved, `(token symbol, in, out)` in token units (gas included when read from a
    /// receipt): from its journaled fill, or from the receipt an earlier restart settled.
    /// Empty: nothing on record.
    pub moved: Vec<(String, U256, U256)>,
    /// Nothing on record and a transaction of it still open when the agent stopped: this
    /// restart's settlement says what became of it.
    pub pending: bool,
}

/// What the run's loop tallies for its report: events counted, the first bar with the equity
/// it started from (quote units), the last usable bar, and the equity curve's statistics.
#[derive(Default)]
struct RunTally {
    perf: PerformanceTracker,
    bars: u64,
    bad_events: u64,
    first: Option<(Bar, U256)>,
    last: Option<Bar>,
}

/// Selling back what a bundle's legs left (after a restart or a leg's late fill), on the next
/// event.
#[derive(Debug, Clone)]
struct PendingUnwind {
    bundle: IntentId,
    swap: crate::intent::Swap,
}

/// One strategy, one pair, one venue. Build it, then [`Agent::run`] it to the end of the source.
pub struct Agent<S, V> {
    pair: Pair,
    /// The other pairs of a multi-asset agent, all quoted in `pair.quote` (the numéraire).
    others: Vec<OtherMarket>,
    source: S,
    venue: V,
    strategy: Box<dyn Strategy>,
    gate: Box<dyn RiskGate>,
    kill: KillSwitch,
    policy: KillSwitchPolicy,
    max_data_age_s: Option<i64>,
    /// Data age against the wall clock rather than the agent's clock.
    wall_data_age: bool,
    clock: Clock,
    portfolio: Portfolio,
    audit: AuditStream,
    // Run state.
    risk: RiskCounts,
    intents_seen: u64,
    execution_failures: u64,
    consecutive_failures: u32,
    strategy_faults: u64,
    reconciliations: u64,
    resume: Option<Resume>,
    handled: HashSet<String>,
    duplicates_skipped: u64,
    baseline_store: Option<Box<dyn crate::risk::BaselineStore>>,
    /// Saved by an earlier run, restored into the gate at start.
    restore_baselines: Option<RiskBaselines>,
    /// What was saved last: saved again only when the gate's differ.
    saved_baselines: Option<RiskBaselines>,
    /// Transactions a restart found still pending: while one is, an operator resume cannot
    /// lift the reduce-only latch it set.
    restart_pending: Vec<UnsettledTx>,
    /// The gate part for bets (a venue that lists prediction markets).
    bet_gate: crate::prediction::BetGate,
    /// Collateral put into each prediction market (restored from the journal on a restart).
    bet_exposure: BTreeMap<String, U256>,
    /// This cycle's prediction markets as listed, holdings updated by its bets.
    predictions: Option<crate::prediction::PredictionSet>,
    bets: Vec<crate::prediction::BetFill>,
    redeemed: U256,
    markets_seen: u64,
    /// Each listed market's [`crate::prediction::MarketView::position_value`] this cycle (index
    /// as in `predictions`), with the cycle's time: computed at the cycle's first bet, updated
    /// for the market of each bet placed.
    position_values: (i64, Vec<U256>),
    /// Legs that failed (a timeout may yet fill): leg id → its swap, so a late fill is sold back.
    failed_legs: BTreeMap<String, crate::intent::Swap>,
    /// What a restart or a late fill left of a bundle, sold back on the next event.
    pending_unwinds: Vec<PendingUnwind>,
}

impl<S, V> std::fmt::Debug for Agent<S, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("pair", &self.pair)
            .field("others", &self.others)
            .field("strategy", &self.strategy.name())
            .field("kill", &self.kill)
            .field("clock", &self.clock)
            .field("portfolio", &self.portfolio)
            .field("risk", &self.risk)
            .field("audit", &self.audit)
            .finish_non_exhaustive()
    }
}

impl<S: MarketSource, V: Venue> Agent<S, V> {
    /// An agent with a [`LimitGate`] on default limits, an active in-memory kill switch and a
    /// simulated clock; replace any with the `with_*` methods. There is no way to build an agent
    /// without a gate.
    pub fn new(
        pair: Pair,
        source: S,
        venue: V,
        strategy: Box<dyn Strategy>,
        mut portfolio: Portfolio,
    ) -> Self {
        portfolio.track(&pair);
        Self {
            pair,
            others: Vec::new(),
            source,
            venue,
            strategy,
            gate: Box::new(LimitGate::default()),
            kill: KillSwitch::new(),
            policy: KillSwitchPolicy::default(),
            max_data_age_s: None,
            wall_data_age: false,
            clock: Clock::Simulated,
            portfolio,
            audit: AuditStream::default(),
            risk: RiskCounts::default(),
            intents_seen: 0,
            execution_failures: 0,
            consecutive_failures: 0,
            strategy_faults: 0,
            reconciliations: 0,
            resume: None,
            handled: HashSet::new(),
            duplicates_skipped: 0,
            baseline_store: None,
            restore_baselines: None,
            saved_baselines: None,
            restart_pending: Vec::new(),
            bet_gate: crate::prediction::BetGate::default(),
            bet_exposure: BTreeMap::new(),
            predictions: None,
            bets: Vec::new(),
            redeemed: U256::ZERO,
            markets_seen: 0,
            position_values: (i64::MIN, Vec::new()),
            failed_legs: BTreeMap::new(),
            pending_unwinds: Vec::new(),
        }
    }

    /// The bet limits the gate judges bets with (a venue that lists prediction markets);
    /// default [`crate::prediction::BetLimits::default`].
    pub fn with_bet_limits(mut self, limits: crate::prediction::BetLimits) -> Self {
        self.bet_gate = crate::prediction::BetGate { limits };
        self
    }

    /// Persists the gate's loss and rate baselines ([`RiskBaselines`]) to `store` — after every
    /// fill, at every bar's close and with an operator resume, when they changed — starting
    /// from `saved` (an earlier run's) when given: a restart continues the
    /// drawdown, the day's loss, the day's gas and the trade rate where they were. A store that
    /// cannot save halts the agent.
    pub fn with_baselines(
        mut self,
        store: Box<dyn crate::risk::BaselineStore>,
        saved: Option<RiskBaselines>,
    ) -> Self {
        self.baseline_store = Some(store);
        self.restore_baselines = saved;
        self
    }

    /// Resumes after a restart: before the first event, settles what the journal left open,
    /// compares the book with the venue's record (a mismatch latches `reduce_only` and says why)
    /// and skips intents already handled.
    pub fn resuming(mut self, resume: Resume) -> Self {
        self.resume = Some(resume);
        self
    }

    /// Makes this a multi-asset agent: besides its own pair it holds the bases of `pairs`, each
    /// quoted in the agent's quote token (the numéraire), priced by the
    /// [`MarketEvent::Markets`] events of its source. Equity and the loss limits value every
    /// holding; each swap is judged on its own pair; a flatten sells every asset into the
    /// numéraire. Pairs the events bring without being declared here are added as they come.
    ///
    /// # Errors
    /// A pair quoted in another token than the agent's, or the agent's own pair, is refused with
    /// what is wrong.
    pub fn with_pairs(mut self, pairs: impl IntoIterator<Item = Pair>) -> Result<Self, String> {
        for p in pairs {
            self.add_pair(&p)?;
        }
        Ok(self)
    }

    fn add_pair(&mut self, p: &Pair) -> Result<(), String> {
        if p.quote != self.pair.quote {
            return Err(format!(
                "pair {}/{} is not quoted in the numéraire {}",
                p.base, p.quote, self.pair.quote
            ));
        }
        if p.base == self.pair.base || self.others.iter().any(|o| o.pair.base == p.base) {
            return Err(format!("pair {}/{} is listed twice", p.base, p.quote));
        }
        self.others.push(OtherMarket {
            pair: p.clone(),
            bar: None,
        });
        Ok(())
    }

    /// Checks the other pairs of a multi-market event, then records their bars (all or none):
    /// the first entry must be the agent's pair; every other bar must be valid, at the set's
    /// time and priced in the numéraire. A pair's first entry prices its base; later entries of
    /// the same pair (other venues) only inform the strategy.
    fn observe_others(&mut self, set: &MarketSet) -> Result<(), String> {
        let Some(first) = set.markets.first() else {
            return Err("a market set with no markets".into());
        };
        if first.pair != self.pair {
            return Err(format!(
                "the set's first market is {}/{}, not the agent's pair {}/{}",
                first.pair.base, first.pair.quote, self.pair.base, self.pair.quote
            ));
        }
        for m in &set.markets[1..] {
            let name = format!("{}/{}", m.pair.base, m.pair.quote);
            m.bar.validate().map_err(|f| format!("{name}: {f}"))?;
            if m.bar.ts != set.ts {
                return Err(format!(
                    "{name}: bar time {} is not the set's {}",
                    m.bar.ts, set.ts
                ));
            }
            if m.pair.quote != self.pair.quote
                || (m.pair.base == self.pair.base && m.pair != self.pair)
            {
                return Err(format!(
                    "{name} is not an asset priced in {}",
                    self.pair.quote
                ));
            }
            if price_to_units(m.bar.close, m.pair.quote.decimals()).is_none() {
                return Err(format!("{name}: close is not representable"));
            }
        }
        for (i, m) in set.markets.iter().enumerate().skip(1) {
            // Another venue of a pair already in the set (a second DEX): the first entry prices
            // the asset.
            if set.markets[..i].iter().any(|e| e.pair == m.pair) {
                continue;
            }
            match self.others.iter_mut().find(|o| o.pair == m.pair) {
                Some(o) => o.bar = Some(m.bar),
                None => {
                    self.add_pair(&m.pair)?;
                    if let Some(o) = self.others.last_mut() {
                        o.bar = Some(m.bar);
                    }
                }
            }
        }
        Ok(())
    }

    /// Equity in quote units with the agent's base at `price_units`: every holding valued in
    /// the numéraire (other assets at their latest closes), rounded down.
    #[inline]
    fn equity_units(&self, price_units: U256) -> U256 {
        let own = self.portfolio.equity(&self.pair, price_units);
        if self.others.is_empty() {
            return own;
        }
        let others = self.others.iter().filter_map(|o| {
            o.bar.map(|b| {
                base_value(
                    self.portfolio.balance(&o.pair.base),
                    &o.pair.base,
                    &o.pair.quote,
                    b.close,
                )
            })
        });
        others.fold(own, |acc, v| acc.saturating_add(v))
    }

    /// [`Agent::equity_units`] as a float at a float close, for marks and the loss limits.
    #[inline]
    fn equity_f64(&self, close: f64) -> f64 {
        let own = self.portfolio.equity_f64(&self.pair, close);
        if self.others.is_empty() {
            return own;
        }
        own + self
            .others
            .iter()
            .filter_map(|o| {
                o.bar
                    .map(|b| self.portfolio.balance_f64(&o.pair.base) * b.close)
            })
            .sum::<f64>()
    }

    /// Judges every intent with `gate` instead of the default [`LimitGate`].
    pub fn with_gate(mut self, gate: Box<dyn RiskGate>) -> Self {
        self.gate = gate;
        self
    }

    /// Uses `kill` (e.g. restored from the state folder) and `policy` for automatic trips;
    /// `max_data_age_s` arms the stale-data trigger.
    pub fn with_kill_switch(
        mut self,
        kill: KillSwitch,
        policy: KillSwitchPolicy,
        max_data_age_s: Option<i64>,
    ) -> Self {
        self.kill = kill;
        self.policy = policy;
        self.max_data_age_s = max_data_age_s;
        self
    }

    /// Measures the age of market data against the wall clock, while the agent's own clock
    /// (trade rates, UTC days) stays the source's: for a live chain source, whose events carry
    /// the block's time, so `max_data_age_s` means "the latest block is this old now".
    pub fn with_wall_data_age(mut self) -> Self {
        self.wall_data_age = true;
        self
    }

    fn data_age(&self, bar: &Bar, now: i64) -> i64 {
        self.age_of(bar.ts, now)
    }

    #[inline]
    fn age_of(&self, data_ts: i64, now: i64) -> i64 {
        if self.wall_data_age {
            wall_clock_s() - data_ts
        } else {
            now - data_ts
        }
    }

    /// Halts when data stamped `data_ts` is older than `stale_data_multiple` × `max_data_age_s`.
    #[inline]
    fn stale_check(&mut self, data_ts: i64, now: i64) {
        if let Some(max_age) = self.max_data_age_s {
            let age = self.age_of(data_ts, now);
            if age > max_age.saturating_mul(self.policy.stale_data_multiple) {
                self.trip_stale(age, now);
            }
        }
    }

    /// [`Agent::stale_check`]'s halt: data `age` seconds old.
    #[cold]
    fn trip_stale(&mut self, age: i64, now: i64) {
        let reason = format!(
            "market data {age} s old, over {}× max_data_age_s",
            self.policy.stale_data_multiple
        );
        self.trip(KillMode::Halt, &reason, now);
    }

    /// Halts before the first event (config `start_halted`); only an operator resume lifts it.
    pub fn start_halted(mut self, reason: &str) -> Self {
        self.kill.trip(KillMode::Halt, reason, 0);
        self
    }

    /// Paces the run and tells its time with `clock` (default [`Clock::Simulated`]: as fast as
    /// possible, on event time).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Adds `observer` to the audit stream, after those added before.
    pub fn with_observer(mut self, observer: Box<dyn Observer>) -> Self {
        self.audit.push(observer);
        self
    }

    /// The venue the agent trades on.
    pub fn venue(&self) -> &V {
        &self.venue
    }

    /// Applies the kill switch's `change` at `ts`, if any ([`Agent::apply_switch_change`]).
    #[inline]
    fn switch_changed(&mut self, ts: i64, change: Option<SwitchChange>) {
        if let Some(change) = change {
            self.apply_switch_change(ts, change);
        }
    }

    /// [`Agent::switch_changed`] once the switch did change: on a resume, re-bases the gate and
    /// saves its baselines (a failed save halts again); then journals the change.
    fn apply_switch_change(&mut self, ts: i64, change: SwitchChange) {
        if change.to == SwitchState::Active {
            self.gate.on_resume();
            // The re-base is saved with the resume, not at the end of the bar: a crash in
            // between would restart with an active switch and the old, breached baselines.
            if let Err(e) = self.persist_baselines(ts) {
                tracing::error!(target: "defai::audit", error = %e, "resume not re-based on disk: halted");
            }
        }
        self.audit.emit(AuditEvent::KillSwitch {
            ts,
            change: &change,
        });
    }

    fn snapshot(&mut self, ts: i64) {
        self.audit.emit(AuditEvent::Portfolio {
            ts,
            balances: self.portfolio.balances(),
        });
    }

    fn trip(&mut self, mode: KillMode, reason: &str, ts: i64) {
        let change = self.kill.trip(mode, reason, ts);
        self.switch_changed(ts, change);
    }

    fn venue_events(&mut self, ts: i64) {
        for event in self.venue.drain_events() {
            tracing::info!(target: "defai::audit", step = event.step, label = %event.label, tx = ?event.tx_hash, nonce = ?event.nonce, detail = %event.detail, "venue");
            self.audit.emit(AuditEvent::Venue { ts, event: &event });
        }
    }

    /// Saves the gate's baselines if they changed since the last save (agents with a store).
    #[inline]
    fn persist_baselines(&mut self, now: i64) -> Result<(), AgentError> {
        if self.baseline_store.is_none() {
            return Ok(());
        }
        self.save_baselines(now)
    }

    /// [`Agent::persist_baselines`] for an agent with a store.
    fn save_baselines(&mut self, now: i64) -> Result<(), AgentError> {
        let Some(store) = self.baseline_store.as_mut() else {
            return Ok(());
        };
        let Some(b) = self.gate.baselines() else {
            return Ok(());
        };
        if self.saved_baselines.as_ref() == Some(&b) {
            return Ok(());
        }
        if let Err(e) = store.save(&b) {
            let reason = format!("risk baselines not saved: {e}");
            self.trip(KillMode::Halt, &reason, now);
            return Err(AgentError::Baselines(reason));
        }
        self.saved_baselines = Some(b);
        Ok(())
    }

    /// Ends the run if the audit stream failed (see [`Observer`]).
    #[inline]
    fn audit_ok(&mut self, now: i64) -> Result<(), AgentError> {
        self.audit.halt_on_failure(&mut self.kill, now)
    }

    /// Adopts the venue's balances where it keeps the record (the chain is the source of truth).
    /// `after_fill`: after the start the book should always match — fills, late fills and the
    /// gas of failed transactions are booked from the venue's own figures — so a difference is
    /// counted as a reconciliation (a booking error, or money moved from elsewhere); at the
    /// start the venue's balances are simply adopted.
    async fn sync_balances(&mut self, ts: i64, after_fill: bool) -> Result<(), VenueError> {
        if self.venue.open_transactions() > 0 {
            // A transaction given up on may land between any two reads: the chain's balances
            // cannot be compared with the book until it settles (and is booked as its fill).
            return Ok(());
        }
        let Some(actual) = self.venue.balances().await? else {
            return Ok(());
        };
        for (token, amount) in actual {
            let booked = self.portfolio.balance(&token);
            if booked != amount {
                if after_fill {
                    self.reconciliations += 1;
                    tracing::warn!(target: "defai::audit", %token, %booked, %amount, "booked balance differs from the venue's: adopting the venue's");
                }
                self.audit.emit(AuditEvent::Reconciled {
                    ts,
                    token: &token,
                    booked,
                    actual: amount,
                });
                self.portfolio.set_balance(&token, amount);
            }
        }
        Ok(())
    }

    /// While a transaction the venue gave up on may still be mined, nothing new is sent: an
    /// order adding exposure could double what the first one does when it lands, and any order
    /// (a reducing one too) would only queue behind it at the next nonce and land with it.
    /// Refused until it settles; the kill switch's flatten resumes then.
    fn open_check(&self) -> Result<(), Refusal> {
        let open = self.venue.open_transactions();
        if open == 0 {
            return Ok(());
        }
        Err(Refusal::new(
            "open_transaction",
            format!(
                "{open} transaction(s) given up on may still be mined: nothing is sent until they settle (a new one would queue behind them)"
            ),
        ))
    }

    /// Kill switch, gate pre-check, venue quote, gate verdict: the decision on one intent.
    async fn judge(&mut self, id: &IntentId, intent: &Intent, bar: &Bar, now: i64) -> Verdict {
        self.judge_quoted(id, intent, bar, now).await.0
    }

    /// [`Agent::judge`], with the venue's quote of a swap that reached the quote.
    async fn judge_quoted(
        &mut self,
        id: &IntentId,
        intent: &Intent,
        bar: &Bar,
        now: i64,
    ) -> (Verdict, Option<Quote>) {
        let swap = match intent {
            Intent::Swap(swap) => swap,
            Intent::Bet(bet) => return (self.judge_bet(id, intent, bet, bar, now).await, None),
            Intent::Bundle(_) => {
                return (
                    Verdict::Refuse(Refusal::new(
                        "unsupported_intent",
                        "a bundle is judged leg by leg",
                    )),
                    None,
                );
            }
            // A redemption turns resolved positions into collateral: it removes risk, so only
            // `halted` (and an open transaction) stops it.
            Intent::Redeem(_) => {
                let v = match self.kill.allows(true).and_then(|()| self.open_check()) {
                    Ok(()) => Verdict::Approve {
                        min_amount_out: U256::ZERO,
                    },
                    Err(r) => Verdict::Refuse(r),
                };
                return (v, None);
            }
        };
        let reduces = self.pair.reduces_exposure(&swap.sell, &swap.buy);
        let age = self.data_age(bar, now);
        let mut ctx = risk_ctx(
            &self.pair,
            bar,
            &self.others,
            &self.portfolio,
            &swap.sell,
            &swap.buy,
            now,
        );
        // The operator's flatten_now: unwinding ignores the price-impact limit.
        ctx.ignore_price_impact = reduces && self.kill.flatten_now();
        ctx.data_age_s = age;
        if let Err(r) = self
            .kill
            .allows(reduces)
            .and_then(|()| self.open_check())
            .and_then(|()| self.gate.pre_check(id, intent, &ctx))
        {
            return (Verdict::Refuse(r), None);
        }
        let quote = self.venue.quote(swap).await;
        self.venue_events(bar.ts);
        let quote = match quote {
            Ok(q) => q,
            Err(e) => {
                return (
                    Verdict::Refuse(Refusal::new("quote_failed", e.to_string())),
                    None,
                );
            }
        };
        let mut ctx = risk_ctx(
            &self.pair,
            bar,
            &self.others,
            &self.portfolio,
            &swap.sell,
            &swap.buy,
            now,
        );
        ctx.ignore_price_impact = reduces && self.kill.flatten_now();
        ctx.data_age_s = age;
        let verdict = match self.gate.evaluate(id, intent, &quote, &ctx) {
            // The loop enforces what a gate promises: a resize never grows an intent.
            Verdict::Resize { amount_in, .. }
                if amount_in > swap.amount_in || amount_in.is_zero() =>
            {
                Verdict::Refuse(Refusal::new(
                    "bad_resize",
                    format!("gate resized {} to {amount_in}", swap.amount_in),
                ))
            }
            v => v,
        };
        (verdict, Some(quote))
    }

    /// One intent, start to end: judged, audited, executed, booked.
    async fn process(
        &mut self,
        seq: u32,
        intent: Intent,
        bar: &Bar,
        now: i64,
        name: &std::sync::Arc<str>,
    ) -> Result<(), AgentError> {
        let id = IntentId::new(name.clone(), bar.ts, seq);
        if !self.handled.is_empty() && self.handled.contains(&id.to_string()) {
            // Same event, same strategy, same intent: handled before the restart.
            self.duplicates_skipped += 1;
            tracing::warn!(target: "defai::audit", %id, "intent already in the journal: not processed again");
            return Ok(());
        }
        self.intents_seen += 1;
        tracing::debug!(target: "defai::audit", %id, ?intent, "intent");
        self.audit.emit(AuditEvent::Intent {
            ts: bar.ts,
            id: &id,
            intent: &intent,
        });
        // Nothing is judged or sent for an intent that is not on record.
        self.audit_ok(now)?;
        if let Intent::Bundle(legs) = &intent {
            return self.process_bundle(id, legs, bar, now).await;
        }
        self.judge_and_execute(id, intent, bar, now).await
    }

    /// An intent on record, judged and carried out (anything but a bundle).
    async fn judge_and_execute(
        &mut self,
        id: IntentId,
        intent: Intent,
        bar: &Bar,
        now: i64,
    ) -> Result<(), AgentError> {
        let verdict = self.judge(&id, &intent, bar, now).await;
        tracing::debug!(target: "defai::audit", %id, ?verdict, "verdict");
        self.audit.emit(AuditEvent::Verdict {
            ts: bar.ts,
            id: &id,
            verdict: &verdict,
        });
        self.audit_ok(now)?;
        self.risk.record(&verdict);
        let (amount_in, min_amount_out) = match &verdict {
            Verdict::Approve { min_amount_out } => (None, *min_amount_out),
            Verdict::Resize {
                amount_in,
                min_amount_out,
                reason,
            } => {
                if reason.code == "price_impact"
                    && intent
                        .as_swap()
                        .is_some_and(|s| self.pair.reduces_exposure(&s.sell, &s.buy))
                {
                    self.risk.partial_unwinds += 1;
                    tracing::warn!(target: "defai::audit", %id, %amount_in, "partial unwind: the price-impact limit allows this slice now, the rest in later cycles");
                }
                (Some(*amount_in), *min_amount_out)
            }
            Verdict::Refuse(_) => return Ok(()),
        };
        let swap = match &intent {
            Intent::Swap(swap) => swap,
            Intent::Bet(bet) => return self.place_bet(id, bet, min_amount_out, bar, now).await,
            Intent::Redeem(r) => {
                return self.redeem_positions(id, &r.collateral, bar, now).await;
            }
            // Handled before judging.
            Intent::Bundle(_) => return Ok(()),
        };
        let mut swap = swap.clone();
        swap.amount_in = amount_in.unwrap_or(swap.amount_in);
        let order = Order {
            id,
            swap,
            min_amount_out,
        };

        let executed = self.venue.execute(&order, bar.ts).await;
        self.venue_events(bar.ts);
        match executed {
            Ok(fill) => self.book_fill(&fill, bar, now).await?,
            Err(error) => self.execution_failed(&order.id, &error, bar, now).await?,
        }
        Ok(())
    }

    /// Books a swap's fill: the portfolio, the gate's trade record, the baselines, the journal,
    /// what the venue learnt besides, and the balances read back.
    async fn book_fill(&mut self, fill: &Fill, bar: &Bar, now: i64) -> Result<(), AgentError> {
        self.consecutive_failures = 0;
        self.portfolio.apply_fill(fill)?;
        let ctx = risk_ctx(
            &self.pair,
            bar,
            &self.others,
            &self.portfolio,
            &fill.sell,
            &fill.buy,
            now,
        );
        self.gate.record_fill(fill, &ctx);
        self.persist_baselines(now)?;
        tracing::debug!(target: "defai::audit", id = %fill.id, amount_in = %fill.amount_in, amount_out = %fill.amount_out, "fill");
        self.audit.emit(AuditEvent::Fill(fill));
        if self.venue.has_bookings() {
            self.take_bookings(bar, now).await?;
        }
        if let Err(e) = self.sync_balances(bar.ts, true).await {
            tracing::warn!(target: "defai::audit", error = %e, "cannot read balances back after a fill");
        }
        self.snapshot(bar.ts);
        Ok(())
    }

    /// A bundle of swaps, judged as a whole, then executed leg by leg (see [`Intent::Bundle`]).
    /// The journal holds the bundle's intent, each leg's verdict (id `strategy#k:ts:seq`), the
    /// bundle's verdict, then each leg's intent as sent with its transactions and fill.
    /// Each leg is judged (kill switch, gate, the venue's quote) on the book as the earlier legs
    /// would leave it, a leg that sells what the previous one buys sized to that one's quoted
    /// output; one refusal or cut refuses the bundle before anything is sent. At execution a
    /// chained leg sells what the previous leg filled (never more than was judged, its minimum
    /// output scaled down with it); a leg that fails after earlier legs filled is reported, and
    /// what the earlier legs bought is sold back on their venues as ordinary intents, within the
    /// limits.
    async fn process_bundle(
        &mut self,
        id: IntentId,
        legs: &[crate::intent::Swap],
        bar: &Bar,
        now: i64,
    ) -> Result<(), AgentError> {
        let (verdict, judged) = self.judge_bundle(&id, legs, bar, now).await;
        tracing::debug!(target: "defai::audit", %id, ?verdict, "bundle verdict");
        self.audit.emit(AuditEvent::Verdict {
            ts: bar.ts,
            id: &id,
            verdict: &verdict,
        });
        self.audit_ok(now)?;
        if let Verdict::Refuse(r) = &verdict {
            self.risk.refuse(r.code);
            return Ok(());
        }
        let before = self.portfolio.clone();
        let mut filled: Vec<(crate::intent::Swap, U256)> = Vec::with_capacity(judged.len());
        for (k, (mut swap, min_out, _)) in judged.into_iter().enumerate() {
            let mut min = min_out;
            if let Some((prev_swap, got)) = filled.last()
                && prev_swap.buy == swap.sell
            {
                // Sell what the previous leg filled, never more than was judged.
                let planned = swap.amount_in;
                let actual = (*got).min(planned);
                swap.amount_in = actual;
                min = if planned.is_zero() {
                    U256::ZERO
                } else {
                    min_out.saturating_mul(actual) / planned
                };
            }
            self.audit_ok(now)?;
            let order = Order {
                id: id.leg(k),
                swap,
                min_amount_out: min,
            };
            if !self.execute_leg(&order, &mut filled, bar, now).await? {
                return self.unwind(&id, &before, filled, bar, now).await;
            }
        }
        self.audit.emit(AuditEvent::BundleClosed {
            ts: bar.ts,
            id: &id,
            outcome: "filled",
        });
        self.audit_ok(now)
    }

    /// Judges a bundle's legs in order on the book as the earlier legs would leave it (each
    /// leg's verdict journaled and counted), then puts the book and the gate's counters back.
    /// Returns the bundle's verdict and the approved legs as `(swap, min_amount_out,
    /// quoted amount_out)`; the first cut, refusal or missing quote refuses the bundle.
    async fn judge_bundle(
        &mut self,
        id: &IntentId,
        legs: &[crate::intent::Swap],
        bar: &Bar,
        now: i64,
    ) -> (Verdict, Vec<(crate::intent::Swap, U256, U256)>) {
        let real = self.portfolio.clone();
        // The gate's trade and gas counters as they stand: each approved leg is counted
        // (tentatively) before the next is judged, so the legs together meet the trade rate,
        // the spacing and the day's gas budget; put back before anything is sent.
        let counters = self.gate.checkpoint();
        let mut judged: Vec<(crate::intent::Swap, U256, U256)> = Vec::with_capacity(legs.len());
        let mut refusal: Option<Refusal> = None;
        let mut prev: Option<(Token, U256)> = None;
        for (k, leg) in legs.iter().enumerate() {
            let mut swap = leg.clone();
            if let Some((bought, out)) = &prev
                && *bought == swap.sell
            {
                swap.amount_in = *out;
            }
            let leg_id = id.leg(k);
            let intent = Intent::Swap(swap.clone());
            let (verdict, quoted) = self.judge_quoted(&leg_id, &intent, bar, now).await;
            self.audit.emit(AuditEvent::Verdict {
                ts: bar.ts,
                id: &leg_id,
                verdict: &verdict,
            });
            self.risk.record(&verdict);
            let (min_amount_out, quote) = match (&verdict, quoted) {
                (Verdict::Approve { min_amount_out }, Some(quote)) => (*min_amount_out, quote),
                (other, _) => {
                    refusal = Some(bundle_leg_refusal(k, other));
                    break;
                }
            };
            if counters {
                self.count_leg_tentatively(&leg_id, &swap, &quote, bar, now);
            }
            // The book as this leg would leave it, for the next leg's checks.
            let out = quote.amount_out;
            let sold = self
                .portfolio
                .balance(&swap.sell)
                .saturating_sub(swap.amount_in);
            self.portfolio.set_balance(&swap.sell, sold);
            let got = self.portfolio.balance(&swap.buy).saturating_add(out);
            self.portfolio.set_balance(&swap.buy, got);
            prev = Some((swap.buy.clone(), out));
            judged.push((swap, min_amount_out, out));
        }
        self.portfolio = real;
        if counters {
            self.gate.rollback();
        }
        let verdict = match refusal {
            Some(r) => Verdict::Refuse(r),
            None => Verdict::Approve {
                min_amount_out: judged.last().map_or(U256::ZERO, |(_, min, _)| *min),
            },
        };
        (verdict, judged)
    }

    /// Counts an approved leg in the gate's trade and gas counters as if it had filled at its
    /// quote, so the next leg is judged against the rate, spacing and gas budget it would meet.
    fn count_leg_tentatively(
        &mut self,
        leg_id: &IntentId,
        swap: &crate::intent::Swap,
        quote: &Quote,
        bar: &Bar,
        now: i64,
    ) {
        let fill = Fill {
            id: leg_id.clone(),
            ts: bar.ts,
            sell: swap.sell.clone(),
            buy: swap.buy.clone(),
            amount_in: swap.amount_in,
            amount_out: quote.amount_out,
            fee: quote.fee,
            fee_quote: U256::ZERO,
            gas_native: quote.gas_native,
            gas_cost: quote.gas_cost.clone(),
            gas_quote: U256::ZERO,
            tx_hash: None,
        };
        let ctx = risk_ctx(
            &self.pair,
            bar,
            &self.others,
            &self.portfolio,
            &swap.sell,
            &swap.buy,
            now,
        );
        self.gate.record_fill(&fill, &ctx);
    }

    /// Executes one leg of a bundle; `true` when it filled (booked, and added to `filled`).
    async fn execute_leg(
        &mut self,
        order: &Order,
        filled: &mut Vec<(crate::intent::Swap, U256)>,
        bar: &Bar,
        now: i64,
    ) -> Result<bool, AgentError> {
        // The leg as it is sent (a chained leg sized to what the previous one filled), on record
        // before its transactions, which the journal files under it.
        let intent = Intent::Swap(order.swap.clone());
        self.audit.emit(AuditEvent::Intent {
            ts: bar.ts,
            id: &order.id,
            intent: &intent,
        });
        self.audit_ok(now)?;
        let executed = self.venue.execute(order, bar.ts).await;
        self.venue_events(bar.ts);
        match executed {
            Ok(fill) => {
                self.book_fill(&fill, bar, now).await?;
                filled.push((order.swap.clone(), fill.amount_out));
                Ok(true)
            }
            Err(error) => {
                // A leg given up on may still be mined: its late fill is then sold back.
                self.failed_legs
                    .insert(order.id.to_string(), order.swap.clone());
                self.execution_failed(&order.id, &error, bar, now).await?;
                Ok(false)
            }
        }
    }

    /// After a bundle's leg failed: sells back what each earlier leg bought, on its venue, as
    /// ordinary intents ([`IntentId::unwind`]), judged by the kill switch and the gate like any
    /// other (an unwind into the numéraire reduces exposure); then the bundle is closed.
    async fn unwind(
        &mut self,
        id: &IntentId,
        before: &Portfolio,
        filled: Vec<(crate::intent::Swap, U256)>,
        bar: &Bar,
        now: i64,
    ) -> Result<(), AgentError> {
        if !filled.is_empty() {
            tracing::warn!(target: "defai::audit", %id, legs = filled.len(), "a bundle leg failed after earlier legs filled: unwinding them");
        }
        let backs = filled.into_iter().rev().map(|(swap, got)| {
            // Only what the bundle added: never holdings it found (a chained leg may have
            // spent what an earlier one bought).
            let held = self.portfolio.balance(&swap.buy);
            let added = held.saturating_sub(before.balance(&swap.buy));
            crate::intent::Swap {
                sell: swap.buy.clone(),
                buy: swap.sell.clone(),
                amount_in: got.min(added),
                venue: swap.venue.clone(),
            }
        });
        let backs: Vec<_> = backs.collect();
        self.sell_back(id, backs, "unwound", bar, now).await
    }

    /// Offers `backs` (each selling back what a leg of bundle `id` bought) as ordinary intents
    /// under the bundle's unwind ids (the first `k` not handled yet, so a restart never reuses
    /// one), each judged and executed like any other. What is not sold (refused, cut to the
    /// price-impact slice, failed, or refused while a transaction is open) stays pending and is
    /// offered again on the next event; once everything is sold the bundle is closed as
    /// `outcome`.
    async fn sell_back(
        &mut self,
        id: &IntentId,
        backs: Vec<crate::intent::Swap>,
        outcome: &'static str,
        bar: &Bar,
        now: i64,
    ) -> Result<(), AgentError> {
        let mut k = 0u32;
        let mut left = false;
        for back in backs {
            if back.amount_in.is_zero() {
                continue;
            }
            while self.handled.contains(&id.unwind(k).to_string()) {
                k += 1;
            }
            let unwind_id = id.unwind(k);
            self.handled.insert(unwind_id.to_string());
            let held = self.portfolio.balance(&back.sell);
            let intent = Intent::Swap(back.clone());
            self.intents_seen += 1;
            self.audit.emit(AuditEvent::Intent {
                ts: bar.ts,
                id: &unwind_id,
                intent: &intent,
            });
            self.audit_ok(now)?;
            self.judge_and_execute(unwind_id, intent, bar, now).await?;
            let sold = held.saturating_sub(self.portfolio.balance(&back.sell));
            if sold < back.amount_in {
                left = true;
                self.pending_unwinds.push(PendingUnwind {
                    bundle: id.clone(),
                    swap: crate::intent::Swap {
                        amount_in: back.amount_in - sold,
                        ..back
                    },
                });
            }
        }
        if left {
            tracing::warn!(target: "defai::audit", %id, "a bundle's unwind did not sell everything: the rest is offered again next event");
            return Ok(());
        }
        self.audit.emit(AuditEvent::BundleClosed {
            ts: bar.ts,
            id,
            outcome,
        });
        self.audit_ok(now)
    }

    /// Sells back what a restart, a late fill or an unfinished unwind left of bundles (see
    /// [`Resume::open_bundles`]), capped at what the book holds (what it no longer holds is
    /// not sold), before the strategy decides. Halted: nothing is offered; they wait.
    async fn run_pending_unwinds(&mut self, bar: &Bar, now: i64) -> Result<(), AgentError> {
        if self.kill.allows(true).is_err() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending_unwinds);
        let mut bundles: Vec<IntentId> = Vec::new();
        for p in &pending {
            if !bundles.contains(&p.bundle) {
                bundles.push(p.bundle.clone());
            }
        }
        for bundle in bundles {
            let backs: Vec<_> = pending
                .iter()
                .filter(|p| p.bundle == bundle)
                .map(|p| {
                    let mut swap = p.swap.clone();
                    swap.amount_in = swap.amount_in.min(self.portfolio.balance(&swap.sell));
                    swap
                })
                .collect();
            tracing::warn!(target: "defai::audit", %bundle, legs = backs.len(), "selling back what a bundle left open");
            self.sell_back(&bundle, backs, "unwound_late", bar, now)
                .await?;
        }
        Ok(())
    }

    /// An approved action the venue could not carry out: counted, journaled, the gas it may
    /// still have cost booked, balances read back, and the kill switch halted after
    /// `max_consecutive_failures` in a row.
    async fn execution_failed(
        &mut self,
        id: &IntentId,
        error: &VenueError,
        bar: &Bar,
        now: i64,
    ) -> Result<(), AgentError> {
        self.execution_failures += 1;
        self.consecutive_failures += 1;
        tracing::warn!(target: "defai::audit", %id, %error, "execution failed");
        self.audit.emit(AuditEvent::ExecutionFailed {
            ts: bar.ts,
            id,
            error,
        });
        // A failed transaction may still have cost gas: the venue says how much, and
        // whatever else the chain shows is a correction, counted.
        if self.venue.has_bookings() {
            self.take_bookings(bar, now).await?;
        }
        if let Err(e) = self.sync_balances(bar.ts, true).await {
            tracing::warn!(target: "defai::audit", error = %e, "cannot read balances back after a failure");
        }
        self.snapshot(bar.ts);
        if self.consecutive_failures >= self.policy.max_consecutive_failures {
            let reason = format!(
                "{} consecutive execution failures, last: {error}",
                self.consecutive_failures
            );
            self.trip(KillMode::Halt, &reason, now);
        }
        Ok(())
    }

    /// Places an approved bet and books it: collateral out, the market's exposure and our
    /// holdings up, the fill journaled (shown on the dashboard), balances read back.
    async fn place_bet(
        &mut self,
        id: IntentId,
        bet: &crate::intent::Bet,
        min_tokens: U256,
        bar: &Bar,
        now: i64,
    ) -> Result<(), AgentError> {
        let placed = self.venue.place_bet(&id, bet, min_tokens).await;
        self.venue_events(bar.ts);
        let fill = match placed {
            Ok(fill) => fill,
            Err(error) => return self.execution_failed(&id, &error, bar, now).await,
        };
        self.consecutive_failures = 0;
        // The bet happened: it is booked and journaled whatever the book said; a book that
        // held less is corrected from the venue's record below (and counted).
        let held = self.portfolio.balance(&bet.collateral);
        self.portfolio
            .set_balance(&bet.collateral, held.saturating_sub(fill.investment));
        *self.bet_exposure.entry(fill.market.clone()).or_default() += fill.investment;
        if let Some(set) = self.predictions.as_mut()
            && let Some(i) = set.markets.iter().position(|m| m.id == fill.market)
        {
            let m = &mut set.markets[i];
            if let Some(h) = m.held.get_mut(fill.outcome) {
                *h = h.saturating_add(fill.tokens);
            }
            if self.position_values.0 == set.ts
                && let Some(v) = self.position_values.1.get_mut(i)
            {
                *v = m.position_value();
            }
        }
        let ctx = RiskContext::new(&self.pair, &self.portfolio, bar, now);
        self.gate.record_bet(&fill, &ctx);
        self.persist_baselines(now)?;
        tracing::info!(target: "defai::audit", market = %fill.market, outcome = fill.outcome, investment = %fill.investment, tokens = %fill.tokens, "bet");
        self.audit.emit(AuditEvent::BetFill(&fill));
        self.bets.push(fill);
        if let Err(e) = self.sync_balances(bar.ts, true).await {
            tracing::warn!(target: "defai::audit", error = %e, "cannot read balances back after a bet");
        }
        self.snapshot(bar.ts);
        Ok(())
    }

    /// Redeems the resolved positions under intent `id`: collateral in, journaled.
    async fn redeem_positions(
        &mut self,
        id: IntentId,
        collateral: &Token,
        bar: &Bar,
        now: i64,
    ) -> Result<(), AgentError> {
        let redeemed = self.venue.redeem().await;
        self.venue_events(bar.ts);
        let amount = match redeemed {
            Ok(a) => a,
            Err(error) => return self.execution_failed(&id, &error, bar, now).await,
        };
        self.consecutive_failures = 0;
        let held = self.portfolio.balance(collateral);
        self.portfolio
            .set_balance(collateral, held.saturating_add(amount));
        self.redeemed = self.redeemed.saturating_add(amount);
        tracing::info!(target: "defai::audit", %id, %amount, "redeemed");
        self.audit.emit(AuditEvent::Redeemed {
            ts: bar.ts,
            id: &id,
            collateral,
            amount,
        });
        if let Err(e) = self.sync_balances(bar.ts, true).await {
            tracing::warn!(target: "defai::audit", error = %e, "cannot read balances back after a redemption");
        }
        self.snapshot(bar.ts);
        Ok(())
    }

    /// The verdict on a bet: the kill switch (a bet adds exposure), no open transaction, the
    /// gate's pre-check (data age on the cycle's time, tokens, contracts, loss and rate limits),
    /// the market as listed this cycle, the venue's quote, then the gate's parts for bets
    /// ([`RiskGate::check_bet`]: deviation, gas budget, notional, position and gross exposure
    /// against equity across every position) and the bet limits (max bet, floor, the market's
    /// exposure, price impact, slippage).
    async fn judge_bet(
        &mut self,
        id: &IntentId,
        intent: &Intent,
        bet: &crate::intent::Bet,
        bar: &Bar,
        now: i64,
    ) -> Verdict {
        let mut ctx = RiskContext::new(&self.pair, &self.portfolio, bar, now);
        ctx.data_age_s = self.data_age(bar, now);
        if let Err(r) = self
            .kill
            .allows(false)
            .and_then(|()| self.open_check())
            .and_then(|()| self.gate.pre_check(id, intent, &ctx))
        {
            return Verdict::Refuse(r);
        }
        let Some(market) = self
            .predictions
            .as_ref()
            .and_then(|set| set.markets.iter().find(|m| m.id == bet.market))
            .cloned()
        else {
            return Verdict::Refuse(Refusal::new(
                "unknown_market",
                format!("market {} is not listed this cycle", bet.market),
            ));
        };
        if market.resolved {
            return Verdict::Refuse(Refusal::new(
                "market_resolved",
                format!("market {} is resolved", bet.market),
            ));
        }
        let bankroll = self.portfolio.balance(&bet.collateral);
        let exposure = self
            .bet_exposure
            .get(&bet.market)
            .copied()
            .unwrap_or_default();
        let quoted = self.venue.quote_bet(bet).await;
        self.venue_events(bar.ts);
        let tokens = match quoted {
            Ok(tokens) => tokens,
            Err(e) => return Verdict::Refuse(Refusal::new("quote_failed", e.to_string())),
        };
        let (market_value, total_value) = self.position_values_for(&bet.market);
        let quote = crate::risk::BetQuote {
            market: &market,
            tokens,
            market_value,
            total_value,
            equity: bankroll.saturating_add(total_value),
        };
        let mut ctx = RiskContext::new(&self.pair, &self.portfolio, bar, now);
        ctx.data_age_s = self.data_age(bar, now);
        if let Err(r) = self.gate.check_bet(id, bet, &quote, &ctx) {
            return Verdict::Refuse(r);
        }
        self.bet_gate
            .judge(bet, &market, bankroll, exposure, tokens)
    }

    /// Our position in `market` and in every unresolved market this cycle, at exact marginal
    /// prices (collateral units): computed once a cycle, each bet's market updated as placed.
    fn position_values_for(&mut self, market: &str) -> (U256, U256) {
        let Some(set) = self.predictions.as_ref() else {
            return (U256::ZERO, U256::ZERO);
        };
        if self.position_values.0 != set.ts || self.position_values.1.len() != set.markets.len() {
            let values = set.markets.iter().map(|m| m.position_value()).collect();
            self.position_values = (set.ts, values);
        }
        let values = &self.position_values.1;
        let mut total = U256::ZERO;
        let mut this = U256::ZERO;
        for (m, v) in set.markets.iter().zip(values) {
            if m.resolved {
                continue;
            }
            total = total.saturating_add(*v);
            if m.id == market {
                this = *v;
            }
        }
        (this, total)
    }

    /// Books what the venue learnt outside a fill ([`Venue::bookings`]): a transaction given up
    /// on and mined later becomes the fill of its intent (booked, counted, journaled under its
    /// own id), gas of failed transactions is charged, and a dropped one closes its intent.
    async fn take_bookings(&mut self, bar: &Bar, now: i64) -> Result<(), AgentError> {
        let bookings = self.venue.bookings().await;
        self.venue_events(bar.ts);
        let bookings = match bookings {
            Ok(b) => b,
            Err(e) => {
                // The open transactions stay open: asked again before the next event.
                tracing::warn!(target: "defai::audit", error = %e, "cannot ask the venue about its open transactions");
                return Ok(());
            }
        };
        for booking in &bookings {
            match booking {
                Booking::LateFill(fill) => {
                    tracing::warn!(target: "defai::audit", id = %fill.id, tx = ?fill.tx_hash, "a transaction given up on was mined: booked as the fill of its intent");
                    self.portfolio.apply_fill(fill)?;
                    let ctx = risk_ctx(
                        &self.pair,
                        bar,
                        &self.others,
                        &self.portfolio,
                        &fill.sell,
                        &fill.buy,
                        now,
                    );
                    self.gate.record_fill(fill, &ctx);
                    // A bundle's leg given up on and mined after all: what it bought is sold
                    // back (a purchase of the numéraire is no exposure to undo).
                    if let Some(bundle) = IntentId::bundle_of(&fill.id.to_string()) {
                        // It sold what an unwind of its bundle still waits to sell: that much
                        // less to sell back.
                        for p in self
                            .pending_unwinds
                            .iter_mut()
                            .filter(|p| p.bundle == bundle && p.swap.sell == fill.sell)
                        {
                            p.swap.amount_in = p.swap.amount_in.saturating_sub(fill.amount_in);
                        }
                        self.pending_unwinds.retain(|p| !p.swap.amount_in.is_zero());
                    }
                    if let Some(leg) = self.failed_legs.remove(&fill.id.to_string())
                        && let Some(bundle) = IntentId::bundle_of(&fill.id.to_string())
                        && fill.buy != self.pair.quote
                    {
                        self.pending_unwinds.push(PendingUnwind {
                            bundle,
                            swap: crate::intent::Swap {
                                sell: fill.buy.clone(),
                                buy: fill.sell.clone(),
                                amount_in: fill.amount_out,
                                venue: leg.venue,
                            },
                        });
                    }
                }
                Booking::Gas {
                    id, token, amount, ..
                } => {
                    let gas_quote = price_to_units(bar.close, self.pair.quote.decimals())
                        .map(|p| crate::amount::base_to_quote(*amount, token.decimals(), p))
                        .unwrap_or(U256::ZERO);
                    self.portfolio
                        .charge_gas(&id.to_string(), token, *amount, gas_quote)?;
                    let ctx = RiskContext::new(&self.pair, &self.portfolio, bar, now);
                    self.gate.record_gas(*amount, &ctx);
                }
                Booking::Dropped { id, label, nonce } => {
                    tracing::info!(target: "defai::audit", %id, %label, nonce, "a transaction given up on can no longer be mined");
                }
            }
            self.persist_baselines(now)?;
            self.audit.emit(booking.audit_event(bar.ts));
        }
        Ok(())
    }

    async fn reconcile_restart(&mut self, resume: Resume) {
        let mut problems = Vec::new();
        let settled = match self.venue.settle(&resume.unsettled).await {
            Ok(s) => s,
            Err(e) => {
                problems.push(format!(
                    "cannot settle the journal's open transactions: {e}"
                ));
                Vec::new()
            }
        };
        self.venue_events(0);
        for s in &settled {
            if let Settlement::Pending { hash } = &s.outcome {
                problems.push(format!(
                    "transaction {hash} (nonce {}) is still pending",
                    s.nonce
                ));
                if let Some(u) = resume.unsettled.iter().find(|u| u.nonce == s.nonce) {
                    self.restart_pending.push(u.clone());
                }
            }
        }
        if let Some(snapshot) = &resume.snapshot {
            match self.venue.balances().await {
                Ok(Some(actual)) => {
                    for (token, held) in actual {
                        let booked = snapshot
                            .iter()
                            .find(|(sym, _)| sym == token.symbol())
                            .map(|(_, a)| *a)
                            .unwrap_or(U256::ZERO);
                        let sum = |side: fn(&SettledTx) -> &Vec<(Token, U256)>| {
                            settled
                                .iter()
                                .flat_map(|s| side(s).iter())
                                .filter(|(t, _)| t == &token)
                                .try_fold(U256::ZERO, |acc, (_, a)| acc.checked_add(*a))
                        };
                        let expected = booked
                            .checked_add(sum(|s| &s.credits).unwrap_or(U256::MAX))
                            .and_then(|v| v.checked_sub(sum(|s| &s.debits)?));
                        if expected != Some(held) {
                            let expected = expected
                                .map_or_else(|| "an impossible amount".into(), |e| e.to_string());
                            problems.push(format!(
                                "{token}: the journal and its settled transactions give {expected}, the venue holds {held}"
                            ));
                        }
                    }
                }
                // The agent's own book is the record (paper): the journal's last book is where
                // it resumes.
                Ok(None) => {
                    for (sym, amount) in snapshot {
                        let token = [&self.pair.base, &self.pair.quote]
                            .into_iter()
                            .chain(self.others.iter().map(|o| &o.pair.base))
                            .chain(self.portfolio.balances().iter().map(|(t, _)| t))
                            .find(|t| t.symbol() == sym)
                            .cloned();
                        match token {
                            Some(t) => self.portfolio.set_balance(&t, *amount),
                            None => problems.push(format!(
                                "the journal's book holds {sym}, which this agent does not trade"
                            )),
                        }
                    }
                }
                Err(e) => problems.push(format!("cannot read the venue's balances: {e}")),
            }
        }
        let now = wall_clock_s();
        tracing::info!(target: "defai::audit", settled = settled.len(), problems = problems.len(), "restart reconciliation");
        self.audit.emit(AuditEvent::Restart {
            ts: now,
            settled: &settled,
            problems: &problems,
        });
        if !problems.is_empty() {
            let reason = format!("restart reconciliation: {}", problems.join("; "));
            tracing::warn!(target: "defai::audit", %reason, "reduce_only");
            self.trip(KillMode::ReduceOnly, &reason, now);
        }
        self.unwind_open_bundles(&resume, &settled, now);
        self.handled = resume.handled;
        self.bet_exposure = resume.bet_exposure;
    }

    /// Bundles a stop cut short ([`Resume::open_bundles`]): what their legs and unwinds left —
    /// from what each moved on record, or for one whose transaction was open from this
    /// restart's settlement of it — is queued to be sold into the numéraire on the first event,
    /// on the venue that bought it. A bundle with a transaction still pending, or left holding
    /// a token this agent does not trade, stays open (warned; a later restart looks again). A
    /// bundle that left nothing is closed at once.
    fn unwind_open_bundles(&mut self, resume: &Resume, settled: &[SettledTx], now: i64) {
        let tokens: Vec<Token> = std::iter::once(self.pair.base.clone())
            .chain(self.others.iter().map(|o| o.pair.base.clone()))
            .collect();
        'bundles: for (bundle, members) in &resume.open_bundles {
            let Some(bundle) = IntentId::parse(bundle) else {
                continue;
            };
            // Per token symbol: in, out, and the venue that bought it.
            let mut net: BTreeMap<String, (U256, U256, Option<String>)> = BTreeMap::new();
            let mut add = |sym: &str, bought: U256, sold: U256, venue: &Option<String>| {
                let e = net.entry(sym.to_string()).or_default();
                e.0 = e.0.saturating_add(bought);
                e.1 = e.1.saturating_add(sold);
                if !bought.is_zero() {
                    e.2.clone_from(venue);
                }
            };
            for m in members {
                for (sym, bought, sold) in &m.moved {
                    add(sym, *bought, *sold, &m.venue);
                }
                if !m.pending {
                    continue;
                }
                let outcomes = resume
                    .unsettled
                    .iter()
                    .filter(|u| u.intent_id.as_deref() == Some(m.id.as_str()))
                    .filter_map(|u| settled.iter().find(|s| s.nonce == u.nonce));
                for s in outcomes {
                    match &s.outcome {
                        Settlement::Mined { success: true, .. } => {
                            for (t, a) in &s.credits {
                                add(t.symbol(), *a, U256::ZERO, &m.venue);
                            }
                            for (t, a) in &s.debits {
                                add(t.symbol(), U256::ZERO, *a, &m.venue);
                            }
                        }
                        Settlement::Pending { .. } => {
                            tracing::warn!(target: "defai::audit", %bundle, leg = %m.id, "a bundle's transaction is still pending: the bundle stays open until it settles");
                            continue 'bundles;
                        }
                        Settlement::Mined { .. } | Settlement::Dropped => {}
                    }
                }
            }
            let mut backs = Vec::new();
            for (sym, (bought, sold, venue)) in net {
                if bought <= sold || sym == self.pair.quote.symbol() {
                    continue;
                }
                let Some(token) = tokens.iter().find(|t| t.symbol() == sym) else {
                    tracing::warn!(target: "defai::audit", %bundle, token = %sym, "a bundle cut short left a token this agent does not trade: it stays open");
                    continue 'bundles;
                };
                backs.push(PendingUnwind {
                    bundle: bundle.clone(),
                    swap: crate::intent::Swap {
                        sell: token.clone(),
                        buy: self.pair.quote.clone(),
                        amount_in: bought - sold,
                        venue,
                    },
                });
            }
            tracing::warn!(target: "defai::audit", %bundle, to_sell = backs.len(), "a bundle was cut short by a stop");
            if backs.is_empty() {
                self.audit.emit(AuditEvent::BundleClosed {
                    ts: now,
                    id: &bundle,
                    outcome: "nothing_left",
                });
            }
            self.pending_unwinds.extend(backs);
        }
    }

    /// An operator resumed while a transaction the restart found pending may still be: ask the
    /// venue again, and keep (re-latch) reduce-only while one is still pending.
    async fn recheck_restart(&mut self, now: i64) {
        let open = std::mem::take(&mut self.restart_pending);
        let still: Vec<String> = match self.venue.settle(&open).await {
            Ok(settled) => settled
                .iter()
                .filter_map(|s| match &s.outcome {
                    Settlement::Pending { hash } => Some(format!("{hash} (nonce {})", s.nonce)),
                    _ => None,
                })
                .collect(),
            Err(e) => vec![format!("(cannot ask the venue: {e})")],
        };
        self.venue_events(now);
        if still.is_empty() {
            return;
        }
        self.restart_pending = open;
        let reason = format!(
            "operator resume refused: transaction {} is still pending and may yet execute",
            still.join(", ")
        );
        tracing::warn!(target: "defai::audit", %reason, "reduce_only");
        self.trip(KillMode::ReduceOnly, &reason, now);
    }

    /// While flattening: sell everything that is not the numéraire (the agent's base and every
    /// other asset, one intent each); once nothing is left but dust, halt.
    async fn flatten(
        &mut self,
        bar: &Bar,
        now: i64,
        name: &std::sync::Arc<str>,
    ) -> Result<(), AgentError> {
        let quote = self.pair.quote.clone();
        let mut assets = vec![(self.pair.base.clone(), bar.close)];
        assets.extend(
            self.others
                .iter()
                .filter_map(|o| o.bar.map(|b| (o.pair.base.clone(), b.close))),
        );
        let mut seq = 0u32;
        for (token, close) in &assets {
            let held = self.portfolio.balance(token);
            if !held.is_zero() && !is_dust(held, token, &quote, *close) {
                let intent = Intent::swap(token, &quote, held);
                self.process(seq, intent, bar, now, name).await?;
                seq += 1;
            }
        }
        let done = assets.iter().all(|(token, close)| {
            let left = self.portfolio.balance(token);
            left.is_zero() || is_dust(left, token, &quote, *close)
        });
        if done {
            let change = self.kill.finish_flatten(now);
            self.switch_changed(now, change);
        }
        Ok(())
    }

    /// The strategy's intents on `event` (its context: the book, `bar`, the venue's gas
    /// estimate), its decision journaled; a strategy fault is journaled and yields none (an
    /// unusable model output halts).
    fn decide(&mut self, event: &MarketEvent, bar: &Bar, now: i64) -> Vec<Intent> {
        let decided = {
            let ctx = Context {
                pair: &self.pair,
                portfolio: &self.portfolio,
                bar,
                gas_estimate: self.venue.gas_estimate_quote(),
            };
            self.strategy.on_event(event, &ctx)
        };
        let decisions = self.strategy.decisions();
        // Most bars record no decision: skip the iterator (an out-of-line drop per bar).
        if !decisions.is_empty() {
            for decision in decisions {
                tracing::debug!(target: "defai::audit", ts = bar.ts, model = %decision.model, output = decision.output, action = %decision.action, "decision");
                self.audit.emit(AuditEvent::Decision {
                    ts: bar.ts,
                    decision: &decision,
                });
            }
        }
        match decided {
            Ok(v) => v,
            Err(error) => {
                self.strategy_faults += 1;
                tracing::warn!(target: "defai::audit", ts = bar.ts, %error, "strategy fault");
                self.audit.emit(AuditEvent::StrategyFault {
                    ts: bar.ts,
                    error: &error,
                });
                if matches!(
                    error,
                    StrategyError::NonFinite { .. } | StrategyError::OutOfRange { .. }
                ) {
                    self.trip(
                        KillMode::Halt,
                        &format!("model/strategy fault: {error}"),
                        now,
                    );
                }
                Vec::new()
            }
        }
    }

    /// One cycle of an agent whose venue lists prediction markets, at the time of `event`:
    /// redeem what resolved (a redemption is an intent like any other), list the markets, let
    /// the strategy decide on them, judge and place its bets, then mark equity — collateral plus
    /// every position at its outcome's marginal price — for the loss limits. A flatten holds the
    /// positions to redemption: no new bet, redemptions go on, and the switch halts once
    /// nothing is held. Returns the cycle's bar (prices 1: collateral in collateral), the
    /// equity before its bets (collateral units) and after them (float).
    async fn prediction_cycle(
        &mut self,
        event: &MarketEvent,
        now: i64,
        name: &std::sync::Arc<str>,
    ) -> Result<(Bar, U256, f64), AgentError> {
        let ts = event.ts();
        let bar = Bar {
            ts,
            open: 1.0,
            high: 1.0,
            low: 1.0,
            close: 1.0,
            volume: 0.0,
        };
        self.venue.observe(event);
        let listed = self.venue.markets().await?;
        self.venue_events(ts);
        let resolved: Vec<String> = listed
            .iter()
            .filter(|m| m.resolved && m.held.iter().any(|h| !h.is_zero()))
            .map(|m| m.id.clone())
            .collect();
        let markets = if resolved.is_empty() {
            listed
        } else {
            // Redeem first: winnings fund this cycle's bets.
            let intent = Intent::Redeem(crate::intent::Redeem {
                markets: resolved,
                collateral: self.pair.quote.clone(),
            });
            self.process(crate::prediction::REDEEM_SEQ, intent, &bar, now, name)
                .await?;
            // Holdings changed: the strategy sees the markets as they are now.
            let m = self.venue.markets().await?;
            self.venue_events(ts);
            m
        };
        self.markets_seen += markets.iter().filter(|m| !m.resolved).count() as u64;
        let exposure = markets
            .iter()
            .map(|m| self.bet_exposure.get(&m.id).copied().unwrap_or_default())
            .collect();
        let set = crate::prediction::PredictionSet {
            ts,
            markets,
            exposure,
        };
        self.predictions = Some(set);
        let before = self.prediction_equity().0;
        // The event holds the set while the strategy decides; the bets are then judged on it.
        let set = self.predictions.take().map(Box::new);
        let event = MarketEvent::Predictions(set.unwrap_or_default());
        self.audit.emit(AuditEvent::Market { ts, event: &event });
        let intents = self.decide(&event, &bar, now);
        if let MarketEvent::Predictions(set) = event {
            self.predictions = Some(*set);
        }
        for (seq, intent) in intents.into_iter().enumerate() {
            self.process(seq as u32, intent, &bar, now, name).await?;
        }
        let (_, equity) = self.prediction_equity();
        if let Some(breach) = self.gate.on_mark(ts, equity) {
            let mode = if breach.code == "bad_equity" {
                KillMode::Halt
            } else {
                self.policy.on_breach
            };
            self.trip(mode, &format!("{}: {}", breach.code, breach.detail), now);
        }
        if self.kill.flattening() {
            let held = self.predictions.as_ref().is_some_and(|set| {
                set.markets
                    .iter()
                    .any(|m| m.held.iter().any(|h| !h.is_zero()))
            });
            if held {
                tracing::info!(target: "defai::audit", "flatten: positions held to redemption, no new bets");
            } else {
                let change = self.kill.finish_flatten(now);
                self.switch_changed(now, change);
            }
        }
        self.persist_baselines(now)?;
        Ok((bar, before, equity))
    }

    /// Collateral held plus every position of this cycle's markets at its outcome's marginal
    /// price: in collateral units (rounded down) and as a float.
    fn prediction_equity(&self) -> (U256, f64) {
        let collateral = &self.pair.quote;
        let held = self.portfolio.balance(collateral);
        let positions: f64 = self.predictions.as_ref().map_or(0.0, |set| {
            set.markets
                .iter()
                .filter(|m| !m.resolved)
                .flat_map(|m| m.held.iter().zip(&m.prices))
                .map(|(h, p)| collateral.to_f64(*h) * p)
                .sum()
        });
        let scale = 10f64.powi(i32::from(collateral.decimals()));
        let units = U256::from((positions * scale).max(0.0).floor() as u128);
        (
            held.saturating_add(units),
            collateral.to_f64(held) + positions,
        )
    }

    /// Runs until the source is exhausted.
    ///
    /// # Errors
    ///
    /// See [`Agent::run_keeping_venue`].
    pub async fn run(self) -> Result<AgentReport, AgentError> {
        self.run_keeping_venue().await.map(|(report, _)| report)
    }

    /// [`Agent::run`], handing the venue back with the report (a simulated venue's end state
    /// for an evaluation).
    ///
    /// # Errors
    ///
    /// - [`AgentError::Setup`] before anything runs if the strategy's name holds `#`;
    /// - [`AgentError::Baselines`] if the saved baselines cannot be restored, or the gate's
    ///   cannot be saved during the run;
    /// - [`AgentError::Balances`] if the venue cannot report the starting balances;
    /// - [`AgentError::Source`] when the source fails;
    /// - [`AgentError::Venue`] when a betting venue cannot list its markets;
    /// - [`AgentError::Booking`] when a fill or a gas charge cannot be booked;
    /// - [`AgentError::Audit`] when an observer fails (the kill switch is halted first);
    /// - [`AgentError::NoData`] when the source ends without a valid bar.
    pub async fn run_keeping_venue(mut self) -> Result<(AgentReport, V), AgentError> {
        let started = Instant::now();
        let strategy_name = self.start_run().await?;
        let flatten_name: std::sync::Arc<str> = "kill_switch_flatten".into();
        let mut tally = RunTally::default();
        // The per-event path stays in this loop, with synchronous helpers: a future of its own
        // awaited per bar costs the backtest a copy of that future per bar.
        while let Some(event) = self.source.next_event().await? {
            if !self.clock.never_waits() {
                self.clock.wait_until(event.ts()).await;
            }
            let now = self.clock.now(event.ts());
            let change = self.kill.poll(now);
            if self.resumed_with_restart_pending(now, change) {
                self.recheck_restart(now).await;
            }
            if let Err(reason) = self.venue.health().await {
                self.trip(KillMode::Halt, &format!("venue fault: {reason}"), now);
            }
            if self.venue.lists_markets() {
                self.prediction_step(&event, now, &strategy_name, &mut tally)
                    .await?;
                continue;
            }
            let Some(bar) = event.as_bar().copied() else {
                // No new data (a timer tick): the latest data is as old as the tick says, and
                // the stale-data limit holds on it.
                self.stale_check(event.ts(), now);
                continue;
            };
            if !self.accept_event(&event, &bar, &mut tally) {
                continue;
            }
            self.stale_check(bar.ts, now);
            tally.bars += 1;
            if self.venue.has_bookings() {
                self.book_late_settlements(&bar, now).await?;
            }
            self.venue.observe(&event);
            self.audit.emit(AuditEvent::Market {
                ts: bar.ts,
                event: &event,
            });
            if tally.first.is_none() {
                // Representable: `accept_event` checked it.
                let price_units = price_to_units(bar.close, self.pair.quote.decimals());
                tally.first = Some((bar, self.equity_units(price_units.unwrap_or_default())));
            }
            if !self.pending_unwinds.is_empty() {
                // What a restart or a late fill left of a bundle goes before anything new.
                self.run_pending_unwinds(&bar, now).await?;
            }
            let intents = self.decide(&event, &bar, now);
            // Most bars decide nothing: skip the iterator the future would hold across awaits.
            if !intents.is_empty() {
                for (seq, intent) in intents.into_iter().enumerate() {
                    self.process(seq as u32, intent, &bar, now, &strategy_name)
                        .await?;
                }
            }
            let mut equity = self.check_equity_limits(&bar, now);
            if self.kill.flattening() {
                // Unwind at this bar's close: the loss beyond a limit is at most this bar's move.
                self.flatten(&bar, now, &flatten_name).await?;
                equity = self.equity_f64(bar.close);
            }
            self.close_bar(bar, equity, now, &mut tally)?;
        }
        self.audit.finish(&mut self.kill, wall_clock_s())?;
        self.finish_report(tally, started)
    }

    /// Applies a change of the kill switch polled at an event; `true` when it resumed trading
    /// while a restart's check is pending (the restart is then checked again).
    fn resumed_with_restart_pending(&mut self, now: i64, change: Option<SwitchChange>) -> bool {
        let resumed = change.as_ref().is_some_and(|c| c.to == SwitchState::Active);
        self.switch_changed(now, change);
        resumed && !self.restart_pending.is_empty()
    }

    /// A transaction given up on may have been mined since: books it (and reads the balances
    /// back) before the strategy sees the next event.
    async fn book_late_settlements(&mut self, bar: &Bar, now: i64) -> Result<(), AgentError> {
        self.take_bookings(bar, now).await?;
        if let Err(e) = self.sync_balances(bar.ts, true).await {
            tracing::warn!(target: "defai::audit", error = %e, "cannot read balances back after a late settlement");
        }
        self.snapshot(bar.ts);
        Ok(())
    }

    /// After a bar's intents: trips the kill switch on an equity limit's breach (halting on an
    /// unusable equity, otherwise as the policy says). Returns the equity at the close.
    fn check_equity_limits(&mut self, bar: &Bar, now: i64) -> f64 {
        let equity = self.equity_f64(bar.close);
        if let Some(breach) = self.gate.on_mark(bar.ts, equity) {
            let mode = if breach.code == "bad_equity" {
                KillMode::Halt
            } else {
                self.policy.on_breach
            };
            self.trip(mode, &format!("{}: {}", breach.code, breach.detail), now);
        }
        equity
    }

    /// The end of a bar: saves the gate's baselines, marks `equity` (quote, at the close;
    /// tallied and journaled) and checks the journal.
    #[inline(always)]
    fn close_bar(
        &mut self,
        bar: Bar,
        equity: f64,
        now: i64,
        tally: &mut RunTally,
    ) -> Result<(), AgentError> {
        self.persist_baselines(now)?;
        tally.perf.update(bar.ts, equity);
        self.audit.emit(AuditEvent::Mark {
            ts: bar.ts,
            price: bar.close,
            equity,
        });
        tally.last = Some(bar);
        self.audit_ok(now)
    }

    /// Before the first event: refuses a strategy name holding `#`, restores the saved
    /// baselines, reconciles a restart, reads the starting balances and checks the journal.
    /// Returns the strategy's name, shared by every intent id of the run.
    async fn start_run(&mut self) -> Result<std::sync::Arc<str>, AgentError> {
        let strategy_name: std::sync::Arc<str> = self.strategy.name().into();
        // `#` marks a bundle's legs and unwinds in intent ids (`strategy#k:ts:seq`): a name
        // holding one would make every intent look like a leg to a restart.
        if strategy_name.contains('#') {
            return Err(AgentError::Setup(format!(
                "strategy name `{strategy_name}` holds `#`, which intent ids reserve for bundle legs"
            )));
        }
        if let Some(saved) = self.restore_baselines.take() {
            self.gate
                .restore_baselines(saved.clone())
                .map_err(AgentError::Baselines)?;
            self.saved_baselines = Some(saved);
        }
        if let Some(resume) = self.resume.take() {
            // Commands queued while the agent was stopped apply first: the restart check's
            // verdict comes after them, so a resume sent meanwhile cannot cancel it.
            let change = self.kill.poll(wall_clock_s());
            self.switch_changed(wall_clock_s(), change);
            self.reconcile_restart(resume).await;
        }
        self.sync_balances(0, false)
            .await
            .map_err(AgentError::Balances)?;
        self.snapshot(0);
        self.audit_ok(wall_clock_s())?;
        Ok(strategy_name)
    }

    /// One cycle of a betting venue: every event of the source (a block, a timer tick, a
    /// simulated step) lists the markets and decides on them, then marks the equity.
    async fn prediction_step(
        &mut self,
        event: &MarketEvent,
        now: i64,
        strategy_name: &std::sync::Arc<str>,
        tally: &mut RunTally,
    ) -> Result<(), AgentError> {
        self.stale_check(event.ts(), now);
        let (bar, units, equity) = self.prediction_cycle(event, now, strategy_name).await?;
        tally.bars += 1;
        if tally.first.is_none() {
            tally.first = Some((bar, units));
        }
        tally.perf.update(bar.ts, equity);
        self.audit.emit(AuditEvent::Mark {
            ts: bar.ts,
            price: bar.close,
            equity,
        });
        tally.last = Some(bar);
        self.audit_ok(now)
    }

    /// Whether the event is usable: a bad price or a bad set of other markets is counted,
    /// logged and journaled as a bad event, and gives `false`.
    fn accept_event(&mut self, event: &MarketEvent, bar: &Bar, tally: &mut RunTally) -> bool {
        let checked =
            usable_bar(bar, tally.last.as_ref(), self.pair.quote.decimals()).and_then(|()| {
                match event.markets() {
                    Some(set) => self.observe_others(set),
                    None => Ok(()),
                }
            });
        match checked {
            Ok(()) => true,
            Err(reason) => {
                tally.bad_events += 1;
                tracing::warn!(target: "defai::audit", ts = bar.ts, %reason, "bad market event skipped");
                self.audit.emit(AuditEvent::BadEvent { ts: bar.ts, reason });
                false
            }
        }
    }

    /// The run's report from what the loop tallied, with the venue handed back.
    fn finish_report(
        self,
        tally: RunTally,
        started: Instant,
    ) -> Result<(AgentReport, V), AgentError> {
        let RunTally {
            perf,
            bars,
            bad_events,
            first,
            last,
        } = tally;
        let (Some((first_bar, start_equity)), Some(last_bar)) = (first, last) else {
            return Err(AgentError::NoData);
        };
        let end_price =
            price_to_units(last_bar.close, self.pair.quote.decimals()).unwrap_or(U256::ZERO);
        let report = AgentReport {
            end_equity: if self.venue.lists_markets() {
                self.prediction_equity().0
            } else {
                self.equity_units(end_price)
            },
            pair: self.pair,
            bars,
            bad_events,
            intents: self.intents_seen,
            risk: self.risk,
            fills: self.portfolio.fills(),
            execution_failures: self.execution_failures,
            strategy_faults: self.strategy_faults,
            reconciliations: self.reconciliations,
            duplicates_skipped: self.duplicates_skipped,
            start_equity,
            first_price: first_bar.close,
            last_price: last_bar.close,
            max_drawdown_pct: perf.max_drawdown_pct(),
            sharpe: perf.sharpe(),
            monthly_returns: perf.monthly_returns(),
            kill_switch: self.kill.record().clone(),
            portfolio: self.portfolio,
            elapsed: started.elapsed(),
            bets: self.bets,
            redeemed: self.redeemed,
            markets_seen: self.markets_seen,
        };
        Ok((report, self.venue))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Counts the per-bar and the other events it is handed.
    struct Counter {
        bars: bool,
        seen: Arc<Mutex<(u32, u32)>>,
    }

    impl Observer for Counter {
        fn on_audit(&mut self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
            let mut seen = self.seen.lock().unwrap();
            match event {
                AuditEvent::Market { .. } | AuditEvent::Mark { .. } => seen.0 += 1,
                _ => seen.1 += 1,
            }
            Ok(())
        }
        fn takes_bars(&self) -> bool {
            self.bars
        }
    }

    #[test]
    fn per_bar_events_reach_only_the_observers_that_take_them_and_the_rest_reach_all() {
        let (all, compact) = (Arc::default(), Arc::default());
        let mut stream = AuditStream::default();
        let mut only_others = AuditStream::default();
        stream.push(Box::new(Counter {
            bars: true,
            seen: Arc::clone(&all),
        }));
        stream.push(Box::new(Counter {
            bars: false,
            seen: Arc::clone(&compact),
        }));
        only_others.push(Box::new(Counter {
            bars: false,
            seen: Arc::clone(&compact),
        }));
        let event = MarketEvent::Bar(Bar {
            ts: 1,
            open: 100.0,
            high: 100.0,
            low: 100.0,
            close: 100.0,
            volume: 0.0,
        });
        let pair = [(Token::new("USDC", 6), U256::from(5u8))];
        for s in [&mut stream, &mut only_others] {
            s.emit(AuditEvent::Market {
                ts: 1,
                event: &event,
            });
            s.emit(AuditEvent::Mark {
                ts: 1,
                price: 100.0,
                equity: 5.0,
            });
            s.emit(AuditEvent::Portfolio {
                ts: 1,
                balances: &pair,
            });
        }
        assert_eq!(*all.lock().unwrap(), (2, 1));
        // The observer that takes no bars got the book from both streams, and no bar.
        assert_eq!(*compact.lock().unwrap(), (0, 2));
        assert!(stream.failure().is_none() && only_others.failure().is_none());
    }
}
