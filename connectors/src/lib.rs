//! # connectors
//!
//! Everything that touches the outside world on the agent's behalf: market-data loaders
//! ([`market_data`]), the simulated Uniswap V2 venue ([`paper::PaperVenue`]) and its integer AMM
//! math ([`amm`]).

pub mod amm;
pub mod evm;
pub use agent_core::fpmm;
pub mod market_data;
pub mod paper;
pub mod paper_fpmm;
pub mod state;

pub use market_data::{
    CsvFormat, DataError, LoadOptions, LoadReport, Series, load_csv_bytes, load_csv_file,
};
pub use paper::{PaperAmmConfig, PaperVenue};
pub use state::{FileSwitchStore, StateDir, StateError, StateLock};
