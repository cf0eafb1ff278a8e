//! # models
//!
//! Local models and the features they read. Everything runs on the CPU through candle; nothing
//! is downloaded. Weights are trained by [`train`] on the bundled data and shipped as
//! safetensors with a metadata file.
//!
//! - [`features`]: the one feature pipeline (incremental for live use, batched for training).
//! - [`indicators`]: incremental indicators used by rule-based strategies.

pub mod features;
pub mod indicators;

pub use features::{FEATURES, FeatureState, Features, N_FEATURES, WARMUP, batch_features};
pub use indicators::Ema;
