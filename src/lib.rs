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
//! [`AgentBuilder`] runs any strategy object in backtest, paper or live mode with everything the
//! `defai` commands give an agent (state folder, journal, kill switch, restart, control API);
//! [`engine`] and [`chain`] are the wiring beneath it; [`sweep`] sweeps a strategy's parameters
//! (walk-forward, deflated Sharpe ratio).
//!
//! # Features
//! - `cli` (default): the `defai` command line ([`cli`], `bench`, `output`), with clap,
//!   indicatif, plotters and tracing-subscriber; implies `api`.
//! - `api` (default through `cli`): [`control`], the operator board's HTTP control API and
//!   dashboard (axum), and [`runtime::serve_api`].
//! - `embedded-data` (default): the bundled ETH/USDC hourly candles a config without
//!   `market.data` replays.
//! - `failpoints`: crash-test pause points (`DEFAI_PAUSE_AT`), for the test suite only.
//! - `cuda`: the models on a GPU through candle.
//!
//! A library user who wants none of the command line depends on `defai` with
//! `default-features = false`.

pub use agent_core as core;
pub use connectors;
pub use models;
pub use strategies;

#[cfg(feature = "cli")]
pub mod bench;
pub mod chain;
#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
#[cfg(feature = "api")]
pub mod control;
pub mod engine;
#[cfg(feature = "cli")]
pub mod output;
pub mod predict;
pub mod rebalance;
pub mod runtime;
pub mod sweep;

pub use runtime::AgentBuilder;
