//! # agent-core
//!
//! The runtime every defai agent shares, whatever its mode: domain types (tokens, exact integer
//! amounts, bars, intents, fills), the [`Strategy`], [`Venue`], [`MarketSource`] and
//! [`RiskGate`] traits, the [`Portfolio`], the [`Clock`] and the [`Agent`] loop that wires them.
//!
//! It knows nothing of files, chains or models; those live in the `connectors` and `models`
//! crates and plug in through these traits.

pub mod agent;
pub mod amm;
pub mod amount;
pub mod backend;
pub mod clock;
pub mod fpmm;
pub mod intent;
pub mod kill_switch;
pub mod market;
pub mod metrics;
pub mod portfolio;
pub mod prediction;
pub mod risk;
pub mod source;
pub mod strategy;
pub mod venue;

pub use agent::{
    Agent, AgentError, AgentReport, AuditError, AuditEvent, KillSwitchPolicy, Observer, Resume,
    RiskCounts,
};
pub use amount::{AmountError, Token, U256};
pub use backend::JournalBackend;
pub use clock::Clock;
pub use intent::{Bet, Depth, Fill, Intent, IntentId, Order, Quote, Redeem, Swap};
pub use kill_switch::{
    KillMode, KillSwitch, SwitchAction, SwitchCommand, SwitchRecord, SwitchState, SwitchStore,
};
pub use market::{Bar, BarFault, MarketEvent, MarketSet, Pair, PairMarket, PoolSnapshot};
pub use metrics::PerformanceTracker;
pub use portfolio::{Portfolio, PortfolioError};
pub use prediction::{
    BetFill, BetGate, BetLimits, Betting, BettingStrategy, Bettor, MarketView, PredictionSet,
    PredictionVenue,
};
pub use risk::{
    BaselineStore, BetQuote, LimitGate, Refusal, RiskBaselines, RiskContext, RiskGate, RiskLimits,
    Verdict,
};
pub use source::{BarReplay, EventReplay, MarketSource, SourceError, TakeEvents};
pub use strategy::{Context, Decision, ParamError, ParamValue, Params, Strategy, StrategyError};
pub use venue::{
    Booking, SettledTx, Settlement, StepRecorder, UnsettledTx, Venue, VenueError, VenueEvent,
    VenueSet,
};
