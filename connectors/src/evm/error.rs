//! [`EvmError`]: the one error type of the chain side (RPC, transactions, wallet, contracts,
//! devnet).

use std::time::Duration;

/// What went wrong on the chain side. Messages name the RPC method, transaction or contract
/// involved; none ever contains key material.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvmError {
    /// An RPC call failed (after retries, when the failure was transient).
    #[error("rpc {method}: {detail}")]
    Rpc {
        /// The JSON-RPC method (`eth_call`, `eth_sendRawTransaction`, ...), or `connect` for a
        /// bad endpoint URL.
        method: &'static str,
        /// The node's or transport's error, trimmed to one line, with the tries made.
        detail: String,
    },
    /// `eth_call` simulation reverted: nothing was sent.
    #[error("{label}: simulation reverted: {reason}")]
    SimulationReverted {
        /// The transaction's label ([`super::tx::TxRequest::label`], e.g. `approve`).
        label: String,
        /// The decoded revert reason (`Error(string)`, a custom error, or hex), or why a
        /// pre-trade quote refused it.
        reason: String,
    },
    /// Mined with status 0. Gas was paid. `reason` comes from replaying the call on the state
    /// of the block it was mined in (what usually made it revert, e.g. a price moved by an
    /// earlier transaction in that block); "unknown" when the replay succeeds.
    #[error("{label}: transaction {hash} reverted in block {block}: {reason}")]
    Reverted {
        /// The transaction's label.
        label: String,
        /// The mined transaction's hash, `0x`-prefixed hex.
        hash: String,
        /// The block it was mined in.
        block: u64,
        /// Gas paid for it, wei (gas used × effective gas price; a u128 holds any real fee).
        fee_wei: u128,
        /// The replayed call's revert reason, or "unknown (...)" saying why there is none.
        reason: String,
    },
    /// The current gas price is above the cap: nothing was sent.
    #[error("gas price {price_wei} wei is above the cap {cap_wei} wei")]
    GasCap {
        /// What one gas would cost in the next block: base fee plus priority fee, wei.
        price_wei: u128,
        /// The configured cap ([`super::tx::TxPolicy::gas_cap_wei`]), wei per gas.
        cap_wei: u128,
    },
    /// No receipt after the timeout and every allowed replacement. One of `hashes` may still be
    /// mined: this is never a reason to send the same intent again at a new nonce.
    #[error(
        "{label}: nonce {nonce} not mined after {waited:?} and {replacements} replacement(s) (one may still be mined); hashes {hashes:?}"
    )]
    NotMined {
        /// The transaction's label.
        label: String,
        /// The nonce every hash was signed at.
        nonce: u64,
        /// Time from the first broadcast to giving up.
        waited: Duration,
        /// Replacements (same nonce, bumped fees) signed before giving up.
        replacements: u32,
        /// Every hash broadcast for the nonce, original first, `0x`-prefixed hex.
        hashes: Vec<String>,
        /// What the node said after the give-up: `true` when nothing at the nonce can still be
        /// mined (the nonce is reused), `false` when one of `hashes` may still be.
        freed: bool,
    },
    /// The node refused the transaction outright (nothing is in its pool).
    #[error("{label}: node rejected the transaction: {detail}")]
    Rejected {
        /// The transaction's label.
        label: String,
        /// The node's error code and message.
        detail: String,
    },
    /// A step could not be written to the journal: the action it precedes was not taken.
    #[error("journal: {0}")]
    Journal(String),
    /// A safety check on the chain refused to go on: a mainnet without `--allow-mainnet`, an
    /// RPC reporting another chain id than configured, a router that does not swap on the
    /// configured pool (and, in the `defai` binary, a contract outside
    /// `[risk] allowed_contracts`).
    #[error("chain guard: {0}")]
    ChainGuard(String),
    /// No usable signing key (missing variable, bad hex, keystore that cannot be read or
    /// decrypted), a keystore that cannot be written, signing failed, or a nonce manager of
    /// another address.
    #[error("wallet: {0}")]
    Wallet(String),
    /// The local devnet could not be set up: anvil missing or not starting, bytecode missing or
    /// changed, a bad price, or an unreadable `devnet.json`. The `defai` binary also uses it for
    /// local setup problems of a chain run (a mode or input file that does not fit).
    #[error("devnet: {0}")]
    Devnet(String),
    /// A contract answered something unusable, a view call reverted, or a call was refused
    /// before sending because the contract's state does not allow it (a pool of other tokens,
    /// an outcome out of range, too little collateral, not the oracle, ...).
    #[error("contract {contract}: {detail}")]
    Contract {
        /// The contract's address (checksummed hex).
        contract: String,
        /// What it answered or why the call was refused.
        detail: String,
    },
}
