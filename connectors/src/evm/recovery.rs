//! After a restart: what became of the transactions the journal saw signed but not finished,
//! and what each did to the wallet, read from its receipt (token transfers, WETH deposits and
//! withdrawals, value and gas). The agent adds these to its last journaled book and compares
//! the sum with the chain: equal to the wei, or it stops adding exposure and says why.

use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use alloy::rpc::types::TransactionReceipt;

use agent_core::amount::Token;
use agent_core::venue::{SettledTx, Settlement, UnsettledTx};

use super::bindings::{IERC20, IWETH9};
use super::error::EvmError;
use super::rpc::Chain;

/// The tokens whose balances the agent books, and where they live.
#[derive(Debug, Clone)]
pub struct Tracked {
    /// The agent's account: transfers from it are debits, to it credits.
    pub wallet: Address,
    /// ERC-20 tokens (WETH among them, if traded) and their contracts.
    pub tokens: Vec<(Token, Address)>,
    /// The chain's gas token as the book names it.
    pub native: Token,
}

/// Settles each open transaction: mined (with its effects), still pending after `wait`, or
/// dropped (no hash mined or known to the node).
///
/// # Errors
/// [`EvmError::Journal`] when a journaled hash is not valid hex; [`EvmError::Rpc`] when a
/// receipt, transaction or value cannot be read (after retries).
pub async fn settle(
    chain: &Chain,
    tracked: &Tracked,
    open: &[UnsettledTx],
    wait: Duration,
) -> Result<Vec<SettledTx>, EvmError> {
    let mut out = Vec::with_capacity(open.len());
    for tx in open {
        let hashes = tx
            .hashes
            .iter()
            .map(|h| {
                h.parse::<B256>().map_err(|e| {
                    EvmError::Journal(format!("nonce {}: bad transaction hash {h}: {e}", tx.nonce))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut known = None;
        let deadline = Instant::now() + wait;
        let settled = loop {
            let mut mined = None;
            for h in &hashes {
                if let Some(r) = chain.receipt(*h).await? {
                    mined = Some(r);
                    break;
                }
            }
            if let Some(r) = mined {
                break effects(chain, tracked, tx.nonce, &r).await?;
            }
            if known.is_none() {
                for h in &hashes {
                    if chain.knows(*h).await? {
                        known = Some(*h);
                        break;
                    }
                }
            }
            match known {
                // In the pool: it may still execute. Wait a while for it.
                Some(h) if Instant::now() >= deadline => {
                    break SettledTx {
                        nonce: tx.nonce,
                        outcome: Settlement::Pending {
                            hash: h.to_string(),
                        },
                        credits: Vec::new(),
                        debits: Vec::new(),
                    };
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                None => {
                    break SettledTx {
                        nonce: tx.nonce,
                        outcome: Settlement::Dropped,
                        credits: Vec::new(),
                        debits: Vec::new(),
                    };
                }
            }
        };
        tracing::info!(target: "defai::recovery", nonce = tx.nonce, intent = ?tx.intent_id, label = %tx.label, outcome = ?settled.outcome, "settled");
        out.push(settled);
    }
    Ok(out)
}

/// What a mined transaction did to the tracked balances.
pub(crate) async fn effects(
    chain: &Chain,
    tracked: &Tracked,
    nonce: u64,
    r: &TransactionReceipt,
) -> Result<SettledTx, EvmError> {
    let wallet = tracked.wallet;
    let mut credits: Vec<(Token, U256)> = Vec::new();
    let mut debits: Vec<(Token, U256)> = Vec::new();
    let gas = U256::from(r.gas_used) * U256::from(r.effective_gas_price);
    debits.push((tracked.native.clone(), gas));
    let success = r.status();
    if success {
        let value = chain
            .transaction_value(r.transaction_hash)
            .await?
            .unwrap_or(U256::ZERO);
        if !value.is_zero() {
            debits.push((tracked.native.clone(), value));
        }
        for log in r.inner.logs() {
            let Some((token, _)) = tracked.tokens.iter().find(|(_, a)| *a == log.address()) else {
                continue;
            };
            if let Ok(t) = log.log_decode::<IERC20::Transfer>() {
                let t = t.inner.data;
                if t.from == wallet {
                    debits.push((token.clone(), t.value));
                }
                if t.to == wallet {
                    credits.push((token.clone(), t.value));
                }
            } else if let Ok(d) = log.log_decode::<IWETH9::Deposit>() {
                if d.inner.data.dst == wallet {
                    credits.push((token.clone(), d.inner.data.wad));
                }
            } else if let Ok(w) = log.log_decode::<IWETH9::Withdrawal>()
                && w.inner.data.src == wallet
            {
                debits.push((token.clone(), w.inner.data.wad));
                credits.push((tracked.native.clone(), w.inner.data.wad));
            }
        }
    }
    Ok(SettledTx {
        nonce,
        outcome: Settlement::Mined {
            hash: r.transaction_hash.to_string(),
            block: r.block_number.unwrap_or_default(),
            success,
        },
        credits,
        debits,
    })
}
