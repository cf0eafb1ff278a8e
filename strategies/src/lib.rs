//! # strategies
//!
//! The built-in strategies and a registry that builds them by name from [`Params`].

pub mod ema_cross;
pub mod kelly_bettor;
pub mod ml_signal;
pub mod rebalancer;

use agent_core::{ParamError, Params, Strategy};

pub use ema_cross::EmaCross;
pub use kelly_bettor::{KellyBettor, KellyConfig, size_bet};
pub use ml_signal::MlSignal;
pub use rebalancer::Rebalancer;

/// Names [`build`] knows.
pub const NAMES: &[&str] = &["ema_cross", "ml_signal"];

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("unknown strategy `{name}` (known: {known})")]
    Unknown { name: String, known: String },
    #[error(transparent)]
    Param(#[from] ParamError),
}

/// Builds a built-in strategy from its name and parameters; unknown names and parameters are
/// errors that say where the bad value came from.
pub fn build(name: &str, params: Params) -> Result<Box<dyn Strategy>, BuildError> {
    match name {
        "ema_cross" => Ok(Box::new(EmaCross::from_params(params)?)),
        "ml_signal" => Ok(Box::new(MlSignal::from_params(params)?)),
        _ => Err(BuildError::Unknown {
            name: name.to_string(),
            known: NAMES.join(", "),
        }),
    }
}
