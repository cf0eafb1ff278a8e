//! JSON views: what `GET /status` and `GET /decisions` serve of the board.

use std::path::PathBuf;

use agent_core::SwitchState;
use serde::Serialize;

use super::board::{
    AgentStatus, Counters, DecisionRecord, ModelDecision, Outcome, Phase, VerdictInfo,
};

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
