//! JSON views: what `GET /status` and `GET /decisions` serve of the board.

use std::path::PathBuf;

use agent_core::SwitchState;
use serde::Serialize;

use super::board::{
    AgentStatus, Counters, DecisionRecord, ModelDecision, Outcome, Phase, VerdictInfo,
};

/// An agent's kill switch in `GET /status` (its `kill_switch` object).
#[derive(Debug, Clone, Serialize)]
pub struct SwitchView {
    /// `active` (everything the risk gate approves passes), `reduce_only` (only intents that
    /// shrink exposure pass) or `halted` (nothing passes).
    pub state: SwitchState,
    /// A flatten is in progress: the agent sells down to the quote token, then halts.
    pub flattening: bool,
    /// Why the switch tripped (an operator's reason, a breached limit, a fault), with URLs
    /// redacted; `null` while active.
    pub reason: Option<String>,
    /// When it tripped, unix seconds on the agent's clock (event time in a replay, wall clock
    /// live); `null` while active.
    pub tripped_at: Option<i64>,
}

/// One agent in `GET /status`.
#[derive(Debug, Clone, Serialize)]
///
/// `GET /status` answers `{"pid": <server process id>, "agents": [AgentSummary, ...]}`, sorted
/// by name.
pub struct AgentSummary {
    /// The name the agent is registered under (what `?agent=` selects).
    pub name: String,
    /// `backtest`, `paper` or `live`; empty until the agent has said.
    pub mode: String,
    /// The strategy's name; empty until the agent has said.
    pub strategy: String,
    /// `starting`, `running`, `finished` or `failed`.
    pub phase: Phase,
    /// Why the run failed (phase `failed`), with URLs redacted; `null` otherwise.
    pub error: Option<String>,
    /// The agent's state folder, `null` when it has none (then `POST /kill` cannot reach it).
    pub state_dir: Option<PathBuf>,
    /// The kill switch as the agent last reported it.
    pub kill_switch: SwitchView,
    /// Market events processed (bars, or cycles of a betting venue).
    pub bars: u64,
    /// Event time of the last one, unix seconds; `null` before the first.
    pub last_ts: Option<i64>,
    /// The last close, in quote per whole base token; `null` before the first event.
    pub last_price: Option<f64>,
    /// Equity at the last close, in whole quote tokens; `null` before the first event.
    pub equity: Option<f64>,
    /// Equity at the first close, in whole quote tokens; `null` before the first event.
    pub start_equity: Option<f64>,
    /// `(equity / start_equity - 1) * 100`, percent; `null` before the first event or when
    /// the start equity is not positive.
    pub return_pct: Option<f64>,
    /// Counts over the run.
    pub counters: Counters,
}

pub(super) fn summary(name: &str, s: &AgentStatus) -> AgentSummary {
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
pub(super) struct DecisionView {
    agent: String,
    pub(super) ts: i64,
    id: String,
    intent: String,
    model: Option<ModelDecision>,
    verdict: Option<VerdictInfo>,
    outcome: Option<Outcome>,
}

pub(super) fn decision_view(agent: &str, r: &DecisionRecord) -> DecisionView {
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
