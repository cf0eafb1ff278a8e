//! The board: what every agent of the process last reported, folded from its audit stream.

pub use connectors::redact_urls;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use agent_core::agent::{AuditEvent, Observer};
use agent_core::{Intent, IntentId, SwitchRecord, SwitchState, Token};
use agent_core::{U256, Verdict};
use connectors::StateDir;
use dashmap::DashMap;
use serde::Serialize;

use super::equity::EquityCurve;
use super::metrics::{MetricsRow, render_metrics};
use super::views::{AgentSummary, summary};

/// Recent intents (with verdicts and outcomes) kept per agent.
pub const DECISIONS_KEPT: usize = 200;

/// Where an agent is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Registered; no audit event yet.
    #[default]
    Starting,
    /// Has reported at least one audit event and not ended yet.
    Running,
    /// The run ended without an error ([`AgentHandle::finish`] with `Ok`).
    Finished,
    /// The run ended with an error; [`AgentStatus::error`] says which.
    Failed,
}

/// A balance: the exact integer amount in the token's smallest unit and its decimal rendering.
#[derive(Debug, Clone, PartialEq, Serialize)]
///
/// Serialized as `{"token", "units", "amount"}` in `GET /positions`.
pub struct Position {
    /// The token's symbol, e.g. `WETH`.
    pub token: String,
    /// The exact balance in the token's smallest unit (a `U256` as a decimal integer string,
    /// e.g. `"10000000000"` for 10 000 USDC at 6 decimals).
    pub units: String,
    /// The same balance in whole tokens as an exact decimal string, e.g. `"10000"`.
    pub amount: String,
}

/// A model-driven strategy's decision (AuditEvent::Decision), kept with the intents it led to.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ModelDecision {
    /// Content hash of the model (its weights and metadata), naming exactly which model decided.
    pub model: String,
    /// The model's raw output, e.g. the probability that the price goes up.
    pub output: f64,
    /// What the strategy made of the output, as it described it (e.g. the target exposure).
    pub action: String,
}

/// What the risk gate said about an intent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerdictInfo {
    /// `approve`, `resize` or `refuse`.
    pub verdict: &'static str,
    /// The reason code of a resize or refusal.
    pub reason: Option<&'static str>,
    /// The gate's explanation of a resize or refusal (a resize's starts with the new amount,
    /// `to 250 USDC: ...`), with URLs redacted by [`redact_urls`]; `None` for an approval.
    pub detail: Option<String>,
}

/// What happened to an approved intent.
///
/// Serialized with a `status` tag: `{"status": "filled", "sold", "bought", "tx_hash"}` or
/// `{"status": "failed", "error"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// The venue filled it and the fill was booked.
    Filled {
        /// What left the wallet: a decimal amount and the token's symbol, e.g. `"1000 USDC"`
        /// (a bet's investment in its collateral; `"resolved positions"` for a redemption).
        sold: String,
        /// What came in, in the same form, e.g. `"0.5 WETH"`; for a bet, the outcome tokens
        /// bought (`"40 dUSD of outcome 1 of market 0x..."`); for a redemption, the collateral.
        bought: String,
        /// The transaction's hash (`0x` hex) when the venue is a chain; `None` on paper venues
        /// and for redemptions.
        tx_hash: Option<String>,
    },
    /// The venue could not fill it.
    Failed {
        /// The venue's error, with URLs redacted by [`redact_urls`].
        error: String,
    },
}

/// One intent, start to end.
#[derive(Debug, Clone)]
pub struct DecisionRecord {
    /// Event time of the market event the intent came from, unix seconds.
    pub ts: i64,
    /// The intent's deterministic id (displayed `strategy:ts:seq`).
    pub id: IntentId,
    /// What the intent asks for, in words, e.g. `swap 1000 USDC for WETH`.
    pub intent: String,
    sell: Option<Token>,
    /// The model decision of the same event, when the strategy is model-driven.
    pub model: Option<ModelDecision>,
    /// What the risk gate said; `None` until it has decided.
    pub verdict: Option<VerdictInfo>,
    /// The fill or the failure; `None` while nothing happened yet, and for ever for a refused
    /// intent.
    pub outcome: Option<Outcome>,
}

/// Counts over the agent's run, for `/metrics` and `/status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
///
/// Every count starts at zero when the agent is registered and only grows.
pub struct Counters {
    /// Market events processed to the end (one per bar, or per cycle of a betting venue).
    pub bars: u64,
    /// Market events the agent refused as unusable (bad prices, time going backwards).
    pub bad_events: u64,
    /// Intents the strategy produced.
    pub intents: u64,
    /// Intents the risk gate approved as asked.
    pub approved: u64,
    /// Intents the risk gate approved at a smaller amount.
    pub resized: u64,
    /// Intents the risk gate refused.
    pub refused: u64,
    /// Refusals by the gate's reason code (e.g. `max_position`), in code order.
    pub refused_by_reason: BTreeMap<&'static str, u64>,
    /// Fills booked: swaps, bets and redemptions.
    pub fills: u64,
    /// Approved orders the venue failed to fill.
    pub execution_failures: u64,
    /// Times the strategy failed or produced an output the agent would not act on.
    pub strategy_faults: u64,
    /// Booked balances corrected from the venue's record (the chain).
    pub reconciliations: u64,
    /// Kill switch state changes (trips and resumes).
    pub kill_switch_changes: u64,
}

/// What the operator surfaces know about one agent.
#[derive(Debug, Default)]
pub struct AgentStatus {
    /// The agent's state folder, when it has one; `POST /kill` and `/resume` need it.
    pub state_dir: Option<PathBuf>,
    /// `backtest`, `paper` or `live`; empty until [`AgentHandle::describe`].
    pub mode: String,
    /// The strategy's name; empty until [`AgentHandle::describe`].
    pub strategy: String,
    /// Where the agent is in its life.
    pub phase: Phase,
    /// Why the run failed (phase `failed`).
    pub error: Option<String>,
    /// The kill switch as the agent last reported it (or as latched in its state folder).
    pub switch: SwitchRecord,
    /// Market events processed to the end (the same as [`Counters::bars`]).
    pub bars: u64,
    /// Event time of the last event processed, unix seconds; `None` before the first.
    pub last_ts: Option<i64>,
    /// The last close, in quote per whole base token; `None` before the first event.
    pub last_price: Option<f64>,
    /// Equity at the last close, in whole quote tokens (a float, for display).
    pub last_equity: Option<f64>,
    /// Equity at the first close, in whole quote tokens: the base of the return.
    pub start_equity: Option<f64>,
    /// Equity over the run, bounded in memory (`GET /equity`).
    pub curve: EquityCurve,
    /// The balances of the last portfolio snapshot (`GET /positions`); empty before the first.
    pub positions: Vec<Position>,
    /// When that snapshot was taken, unix seconds on the agent's clock.
    pub positions_ts: Option<i64>,
    /// The last [`DECISIONS_KEPT`] intents, oldest first (`GET /decisions`).
    pub decisions: VecDeque<DecisionRecord>,
    /// Counts over the run (`GET /status`, `GET /metrics`).
    pub counters: Counters,
    /// The decision of the bar being processed, for the intents that follow it.
    pending: Option<(i64, ModelDecision)>,
}

impl AgentStatus {
    /// Folds one audit event in. Cheap: no allocation except for intents, fills and balance
    /// snapshots (which are rare next to bars).
    pub fn apply(&mut self, event: &AuditEvent<'_>) {
        if self.phase == Phase::Starting {
            self.phase = Phase::Running;
        }
        match event {
            AuditEvent::Mark { ts, price, equity } => self.on_mark(*ts, *price, *equity),
            AuditEvent::BadEvent { .. } => self.counters.bad_events += 1,
            AuditEvent::StrategyFault { .. } => self.counters.strategy_faults += 1,
            AuditEvent::Reconciled { .. } => self.counters.reconciliations += 1,
            AuditEvent::Decision { ts, decision } => self.on_decision(*ts, decision),
            AuditEvent::Intent { ts, id, intent } => self.on_intent(*ts, id, intent),
            AuditEvent::Verdict { id, verdict, .. } => {
                let info = self.verdict_info(id, verdict);
                if let Some(r) = self.record(id) {
                    r.verdict = Some(info);
                }
            }
            AuditEvent::Fill(f) => self.on_fill(f),
            AuditEvent::BetFill(b) => self.on_bet_fill(b),
            AuditEvent::Redeemed {
                id,
                collateral,
                amount,
                ..
            } => self.on_redeemed(id, collateral, *amount),
            AuditEvent::ExecutionFailed { id, error, .. } => {
                self.counters.execution_failures += 1;
                if let Some(r) = self.record(id) {
                    r.outcome = Some(Outcome::Failed {
                        error: redact_urls(&error.to_string()),
                    });
                }
            }
            AuditEvent::KillSwitch { ts, change } => self.on_kill_switch(*ts, change),
            AuditEvent::Portfolio { ts, balances } => {
                self.positions.clear();
                self.positions
                    .extend(balances.iter().map(|(t, a)| position(t, *a)));
                self.positions_ts = Some(*ts);
            }
            _ => {}
        }
    }

    /// A bar processed to the end: its close and the equity at it.
    fn on_mark(&mut self, ts: i64, price: f64, equity: f64) {
        self.bars += 1;
        self.counters.bars += 1;
        self.last_ts = Some(ts);
        self.last_price = Some(price);
        self.last_equity = Some(equity);
        self.start_equity.get_or_insert(equity);
        self.curve.push(ts, equity);
    }

    /// A model decision, kept for the intents of the same event.
    fn on_decision(&mut self, ts: i64, decision: &agent_core::Decision) {
        // Reuse the buffers: a model strategy decides every bar.
        let (pts, p) = self
            .pending
            .get_or_insert_with(|| (ts, ModelDecision::default()));
        *pts = ts;
        p.model.clear();
        p.model.push_str(&decision.model);
        p.output = decision.output;
        p.action.clear();
        p.action.push_str(&decision.action);
    }

    /// A new intent: recorded (the oldest dropped past [`DECISIONS_KEPT`]) with the model
    /// decision of its event, if any.
    fn on_intent(&mut self, ts: i64, id: &IntentId, intent: &Intent) {
        self.counters.intents += 1;
        let model = match &self.pending {
            Some((pts, d)) if *pts == ts => Some(d.clone()),
            _ => None,
        };
        if self.decisions.len() == DECISIONS_KEPT {
            self.decisions.pop_front();
        }
        self.decisions.push_back(DecisionRecord {
            ts,
            id: id.clone(),
            intent: describe(intent),
            // The token it spends: a swap's sell token, a bet's collateral.
            sell: match intent {
                Intent::Swap(s) => Some(s.sell.clone()),
                Intent::Bet(b) => Some(b.collateral.clone()),
                Intent::Redeem(r) => Some(r.collateral.clone()),
                Intent::Bundle(legs) => legs.first().map(|s| s.sell.clone()),
                _ => None,
            },
            model,
            verdict: None,
            outcome: None,
        });
    }

    /// The gate's verdict on intent `id`, counted; a resize names its new amount in the token
    /// the intent spends.
    fn verdict_info(&mut self, id: &IntentId, verdict: &Verdict) -> VerdictInfo {
        match verdict {
            Verdict::Approve { .. } => {
                self.counters.approved += 1;
                VerdictInfo {
                    verdict: "approve",
                    reason: None,
                    detail: None,
                }
            }
            Verdict::Resize {
                amount_in, reason, ..
            } => {
                self.counters.resized += 1;
                let sell = self.record(id).and_then(|r| r.sell.clone());
                let to = match sell {
                    Some(t) => format!("{} {}", t.format(*amount_in), t.symbol()),
                    None => format!("{amount_in} units"),
                };
                VerdictInfo {
                    verdict: "resize",
                    reason: Some(reason.code),
                    detail: Some(format!("to {to}: {}", redact_urls(&reason.detail))),
                }
            }
            Verdict::Refuse(r) => {
                self.counters.refused += 1;
                *self.counters.refused_by_reason.entry(r.code).or_default() += 1;
                VerdictInfo {
                    verdict: "refuse",
                    reason: Some(r.code),
                    detail: Some(redact_urls(&r.detail)),
                }
            }
        }
    }

    /// A swap filled: the sold and bought amounts, and the transaction.
    fn on_fill(&mut self, f: &agent_core::Fill) {
        self.counters.fills += 1;
        if let Some(r) = self.record(&f.id) {
            r.outcome = Some(Outcome::Filled {
                sold: format!("{} {}", f.sell.format(f.amount_in), f.sell.symbol()),
                bought: format!("{} {}", f.buy.format(f.amount_out), f.buy.symbol()),
                tx_hash: f.tx_hash.clone(),
            });
        }
    }

    /// A bet filled: the investment and the outcome tokens bought, in the collateral.
    fn on_bet_fill(&mut self, b: &agent_core::BetFill) {
        self.counters.fills += 1;
        if let Some(r) = self.record(&b.id) {
            let amount = |units: U256| match &r.sell {
                Some(t) => format!("{} {}", t.format(units), t.symbol()),
                None => format!("{units} units"),
            };
            r.outcome = Some(Outcome::Filled {
                sold: amount(b.investment),
                bought: format!(
                    "{} of outcome {} of market {}",
                    amount(b.tokens),
                    b.outcome,
                    b.market
                ),
                tx_hash: b.tx_hash.clone(),
            });
        }
    }

    /// Resolved positions redeemed for `amount` of `collateral`.
    fn on_redeemed(&mut self, id: &IntentId, collateral: &Token, amount: U256) {
        self.counters.fills += 1;
        if let Some(r) = self.record(id) {
            r.outcome = Some(Outcome::Filled {
                sold: "resolved positions".into(),
                bought: format!("{} {}", collateral.format(amount), collateral.symbol()),
                tx_hash: None,
            });
        }
    }

    /// The kill switch changed state: tripped (when and why) or active again.
    fn on_kill_switch(&mut self, ts: i64, change: &agent_core::kill_switch::SwitchChange) {
        self.counters.kill_switch_changes += 1;
        self.switch.state = change.to;
        self.switch.flattening = change.flattening;
        if change.to == SwitchState::Active {
            self.switch.tripped_at = None;
            self.switch.reason = None;
        } else {
            self.switch.tripped_at = Some(ts);
            self.switch.reason = Some(redact_urls(&change.reason));
        }
    }

    /// The record of intent `id`: almost always the newest.
    fn record(&mut self, id: &IntentId) -> Option<&mut DecisionRecord> {
        self.decisions.iter_mut().rev().find(|r| r.id == *id)
    }

    pub(super) fn return_pct(&self) -> Option<f64> {
        match (self.start_equity, self.last_equity) {
            (Some(s), Some(e)) if s > 0.0 => Some((e / s - 1.0) * 100.0),
            _ => None,
        }
    }
}

fn position(token: &Token, units: U256) -> Position {
    Position {
        token: token.symbol().to_string(),
        units: units.to_string(),
        amount: token.format(units),
    }
}

fn describe(intent: &Intent) -> String {
    match intent {
        Intent::Swap(s) => format!(
            "swap {} {} for {}",
            s.sell.format(s.amount_in),
            s.sell.symbol(),
            s.buy.symbol()
        ),
        Intent::Bet(b) => format!(
            "bet {} {} on outcome {} of market {}",
            b.collateral.format(b.investment),
            b.collateral.symbol(),
            b.outcome,
            b.market
        ),
        Intent::Redeem(r) => format!(
            "redeem resolved positions in {} for {}",
            r.markets.join(", "),
            r.collateral.symbol()
        ),
        Intent::Bundle(legs) => {
            let legs: Vec<String> = legs
                .iter()
                .map(|s| {
                    format!(
                        "swap {} {} for {} on {}",
                        s.sell.format(s.amount_in),
                        s.sell.symbol(),
                        s.buy.symbol(),
                        s.venue.as_deref().unwrap_or("its pair's venue")
                    )
                })
                .collect();
            format!("bundle: {}", legs.join(", then "))
        }
        other => format!("{other:?}"),
    }
}

/// Every agent of this process, by name.
#[derive(Default)]
pub struct Board {
    agents: DashMap<String, Arc<RwLock<AgentStatus>>>,
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board")
            .field("agents", &self.names())
            .finish_non_exhaustive()
    }
}

impl Board {
    /// An empty board, shared: the agents' handles and the [`ApiServer`] each hold a clone.
    ///
    /// [`ApiServer`]: super::ApiServer
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Adds (or replaces) an agent; the handle makes its observers. The kill switch starts as
    /// latched in `state_dir` (re-read when the agent reports its first event).
    pub fn register(self: &Arc<Self>, name: &str, state_dir: Option<PathBuf>) -> AgentHandle {
        let switch = state_dir.as_deref().and_then(latched_switch);
        let status = Arc::new(RwLock::new(AgentStatus {
            state_dir: state_dir.clone(),
            switch: switch.unwrap_or_default(),
            ..AgentStatus::default()
        }));
        self.agents.insert(name.to_string(), status.clone());
        AgentHandle {
            name: name.into(),
            status,
            state_dir,
        }
    }

    /// The names of the registered agents, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.agents.iter().map(|e| e.key().clone()).collect();
        v.sort();
        v
    }

    /// The agents `filter` selects (all, by name), sorted by name; `None` for an unknown name.
    pub(super) fn select(
        &self,
        filter: Option<&str>,
    ) -> Option<Vec<(String, Arc<RwLock<AgentStatus>>)>> {
        match filter {
            Some(name) => self
                .agents
                .get(name)
                .map(|e| vec![(name.to_string(), e.value().clone())]),
            None => {
                let mut v: Vec<_> = self
                    .agents
                    .iter()
                    .map(|e| (e.key().clone(), e.value().clone()))
                    .collect();
                v.sort_by(|a, b| a.0.cmp(&b.0));
                Some(v)
            }
        }
    }

    /// `/status` of the agents `filter` selects (all, or the one named), sorted by name; `None`
    /// for an unknown name.
    pub fn status(&self, filter: Option<&str>) -> Option<Vec<AgentSummary>> {
        Some(
            self.select(filter)?
                .iter()
                .filter_map(|(name, s)| s.read().ok().map(|s| summary(name, &s)))
                .collect(),
        )
    }

    /// The Prometheus text exposition of the agents `filter` selects (all, or the one named);
    /// `None` for an unknown name.
    pub fn metrics(&self, filter: Option<&str>) -> Option<String> {
        let agents = self.select(filter)?;
        let rows: Vec<(String, MetricsRow)> = agents
            .iter()
            .filter_map(|(name, s)| s.read().ok().map(|s| (name.clone(), MetricsRow::of(&s))))
            .collect();
        Some(render_metrics(&rows))
    }
}

fn latched_switch(dir: &Path) -> Option<SwitchRecord> {
    match StateDir::open(dir).and_then(|d| d.load_switch()) {
        Ok(r) => r.map(|mut r| {
            r.reason = r.reason.map(|x| redact_urls(&x));
            r
        }),
        Err(e) => {
            tracing::warn!(target: "defai::api", error = %e, "cannot read the latched kill switch");
            None
        }
    }
}

/// One agent's place on the board.
#[derive(Clone)]
pub struct AgentHandle {
    /// The name the agent was registered under: its key in `/status` and `?agent=`.
    pub name: Arc<str>,
    status: Arc<RwLock<AgentStatus>>,
    state_dir: Option<PathBuf>,
}

impl std::fmt::Debug for AgentHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentHandle")
            .field("name", &self.name)
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

impl AgentHandle {
    /// An observer that keeps this agent's status current.
    pub fn observer(&self) -> Box<dyn Observer> {
        Box::new(BoardObserver {
            status: self.status.clone(),
            state_dir: self.state_dir.clone(),
            started: false,
        })
    }

    /// Says what the agent is (mode, strategy), for the status.
    pub fn describe(&self, mode: &str, strategy: &str) {
        if let Ok(mut s) = self.status.write() {
            s.mode = mode.to_string();
            s.strategy = strategy.to_string();
        }
    }

    /// The run ended: `Ok` or why it failed.
    pub fn finish(&self, result: Result<(), String>) {
        if let Ok(mut s) = self.status.write() {
            match result {
                Ok(()) => s.phase = Phase::Finished,
                Err(e) => {
                    s.phase = Phase::Failed;
                    s.error = Some(redact_urls(&e));
                }
            }
        }
    }
}

/// Writes the audit stream into the board.
pub struct BoardObserver {
    status: Arc<RwLock<AgentStatus>>,
    state_dir: Option<PathBuf>,
    started: bool,
}

impl std::fmt::Debug for BoardObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoardObserver")
            .field("state_dir", &self.state_dir)
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl Observer for BoardObserver {
    fn on_audit(&mut self, event: &AuditEvent<'_>) -> Result<(), agent_core::agent::AuditError> {
        // The run has claimed (and, for a replay, reset) its state folder and restored the
        // switch by its first event: read the latched state once, outside the lock. Nothing
        // latched means the switch starts active.
        let latched = if self.started {
            None
        } else {
            self.started = true;
            self.state_dir
                .as_deref()
                .map(|d| latched_switch(d).unwrap_or_default())
        };
        // The board only reports: it never stops the agent.
        let Ok(mut s) = self.status.write() else {
            return Ok(());
        };
        if let Some(record) = latched {
            s.switch = record;
        }
        s.apply(event);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::fixtures::{feed, usdc, weth};
    use agent_core::kill_switch::SwitchChange;

    #[test]
    fn the_audit_stream_becomes_status_decisions_and_positions() {
        let mut s = AgentStatus::default();
        feed(&mut s);
        assert_eq!(s.phase, Phase::Running);
        assert_eq!(s.bars, 1);
        assert_eq!(s.last_equity, Some(9_990.5));
        assert_eq!(s.switch.state, SwitchState::Halted);
        assert_eq!(s.switch.reason.as_deref(), Some("operator: test"));
        assert_eq!(
            s.positions,
            vec![Position {
                token: "USDC".into(),
                units: "10000000000".into(),
                amount: usdc().format(U256::from(10_000_000_000u64)),
            }]
        );
        assert_eq!(s.decisions.len(), 2);
        let first = &s.decisions[0];
        assert_eq!(first.model.as_ref().map(|m| m.output), Some(0.7));
        assert_eq!(first.verdict.as_ref().map(|v| v.verdict), Some("approve"));
        assert!(
            matches!(&first.outcome, Some(Outcome::Filled { bought, .. }) if bought.ends_with("WETH")),
            "{:?}",
            first.outcome
        );
        let second = &s.decisions[1];
        assert_eq!(
            second.verdict.as_ref().and_then(|v| v.reason),
            Some("max_position")
        );
        assert!(second.outcome.is_none());
        // The ring is bounded.
        let (q, b) = (usdc(), weth());
        let intent = Intent::swap(&q, &b, U256::from(1u64));
        for i in 0..(DECISIONS_KEPT as u32 + 50) {
            let id = IntentId::new("x", 200, i);
            s.apply(&AuditEvent::Intent {
                ts: 200,
                id: &id,
                intent: &intent,
            });
        }
        assert_eq!(s.decisions.len(), DECISIONS_KEPT);
        assert!(s.decisions[0].model.is_none(), "no decision at ts 200");
    }

    /// Bets and redemptions are shown with their fills, not dropped.
    #[test]
    fn bet_fills_and_redemptions_are_shown_on_their_intents() {
        let usd = Token::new("dUSD", 6);
        let mut s = AgentStatus::default();
        let bet = Intent::Bet(defai_core_bet(&usd));
        let id = IntentId::new("kelly_bettor", 100, 0);
        s.apply(&AuditEvent::Intent {
            ts: 100,
            id: &id,
            intent: &bet,
        });
        let fill = agent_core::BetFill {
            id: id.clone(),
            market: "0xabc".into(),
            outcome: 1,
            investment: U256::from(25_500_000u64),
            tokens: U256::from(40_000_000u64),
            gas_native: U256::ZERO,
            tx_hash: Some("0xfeed".into()),
        };
        s.apply(&AuditEvent::BetFill(&fill));
        assert_eq!(s.counters.fills, 1);
        match &s.decisions[0].outcome {
            Some(Outcome::Filled {
                sold,
                bought,
                tx_hash,
            }) => {
                assert_eq!(sold, "25.5 dUSD");
                assert!(bought.starts_with("40 dUSD of outcome 1"), "{bought}");
                assert_eq!(tx_hash.as_deref(), Some("0xfeed"));
            }
            other => panic!("{other:?}"),
        }
        let rid = IntentId::new("kelly_bettor", 200, u32::MAX);
        let redeem = Intent::Redeem(agent_core::Redeem {
            markets: vec!["0xabc".into()],
            collateral: usd.clone(),
        });
        s.apply(&AuditEvent::Intent {
            ts: 200,
            id: &rid,
            intent: &redeem,
        });
        s.apply(&AuditEvent::Redeemed {
            ts: 200,
            id: &rid,
            collateral: &usd,
            amount: U256::from(40_000_000u64),
        });
        assert_eq!(s.counters.fills, 2);
        assert!(
            matches!(&s.decisions[1].outcome, Some(Outcome::Filled { bought, .. }) if bought == "40 dUSD"),
            "{:?}",
            s.decisions[1].outcome
        );
    }

    fn defai_core_bet(usd: &Token) -> agent_core::Bet {
        agent_core::Bet {
            market: "0xabc".into(),
            outcome: 1,
            investment: U256::from(25_500_000u64),
            collateral: usd.clone(),
        }
    }

    #[test]
    fn urls_in_error_texts_keep_only_scheme_and_host() {
        assert_eq!(
            redact_urls(
                "transport: error sending request for url (https://eth.example.com/v2/SECRETKEY?x=1)"
            ),
            "transport: error sending request for url (https://eth.example.com/…)"
        );
        assert_eq!(
            redact_urls("a http://user:pw@127.0.0.1:8545 and wss://h/k, done"),
            "a http://…@127.0.0.1:8545 and wss://h/…, done"
        );
        assert_eq!(redact_urls("no url here"), "no url here");
        let mut s = AgentStatus::default();
        s.apply(&AuditEvent::KillSwitch {
            ts: 1,
            change: &SwitchChange {
                from: SwitchState::Active,
                to: SwitchState::Halted,
                flattening: false,
                flatten_now: false,
                reason: "venue fault: https://rpc.example/KEY123 down".into(),
            },
        });
        assert!(!s.switch.reason.unwrap().contains("KEY123"));
    }
}
