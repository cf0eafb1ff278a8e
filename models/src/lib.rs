//! # models
//!
//! Signal features shared by strategies and (in later work) the candle models trained on them.
//! Every indicator is incremental — O(1) per bar — so live and backtest compute the same values.

pub mod indicators;

pub use indicators::Ema;
