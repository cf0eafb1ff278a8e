//! [`NonceManager`]: one per wallet, shared by every strategy that sends from it.
//!
//! A nonce is handed out under a lock that is held until the node has accepted (or definitely
//! refused) the transaction, so concurrent senders can neither reuse a nonce nor leave a gap. The
//! next nonce is tracked locally; after an ambiguous failure it is re-read from the node's
//! pending count.

use alloy::primitives::Address;
use tokio::sync::{Mutex, MutexGuard};

use super::error::EvmError;
use super::rpc::Chain;

#[derive(Debug)]
pub struct NonceManager {
    address: Address,
    next: Mutex<Option<u64>>,
}

/// An exclusive claim on the next nonce. Call [`NonceLease::consumed`] once the node accepted
/// the transaction; dropping the lease otherwise leaves the nonce free for the next sender.
#[must_use]
pub struct NonceLease<'a> {
    slot: MutexGuard<'a, Option<u64>>,
    nonce: u64,
}

impl NonceManager {
    pub fn new(address: Address) -> Self {
        Self {
            address,
            next: Mutex::new(None),
        }
    }

    pub fn address(&self) -> Address {
        self.address
    }

    /// Waits for exclusive use of the next nonce (read from the node's pending count the first
    /// time and after [`NonceLease::resync`]).
    pub async fn lease(&self, chain: &Chain) -> Result<NonceLease<'_>, EvmError> {
        let mut slot = self.next.lock().await;
        let nonce = match *slot {
            Some(n) => n,
            None => {
                let n = chain.nonce(self.address, true).await?;
                *slot = Some(n);
                n
            }
        };
        Ok(NonceLease { slot, nonce })
    }

    /// Forgets the local count; the next lease reads the pending count from the node.
    pub async fn resync(&self) {
        *self.next.lock().await = None;
    }
}

impl NonceLease<'_> {
    pub fn nonce(&self) -> u64 {
        self.nonce
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
