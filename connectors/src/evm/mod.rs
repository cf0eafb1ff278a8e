//! The EVM side: contract bindings, RPC with retries, wallet, nonce manager, the transaction
//! lifecycle, the Uniswap V2 venue, market data from pool reserves, CTF/FPMM prediction markets
//! and the anvil devnet.

pub mod artifacts;
pub mod bindings;
pub mod cycle;
pub mod devnet;
pub mod error;
pub mod guard;
pub mod nonce;
pub mod prediction;
pub mod prediction_venue;
pub mod recovery;
pub mod rpc;
pub mod tx;
pub mod uniswap;
pub mod wallet;

pub use alloy;
pub use cycle::{Cycle, CycleClock, CycleSource, Trigger};
pub use devnet::{Devnet, DevnetConfig, DevnetInfo, MarketInfo, MarketMover};
pub use error::EvmError;
pub use nonce::NonceManager;
pub use prediction::{Market, MarketSpec, PredictionMarkets, Settlement, Trade};
pub use prediction_venue::ChainPredictionVenue;
pub use rpc::{Chain, RetryPolicy};
pub use tx::{TxEvent, TxOutcome, TxPolicy, TxRequest, TxSender, TxStep};
pub use uniswap::{ChainSource, PoolRef, UniswapV2Config, UniswapV2Venue};
pub use wallet::{Wallet, WalletSource};
