//! # connectors
//!
//! Everything that touches the outside world on the agent's behalf: market-data loaders
//! ([`market_data`]), the simulated Uniswap V2 venue ([`paper::PaperVenue`]) on the integer AMM
//! math of [`amm`] (re-exported from `agent-core`, where the risk gate's price-impact limit uses
//! the same math), the state folder ([`state`]) and its SQLite audit journal ([`journal`], the
//! runtime's [`JournalBackend`](agent_core::JournalBackend)).

pub use agent_core::amm;
pub mod evm;
pub mod failpoint;
pub use agent_core::fpmm;
pub mod journal;
pub mod market_data;
pub mod paper;
pub mod paper_fpmm;
pub mod state;

pub use market_data::{
    CsvFormat, DataError, LoadOptions, LoadReport, Series, load_csv_bytes, load_csv_file,
};
pub use paper::{PaperAmmConfig, PaperVenue};
pub use state::{FileBaselineStore, FileSwitchStore, StateDir, StateError, StateLock};
