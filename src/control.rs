//! Operator surfaces: a [`Board`] that every agent in the process reports to (through a
//! [`BoardObserver`] on its audit stream), and the HTTP control API and dashboard served from it
//! ([`ApiServer`]), plus the client `defai status|kill|resume` use ([`ApiClient`]).
//!
//! The API listens on loopback by default and wants `Authorization: Bearer <token>` on every
//! data and command endpoint. The token is 32 random bytes, new every process start, written to
//! `<state>/api-token` (mode 0600); `<state>/api.json` holds the URL and pid, never the token.
//! Kill and resume go through the agent's state folder ([`StateDir::send_command`]), the same
//! path `defai kill` uses without the API: there is one way into a running agent's switch.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use agent_core::agent::{AuditEvent, Observer};
use agent_core::{Intent, IntentId, KillMode, SwitchAction, SwitchRecord, SwitchState, Token};
use agent_core::{U256, Verdict};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use connectors::{StateDir, StateError};
use dashmap::DashMap;
use serde::{Deserialize, Serialize};

/// Points of the equity curve kept per agent; older points are decimated evenly when full.
pub const EQUITY_POINTS: usize = 1000;
/// Recent intents (with verdicts and outcomes) kept per agent.
pub const DECISIONS_KEPT: usize = 200;
/// `GET /decisions` without `limit`.
pub const DEFAULT_DECISIONS: usize = 50;
/// The largest `limit` `GET /decisions` accepts.
pub const MAX_DECISIONS: usize = 1000;
/// The bearer token's file in each state folder (mode 0600).
pub const TOKEN_FILE: &str = "api-token";
/// The API's address in each state folder: `{"url": ..., "pid": ...}`.
pub const ENDPOINT_FILE: &str = "api.json";

const DASHBOARD_HTML: &str = include_str!("dashboard.html");
const DASHBOARD_JS: &str = include_str!("dashboard.js");

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control API: cannot listen on {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("control API: cannot start its thread: {0}")]
    Thread(std::io::Error),
    #[error("{path}: {error}")]
    File { path: String, error: std::io::Error },
    #[error("{path}: corrupt: {error}")]
    Corrupt { path: String, error: String },
    #[error(transparent)]
    State(#[from] StateError),
    #[error("no secure random source for the API token: {0}")]
    Random(String),
    #[error("control API at {url} did not answer: {error}")]
    Unreachable { url: String, error: String },
    #[error("control API at {url}: HTTP {status}: {message}")]
    Http {
        url: String,
        status: u16,
        message: String,
    },
}

fn file_err(path: &Path) -> impl Fn(std::io::Error) -> ControlError + '_ {
    move |error| ControlError::File {
        path: path.display().to_string(),
        error,
    }
}

// ---------------------------------------------------------------------------------------------
// The board: what every agent of the process last reported.
// ---------------------------------------------------------------------------------------------

/// Where an agent is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Registered; no audit event yet.
    #[default]
    Starting,
    Running,
    Finished,
    Failed,
}

/// A balance: the exact integer amount in the token's smallest unit and its decimal rendering.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Position {
    pub token: String,
    pub units: String,
    pub amount: String,
}

/// A model-driven strategy's decision (AuditEvent::Decision), kept with the intents it led to.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ModelDecision {
    pub model: String,
    pub output: f64,
    pub action: String,
}

/// What the risk gate said about an intent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerdictInfo {
    /// `approve`, `resize` or `refuse`.
    pub verdict: &'static str,
    /// The reason code of a resize or refusal.
    pub reason: Option<&'static str>,
    pub detail: Option<String>,
}

/// What happened to an approved intent.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Filled {
        sold: String,
        bought: String,
        tx_hash: Option<String>,
    },
    Failed {
        error: String,
    },
}

/// One intent, start to end.
#[derive(Debug, Clone)]
pub struct DecisionRecord {
    pub ts: i64,
    pub id: IntentId,
    pub intent: String,
    sell: Option<Token>,
    pub model: Option<ModelDecision>,
    pub verdict: Option<VerdictInfo>,
    pub outcome: Option<Outcome>,
}

/// Counts over the agent's run, for `/metrics` and `/status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counters {
    pub bars: u64,
    pub bad_events: u64,
    pub intents: u64,
    pub approved: u64,
    pub resized: u64,
    pub refused: u64,
    pub refused_by_reason: BTreeMap<&'static str, u64>,
    pub fills: u64,
    pub execution_failures: u64,
    pub strategy_faults: u64,
    pub reconciliations: u64,
    pub kill_switch_changes: u64,
}

/// An equity curve of bounded size: every mark until [`EQUITY_POINTS`] are kept, then every
/// second one of those (and every second mark from then on), and so on, so the curve always
/// spans the whole run at an even spacing.
#[derive(Debug, Clone)]
pub struct EquityCurve {
    points: Vec<(i64, f64)>,
    cap: usize,
    /// Keep one mark in `stride`.
    stride: u64,
    seen: u64,
    last: Option<(i64, f64)>,
}

impl Default for EquityCurve {
    fn default() -> Self {
        Self::with_capacity(EQUITY_POINTS)
    }
}

impl EquityCurve {
    /// A curve of at most `cap` stored points (at least 2).
    pub fn with_capacity(cap: usize) -> Self {
        let cap = cap.max(2);
        Self {
            points: Vec::with_capacity(cap),
            cap,
            stride: 1,
            seen: 0,
            last: None,
        }
    }

    pub fn push(&mut self, ts: i64, equity: f64) {
        self.last = Some((ts, equity));
        let n = self.seen;
        self.seen += 1;
        if !n.is_multiple_of(self.stride) {
            return;
        }
        if self.points.len() == self.cap {
            // Keep the points at even positions: those whose mark index is a multiple of twice
            // the stride. No allocation: the vector keeps its capacity.
            let mut i = 0usize;
            self.points.retain(|_| {
                let keep = i.is_multiple_of(2);
                i += 1;
                keep
            });
            self.stride *= 2;
            if !n.is_multiple_of(self.stride) {
                return;
            }
        }
        self.points.push((ts, equity));
    }

    /// The stored points, plus the latest mark when it fell between two of them.
    pub fn points(&self) -> Vec<(i64, f64)> {
        let mut v = Vec::with_capacity(self.points.len() + 1);
        v.extend_from_slice(&self.points);
        if let Some(last) = self.last
            && v.last().map(|p| p.0) != Some(last.0)
        {
            v.push(last);
        }
        v
    }

    /// Marks seen in total.
    pub fn marks(&self) -> u64 {
        self.seen
    }

    /// Points held in memory (never more than the capacity).
    pub fn stored(&self) -> usize {
        self.points.len()
    }
}

/// What the operator surfaces know about one agent.
#[derive(Debug, Default)]
pub struct AgentStatus {
    pub state_dir: Option<PathBuf>,
    pub mode: String,
    pub strategy: String,
    pub phase: Phase,
    /// Why the run failed (phase `failed`).
    pub error: Option<String>,
    /// The kill switch as the agent last reported it (or as latched in its state folder).
    pub switch: SwitchRecord,
    pub bars: u64,
    pub last_ts: Option<i64>,
    pub last_price: Option<f64>,
    pub last_equity: Option<f64>,
    pub start_equity: Option<f64>,
    pub curve: EquityCurve,
    pub positions: Vec<Position>,
    pub positions_ts: Option<i64>,
    pub decisions: VecDeque<DecisionRecord>,
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
            AuditEvent::Mark { ts, price, equity } => {
                self.bars += 1;
                self.counters.bars += 1;
                self.last_ts = Some(*ts);
                self.last_price = Some(*price);
                self.last_equity = Some(*equity);
                self.start_equity.get_or_insert(*equity);
                self.curve.push(*ts, *equity);
            }
            AuditEvent::BadEvent { .. } => self.counters.bad_events += 1,
            AuditEvent::StrategyFault { .. } => self.counters.strategy_faults += 1,
            AuditEvent::Reconciled { .. } => self.counters.reconciliations += 1,
            AuditEvent::Decision { ts, decision } => {
                // Reuse the buffers: a model strategy decides every bar.
                let (pts, p) = self
                    .pending
                    .get_or_insert_with(|| (*ts, ModelDecision::default()));
                *pts = *ts;
                p.model.clear();
                p.model.push_str(&decision.model);
                p.output = decision.output;
                p.action.clear();
                p.action.push_str(&decision.action);
            }
            AuditEvent::Intent { ts, id, intent } => {
                self.counters.intents += 1;
                let model = match &self.pending {
                    Some((pts, d)) if pts == ts => Some(d.clone()),
                    _ => None,
                };
                if self.decisions.len() == DECISIONS_KEPT {
                    self.decisions.pop_front();
                }
                self.decisions.push_back(DecisionRecord {
                    ts: *ts,
                    id: (*id).clone(),
                    intent: describe(intent),
                    sell: intent.as_swap().map(|s| s.sell.clone()),
                    model,
                    verdict: None,
                    outcome: None,
                });
            }
            AuditEvent::Verdict { id, verdict, .. } => {
                let info = match verdict {
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
                };
                if let Some(r) = self.record(id) {
                    r.verdict = Some(info);
                }
            }
            AuditEvent::Fill(f) => {
                self.counters.fills += 1;
                if let Some(r) = self.record(&f.id) {
                    r.outcome = Some(Outcome::Filled {
                        sold: format!("{} {}", f.sell.format(f.amount_in), f.sell.symbol()),
                        bought: format!("{} {}", f.buy.format(f.amount_out), f.buy.symbol()),
                        tx_hash: f.tx_hash.clone(),
                    });
                }
            }
            AuditEvent::ExecutionFailed { id, error, .. } => {
                self.counters.execution_failures += 1;
                if let Some(r) = self.record(id) {
                    r.outcome = Some(Outcome::Failed {
                        error: redact_urls(&error.to_string()),
                    });
                }
            }
            AuditEvent::KillSwitch { ts, change } => {
                self.counters.kill_switch_changes += 1;
                self.switch.state = change.to;
                self.switch.flattening = change.flattening;
                if change.to == SwitchState::Active {
                    self.switch.tripped_at = None;
                    self.switch.reason = None;
                } else {
                    self.switch.tripped_at = Some(*ts);
                    self.switch.reason = Some(redact_urls(&change.reason));
                }
            }
            AuditEvent::Portfolio { ts, balances } => {
                self.positions.clear();
                self.positions
                    .extend(balances.iter().map(|(t, a)| position(t, *a)));
                self.positions_ts = Some(*ts);
            }
            _ => {}
        }
    }

    /// The record of intent `id`: almost always the newest.
    fn record(&mut self, id: &IntentId) -> Option<&mut DecisionRecord> {
        self.decisions.iter_mut().rev().find(|r| r.id == *id)
    }

    fn return_pct(&self) -> Option<f64> {
        match (self.start_equity, self.last_equity) {
            (Some(s), Some(e)) if s > 0.0 => Some((e / s - 1.0) * 100.0),
            _ => None,
        }
    }
}

/// Error texts can quote an RPC URL, whose path or user info often holds an API key: only the
/// scheme and host of a URL are kept in what the API serves.
pub fn redact_urls(text: &str) -> String {
    if !text.contains("://") {
        return text.to_string();
    }
    let ends = |c: char| c.is_whitespace() || matches!(c, ')' | ']' | '"' | '\'' | ',' | '>');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        let after = &rest[i + 3..];
        let end = after
            .find(|c: char| matches!(c, '/' | '?' | '#') || ends(c))
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rsplit_once('@') {
            Some((_, host)) => {
                out.push_str("…@");
                out.push_str(host);
            }
            None => out.push_str(authority),
        }
        let tail = &after[end..];
        let cut = tail.find(ends).unwrap_or(tail.len());
        if cut > 0 {
            out.push_str("/…");
        }
        rest = &tail[cut..];
    }
    out.push_str(rest);
    out
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
        other => format!("{other:?}"),
    }
}

/// Every agent of this process, by name.
#[derive(Default)]
pub struct Board {
    agents: DashMap<String, Arc<RwLock<AgentStatus>>>,
}

impl Board {
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

    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.agents.iter().map(|e| e.key().clone()).collect();
        v.sort();
        v
    }

    /// The agents `filter` selects (all, by name), sorted by name; `None` for an unknown name.
    fn select(&self, filter: Option<&str>) -> Option<Vec<(String, Arc<RwLock<AgentStatus>>)>> {
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

    /// `/status` of the agents `filter` selects.
    pub fn status(&self, filter: Option<&str>) -> Option<Vec<AgentSummary>> {
        Some(
            self.select(filter)?
                .iter()
                .filter_map(|(name, s)| s.read().ok().map(|s| summary(name, &s)))
                .collect(),
        )
    }

    /// The Prometheus text exposition of the agents `filter` selects.
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
    pub name: Arc<str>,
    status: Arc<RwLock<AgentStatus>>,
    state_dir: Option<PathBuf>,
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

impl Observer for BoardObserver {
    fn on_audit(&mut self, event: &AuditEvent<'_>) {
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
        let Ok(mut s) = self.status.write() else {
            return;
        };
        if let Some(record) = latched {
            s.switch = record;
        }
        s.apply(event);
    }
}

// ---------------------------------------------------------------------------------------------
// JSON views.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub struct SwitchView {
    pub state: SwitchState,
    pub flattening: bool,
    pub reason: Option<String>,
    pub tripped_at: Option<i64>,
}

/// One agent in `GET /status`.
#[derive(Debug, Clone, Serialize)]
pub struct AgentSummary {
    pub name: String,
    pub mode: String,
    pub strategy: String,
    pub phase: Phase,
    pub error: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub kill_switch: SwitchView,
    pub bars: u64,
    pub last_ts: Option<i64>,
    pub last_price: Option<f64>,
    pub equity: Option<f64>,
    pub start_equity: Option<f64>,
    pub return_pct: Option<f64>,
    pub counters: Counters,
}

fn summary(name: &str, s: &AgentStatus) -> AgentSummary {
    AgentSummary {
        name: name.to_string(),
        mode: s.mode.clone(),
        strategy: s.strategy.clone(),
        phase: s.phase,
        error: s.error.clone(),
        state_dir: s.state_dir.clone(),
        kill_switch: SwitchView {
            state: s.switch.state,
            flattening: s.switch.flattening,
            reason: s.switch.reason.clone(),
            tripped_at: s.switch.tripped_at,
        },
        bars: s.bars,
        last_ts: s.last_ts,
        last_price: s.last_price,
        equity: s.last_equity,
        start_equity: s.start_equity,
        return_pct: s.return_pct(),
        counters: s.counters.clone(),
    }
}

#[derive(Debug, Clone, Serialize)]
struct DecisionView {
    agent: String,
    ts: i64,
    id: String,
    intent: String,
    model: Option<ModelDecision>,
    verdict: Option<VerdictInfo>,
    outcome: Option<Outcome>,
}

fn decision_view(agent: &str, r: &DecisionRecord) -> DecisionView {
    DecisionView {
        agent: agent.to_string(),
        ts: r.ts,
        id: r.id.to_string(),
        intent: r.intent.clone(),
        model: r.model.clone(),
        verdict: r.verdict.clone(),
        outcome: r.outcome.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// Prometheus text exposition.
// ---------------------------------------------------------------------------------------------

/// The numbers `/metrics` exposes for one agent.
#[derive(Debug, Clone)]
struct MetricsRow {
    c: Counters,
    equity: Option<f64>,
    switch: SwitchState,
    last_ts: Option<i64>,
}

impl MetricsRow {
    fn of(s: &AgentStatus) -> Self {
        Self {
            c: s.counters.clone(),
            equity: s.last_equity,
            switch: s.switch.state,
            last_ts: s.last_ts,
        }
    }
}

fn switch_gauge(s: SwitchState) -> u8 {
    match s {
        SwitchState::Active => 0,
        SwitchState::ReduceOnly => 1,
        SwitchState::Halted => 2,
    }
}

/// A label value, escaped as the exposition format wants (`\\`, `\"`, `\n`).
fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn render_metrics(rows: &[(String, MetricsRow)]) -> String {
    type Get = fn(&MetricsRow) -> Option<f64>;
    let simple: [(&str, &str, &str, Get); 11] = [
        (
            "defai_bars_total",
            "counter",
            "Market bars processed.",
            |r| Some(r.c.bars as f64),
        ),
        (
            "defai_bad_events_total",
            "counter",
            "Market events refused as unusable.",
            |r| Some(r.c.bad_events as f64),
        ),
        (
            "defai_intents_total",
            "counter",
            "Intents the strategy produced.",
            |r| Some(r.c.intents as f64),
        ),
        (
            "defai_fills_total",
            "counter",
            "Orders filled and booked.",
            |r| Some(r.c.fills as f64),
        ),
        (
            "defai_execution_failures_total",
            "counter",
            "Approved orders the venue failed to fill.",
            |r| Some(r.c.execution_failures as f64),
        ),
        (
            "defai_strategy_faults_total",
            "counter",
            "Strategy failures or unusable outputs.",
            |r| Some(r.c.strategy_faults as f64),
        ),
        (
            "defai_reconciliations_total",
            "counter",
            "Booked balances corrected from the venue's record.",
            |r| Some(r.c.reconciliations as f64),
        ),
        (
            "defai_kill_switch_changes_total",
            "counter",
            "Kill switch state changes.",
            |r| Some(r.c.kill_switch_changes as f64),
        ),
        (
            "defai_equity",
            "gauge",
            "Equity at the last bar's close, in quote token units.",
            |r| r.equity,
        ),
        (
            "defai_kill_switch_state",
            "gauge",
            "Kill switch: 0 active, 1 reduce_only, 2 halted.",
            |r| Some(switch_gauge(r.switch) as f64),
        ),
        (
            "defai_last_bar_timestamp_seconds",
            "gauge",
            "Event time of the last bar processed (unix seconds).",
            |r| r.last_ts.map(|t| t as f64),
        ),
    ];
    let mut out = String::with_capacity(2048 + rows.len() * 1024);
    for (name, kind, help, get) in simple {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (agent, r) in rows {
            if let Some(v) = get(r) {
                let _ = writeln!(out, "{name}{{agent=\"{}\"}} {}", label(agent), num(v));
            }
        }
    }
    let name = "defai_verdicts_total";
    let _ = writeln!(
        out,
        "# HELP {name} Risk gate verdicts.\n# TYPE {name} counter"
    );
    for (agent, r) in rows {
        for (verdict, v) in [
            ("approve", r.c.approved),
            ("resize", r.c.resized),
            ("refuse", r.c.refused),
        ] {
            let _ = writeln!(
                out,
                "{name}{{agent=\"{}\",verdict=\"{verdict}\"}} {v}",
                label(agent)
            );
        }
    }
    let name = "defai_refusals_total";
    let _ = writeln!(
        out,
        "# HELP {name} Refused intents by reason code.\n# TYPE {name} counter"
    );
    for (agent, r) in rows {
        for (reason, v) in &r.c.refused_by_reason {
            let _ = writeln!(
                out,
                "{name}{{agent=\"{}\",reason=\"{}\"}} {v}",
                label(agent),
                label(reason)
            );
        }
    }
    out
}

/// A sample value: integers without a fraction, non-finite values as the format spells them.
fn num(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

// ---------------------------------------------------------------------------------------------
// The token and the endpoint file.
// ---------------------------------------------------------------------------------------------

/// The API's bearer token. Never printed: `Debug` redacts it.
#[derive(Clone)]
pub struct ApiToken(Arc<str>);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

impl ApiToken {
    /// 32 bytes from the operating system's secure random source, as 64 hex digits.
    pub fn generate() -> Result<Self, ControlError> {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).map_err(|e| ControlError::Random(e.to_string()))?;
        let mut s = String::with_capacity(64);
        for byte in b {
            let _ = write!(s, "{byte:02x}");
        }
        Ok(Self(s.into()))
    }

    /// A token read from a token file (surrounding whitespace ignored).
    pub fn from_secret(secret: &str) -> Self {
        Self(secret.trim().into())
    }

    /// The secret itself: for the `Authorization` header and the token file only.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// Compares in time independent of where `presented` differs.
    fn matches(&self, presented: &[u8]) -> bool {
        let ours = self.0.as_bytes();
        if ours.is_empty() || presented.len() != ours.len() {
            return false;
        }
        ours.iter()
            .zip(presented)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// `<state>/api.json`: where the API of the agent using this folder listens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub url: String,
    pub pid: u32,
}

/// Replaces `path` with `bytes`, readable by the owner only (mode 0600 from creation on).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ControlError> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{TOKEN_FILE}.tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    {
        let mut f = opts.open(&tmp).map_err(file_err(&tmp))?;
        f.write_all(bytes).map_err(file_err(&tmp))?;
        f.sync_all().map_err(file_err(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(file_err(path))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The endpoint and token published in `dir`, if an API was started on it.
pub fn read_endpoint(dir: &Path) -> Result<Option<(Endpoint, ApiToken)>, ControlError> {
    let path = dir.join(ENDPOINT_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(file_err(&path)(e)),
    };
    let endpoint: Endpoint = serde_json::from_slice(&bytes).map_err(|e| ControlError::Corrupt {
        path: path.display().to_string(),
        error: e.to_string(),
    })?;
    let tpath = dir.join(TOKEN_FILE);
    let token = std::fs::read_to_string(&tpath).map_err(file_err(&tpath))?;
    Ok(Some((endpoint, ApiToken::from_secret(&token))))
}

// ---------------------------------------------------------------------------------------------
// The server.
// ---------------------------------------------------------------------------------------------

struct Api {
    board: Arc<Board>,
    token: ApiToken,
}

type Shared = Arc<Api>;

/// A JSON error answer.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

fn unknown_agent(name: &str) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, format!("no agent named `{name}`"))
}

/// The HTTP control API and dashboard, served from its own thread (and runtime) so a busy agent
/// loop never delays it; it never keeps the process alive. Dropping it stops it and removes the
/// endpoint files it published.
pub struct ApiServer {
    addr: SocketAddr,
    token: ApiToken,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    published: Vec<PathBuf>,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl ApiServer {
    /// Binds `listen` (port 0: any free port) and serves `board`.
    pub fn start(
        board: Arc<Board>,
        listen: SocketAddr,
        token: ApiToken,
    ) -> Result<Self, ControlError> {
        let bind = |error| ControlError::Bind {
            addr: listen,
            error,
        };
        let listener = std::net::TcpListener::bind(listen).map_err(bind)?;
        listener.set_nonblocking(true).map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        let app = router(Arc::new(Api {
            board,
            token: token.clone(),
        }));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("defai-api".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(target: "defai::api", error = %e, "control API runtime");
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(target: "defai::api", error = %e, "control API listener");
                            return;
                        }
                    };
                    let served = axum::serve(listener, app).with_graceful_shutdown(async {
                        let _ = rx.await;
                    });
                    if let Err(e) = served.await {
                        tracing::error!(target: "defai::api", error = %e, "control API stopped");
                    }
                });
            })
            .map_err(ControlError::Thread)?;
        Ok(Self {
            addr,
            token,
            shutdown: Some(tx),
            published: Vec::new(),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes the token (`api-token`, mode 0600) and the endpoint (`api.json`) into the state
    /// folder `dir`, for `defai status|kill|resume`. Removed again when the server stops.
    pub fn publish(&mut self, dir: &Path) -> Result<(), ControlError> {
        let state = StateDir::open(dir)?;
        write_private(
            &state.path().join(TOKEN_FILE),
            self.token.secret().as_bytes(),
        )?;
        let endpoint = Endpoint {
            url: self.url(),
            pid: std::process::id(),
        };
        let json = serde_json::to_vec_pretty(&endpoint).map_err(|e| ControlError::Corrupt {
            path: ENDPOINT_FILE.into(),
            error: e.to_string(),
        })?;
        connectors::state::write_atomic(&state.path().join(ENDPOINT_FILE), &json)?;
        self.published.push(dir.to_path_buf());
        Ok(())
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for dir in &self.published {
            // Only what this process wrote: another agent may have the folder since.
            if let Ok(Some((e, _))) = read_endpoint(dir)
                && e.pid == std::process::id()
                && e.url == format!("http://{}", self.addr)
            {
                let _ = std::fs::remove_file(dir.join(ENDPOINT_FILE));
                let _ = std::fs::remove_file(dir.join(TOKEN_FILE));
            }
        }
    }
}

fn router(api: Shared) -> Router {
    let protected = Router::new()
        .route("/status", get(status))
        .route("/positions", get(positions))
        .route("/decisions", get(decisions))
        .route("/equity", get(equity))
        .route("/metrics", get(metrics))
        .route("/kill", post(kill))
        .route("/resume", post(resume))
        .route_layer(middleware::from_fn_with_state(api.clone(), auth));
    Router::new()
        .route("/", get(dashboard))
        .route("/dashboard.js", get(dashboard_js))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .merge(protected)
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .layer(middleware::from_fn(common_headers))
        .with_state(api)
}

async fn common_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

async fn auth(State(api): State<Shared>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .map(|t| t.trim_ascii());
    match presented {
        Some(t) if api.token.matches(t) => next.run(req).await,
        _ => {
            let mut res = ApiError(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token (see the api-token file in the agent's state folder)"
                    .into(),
            )
            .into_response();
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            res
        }
    }
}

async fn dashboard() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        DASHBOARD_HTML,
    )
        .into_response()
}

async fn dashboard_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        DASHBOARD_JS,
    )
        .into_response()
}

type Params = Query<HashMap<String, String>>;

fn agent_filter(q: &HashMap<String, String>) -> Option<&str> {
    q.get("agent").map(String::as_str).filter(|s| !s.is_empty())
}

async fn status(State(api): State<Shared>, Query(q): Params) -> Result<Response, ApiError> {
    let filter = agent_filter(&q);
    let agents = api
        .board
        .status(filter)
        .ok_or_else(|| unknown_agent(filter.unwrap_or_default()))?;
    Ok(
        axum::Json(serde_json::json!({ "pid": std::process::id(), "agents": agents }))
            .into_response(),
    )
}

async fn positions(State(api): State<Shared>, Query(q): Params) -> Result<Response, ApiError> {
    let filter = agent_filter(&q);
    let agents = api
        .board
        .select(filter)
        .ok_or_else(|| unknown_agent(filter.unwrap_or_default()))?;
    let out: Vec<serde_json::Value> = agents
        .iter()
        .filter_map(|(name, s)| {
            let s = s.read().ok()?;
            Some(serde_json::json!({
                "agent": name, "ts": s.positions_ts, "positions": s.positions,
            }))
        })
        .collect();
    Ok(axum::Json(serde_json::json!({ "agents": out })).into_response())
}

async fn equity(State(api): State<Shared>, Query(q): Params) -> Result<Response, ApiError> {
    let filter = agent_filter(&q);
    let agents = api
        .board
        .select(filter)
        .ok_or_else(|| unknown_agent(filter.unwrap_or_default()))?;
    let out: Vec<serde_json::Value> = agents
        .iter()
        .filter_map(|(name, s)| {
            let s = s.read().ok()?;
            Some(serde_json::json!({
                "agent": name, "marks": s.curve.marks(), "points": s.curve.points(),
            }))
        })
        .collect();
    Ok(axum::Json(serde_json::json!({ "agents": out })).into_response())
}

/// `limit`: absent → the default; otherwise an integer in 1..=MAX_DECISIONS.
fn parse_limit(q: &HashMap<String, String>) -> Result<usize, ApiError> {
    let Some(raw) = q.get("limit") else {
        return Ok(DEFAULT_DECISIONS);
    };
    match raw.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_DECISIONS).contains(&n) => Ok(n),
        _ => Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("limit must be an integer from 1 to {MAX_DECISIONS}, got `{raw}`"),
        )),
    }
}

async fn decisions(State(api): State<Shared>, Query(q): Params) -> Result<Response, ApiError> {
    let limit = parse_limit(&q)?;
    let filter = agent_filter(&q);
    let agents = api
        .board
        .select(filter)
        .ok_or_else(|| unknown_agent(filter.unwrap_or_default()))?;
    let mut out: Vec<DecisionView> = Vec::new();
    for (name, s) in &agents {
        if let Ok(s) = s.read() {
            out.extend(
                s.decisions
                    .iter()
                    .rev()
                    .take(limit)
                    .map(|r| decision_view(name, r)),
            );
        }
    }
    // Newest first across agents.
    out.sort_by_key(|d| std::cmp::Reverse(d.ts));
    out.truncate(limit);
    Ok(axum::Json(serde_json::json!({ "decisions": out })).into_response())
}

async fn metrics(State(api): State<Shared>, Query(q): Params) -> Result<Response, ApiError> {
    let filter = agent_filter(&q);
    let text = api
        .board
        .metrics(filter)
        .ok_or_else(|| unknown_agent(filter.unwrap_or_default()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    reason: Option<String>,
    agent: Option<String>,
    /// `halt` (default), `reduce_only` or `flatten`; kill only.
    mode: Option<String>,
}

async fn kill(
    State(api): State<Shared>,
    Query(q): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    command(&api, &q, &headers, &body, true)
}

async fn resume(
    State(api): State<Shared>,
    Query(q): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    command(&api, &q, &headers, &body, false)
}

/// POST /kill and /resume: writes the operator command into each selected agent's state folder,
/// where its kill switch's watcher picks it up (within ~100 ms; applied at the next cycle).
fn command(
    api: &Api,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
    kill: bool,
) -> Result<Response, ApiError> {
    let bad = |m: String| ApiError(StatusCode::BAD_REQUEST, m);
    if let Some(ct) = headers.get(header::CONTENT_TYPE)
        && !ct.as_bytes().starts_with(b"application/json")
    {
        return Err(ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be JSON (Content-Type: application/json)".into(),
        ));
    }
    let body: CommandBody = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "the body must be a JSON object {{\"reason\": \"...\", \"agent\": optional name{}}}: {e}",
            if kill { ", \"mode\": optional halt|reduce_only|flatten" } else { "" }
        ))
    })?;
    let reason = body
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| bad("`reason` is required: say why".into()))?;
    let action = if kill {
        let mode = match body.mode.as_deref() {
            None => KillMode::Halt,
            Some(m) => m.parse::<KillMode>().map_err(bad)?,
        };
        SwitchAction::Kill(mode)
    } else {
        if body.mode.is_some() {
            return Err(bad("`mode` applies to /kill only".into()));
        }
        SwitchAction::Resume
    };
    let filter = match (body.agent.as_deref(), agent_filter(q)) {
        (Some(a), Some(b)) if a != b => {
            return Err(bad(format!(
                "the body names agent `{a}` and the query `{b}`"
            )));
        }
        (Some(a), _) => Some(a),
        (None, b) => b,
    };
    let agents = api
        .board
        .select(filter)
        .ok_or_else(|| unknown_agent(filter.unwrap_or_default()))?;
    let mut results = Vec::new();
    let mut failed = false;
    for (name, s) in &agents {
        let dir = s.read().ok().and_then(|s| s.state_dir.clone());
        let sent = match &dir {
            None => Err("the agent has no state folder".to_string()),
            Some(d) => StateDir::open(d)
                .and_then(|sd| sd.send_command(action, reason))
                .map_err(|e| e.to_string()),
        };
        match sent {
            Ok(cmd) => {
                tracing::warn!(target: "defai::api", agent = %name, ?action, reason, command = cmd.id, "operator command via the control API");
                results.push(serde_json::json!({"agent": name, "command": cmd.id}));
            }
            Err(e) => {
                failed = true;
                tracing::error!(target: "defai::api", agent = %name, error = %e, "operator command not written");
                results.push(serde_json::json!({"agent": name, "error": e}));
            }
        }
    }
    let status = if failed {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::ACCEPTED
    };
    Ok((
        status,
        axum::Json(serde_json::json!({
            "action": action,
            "reason": reason,
            "agents": results,
            "note": "a running agent applies the command at its next cycle",
        })),
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------------
// The client (`defai status|kill|resume`).
// ---------------------------------------------------------------------------------------------

/// Talks to the API a state folder's `api.json` names.
pub struct ApiClient {
    url: String,
    token: ApiToken,
    http: reqwest::Client,
}

impl ApiClient {
    /// The client for the API published in `dir`, or `None` when there is none.
    pub fn for_state_dir(dir: &Path) -> Result<Option<Self>, ControlError> {
        let Some((endpoint, token)) = read_endpoint(dir)? else {
            return Ok(None);
        };
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ControlError::Unreachable {
                url: endpoint.url.clone(),
                error: e.to_string(),
            })?;
        Ok(Some(Self {
            url: endpoint.url.trim_end_matches('/').to_string(),
            token,
            http,
        }))
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<serde_json::Value, ControlError> {
        let unreachable = |e: reqwest::Error| ControlError::Unreachable {
            url: self.url.clone(),
            error: e.to_string(),
        };
        let res = req
            .bearer_auth(self.token.secret())
            .send()
            .await
            .map_err(unreachable)?;
        let status = res.status();
        let bytes = res.bytes().await.map_err(unreachable)?;
        let value: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
        if !status.is_success() {
            let message = value
                .as_ref()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            return Err(ControlError::Http {
                url: self.url.clone(),
                status: status.as_u16(),
                message,
            });
        }
        value.ok_or_else(|| ControlError::Http {
            url: self.url.clone(),
            status: status.as_u16(),
            message: "the answer is not JSON".into(),
        })
    }

    /// `GET path` (e.g. `/status`), as JSON.
    pub async fn get(&self, path: &str) -> Result<serde_json::Value, ControlError> {
        self.send(self.http.get(format!("{}{path}", self.url)))
            .await
    }

    /// `POST path` with a JSON body.
    pub async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ControlError> {
        let req = self
            .http
            .post(format!("{}{path}", self.url))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        self.send(req).await
    }

    /// The `/status` entry of the agent using state folder `dir`: `None` when the server that
    /// answers runs no agent there (a stale `api.json` whose port another process now has).
    pub async fn agent_for(&self, dir: &Path) -> Result<Option<serde_json::Value>, ControlError> {
        let status = self.get("/status").await?;
        let want = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        Ok(status["agents"].as_array().and_then(|agents| {
            agents
                .iter()
                .find(|a| {
                    a["state_dir"].as_str().is_some_and(|d| {
                        std::fs::canonicalize(d).unwrap_or_else(|_| PathBuf::from(d)) == want
                    })
                })
                .cloned()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_core::kill_switch::SwitchChange;
    use agent_core::{Fill, Refusal};

    #[test]
    fn equity_curve_stays_bounded_and_spans_the_whole_run() {
        let mut c = EquityCurve::with_capacity(100);
        for i in 0..100_000i64 {
            c.push(i, i as f64);
            assert!(c.stored() <= 100, "{} points after {i} marks", c.stored());
        }
        let p = c.points();
        assert!(p.len() >= 50 && p.len() <= 101, "{}", p.len());
        assert_eq!(p[0], (0, 0.0), "the first mark stays");
        assert_eq!(
            *p.last().unwrap(),
            (99_999, 99_999.0),
            "the latest mark is shown"
        );
        // Evenly spaced: every stored step is the same.
        let steps: Vec<i64> = p[..p.len() - 1]
            .windows(2)
            .map(|w| w[1].0 - w[0].0)
            .collect();
        assert!(steps.iter().all(|s| *s == steps[0]), "{steps:?}");
        assert_eq!(c.marks(), 100_000);
        // The default keeps at most EQUITY_POINTS.
        let mut d = EquityCurve::default();
        for i in 0..10_000 {
            d.push(i, 1.0);
        }
        assert!(d.stored() <= EQUITY_POINTS);
        assert!(d.stored() >= EQUITY_POINTS / 2);
    }

    fn usdc() -> Token {
        Token::new("USDC", 6)
    }
    fn weth() -> Token {
        Token::new("WETH", 18)
    }

    /// One bar with two intents: one filled, one refused; then a halt.
    fn feed(s: &mut AgentStatus) {
        let (q, b) = (usdc(), weth());
        let balances = vec![(q.clone(), U256::from(10_000_000_000u64))];
        s.apply(&AuditEvent::Portfolio {
            ts: 0,
            balances: &balances,
        });
        let decision = agent_core::Decision {
            model: "abc".into(),
            features: None,
            output: 0.7,
            action: "long".into(),
        };
        s.apply(&AuditEvent::Decision {
            ts: 100,
            decision: &decision,
        });
        let id0 = IntentId::new("ema_cross", 100, 0);
        let intent0 = Intent::swap(&q, &b, U256::from(1_000_000_000u64));
        s.apply(&AuditEvent::Intent {
            ts: 100,
            id: &id0,
            intent: &intent0,
        });
        s.apply(&AuditEvent::Verdict {
            ts: 100,
            id: &id0,
            verdict: &Verdict::Approve {
                min_amount_out: U256::ZERO,
            },
        });
        let fill = Fill {
            id: id0.clone(),
            ts: 100,
            sell: q.clone(),
            buy: b.clone(),
            amount_in: U256::from(1_000_000_000u64),
            amount_out: U256::from(500_000_000_000_000_000u64),
            fee: U256::ZERO,
            fee_quote: U256::ZERO,
            gas_native: U256::ZERO,
            gas_cost: (q.clone(), U256::ZERO),
            gas_quote: U256::ZERO,
            tx_hash: None,
        };
        s.apply(&AuditEvent::Fill(&fill));
        let id1 = IntentId::new("ema_cross", 100, 1);
        s.apply(&AuditEvent::Intent {
            ts: 100,
            id: &id1,
            intent: &intent0,
        });
        s.apply(&AuditEvent::Verdict {
            ts: 100,
            id: &id1,
            verdict: &Verdict::Refuse(Refusal::new("max_position", "too big")),
        });
        s.apply(&AuditEvent::Mark {
            ts: 100,
            price: 2000.0,
            equity: 9_990.5,
        });
        s.apply(&AuditEvent::KillSwitch {
            ts: 101,
            change: &SwitchChange {
                from: SwitchState::Active,
                to: SwitchState::Halted,
                flattening: false,
                reason: "operator: test".into(),
            },
        });
    }

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

    #[test]
    fn metrics_are_prometheus_text_with_the_agent_label() {
        let board = Board::new();
        let h = board.register("alpha \"1\"", None);
        let mut o = h.observer();
        let mut s = AgentStatus::default();
        feed(&mut s);
        // Through the observer, as an agent would.
        {
            let (q, b) = (usdc(), weth());
            let id = IntentId::new("ema_cross", 100, 0);
            let intent = Intent::swap(&q, &b, U256::from(5u64));
            o.on_audit(&AuditEvent::Intent {
                ts: 100,
                id: &id,
                intent: &intent,
            });
            o.on_audit(&AuditEvent::Verdict {
                ts: 100,
                id: &id,
                verdict: &Verdict::Refuse(Refusal::new("kill_switch_halted", "halted")),
            });
            o.on_audit(&AuditEvent::Mark {
                ts: 100,
                price: 2000.0,
                equity: 10_000.25,
            });
        }
        let text = board.metrics(None).unwrap();
        let lbl = "agent=\"alpha \\\"1\\\"\"";
        for want in [
            "# HELP defai_bars_total Market bars processed.".to_string(),
            "# TYPE defai_bars_total counter".to_string(),
            format!("defai_bars_total{{{lbl}}} 1"),
            format!("defai_intents_total{{{lbl}}} 1"),
            "# TYPE defai_equity gauge".to_string(),
            format!("defai_equity{{{lbl}}} 10000.25"),
            format!("defai_kill_switch_state{{{lbl}}} 0"),
            format!("defai_verdicts_total{{{lbl},verdict=\"refuse\"}} 1"),
            format!("defai_verdicts_total{{{lbl},verdict=\"approve\"}} 0"),
            format!("defai_refusals_total{{{lbl},reason=\"kill_switch_halted\"}} 1"),
        ] {
            assert!(
                text.lines().any(|l| l == want),
                "missing `{want}` in\n{text}"
            );
        }
        // Every sample line is `name{labels} value` with a HELP and TYPE before it.
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_string());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (name, rest) = line.split_once('{').expect(line);
            assert!(typed.contains(name), "{name} has no TYPE before it");
            let value = rest.rsplit_once("} ").expect(line).1;
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
        // A halted agent's gauge is 2.
        let rows = vec![("b".to_string(), MetricsRow::of(&s))];
        let t2 = render_metrics(&rows);
        assert!(
            t2.contains("defai_kill_switch_state{agent=\"b\"} 2\n"),
            "{t2}"
        );
        assert!(t2.contains("defai_fills_total{agent=\"b\"} 1\n"), "{t2}");
        assert!(board.metrics(Some("nobody")).is_none());
    }

    #[test]
    fn token_is_64_hex_digits_and_compares_exactly() {
        let a = ApiToken::generate().unwrap();
        let b = ApiToken::generate().unwrap();
        assert_eq!(a.secret().len(), 64);
        assert!(a.secret().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.secret(), b.secret());
        assert!(a.matches(a.secret().as_bytes()));
        assert!(!a.matches(b.secret().as_bytes()));
        assert!(!a.matches(&a.secret().as_bytes()[..63]));
        assert!(!a.matches(b""));
        assert!(!format!("{a:?}").contains(a.secret()));
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
                reason: "venue fault: https://rpc.example/KEY123 down".into(),
            },
        });
        assert!(!s.switch.reason.unwrap().contains("KEY123"));
    }

    #[test]
    fn limit_is_validated() {
        let q = |v: &str| HashMap::from([("limit".to_string(), v.to_string())]);
        assert_eq!(parse_limit(&HashMap::new()).ok(), Some(DEFAULT_DECISIONS));
        assert_eq!(parse_limit(&q("5")).ok(), Some(5));
        for bad in ["abc", "0", "-1", "1001", ""] {
            let e = parse_limit(&q(bad)).err().unwrap();
            assert_eq!(e.0, StatusCode::BAD_REQUEST);
            assert!(e.1.contains("limit"), "{}", e.1);
        }
    }
}
