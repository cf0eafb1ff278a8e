//! # defai
//!
//! An autonomous DeFi agent framework. This facade re-exports the workspace crates so a library
//! user depends on one crate:
//!
//! - [`core`] (`agent-core`): types, the `Strategy`/`Venue`/`RiskGate` traits, the agent loop;
//! - [`strategies`]: built-in strategies (`ema_cross`, `ml_signal`, `kelly_bettor`, `rebalancer`);
//! - [`connectors`]: market data, the paper venues, the EVM connector (alloy), the state folder;
//! - [`models`]: features, the candle `PriceDirection` model, training and calibration.
//!
//! [`engine`] and [`chain`] wire them together the way the `defai` binary does; [`control`] is
//! the operator board, control API and dashboard.

pub use agent_core as core;
pub use connectors;
pub use models;
pub use strategies;

pub mod bench;
pub mod chain;
pub mod cli;
pub mod config;
pub mod control;
pub mod engine;
pub mod output;
pub mod predict;
pub mod rebalance;
