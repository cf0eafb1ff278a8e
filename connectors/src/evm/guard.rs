//! Refuses to trade on a mainnet by accident, and checks the RPC is the chain the config names.

use super::error::EvmError;
use super::rpc::Chain;

/// Chain ids of public mainnets (where real money lives). Not exhaustive: an unknown id is
/// treated as a testnet, so add to this list rather than rely on it.
pub const MAINNET_CHAIN_IDS: &[(u64, &str)] = &[
    (1, "Ethereum"),
    (10, "OP Mainnet"),
    (25, "Cronos"),
    (56, "BNB Smart Chain"),
    (100, "Gnosis"),
    (130, "Unichain"),
    (137, "Polygon PoS"),
    (146, "Sonic"),
    (250, "Fantom"),
    (324, "zkSync Era"),
    (1101, "Polygon zkEVM"),
    (5000, "Mantle"),
    (8453, "Base"),
    (34443, "Mode"),
    (42161, "Arbitrum One"),
    (42220, "Celo"),
    (43114, "Avalanche C-Chain"),
    (59144, "Linea"),
    (81457, "Blast"),
    (534352, "Scroll"),
    (7777777, "Zora"),
];

/// The mainnet's name if `chain_id` is one.
pub fn mainnet_name(chain_id: u64) -> Option<&'static str> {
    MAINNET_CHAIN_IDS
        .iter()
        .find(|(id, _)| *id == chain_id)
        .map(|(_, n)| *n)
}

/// Refuses a known mainnet unless the user said `--allow-mainnet`.
///
/// # Errors
/// [`EvmError::ChainGuard`] naming the mainnet when `chain_id` is in [`MAINNET_CHAIN_IDS`] and
/// `allow_mainnet` is false.
pub fn refuse_mainnet(chain_id: u64, allow_mainnet: bool) -> Result<(), EvmError> {
    match mainnet_name(chain_id) {
        Some(name) if !allow_mainnet => Err(EvmError::ChainGuard(format!(
            "chain id {chain_id} is {name} mainnet: refusing to run without --allow-mainnet"
        ))),
        _ => Ok(()),
    }
}

/// Checks the configured chain id is allowed and is what the RPC reports.
///
/// # Errors
/// [`EvmError::ChainGuard`] when `expected` or the RPC's chain id is a mainnet not allowed, or
/// the RPC reports another id than `expected`; [`EvmError::Rpc`] when `eth_chainId` fails.
pub async fn check_chain(
    chain: &Chain,
    expected: u64,
    allow_mainnet: bool,
) -> Result<(), EvmError> {
    refuse_mainnet(expected, allow_mainnet)?;
    let actual = chain.chain_id().await?;
    if actual != expected {
        return Err(EvmError::ChainGuard(format!(
            "{} reports chain id {actual}, the config says {expected}",
            chain.url()
        )));
    }
    refuse_mainnet(actual, allow_mainnet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mainnets_need_the_explicit_flag_testnets_do_not() {
        for id in [1, 10, 56, 100, 137, 8453, 42161] {
            let err = refuse_mainnet(id, false).unwrap_err().to_string();
            assert!(err.contains("--allow-mainnet"), "{err}");
            assert!(refuse_mainnet(id, true).is_ok());
        }
        for id in [31337, 11155111, 17000, 84532] {
            assert!(refuse_mainnet(id, false).is_ok(), "{id}");
        }
    }
}
