//! # defai
//!
//! An autonomous DeFi agent framework. This facade re-exports the workspace crates so a library
//! user depends on one crate:
//!
//! - [`core`] (`agent-core`): types, the `Strategy`/`Venue`/`RiskGate` traits, the agent loop;
//! - [`strategies`]: built-in strategies (`ema_cross`);
//! - [`connectors`]: market data, the paper venue and its AMM math;
//! - [`models`]: indicators and (later) local models.
//!
//! [`engine`] wires them together the way the `defai` binary does.

pub use agent_core as core;
pub use connectors;
pub use models;
pub use strategies;

pub mod bench;
pub mod chain;
pub mod config;
pub mod control;
pub mod engine;
pub mod output;
pub mod predict;
pub mod rebalance;
