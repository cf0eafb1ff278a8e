//! The EVM side: contract bindings, RPC with retries, wallet, nonce manager, the transaction
//! lifecycle, the Uniswap V2 venue, market data from pool reserves and the anvil devnet.

pub mod artifacts;
pub mod bindings;
pub mod devnet;
pub mod error;
pub mod guard;
pub mod nonce;
pub mod rpc;
pub mod tx;
pub mod uniswap;
pub mod wallet;

pub use alloy;
pub use devnet::{Devnet, DevnetConfig, DevnetInfo, MarketMover};
pub use error::EvmError;
pub use nonce::NonceManager;
pub use rpc::{Chain, RetryPolicy};
pub use tx::{TxEvent, TxOutcome, TxPolicy, TxRequest, TxSender, TxStep};
pub use uniswap::{ChainSource, PoolRef, UniswapV2Config, UniswapV2Venue};
pub use wallet::{Wallet, WalletSource};
