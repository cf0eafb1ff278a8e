//! Creation bytecode of the devnet contracts, prepared by `build.rs` from the pinned npm packages
//! (third-party artifacts are read from `node_modules`, our own Solidity is compiled with npm
//! `solc`). Nothing here is committed bytecode.

use alloy::primitives::{B256, Bytes, b256, hex, keccak256};

use super::error::EvmError;

/// A contract the devnet deploys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Artifact {
    /// Uniswap V2's pair factory (`@uniswap/v2-core`).
    UniswapV2Factory,
    /// Uniswap V2's pair contract (`@uniswap/v2-core`): not deployed directly (the factory
    /// creates pairs), but its bytecode hash must match [`PAIR_INIT_CODE_HASH`].
    UniswapV2Pair,
    /// Uniswap V2's Router02 (`@uniswap/v2-periphery`).
    UniswapV2Router02,
    /// Canonical WETH9 (`canonical-weth`).
    Weth9,
    /// Our mintable ERC-20 test token (`contracts/DevToken.sol`), used for dUSD and DVT.
    DevToken,
    /// Gnosis ConditionalTokens (ERC-1155 outcome positions).
    ConditionalTokens,
    /// Gnosis FixedProductMarketMakerFactory (deploys its FPMM master in the constructor).
    FpmmFactory,
}

impl Artifact {
    /// The contract's name and where its bytecode comes from, for messages and tx labels.
    pub fn name(self) -> &'static str {
        match self {
            Artifact::UniswapV2Factory => "UniswapV2Factory (@uniswap/v2-core)",
            Artifact::UniswapV2Pair => "UniswapV2Pair (@uniswap/v2-core)",
            Artifact::UniswapV2Router02 => "UniswapV2Router02 (@uniswap/v2-periphery)",
            Artifact::Weth9 => "WETH9 (canonical-weth)",
            Artifact::DevToken => "DevToken (contracts/DevToken.sol, npm solc)",
            Artifact::ConditionalTokens => {
                "ConditionalTokens (@gnosis.pm/conditional-tokens-market-makers)"
            }
            Artifact::FpmmFactory => {
                "FixedProductMarketMakerFactory (@gnosis.pm/conditional-tokens-market-makers)"
            }
        }
    }

    fn hex(self) -> &'static str {
        match self {
            Artifact::UniswapV2Factory => {
                include_str!(concat!(env!("OUT_DIR"), "/UniswapV2Factory.hex"))
            }
            Artifact::UniswapV2Pair => include_str!(concat!(env!("OUT_DIR"), "/UniswapV2Pair.hex")),
            Artifact::UniswapV2Router02 => {
                include_str!(concat!(env!("OUT_DIR"), "/UniswapV2Router02.hex"))
            }
            Artifact::Weth9 => include_str!(concat!(env!("OUT_DIR"), "/WETH9.hex")),
            Artifact::DevToken => include_str!(concat!(env!("OUT_DIR"), "/DevToken.hex")),
            Artifact::ConditionalTokens => {
                include_str!(concat!(env!("OUT_DIR"), "/ConditionalTokens.hex"))
            }
            Artifact::FpmmFactory => {
                include_str!(concat!(
                    env!("OUT_DIR"),
                    "/FixedProductMarketMakerFactory.hex"
                ))
            }
        }
    }

    /// The creation bytecode, or how to get it.
    ///
    /// # Errors
    /// [`EvmError::Devnet`] if `build.rs` found no artifact (the npm packages are not installed:
    /// the message says to run `npm ci`), or the artifact is not valid hex.
    pub fn creation_code(self) -> Result<Bytes, EvmError> {
        let hex = self.hex();
        if hex.is_empty() {
            return Err(EvmError::Devnet(format!(
                "{} bytecode is missing: run `npm ci` in the repository, then rebuild",
                self.name()
            )));
        }
        hex::decode(hex)
            .map(Bytes::from)
            .map_err(|e| EvmError::Devnet(format!("{} bytecode is not hex: {e}", self.name())))
    }
}

/// The init-code hash UniswapV2Router02 (`UniswapV2Library.pairFor`) hard-codes.
pub const PAIR_INIT_CODE_HASH: B256 =
    b256!("96e8ac4277198ff8b6f785478aa9a39f403cb768dd02cbee326c3e7da348845f");

/// Checks that the published pair bytecode hashes to the init-code hash and that the published
/// router carries that same hash: otherwise the router computes wrong pair addresses and every
/// swap reverts (or worse, targets another contract). Returns the hash.
///
/// # Errors
/// [`EvmError::Devnet`] if either bytecode is missing, the pair's keccak256 differs from
/// [`PAIR_INIT_CODE_HASH`], or the router's bytecode does not contain it.
pub fn check_init_code_hash() -> Result<B256, EvmError> {
    let pair = Artifact::UniswapV2Pair.creation_code()?;
    let hash = keccak256(&pair);
    if hash != PAIR_INIT_CODE_HASH {
        return Err(EvmError::Devnet(format!(
            "UniswapV2Pair bytecode hashes to {hash}, not the init-code hash {PAIR_INIT_CODE_HASH} \
             that UniswapV2Router02 hard-codes: the npm artifact changed"
        )));
    }
    let router = Artifact::UniswapV2Router02.creation_code()?;
    if !router.windows(32).any(|w| w == hash.as_slice()) {
        return Err(EvmError::Devnet(format!(
            "UniswapV2Router02 bytecode does not contain the pair init-code hash {hash}"
        )));
    }
    Ok(hash)
}
