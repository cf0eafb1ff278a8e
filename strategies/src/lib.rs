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

/// The built-in bar strategies' names (the registry starts with them).
pub const NAMES: &[&str] = &["ema_cross", "ml_signal"];

/// Why a strategy could not be built or registered.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// [`Registry::build`] (or [`build`]) was asked for a name nothing registered.
    #[error("unknown strategy `{name}` (known: {known})")]
    Unknown {
        /// The name asked for.
        name: String,
        /// Every registered name, comma-separated, for the message.
        known: String,
    },
    /// A parameter was unknown, of the wrong type or out of range; the inner error names the
    /// key and where its value came from (config line or `--param`).
    #[error(transparent)]
    Param(#[from] ParamError),
    /// A name registered twice, or one the runtime's intent ids cannot carry.
    #[error("cannot register strategy `{name}`: {why}")]
    Register {
        /// The name being registered ([`install`] puts the refused registry's names here,
        /// comma-separated).
        name: String,
        /// What is wrong with it: empty, holds a reserved `#` or `:`, taken, or a registry
        /// is installed already.
        why: String,
    },
}

/// Builds a strategy from its parameters (unknown or bad parameters are errors that say which).
pub type Factory = fn(Params) -> Result<Box<dyn Strategy>, BuildError>;

/// Bar strategies by name: the built-ins, and any a user's own binary adds, so that `defai`'s
/// commands (backtest, paper, run) run them by name from a config (see `defai::cli::main_with`).
///
/// ```
/// use strategies::{BuildError, Registry};
/// use agent_core::{Context, Intent, MarketEvent, Params, Strategy, StrategyError};
///
/// struct Hold;
/// impl Strategy for Hold {
///     fn name(&self) -> &str { "hold" }
///     fn on_event(&mut self, _: &MarketEvent, _: &Context<'_>) -> Result<Vec<Intent>, StrategyError> {
///         Ok(vec![])
///     }
/// }
/// fn hold(params: Params) -> Result<Box<dyn Strategy>, BuildError> {
///     params.finish()?; // no parameters: any given is an error naming it
///     Ok(Box::new(Hold))
/// }
/// let mut registry = Registry::builtin();
/// registry.register("hold", hold).unwrap();
/// assert!(registry.names().contains(&"hold".to_string()));
/// ```
#[derive(Debug, Clone)]
pub struct Registry {
    factories: Vec<(String, Factory)>,
}

impl Registry {
    /// The built-in bar strategies (`ema_cross`, `ml_signal`).
    pub fn builtin() -> Self {
        Self {
            factories: vec![
                ("ema_cross".into(), |p| {
                    Ok(Box::new(EmaCross::from_params(p)?))
                }),
                ("ml_signal".into(), |p| {
                    Ok(Box::new(MlSignal::from_params(p)?))
                }),
            ],
        }
    }

    /// Adds `name`, built by `factory`.
    ///
    /// # Errors
    /// The name is taken (a built-in's included), empty, or holds `#` or `:` (intent ids
    /// reserve them).
    pub fn register(&mut self, name: &str, factory: Factory) -> Result<(), BuildError> {
        let why = if name.is_empty() {
            Some("the name is empty")
        } else if name.contains(['#', ':']) {
            Some("`#` and `:` are reserved by intent ids")
        } else if self.factories.iter().any(|(n, _)| n == name)
            || matches!(name, "kelly_bettor" | "rebalancer")
        {
            Some("the name is taken")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(BuildError::Register {
                name: name.to_string(),
                why: why.to_string(),
            });
        }
        self.factories.push((name.to_string(), factory));
        Ok(())
    }

    /// Every registered name, in registration order.
    pub fn names(&self) -> Vec<String> {
        self.factories.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Builds `name` from `params`.
    ///
    /// # Errors
    /// [`BuildError::Unknown`] for a name not registered; the factory's own errors.
    pub fn build(&self, name: &str, params: Params) -> Result<Box<dyn Strategy>, BuildError> {
        match self.factories.iter().find(|(n, _)| n == name) {
            Some((_, f)) => f(params),
            None => Err(BuildError::Unknown {
                name: name.to_string(),
                known: self.names().join(", "),
            }),
        }
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::builtin()
    }
}

static INSTALLED: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();

/// Makes `registry` the one [`build`] uses for the rest of the process (a user's binary calls
/// it once, before running anything; `defai::cli::main_with` does).
///
/// # Errors
/// A registry was installed already (it never changes under a running agent).
pub fn install(registry: Registry) -> Result<(), BuildError> {
    INSTALLED.set(registry).map_err(|r| BuildError::Register {
        name: r.names().join(", "),
        why: "a registry is installed already".into(),
    })
}

/// Builds a strategy from its name and parameters with the installed [`Registry`] (the
/// built-ins when none is): unknown names and parameters are errors that say where the bad
/// value came from.
///
/// # Errors
/// As [`Registry::build`].
pub fn build(name: &str, params: Params) -> Result<Box<dyn Strategy>, BuildError> {
    match INSTALLED.get() {
        Some(r) => r.build(name, params),
        None => Registry::builtin().build(name, params),
    }
}
