//! Operator surfaces: a [`Board`] that every agent in the process reports to (through a
//! [`BoardObserver`] on its audit stream), and the HTTP control API and dashboard served from it
//! ([`ApiServer`]), plus the client `defai status|kill|resume` use ([`ApiClient`]).
//!
//! The API listens on loopback by default and wants `Authorization: Bearer <token>` on every
//! data and command endpoint. The token is 32 random bytes, new every process start, written to
//! `<state>/api-token` (mode 0600); `<state>/api.json` holds the URL and pid, never the token.
//! Kill and resume go through the agent's state folder ([`StateDir::send_command`]), the same
//! path `defai kill` uses without the API: there is one way into a running agent's switch.
//!
//! [`StateDir::send_command`]: connectors::StateDir::send_command

mod board;
mod client;
mod equity;
mod error;
#[cfg(test)]
mod fixtures;
mod metrics;
mod server;
mod token;
mod views;

pub use board::{
    AgentHandle, AgentStatus, Board, BoardObserver, Counters, DECISIONS_KEPT, DecisionRecord,
    ModelDecision, Outcome, Phase, Position, VerdictInfo, redact_urls,
};
pub use client::ApiClient;
pub use equity::{EQUITY_POINTS, EquityCurve};
pub use error::ControlError;
pub use server::{ApiServer, DEFAULT_DECISIONS, MAX_DECISIONS};
pub use token::{ApiToken, ENDPOINT_FILE, Endpoint, TOKEN_FILE, read_endpoint};
pub use views::{AgentSummary, SwitchView};
