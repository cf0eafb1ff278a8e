//! Operator surfaces: a [`Board`] that every agent in the process reports to (through a
//! [`BoardObserver`] on its audit stream), and the HTTP control API and dashboard served from it.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use agent_core::agent::{AuditEvent, Observer};
use dashmap::DashMap;

/// What the operator surfaces know about one agent.
#[derive(Debug, Default)]
pub struct AgentStatus {
    pub state_dir: Option<PathBuf>,
    pub bars: u64,
    pub last_equity: Option<f64>,
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

    /// Adds (or replaces) an agent; the handle makes its observers.
    pub fn register(self: &Arc<Self>, name: &str, state_dir: Option<PathBuf>) -> AgentHandle {
        let status = Arc::new(RwLock::new(AgentStatus {
            state_dir,
            ..AgentStatus::default()
        }));
        self.agents.insert(name.to_string(), status.clone());
        AgentHandle {
            name: name.into(),
            status,
        }
    }

    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.agents.iter().map(|e| e.key().clone()).collect();
        v.sort();
        v
    }
}

/// One agent's place on the board.
#[derive(Clone)]
pub struct AgentHandle {
    pub name: Arc<str>,
    status: Arc<RwLock<AgentStatus>>,
}

impl AgentHandle {
    /// An observer that keeps this agent's status current.
    pub fn observer(&self) -> Box<dyn Observer> {
        Box::new(BoardObserver {
            status: self.status.clone(),
        })
    }
}

/// Writes the audit stream into the board.
pub struct BoardObserver {
    status: Arc<RwLock<AgentStatus>>,
}

impl Observer for BoardObserver {
    fn on_audit(&mut self, event: &AuditEvent<'_>) {
        let Ok(mut s) = self.status.write() else {
            return;
        };
        if let AuditEvent::Mark { equity, .. } = event {
            s.bars += 1;
            s.last_equity = Some(*equity);
        }
    }
}
