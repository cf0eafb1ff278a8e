//! # models
//!
//! Local models and the features they read. Everything runs on the CPU through candle (an
//! optional `cuda` feature passes through to candle); nothing is downloaded. The shipped
//! [`PriceDirection`] model was trained by [`train::train`] (`defai train`) on the bundled data
//! and is stored as safetensors plus a metadata file in `models/weights/`.
//!
//! - [`features`]: the one feature pipeline (incremental for live use, batched for training).
//! - [`price_direction`]: the MLP, its metadata, loading with shape checks, content hash.
//! - [`mod@train`]: chronological split, AdamW, early stopping, held-out metrics.
//! - [`calibration`]: the [`ProbabilityModel`] interface, Platt/temperature scaling, Brier and
//!   log-loss.
//! - [`indicators`]: incremental indicators used by rule-based strategies.

pub mod calibration;
pub mod error;
pub mod features;
pub mod indicators;
pub mod price_direction;
pub mod train;

pub use calibration::{PlattScaling, ProbabilityModel, TemperatureScaling};
/// The candle version the models are built with, for a model of your own (its errors convert
/// into [`ModelError::Candle`]).
pub use candle_core;
pub use error::ModelError;
pub use features::{FEATURES, FeatureState, Features, N_FEATURES, WARMUP, batch_features};
pub use indicators::Ema;
pub use price_direction::{ModelMeta, PriceDirection};
pub use train::{EpochLog, TrainConfig, train};
