//! [`NonceManager`]: one per wallet, shared by every strategy that sends from it.
//!
//! A nonce is handed out under a lock that is held until the node has accepted (or definitely
//! refused) the transaction, so concurrent senders can neither reuse a nonce nor leave a gap.
//! Every lease also asks the node for the account's pending count: when it moved past the local
//! count (the wallet's owner, or another tool, sent from the same account), the lease takes the
//! node's, so a transaction the agent did not send is never replaced; the lease says it moved.

use alloy::primitives::Address;
use tokio::sync::{Mutex, MutexGuard};

use super::error::EvmError;
use super::rpc::Chain;

/// Hands out the nonces of one address: the local next nonce behind an async lock, checked
/// against the node's pending count on every lease.
#[derive(Debug)]
pub struct NonceManager {
    address: Address,
    next: Mutex<Option<u64>>,
}

/// An exclusive claim on the next nonce. Call [`NonceLease::consumed`] once the node accepted
/// the transaction; dropping the lease otherwise leaves the nonce free for the next sender.
#[must_use]
#[derive(Debug)]
pub struct NonceLease<'a> {
    slot: MutexGuard<'a, Option<u64>>,
    nonce: u64,
    moved: Option<u64>,
}

impl NonceManager {
    /// A manager for `address` with no local count yet: the first lease reads the node's.
    pub fn new(address: Address) -> Self {
        Self {
            address,
            next: Mutex::new(None),
        }
    }

    /// The account whose nonces this manager hands out.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Waits for exclusive use of the next nonce: the node's pending count, checked against
    /// the local one. A pending count ahead of the local count means someone else sent from
    /// this account; the lease takes the node's count and reports the local one it replaced
    /// ([`NonceLease::moved_from`]).
    ///
    /// # Errors
    /// [`EvmError::Rpc`] when the pending count cannot be read (`eth_getTransactionCount`,
    /// after retries); the local count is left as it was.
    pub async fn lease(&self, chain: &Chain) -> Result<NonceLease<'_>, EvmError> {
        let mut slot = self.next.lock().await;
        let node = chain.nonce(self.address, true).await?;
        let (nonce, moved) = match *slot {
            Some(local) if node > local => (node, Some(local)),
            Some(local) => (local, None),
            None => (node, None),
        };
        *slot = Some(nonce);
        Ok(NonceLease { slot, nonce, moved })
    }

    /// Forgets the local count; the next lease reads the pending count from the node.
    pub async fn resync(&self) {
        *self.next.lock().await = None;
    }
}

impl NonceLease<'_> {
    /// The nonce to sign with.
    pub fn nonce(&self) -> u64 {
        self.nonce
    }

    /// The local count this lease moved away from, when the node's pending count was ahead of
    /// it (a transaction from the same account that this manager did not hand out).
    pub fn moved_from(&self) -> Option<u64> {
        self.moved
    }

    /// The node holds a transaction with this nonce: the next lease gets the one after.
    pub fn consumed(mut self) {
        *self.slot = Some(self.nonce + 1);
    }

    /// We cannot tell whether the node holds a transaction with this nonce: re-read it.
    pub fn resync(mut self) {
        *self.slot = None;
    }
}
