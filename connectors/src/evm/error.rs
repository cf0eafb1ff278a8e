use std::time::Duration;

/// What went wrong on the chain side. Messages name the RPC method, transaction or contract
/// involved; none ever contains key material.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvmError {
    /// An RPC call failed (after retries, when the failure was transient).
    #[error("rpc {method}: {detail}")]
    Rpc {
        method: &'static str,
        detail: String,
    },
    /// `eth_call` simulation reverted: nothing was sent.
    #[error("{label}: simulation reverted: {reason}")]
    SimulationReverted { label: String, reason: String },
    /// Mined with status 0. Gas was paid. `reason` comes from replaying the call on the state
    /// of the block it was mined in (what usually made it revert, e.g. a price moved by an
    /// earlier transaction in that block); "unknown" when the replay succeeds.
    #[error("{label}: transaction {hash} reverted in block {block}: {reason}")]
    Reverted {
        label: String,
        hash: String,
        block: u64,
        /// Gas paid for it, wei (gas used × effective gas price; a u128 holds any real fee).
        fee_wei: u128,
        reason: String,
    },
    /// The current gas price is above the cap: nothing was sent.
    #[error("gas price {price_wei} wei is above the cap {cap_wei} wei")]
    GasCap { price_wei: u128, cap_wei: u128 },
    /// No receipt after the timeout and every allowed replacement. One of `hashes` may still be
    /// mined: this is never a reason to send the same intent again at a new nonce.
    #[error(
        "{label}: nonce {nonce} not mined after {waited:?} and {replacements} replacement(s) (one may still be mined); hashes {hashes:?}"
    )]
    NotMined {
        label: String,
        nonce: u64,
        waited: Duration,
        replacements: u32,
        hashes: Vec<String>,
        /// What the node said after the give-up: `true` when nothing at the nonce can still be
        /// mined (the nonce is reused), `false` when one of `hashes` may still be.
        freed: bool,
    },
    /// The node refused the transaction outright (nothing is in its pool).
    #[error("{label}: node rejected the transaction: {detail}")]
    Rejected { label: String, detail: String },
    /// A step could not be written to the journal: the action it precedes was not taken.
    #[error("journal: {0}")]
    Journal(String),
    #[error("chain guard: {0}")]
    ChainGuard(String),
    #[error("wallet: {0}")]
    Wallet(String),
    #[error("devnet: {0}")]
    Devnet(String),
    #[error("contract {contract}: {detail}")]
    Contract { contract: String, detail: String },
}
