//! One RPC endpoint with retries: transient faults (timeouts, HTTP 429/5xx, dropped connections)
//! are retried with exponential backoff and jitter; anything else fails at once. Sending a
//! transaction is *not* done here: see [`super::tx`], which checks by hash before any resend.

use std::future::Future;
use std::time::Duration;

use alloy::eips::BlockId;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::sol_types::SolCall;
use alloy::transports::{RpcError, TransportError, TransportErrorKind};

use super::error::EvmError;

/// How hard to retry a read.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: u32,
    /// Backoff before the second try; doubled for each further try (see
    /// [`RetryPolicy::delay`]).
    pub base_delay: Duration,
    /// Longest backoff between two tries, before jitter.
    pub max_delay: Duration,
    /// Each request is abandoned (and retried) after this long.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Full-jitter exponential backoff: uniform in [d/2, d], d = base·2^attempt capped.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_delay);
        exp.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

/// Whether an RPC failure may succeed if tried again.
pub fn is_transient(e: &TransportError) -> bool {
    match e {
        RpcError::Transport(kind) => match kind {
            TransportErrorKind::HttpError(h) => h.status == 429 || h.status >= 500,
            TransportErrorKind::HttpErrorWithRetryAfter { .. } => true,
            // Dropped connections, connect errors, backend gone: all transient.
            _ => true,
        },
        RpcError::ErrorResp(p) => p.code == 429 || p.code == -32005,
        RpcError::NullResp | RpcError::DeserError { .. } => true,
        _ => false,
    }
}

/// Trims an RPC error to one line without a response body dump.
pub fn describe(e: &TransportError) -> String {
    match e {
        RpcError::ErrorResp(p) => format!("error {}: {}", p.code, p.message),
        RpcError::DeserError { err, .. } => format!("bad response: {err}"),
        other => {
            let s = other.to_string();
            s.lines().next().unwrap_or("").chars().take(300).collect()
        }
    }
}

/// A block's header facts the agent uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockInfo {
    /// Block number (height).
    pub number: u64,
    /// Block timestamp, unix seconds.
    pub timestamp: u64,
    /// EIP-1559 base fee per gas, wei (0 on a chain without one).
    pub base_fee_wei: u128,
}

/// Outcome of an `eth_call`.
#[derive(Debug, Clone, PartialEq)]
pub enum CallResult {
    /// The call succeeded: its ABI-encoded return data.
    Ok(Bytes),
    /// Reverted, with the decoded reason.
    Reverted(String),
}

/// An RPC endpoint and its retry policy.
#[derive(Clone)]
pub struct Chain {
    provider: DynProvider,
    url: String,
    /// How reads through [`Chain::retry`] are retried (broadcasts in [`super::tx`] use it too).
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain").field("url", &self.url).finish()
    }
}

impl Chain {
    /// A plain HTTP provider without fillers: we own nonces, fees and gas ourselves (the default
    /// fillers burn a nonce when a gas estimate reverts).
    ///
    /// # Errors
    /// [`EvmError::Rpc`] (method `connect`) when `url` is not a valid URL. Nothing is sent:
    /// an unreachable node shows on the first call.
    pub fn connect(url: &str) -> Result<Self, EvmError> {
        let parsed = url.parse().map_err(|e| EvmError::Rpc {
            method: "connect",
            detail: format!("bad rpc_url {url:?}: {e}"),
        })?;
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_http(parsed)
            .erased();
        Ok(Self {
            provider,
            url: url.to_string(),
            retry: RetryPolicy::default(),
        })
    }

    /// The endpoint URL as configured.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The underlying alloy provider, for calls this type does not wrap (no retries).
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// Runs `op` until it succeeds, fails for good, or the attempts run out. Each try is cut
    /// off after [`RetryPolicy::request_timeout`].
    ///
    /// # Errors
    /// [`EvmError::Rpc`] naming `method`: at once for a failure [`is_transient`] calls
    /// permanent, or after [`RetryPolicy::attempts`] transient failures or timeouts.
    pub async fn retry<T, F, Fut>(&self, method: &'static str, mut op: F) -> Result<T, EvmError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, TransportError>>,
    {
        let mut attempt = 0;
        loop {
            let detail = match tokio::time::timeout(self.retry.request_timeout, op()).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if !is_transient(&e) => {
                    return Err(EvmError::Rpc {
                        method,
                        detail: describe(&e),
                    });
                }
                Ok(Err(e)) => describe(&e),
                Err(_) => format!("timed out after {:?}", self.retry.request_timeout),
            };
            attempt += 1;
            if attempt >= self.retry.attempts {
                return Err(EvmError::Rpc {
                    method,
                    detail: format!("{detail} (gave up after {attempt} tries)"),
                });
            }
            let delay = self.retry.delay(attempt - 1);
            tracing::warn!(target: "defai::rpc", method, attempt, ?delay, %detail, "transient rpc fault, retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// The chain id the node reports (`eth_chainId`).
    ///
    /// # Errors
    /// [`EvmError::Rpc`] as [`Chain::retry`].
    pub async fn chain_id(&self) -> Result<u64, EvmError> {
        self.retry("eth_chainId", || self.provider.get_chain_id().into_future())
            .await
    }

    /// The latest block number (`eth_blockNumber`).
    ///
    /// # Errors
    /// [`EvmError::Rpc`] as [`Chain::retry`].
    pub async fn block_number(&self) -> Result<u64, EvmError> {
        self.retry("eth_blockNumber", || {
            self.provider.get_block_number().into_future()
        })
        .await
    }

    /// The block `number` (or the latest).
    ///
    /// # Errors
    /// [`EvmError::Rpc`] as [`Chain::retry`], or when the node does not have the block.
    pub async fn block(&self, number: Option<u64>) -> Result<BlockInfo, EvmError> {
        let tag = number.map_or(alloy::eips::BlockNumberOrTag::Latest, Into::into);
        let block = self
            .retry("eth_getBlockByNumber", || {
                self.provider.get_block_by_number(tag).into_future()
            })
            .await?
            .ok_or_else(|| EvmError::Rpc {
                method: "eth_getBlockByNumber",
                detail: format!("block {tag} not found"),
            })?;
        Ok(BlockInfo {
            number: block.header.number,
            timestamp: block.header.timestamp,
            base_fee_wei: block.header.base_fee_per_gas.unwrap_or(0) as u128,
        })
    }

    /// The timestamp the next block will carry, unix seconds: the node's `pending` block's, or
    /// the latest block's when the node builds no pending block (`null`) or refuses the tag. A transaction is
    /// simulated and mined at that time, not the latest block's: on a devnet whose clock was
    /// moved (`evm_increaseTime`) they differ by the move until the next block is mined, so a
    /// deadline counted from the latest block can have passed before the transaction is sent.
    /// Read as raw JSON, because nodes null a pending block's `hash`, `nonce` and `miner`.
    ///
    /// # Errors
    /// [`EvmError::Rpc`] as [`Chain::block`], when the latest block is needed and cannot be read.
    pub async fn next_block_timestamp(&self) -> Result<u64, EvmError> {
        #[derive(Debug, serde::Deserialize)]
        struct Stamp {
            timestamp: alloy::primitives::U64,
        }
        let pending: Result<Option<Stamp>, _> = self
            .retry("eth_getBlockByNumber", || {
                self.provider
                    .raw_request("eth_getBlockByNumber".into(), ("pending", false))
            })
            .await;
        match pending {
            Ok(Some(p)) => return Ok(p.timestamp.to::<u64>()),
            Ok(None) => {}
            // A node that does not serve the `pending` tag: the latest block, as before.
            Err(e) => {
                tracing::debug!(target: "defai::rpc", error = %e, "no pending block; the latest block's time")
            }
        }
        Ok(self.block(None).await?.timestamp)
    }

    /// `who`'s native balance at the latest block, wei (`eth_getBalance`).
    ///
    /// # Errors
    /// [`EvmError::Rpc`] as [`Chain::retry`].
    pub async fn balance(&self, who: Address) -> Result<U256, EvmError> {
        self.retry("eth_getBalance", || {
            self.provider.get_balance(who).into_future()
        })
        .await
    }

    /// Transactions sent by `who` that are mined (`pending = false`) or also in the pool: the
    /// next nonce to use.
    ///
    /// # Errors
    /// [`EvmError::Rpc`] as [`Chain::retry`].
    pub async fn nonce(&self, who: Address, pending: bool) -> Result<u64, EvmError> {
        self.retry("eth_getTransactionCount", || {
            let call = self.provider.get_transaction_count(who);
            if pending {
                call.pending().into_future()
            } else {
                call.latest().into_future()
            }
        })
        .await
    }

    /// The node's suggested EIP-1559 priority fee (tip) per gas, wei
    /// (`eth_maxPriorityFeePerGas`).
    ///
    /// # Errors
    /// [`EvmError::Rpc`] as [`Chain::retry`].
    pub async fn priority_fee(&self) -> Result<u128, EvmError> {
        self.retry("eth_maxPriorityFeePerGas", || {
            self.provider.get_max_priority_fee_per_gas().into_future()
        })
        .await
    }

    /// `eth_call`; a revert is a value (with its decoded reason), not an error.
    ///
    /// # Errors
    /// [`EvmError::Rpc`] as [`Chain::retry`] (transport faults and rate limits, never a
    /// revert).
    pub async fn call(&self, tx: &TransactionRequest, at: BlockId) -> Result<CallResult, EvmError> {
        let out = self
            .revertible("eth_call", || {
                self.provider.call(tx.clone()).block(at).into_future()
            })
            .await?;
        Ok(match out {
            Ok(bytes) => CallResult::Ok(bytes),
            Err(reason) => CallResult::Reverted(reason),
        })
    }

    /// [`Chain::retry`] for calls that can revert: a JSON-RPC error answer (other than a rate
    /// limit) is the node saying "this reverts", returned as `Ok(Err(reason))`, never retried and
    /// never mistaken for an RPC failure.
    async fn revertible<T, F, Fut>(
        &self,
        method: &'static str,
        mut op: F,
    ) -> Result<Result<T, String>, EvmError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, TransportError>>,
    {
        self.retry(method, || {
            let fut = op();
            async move {
                match fut.await {
                    Ok(v) => Ok(Ok(v)),
                    Err(RpcError::ErrorResp(p)) if p.code != 429 && p.code != -32005 => Ok(Err(p
                        .as_revert_data()
                        .map(|data| decode_revert(&data))
                        .unwrap_or_else(|| p.message.to_string()))),
                    Err(e) => Err(e),
                }
            }
        })
        .await
    }

    /// A view call decoded with its Solidity signature.
    ///
    /// # Errors
    /// [`EvmError::Contract`] naming `to` when the call reverts or returns data that does not
    /// decode as `C`'s return type; [`EvmError::Rpc`] as [`Chain::retry`].
    pub async fn view<C: SolCall>(
        &self,
        to: Address,
        call: C,
        at: BlockId,
    ) -> Result<C::Return, EvmError> {
        let tx = TransactionRequest::default()
            .to(to)
            .input(call.abi_encode().into());
        match self.call(&tx, at).await? {
            CallResult::Ok(bytes) => {
                C::abi_decode_returns(&bytes).map_err(|e| EvmError::Contract {
                    contract: to.to_string(),
                    detail: format!("{}: bad return data: {e}", C::SIGNATURE),
                })
            }
            CallResult::Reverted(reason) => Err(EvmError::Contract {
                contract: to.to_string(),
                detail: format!("{} reverted: {reason}", C::SIGNATURE),
            }),
        }
    }

    /// `eth_estimateGas`: `Ok(Err(reason))` when the node says the transaction reverts; an
    /// RPC failure (after retries) is an `Err`, never mistaken for a revert.
    ///
    /// # Errors
    /// [`EvmError::Rpc`] as [`Chain::retry`].
    pub async fn estimate_gas(
        &self,
        tx: &TransactionRequest,
    ) -> Result<Result<u64, String>, EvmError> {
        self.revertible("eth_estimateGas", || {
            self.provider.estimate_gas(tx.clone()).into_future()
        })
        .await
    }

    /// The receipt of transaction `hash`, `None` while it is not mined
    /// (`eth_getTransactionReceipt`).
    ///
    /// # Errors
    /// [`EvmError::Rpc`] as [`Chain::retry`].
    pub async fn receipt(&self, hash: B256) -> Result<Option<TransactionReceipt>, EvmError> {
        self.retry("eth_getTransactionReceipt", || {
            self.provider.get_transaction_receipt(hash).into_future()
        })
        .await
    }

    /// Logs matching `filter` (`eth_getLogs`), oldest first.
    ///
    /// # Errors
    /// The RPC fails after its retries (a node may also refuse a block range it finds too
    /// wide: narrow the filter's `from_block`).
    pub async fn logs(
        &self,
        filter: &alloy::rpc::types::Filter,
    ) -> Result<Vec<alloy::rpc::types::Log>, EvmError> {
        self.retry("eth_getLogs", || {
            self.provider.get_logs(filter).into_future()
        })
        .await
    }

    /// Logs matching `filter` from block `from` to `to` (inclusive), asked `chunk` blocks at a
    /// time (public RPCs refuse wide `eth_getLogs` ranges), oldest first.
    ///
    /// # Errors
    /// As [`Chain::logs`], for the first chunk that fails.
    pub async fn logs_between(
        &self,
        filter: &alloy::rpc::types::Filter,
        from: u64,
        to: u64,
        chunk: u64,
    ) -> Result<Vec<alloy::rpc::types::Log>, EvmError> {
        let chunk = chunk.max(1);
        let mut out = Vec::new();
        let mut start = from;
        while start <= to {
            let end = start.saturating_add(chunk - 1).min(to);
            let f = filter.clone().from_block(start).to_block(end);
            out.extend(self.logs(&f).await?);
            if end == u64::MAX {
                break;
            }
            start = end + 1;
        }
        Ok(out)
    }

    /// The value (wei) a known transaction carries, `None` if the node does not know it.
    ///
    /// # Errors
    /// [`EvmError::Rpc`] as [`Chain::retry`].
    pub async fn transaction_value(&self, hash: B256) -> Result<Option<U256>, EvmError> {
        use alloy::consensus::Transaction as _;
        self.retry("eth_getTransactionByHash", || {
            self.provider.get_transaction_by_hash(hash).into_future()
        })
        .await
        .map(|t| t.map(|t| t.value()))
    }

    /// Whether the node knows the transaction (pooled or mined).
    ///
    /// # Errors
    /// [`EvmError::Rpc`] as [`Chain::retry`].
    pub async fn knows(&self, hash: B256) -> Result<bool, EvmError> {
        self.retry("eth_getTransactionByHash", || {
            self.provider.get_transaction_by_hash(hash).into_future()
        })
        .await
        .map(|t| t.is_some())
    }

    /// Anvil/hardhat test methods (`evm_mine`, `anvil_setAutomine`, ...).
    ///
    /// # Errors
    /// [`EvmError::Rpc`] naming `method` as [`Chain::retry`], including when the node does not
    /// have the method or the result does not decode as `R`.
    pub async fn dev_call<P, R>(&self, method: &'static str, params: P) -> Result<R, EvmError>
    where
        P: alloy::rpc::json_rpc::RpcSend + Clone,
        R: alloy::rpc::json_rpc::RpcRecv,
    {
        self.retry(method, || {
            let params = params.clone();
            async move { self.provider.raw_request(method.into(), params).await }
        })
        .await
    }
}

/// A revert payload as text: `Error(string)`, `Panic(uint)`, our tokens' custom errors, or hex.
pub fn decode_revert(data: &[u8]) -> String {
    use alloy::sol_types::SolInterface;
    if let Some(reason) = alloy::sol_types::decode_revert_reason(data) {
        return reason;
    }
    if let Ok(e) = super::bindings::DevToken::DevTokenErrors::abi_decode(data) {
        return format!("{e:?}");
    }
    format!("0x{}", alloy::primitives::hex::encode(data))
}
