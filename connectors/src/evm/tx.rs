//! The transaction lifecycle: fees → `eth_call` simulation → gas estimate → nonce lease → sign →
//! broadcast → wait for the receipt (with a timeout) → replace at the same nonce with bumped fees
//! (bounded) → final status. Each step is recorded as a [`TxEvent`]; nothing waits unbounded.
//!
//! A broadcast that fails ambiguously (timeout, dropped connection) is never answered by signing
//! a new transaction: the node is asked whether it knows the hash first, and only the very same
//! signed bytes are sent again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::eips::{BlockId, Encodable2718};
use alloy::network::{NetworkTransactionBuilder, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::Provider;
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::transports::RpcError;

use super::error::EvmError;
use super::nonce::NonceManager;
use super::rpc::{CallResult, Chain, describe, is_transient};
use super::wallet::Wallet;
use agent_core::venue::StepRecorder;

/// Gas added to every estimate on top of the percentage margin.
pub const GAS_HEADROOM: u64 = 30_000;

/// Limits of the lifecycle.
#[derive(Debug, Clone, PartialEq)]
pub struct TxPolicy {
    /// How long to wait for a receipt before replacing (and after the last replacement).
    pub receipt_timeout: Duration,
    /// Pause between two rounds of receipt polls while waiting.
    pub poll_interval: Duration,
    /// Replacements at the same nonce before giving up.
    pub max_replacements: u32,
    /// Fee increase per replacement, percent (nodes require ≥ 10).
    pub bump_pct: u32,
    /// Never pay more than this per gas; a current price above it refuses the transaction.
    pub gas_cap_wei: Option<u128>,
    /// Added to the gas estimate, percent, plus [`GAS_HEADROOM`]. Unused gas is refunded, and
    /// state can change between estimate and inclusion (a Uniswap pair's first swap in a new
    /// block also writes the price accumulators, ~20k gas more than the estimate saw).
    pub gas_margin_pct: u64,
    /// The only contracts a transaction may be sent to (`[risk] allowed_contracts`); a call to
    /// any other, or a contract creation, is refused before anything is simulated or signed.
    /// `None`: no list (every venue's own start-up checks still apply).
    pub allowed_to: Option<Vec<Address>>,
}

impl Default for TxPolicy {
    fn default() -> Self {
        Self {
            receipt_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_millis(20),
            max_replacements: 3,
            bump_pct: 25,
            gas_cap_wei: None,
            gas_margin_pct: 25,
            allowed_to: None,
        }
    }
}

/// What to send.
#[derive(Debug, Clone, PartialEq)]
pub struct TxRequest {
    /// Names the transaction in events and errors (`approve`, `swap`, `deploy WETH9`).
    pub label: String,
    /// `None` deploys `input` as creation code.
    pub to: Option<Address>,
    /// ABI-encoded calldata, or the creation code (constructor arguments appended) of a
    /// deployment.
    pub input: Bytes,
    /// Native value sent with it, wei.
    pub value: U256,
}

impl TxRequest {
    /// A call of `to` with calldata `input` and no value.
    pub fn call(label: impl Into<String>, to: Address, input: impl Into<Bytes>) -> Self {
        Self {
            label: label.into(),
            to: Some(to),
            input: input.into(),
            value: U256::ZERO,
        }
    }
    /// A deployment of creation code `code` (constructor arguments appended).
    pub fn deploy(label: impl Into<String>, code: impl Into<Bytes>) -> Self {
        Self {
            label: label.into(),
            to: None,
            input: code.into(),
            value: U256::ZERO,
        }
    }
    /// The same request sending `value` wei with it (a WETH deposit, say).
    pub fn with_value(mut self, value: U256) -> Self {
        self.value = value;
        self
    }
}

/// A mined transaction with status 1.
#[derive(Debug, Clone, PartialEq)]
pub struct TxOutcome {
    /// Hash of the transaction that was mined: the original or one of its replacements.
    pub hash: B256,
    /// The nonce it was signed at.
    pub nonce: u64,
    /// The block it was mined in.
    pub block: u64,
    /// Gas it used (from the receipt).
    pub gas_used: u64,
    /// What it paid per gas, wei: base fee plus the tip actually paid (EIP-1559).
    pub effective_gas_price: u128,
    /// gas_used × effective_gas_price: what the sender's native balance lost.
    pub fee_wei: U256,
    /// Replacements signed at the same nonce before a receipt came.
    pub replacements: u32,
    /// The new contract's address, for a deployment.
    pub contract_address: Option<Address>,
}

/// One step of one transaction's life.
#[derive(Debug, Clone, PartialEq)]
pub enum TxStep {
    /// `eth_call` and `eth_estimateGas` passed.
    Simulated {
        /// The gas limit to sign with: the estimate plus [`TxPolicy::gas_margin_pct`] and
        /// [`GAS_HEADROOM`].
        gas_estimate: u64,
    },
    /// Signed (and on record) but not yet broadcast.
    Signed {
        /// The nonce it is signed at.
        nonce: u64,
        /// Its transaction hash.
        hash: B256,
        /// Its EIP-1559 `maxFeePerGas`, wei.
        max_fee_wei: u128,
    },
    /// The node accepted the broadcast (it is in its pool).
    Sent {
        /// The transaction's hash.
        hash: B256,
    },
    /// The broadcast failed ambiguously; the node was asked about the hash before any resend.
    BroadcastRetry {
        /// The transaction being broadcast.
        hash: B256,
        /// The transport error or timeout.
        detail: String,
    },
    /// No receipt within [`TxPolicy::receipt_timeout`].
    TimedOut {
        /// The latest hash broadcast for the nonce.
        hash: B256,
        /// Time since the first broadcast.
        waited: Duration,
    },
    /// A replacement at the same nonce with bumped fees was signed (and is on record before
    /// its broadcast).
    Replaced {
        /// The nonce both share.
        nonce: u64,
        /// The hash it replaces.
        old: B256,
        /// The replacement's hash.
        new: B256,
        /// The replacement's `maxFeePerGas`, wei.
        max_fee_wei: u128,
    },
    /// The node refused a replacement (signed and on record as `Replaced` first): it is not
    /// pending, the transaction it was to replace still is.
    ReplaceRefused {
        /// The nonce.
        nonce: u64,
        /// The refused replacement's hash.
        hash: B256,
        /// The node's error.
        detail: String,
    },
    /// The account's pending count moved past the sender's own (the wallet sent from
    /// elsewhere): the transaction is signed at the node's count, never at a nonce another
    /// sender's transaction holds.
    NonceMoved {
        /// The local next nonce the manager held.
        cached: u64,
        /// The node's pending count, signed at instead.
        nonce: u64,
    },
    /// The sender gave up on a nonce: what the node said of it afterwards, and whether the
    /// nonce is free again (nothing at it can still be mined).
    GaveUp {
        /// The nonce given up on.
        nonce: u64,
        /// The account's mined transaction count (`eth_getTransactionCount` at `latest`).
        latest: u64,
        /// The account's count including its pool transactions (at `pending`).
        pending: u64,
        /// No hash of the nonce is known to the node and neither count passed it: the nonce
        /// is reused by the next transaction.
        freed: bool,
    },
    /// A receipt came.
    Mined {
        /// The hash that was mined (the original or a replacement).
        hash: B256,
        /// Its block.
        block: u64,
        /// The receipt's status: `true` executed, `false` reverted (gas paid either way).
        status: bool,
        /// Gas used × effective gas price, wei.
        fee_wei: U256,
    },
}

/// One step of one transaction, as recorded in the journal and the audit stream.
#[derive(Debug, Clone, PartialEq)]
pub struct TxEvent {
    /// The transaction's label ([`TxRequest::label`]).
    pub label: String,
    /// What happened.
    pub step: TxStep,
    /// Time since `send` was called (the decision was made just before).
    pub at: Duration,
}

impl TxEvent {
    /// Short name of the step, for audit records.
    pub fn step_name(&self) -> &'static str {
        match self.step {
            TxStep::Simulated { .. } => "simulated",
            TxStep::Signed { .. } => "signed",
            TxStep::Sent { .. } => "sent",
            TxStep::BroadcastRetry { .. } => "broadcast_retry",
            TxStep::TimedOut { .. } => "timed_out",
            TxStep::Replaced { .. } => "replaced",
            TxStep::ReplaceRefused { .. } => "replace_refused",
            TxStep::GaveUp { .. } => "gave_up",
            TxStep::NonceMoved { .. } => "nonce_moved",
            TxStep::Mined { .. } => "mined",
        }
    }
    /// The hash the step concerns (a replacement's new hash), if it has one.
    pub fn hash(&self) -> Option<B256> {
        match &self.step {
            TxStep::Simulated { .. } | TxStep::GaveUp { .. } | TxStep::NonceMoved { .. } => None,
            TxStep::ReplaceRefused { hash, .. } => Some(*hash),
            TxStep::Signed { hash, .. }
            | TxStep::Sent { hash }
            | TxStep::BroadcastRetry { hash, .. }
            | TxStep::TimedOut { hash, .. }
            | TxStep::Mined { hash, .. } => Some(*hash),
            TxStep::Replaced { new, .. } => Some(*new),
        }
    }
    /// The nonce the step names, if it names one (a `Sent` or `Mined` step does not).
    pub fn nonce(&self) -> Option<u64> {
        match &self.step {
            TxStep::Signed { nonce, .. }
            | TxStep::Replaced { nonce, .. }
            | TxStep::ReplaceRefused { nonce, .. }
            | TxStep::GaveUp { nonce, .. }
            | TxStep::NonceMoved { nonce, .. } => Some(*nonce),
            _ => None,
        }
    }
}

/// EIP-1559 fees for one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fees {
    /// The latest block's base fee per gas, wei.
    pub base_fee_wei: u128,
    /// `maxPriorityFeePerGas`: the tip per gas, wei.
    pub priority_fee_wei: u128,
    /// `maxFeePerGas`, wei: twice the base fee plus the tip (room for the base fee to rise),
    /// lowered to [`TxPolicy::gas_cap_wei`] when there is one.
    pub max_fee_wei: u128,
}

impl Fees {
    /// What one gas costs if mined in the next block.
    pub fn current_price_wei(&self) -> u128 {
        self.base_fee_wei.saturating_add(self.priority_fee_wei)
    }
}

enum Broadcast {
    Accepted,
    /// The node refused it: it is not in the pool, the nonce is still free.
    Refused(String),
    /// We cannot tell.
    Unknown(String),
}

/// Where the sender writes each step before acting on it (the agent's journal).
#[derive(Clone)]
struct Recorder(Arc<dyn StepRecorder>);

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recorder")
    }
}

/// Signs and sends transactions from one wallet on one chain.
#[derive(Debug, Clone)]
pub struct TxSender {
    chain: Chain,
    wallet: Wallet,
    chain_id: u64,
    nonces: Arc<NonceManager>,
    policy: TxPolicy,
    recorder: Option<Recorder>,
}

impl TxSender {
    /// `nonces` must be the one manager of `wallet`'s address, shared by all its senders.
    ///
    /// # Errors
    /// [`EvmError::Wallet`] when `nonces` manages another address than `wallet`'s.
    pub fn new(
        chain: Chain,
        wallet: Wallet,
        chain_id: u64,
        nonces: Arc<NonceManager>,
        policy: TxPolicy,
    ) -> Result<Self, EvmError> {
        if nonces.address() != wallet.address() {
            return Err(EvmError::Wallet(
                "nonce manager belongs to another address".into(),
            ));
        }
        Ok(Self {
            chain,
            wallet,
            chain_id,
            nonces,
            policy,
            recorder: None,
        })
    }

    /// Records every step through `recorder` the moment it happens: a signed transaction is
    /// on record before it is broadcast (a recorder failure stops it there), so a crash at any
    /// point leaves a journal that names every transaction that may be on chain.
    pub fn with_recorder(mut self, recorder: Arc<dyn StepRecorder>) -> Self {
        self.recorder = Some(Recorder(recorder));
        self
    }

    /// Adds the step to `log` and records it; `Err` if it could not be recorded.
    fn note(&self, log: &mut Vec<TxEvent>, event: TxEvent) -> Result<(), EvmError> {
        let recorded = match &self.recorder {
            Some(r) => {
                r.0.record(&to_venue_event(event.clone()))
                    .map_err(|e| EvmError::Journal(format!("{}: {e}", event.label)))
            }
            None => Ok(()),
        };
        log.push(event);
        recorded
    }

    /// As [`Self::note`], for steps after the broadcast: the transaction is out, so a record
    /// that fails is logged loudly and the lifecycle goes on (the receipt must still be read).
    fn note_after(&self, log: &mut Vec<TxEvent>, event: TxEvent) {
        if let Err(e) = self.note(log, event) {
            tracing::error!(target: "defai::tx", error = %e, "step not journaled");
        }
    }

    /// The sending account.
    pub fn address(&self) -> Address {
        self.wallet.address()
    }
    /// The RPC endpoint it sends through.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }
    /// The lifecycle limits.
    pub fn policy(&self) -> &TxPolicy {
        &self.policy
    }
    /// The lifecycle limits, to change (e.g. a shorter receipt timeout in tests).
    pub fn policy_mut(&mut self) -> &mut TxPolicy {
        &mut self.policy
    }
    /// The account's shared nonce manager.
    pub fn nonces(&self) -> &Arc<NonceManager> {
        &self.nonces
    }

    /// Current fees without the cap: what the market asks.
    ///
    /// # Errors
    /// [`EvmError::Rpc`] when the latest block or the priority fee cannot be read.
    pub async fn market_fees(&self) -> Result<Fees, EvmError> {
        let base = self.chain.block(None).await?.base_fee_wei;
        let tip = self.chain.priority_fee().await?;
        Ok(Fees {
            base_fee_wei: base,
            priority_fee_wei: tip,
            max_fee_wei: base.saturating_mul(2).saturating_add(tip),
        })
    }

    /// Current fees, capped; refuses when the next block's price is above the cap.
    ///
    /// # Errors
    /// [`EvmError::GasCap`] when base fee plus tip exceeds [`TxPolicy::gas_cap_wei`];
    /// [`EvmError::Rpc`] as [`TxSender::market_fees`].
    pub async fn fees(&self) -> Result<Fees, EvmError> {
        let mut fees = self.market_fees().await?;
        if let Some(cap) = self.policy.gas_cap_wei {
            if fees.current_price_wei() > cap {
                return Err(EvmError::GasCap {
                    price_wei: fees.current_price_wei(),
                    cap_wei: cap,
                });
            }
            fees.max_fee_wei = fees.max_fee_wei.min(cap);
        }
        Ok(fees)
    }

    fn request(&self, req: &TxRequest) -> TransactionRequest {
        let tx = TransactionRequest::default()
            .with_from(self.wallet.address())
            .with_value(req.value);
        match req.to {
            Some(to) => tx.with_to(to).with_input(req.input.clone()),
            None => tx.with_deploy_code(req.input.clone()),
        }
    }

    /// Why a mined transaction reverted, by replaying its call on the state of its block. Best
    /// effort: the receipt carries no reason, and a failed replay must not hide the revert.
    async fn revert_reason(&self, req: &TxRequest, block: u64) -> String {
        let tx = self.request(req);
        match self.chain.call(&tx, BlockId::number(block)).await {
            Ok(CallResult::Reverted(reason)) => reason,
            Ok(_) => "unknown (the replay on the block's state succeeds)".into(),
            Err(e) => format!("unknown (replay failed: {e})"),
        }
    }

    /// `eth_call` then `eth_estimateGas`; a revert is refused with its reason and nothing is
    /// sent. Returns the gas limit to sign with: the estimate plus
    /// [`TxPolicy::gas_margin_pct`] percent and [`GAS_HEADROOM`].
    ///
    /// # Errors
    /// [`EvmError::SimulationReverted`] when either says the transaction reverts;
    /// [`EvmError::Rpc`] when either call fails.
    pub async fn simulate(&self, req: &TxRequest) -> Result<u64, EvmError> {
        let tx = self.request(req);
        if let CallResult::Reverted(reason) = self.chain.call(&tx, BlockId::latest()).await? {
            return Err(EvmError::SimulationReverted {
                label: req.label.clone(),
                reason,
            });
        }
        let estimate =
            self.chain
                .estimate_gas(&tx)
                .await?
                .map_err(|reason| EvmError::SimulationReverted {
                    label: req.label.clone(),
                    reason,
                })?;
        Ok(estimate.saturating_mul(100 + self.policy.gas_margin_pct) / 100 + GAS_HEADROOM)
    }

    async fn sign(
        &self,
        req: &TxRequest,
        nonce: u64,
        gas: u64,
        fees: Fees,
    ) -> Result<(B256, Vec<u8>), EvmError> {
        let tx = self
            .request(req)
            .with_nonce(nonce)
            .with_chain_id(self.chain_id)
            .with_gas_limit(gas)
            .with_max_fee_per_gas(fees.max_fee_wei)
            .with_max_priority_fee_per_gas(fees.priority_fee_wei);
        let envelope = NetworkTransactionBuilder::build(tx, &self.wallet.network_wallet())
            .await
            .map_err(|e| EvmError::Wallet(format!("{}: cannot sign: {e}", req.label)))?;
        Ok((*envelope.tx_hash(), envelope.encoded_2718()))
    }

    async fn broadcast(
        &self,
        raw: &[u8],
        hash: B256,
        label: &str,
        log: &mut Vec<TxEvent>,
        t0: Instant,
    ) -> Broadcast {
        let policy = &self.chain.retry;
        let mut last = String::new();
        for attempt in 0..policy.attempts {
            if attempt > 0 {
                // Before any resend: does the node already hold it?
                match self.chain.knows(hash).await {
                    Ok(true) => return Broadcast::Accepted,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(target: "defai::tx", %hash, error = %e, "cannot ask the node about the transaction")
                    }
                }
                tokio::time::sleep(policy.delay(attempt - 1)).await;
            }
            let sent = tokio::time::timeout(
                policy.request_timeout,
                self.chain.provider().send_raw_transaction(raw),
            )
            .await;
            match sent {
                Ok(Ok(_)) => return Broadcast::Accepted,
                Ok(Err(RpcError::ErrorResp(p)))
                    if !is_transient(&RpcError::ErrorResp(p.clone())) =>
                {
                    let msg = p.message.to_ascii_lowercase();
                    if msg.contains("already known") || msg.contains("already imported") {
                        return Broadcast::Accepted;
                    }
                    if msg.contains("nonce too low")
                        && matches!(self.chain.knows(hash).await, Ok(true))
                    {
                        return Broadcast::Accepted;
                    }
                    return Broadcast::Refused(format!("error {}: {}", p.code, p.message));
                }
                Ok(Err(e)) => last = describe(&e),
                Err(_) => last = format!("timed out after {:?}", policy.request_timeout),
            }
            self.note_after(
                log,
                TxEvent {
                    label: label.to_string(),
                    step: TxStep::BroadcastRetry {
                        hash,
                        detail: last.clone(),
                    },
                    at: t0.elapsed(),
                },
            );
            tracing::warn!(target: "defai::tx", %label, %hash, attempt, detail = %last, "broadcast failed, checking by hash before resending");
        }
        match self.chain.knows(hash).await {
            Ok(true) => Broadcast::Accepted,
            _ => Broadcast::Unknown(last),
        }
    }

    /// Waits for a receipt of any of `hashes` until `deadline`.
    async fn wait(
        &self,
        hashes: &[B256],
        until: Instant,
    ) -> Result<Option<TransactionReceipt>, EvmError> {
        loop {
            for h in hashes.iter().rev() {
                match self.chain.receipt(*h).await {
                    Ok(Some(r)) => return Ok(Some(r)),
                    Ok(None) => {}
                    // The transaction is out: an RPC outage must not end the wait early (a
                    // caller could take that for "nothing sent" and send again). Keep polling
                    // until the deadline; replacement or NotMined follow from there.
                    Err(e) => {
                        tracing::warn!(target: "defai::tx", hash = %h, error = %e, "receipt poll failed; still waiting")
                    }
                }
            }
            if Instant::now() >= until {
                return Ok(None);
            }
            tokio::time::sleep(self.policy.poll_interval).await;
        }
    }

    /// After giving up on `nonce`: asks the node what became of it. When no hash signed for it
    /// is known to the node and the account's pending count has not passed it, nothing at the
    /// nonce can still be mined, and the nonce manager re-reads the pending count (the nonce is
    /// reused, no gap). When the node still holds one, the next transaction takes the nonce
    /// after it (the held one may yet be mined, and a restart settles it from the journal).
    async fn give_up(
        &self,
        nonce: u64,
        hashes: &[B256],
        label: &str,
        log: &mut Vec<TxEvent>,
        t0: Instant,
    ) -> bool {
        let me = self.wallet.address();
        let (latest, pending) = match (
            self.chain.nonce(me, false).await,
            self.chain.nonce(me, true).await,
        ) {
            (Ok(l), Ok(p)) => (l, p),
            (l, p) => {
                // Cannot tell: re-read on the next lease rather than trust the local count.
                tracing::warn!(target: "defai::tx", %label, nonce, latest = ?l.err(), pending = ?p.err(), "cannot read the account's nonces after giving up");
                self.nonces.resync().await;
                return false;
            }
        };
        let mut held = false;
        for h in hashes {
            if !matches!(self.chain.knows(*h).await, Ok(false)) {
                held = true;
            }
        }
        let freed = !held && latest <= nonce && pending <= nonce;
        // Either way the local count is re-read from the node: it reflects a dropped
        // transaction (the nonce comes back) and a held one (it does not).
        self.nonces.resync().await;
        self.note_after(
            log,
            TxEvent {
                label: label.to_string(),
                step: TxStep::GaveUp {
                    nonce,
                    latest,
                    pending,
                    freed,
                },
                at: t0.elapsed(),
            },
        );
        tracing::warn!(target: "defai::tx", %label, nonce, latest, pending, freed, "gave up on the transaction");
        freed
    }

    /// Refuses `req` when [`TxPolicy::allowed_to`] is set and does not list its target (a
    /// creation has none).
    fn check_allowed(&self, req: &TxRequest) -> Result<(), EvmError> {
        let Some(allowed) = &self.policy.allowed_to else {
            return Ok(());
        };
        match req.to {
            Some(to) if allowed.contains(&to) => Ok(()),
            Some(to) => Err(EvmError::ChainGuard(format!(
                "{}: {to} is not in [risk] allowed_contracts; nothing sent",
                req.label
            ))),
            None => Err(EvmError::ChainGuard(format!(
                "{}: a contract creation is refused while [risk] allowed_contracts is set",
                req.label
            ))),
        }
    }

    /// Runs the whole lifecycle. Events are appended to `log` as they happen.
    ///
    /// # Errors
    /// - Nothing was sent: [`EvmError::ChainGuard`] (a target outside
    ///   [`TxPolicy::allowed_to`]), [`EvmError::GasCap`], [`EvmError::SimulationReverted`],
    ///   [`EvmError::Journal`] (a step before the broadcast could not be recorded),
    ///   [`EvmError::Rejected`] (the node refused the broadcast), and [`EvmError::Rpc`] for any
    ///   method but `eth_sendRawTransaction` (fees, simulation, nonce).
    /// - [`EvmError::Rpc`] for `eth_sendRawTransaction`: the broadcast was ambiguous, the
    ///   transaction may be pending.
    /// - [`EvmError::Wallet`]: signing failed; if it was a replacement, the original is out
    ///   and may still be mined.
    /// - [`EvmError::Reverted`]: mined with status 0, gas paid.
    /// - [`EvmError::NotMined`]: no receipt after every allowed replacement; one may still be
    ///   mined.
    pub async fn send(
        &self,
        req: &TxRequest,
        log: &mut Vec<TxEvent>,
    ) -> Result<TxOutcome, EvmError> {
        self.check_allowed(req)?;
        let t0 = Instant::now();
        let ev = |step| TxEvent {
            label: req.label.clone(),
            step,
            at: t0.elapsed(),
        };
        let fees = self.fees().await?;
        let gas = self.simulate(req).await?;
        self.note(log, ev(TxStep::Simulated { gas_estimate: gas }))?;

        let lease = self.nonces.lease(&self.chain).await?;
        let nonce = lease.nonce();
        if let Some(cached) = lease.moved_from() {
            tracing::warn!(target: "defai::tx", label = %req.label, cached, nonce, "the wallet sent from elsewhere: signing past its pending transaction");
            self.note(log, ev(TxStep::NonceMoved { cached, nonce }))?;
        }
        let (hash, raw) = self.sign(req, nonce, gas, fees).await?;
        // On record before it can be on chain. If it cannot be recorded it is not sent, and the
        // lease is dropped unconsumed: the nonce stays free.
        self.note(
            log,
            ev(TxStep::Signed {
                nonce,
                hash,
                max_fee_wei: fees.max_fee_wei,
            }),
        )?;
        match self.broadcast(&raw, hash, &req.label, log, t0).await {
            Broadcast::Accepted => lease.consumed(),
            Broadcast::Refused(detail) => {
                // Our local count may be what is wrong: re-read it next time.
                lease.resync();
                return Err(EvmError::Rejected {
                    label: req.label.clone(),
                    detail,
                });
            }
            Broadcast::Unknown(detail) => {
                lease.resync();
                return Err(EvmError::Rpc {
                    method: "eth_sendRawTransaction",
                    detail: format!(
                        "{}: {detail}; transaction {hash} may still be pending",
                        req.label
                    ),
                });
            }
        }
        self.note_after(log, ev(TxStep::Sent { hash }));
        tracing::info!(target: "defai::tx", label = %req.label, %hash, nonce, "sent");

        let mut out = InFlight {
            req,
            t0,
            started: Instant::now(),
            nonce,
            gas,
            fees,
            hashes: vec![hash],
            replacements: 0,
        };
        let receipt = self.until_mined(&mut out, log).await?;
        self.mined(out, &receipt, log).await
    }

    /// Waits for a receipt of `out`, replacing it with bumped fees each time the wait times
    /// out, until one of its hashes is mined or the replacements run out (or would pass the
    /// gas cap): then the nonce is given up on.
    ///
    /// # Errors
    /// [`EvmError::NotMined`] after giving up; [`EvmError::Wallet`] when a replacement cannot
    /// be signed.
    async fn until_mined(
        &self,
        out: &mut InFlight<'_>,
        log: &mut Vec<TxEvent>,
    ) -> Result<TransactionReceipt, EvmError> {
        loop {
            let until = Instant::now() + self.policy.receipt_timeout;
            if let Some(r) = self.wait(&out.hashes, until).await? {
                return Ok(r);
            }
            let current = out.current();
            self.note_after(
                log,
                out.event(TxStep::TimedOut {
                    hash: current,
                    waited: out.started.elapsed(),
                }),
            );
            let bumped = bump(out.fees, self.policy.bump_pct);
            let capped = self
                .policy
                .gas_cap_wei
                .is_some_and(|cap| bumped.max_fee_wei > cap);
            if out.replacements >= self.policy.max_replacements || capped {
                let (req, nonce) = (out.req, out.nonce);
                let freed = self
                    .give_up(nonce, &out.hashes, &req.label, log, out.t0)
                    .await;
                return Err(EvmError::NotMined {
                    label: req.label.clone(),
                    nonce,
                    waited: out.started.elapsed(),
                    replacements: out.replacements,
                    hashes: out.hashes.iter().map(|h| h.to_string()).collect(),
                    freed,
                });
            }
            self.replace(out, current, bumped, log).await?;
        }
    }

    /// Signs `out` again at its nonce with `bumped` fees and, once that is on record,
    /// broadcasts it; a replacement the node may hold joins `out`'s hashes. A replacement that
    /// cannot be recorded is not sent (the wait goes on for the original), but counts.
    ///
    /// # Errors
    /// [`EvmError::Wallet`] when the replacement cannot be signed.
    async fn replace(
        &self,
        out: &mut InFlight<'_>,
        current: B256,
        bumped: Fees,
        log: &mut Vec<TxEvent>,
    ) -> Result<(), EvmError> {
        let (req, nonce) = (out.req, out.nonce);
        let (new_hash, new_raw) = self.sign(req, nonce, out.gas, bumped).await?;
        // On record before the broadcast, like the original.
        let replaced = out.event(TxStep::Replaced {
            nonce,
            old: current,
            new: new_hash,
            max_fee_wei: bumped.max_fee_wei,
        });
        if let Err(e) = self.note(log, replaced) {
            tracing::error!(target: "defai::tx", label = %req.label, nonce, error = %e, "replacement not journaled: not sent; still waiting for the original");
            out.replacements += 1;
            return Ok(());
        }
        out.replacements += 1;
        // The fee keeps rising with every try, accepted or not (within the cap): a refused
        // replacement is never signed again with the same bytes.
        out.fees = bumped;
        match self
            .broadcast(&new_raw, new_hash, &req.label, log, out.t0)
            .await
        {
            Broadcast::Accepted => {
                out.hashes.push(new_hash);
                tracing::warn!(target: "defai::tx", label = %req.label, nonce, old = %current, new = %new_hash, "not mined in time: replaced with bumped fees");
            }
            Broadcast::Unknown(detail) => {
                // It may be pending: wait on it too.
                out.hashes.push(new_hash);
                tracing::warn!(target: "defai::tx", label = %req.label, nonce, %detail, "replacement broadcast ambiguous");
            }
            // The original may have been mined meanwhile ("nonce too low"): the next wait
            // finds its receipt.
            Broadcast::Refused(detail) => {
                tracing::warn!(target: "defai::tx", label = %req.label, nonce, %detail, "replacement refused by the node");
                self.note_after(
                    log,
                    out.event(TxStep::ReplaceRefused {
                        nonce,
                        hash: new_hash,
                        detail,
                    }),
                );
            }
        }
        Ok(())
    }

    /// Records `out`'s `receipt` (the `mined` step) and makes it the outcome.
    ///
    /// # Errors
    /// [`EvmError::Reverted`] when it was mined with status 0, with the reason a replay of the
    /// call on its block gives.
    async fn mined(
        &self,
        out: InFlight<'_>,
        receipt: &TransactionReceipt,
        log: &mut Vec<TxEvent>,
    ) -> Result<TxOutcome, EvmError> {
        let req = out.req;
        let mined_hash = receipt.transaction_hash;
        let block = receipt.block_number.unwrap_or_default();
        let fee_wei = U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price);
        let status = receipt.status();
        self.note_after(
            log,
            out.event(TxStep::Mined {
                hash: mined_hash,
                block,
                status,
                fee_wei,
            }),
        );
        if !status {
            return Err(EvmError::Reverted {
                label: req.label.clone(),
                hash: mined_hash.to_string(),
                block,
                fee_wei: u128::from(receipt.gas_used).saturating_mul(receipt.effective_gas_price),
                reason: self.revert_reason(req, block).await,
            });
        }
        Ok(TxOutcome {
            hash: mined_hash,
            nonce: out.nonce,
            block,
            gas_used: receipt.gas_used,
            effective_gas_price: receipt.effective_gas_price,
            fee_wei,
            replacements: out.replacements,
            contract_address: receipt.contract_address,
        })
    }
}

/// A transaction out on the network, waiting to be mined: what it was signed with, and every
/// hash signed for its nonce since.
struct InFlight<'r> {
    req: &'r TxRequest,
    /// When `send` was called: every step's time is measured from it.
    t0: Instant,
    /// When the original was sent: the wait is measured from it.
    started: Instant,
    nonce: u64,
    /// The gas limit every signing uses.
    gas: u64,
    /// The fees of the latest signing.
    fees: Fees,
    /// The original first; only grows.
    hashes: Vec<B256>,
    /// Replacements signed so far (those not sent because they could not be recorded too).
    replacements: u32,
}

impl InFlight<'_> {
    /// A step of this transaction, timed from the start of `send`.
    fn event(&self, step: TxStep) -> TxEvent {
        TxEvent {
            label: self.req.label.clone(),
            step,
            at: self.t0.elapsed(),
        }
    }

    /// The latest hash signed for the nonce (`hashes` starts with the original: never empty).
    fn current(&self) -> B256 {
        self.hashes.last().copied().unwrap_or_default()
    }
}

/// Fees raised by `pct` percent (at least 10 %, what nodes demand of a replacement), rounded up.
pub fn bump(fees: Fees, pct: u32) -> Fees {
    let pct = u128::from(pct.max(10));
    let up = |v: u128| v.saturating_mul(100 + pct).div_ceil(100).max(v + 1);
    Fees {
        base_fee_wei: fees.base_fee_wei,
        priority_fee_wei: up(fees.priority_fee_wei),
        max_fee_wei: up(fees.max_fee_wei),
    }
}

/// Keeps the trait import used (the provider is called through it above).
#[allow(dead_code)]
fn _provider_in_scope(p: &alloy::providers::DynProvider) -> &dyn Provider {
    p
}

/// A transaction step as an audit-stream venue event.
pub fn to_venue_event(e: TxEvent) -> agent_core::venue::VenueEvent {
    let detail = match &e.step {
        TxStep::Simulated { gas_estimate } => format!("gas limit {gas_estimate}"),
        TxStep::Signed { max_fee_wei, .. } => format!("max fee {max_fee_wei} wei"),
        TxStep::Sent { .. } => String::new(),
        TxStep::BroadcastRetry { detail, .. } => detail.clone(),
        TxStep::TimedOut { waited, .. } => format!("no receipt after {waited:?}"),
        TxStep::Replaced {
            old, max_fee_wei, ..
        } => format!("replaces {old}, max fee {max_fee_wei} wei"),
        TxStep::ReplaceRefused { detail, .. } => format!("refused by the node: {detail}"),
        TxStep::NonceMoved { cached, nonce } => format!(
            "the account's pending count is {nonce}, past this sender's {cached}: a transaction this agent did not send holds nonce {cached}; signing at {nonce}"
        ),
        TxStep::GaveUp {
            latest,
            pending,
            freed,
            ..
        } => format!(
            "node: latest nonce count {latest}, pending {pending}; {}",
            if *freed {
                "nothing at this nonce can be mined: it is reused"
            } else {
                "still held by the node: the next transaction takes the one after"
            }
        ),
        TxStep::Mined {
            block,
            status,
            fee_wei,
            ..
        } => format!(
            "block {block}, status {}, fee {fee_wei} wei",
            u8::from(*status)
        ),
    };
    agent_core::venue::VenueEvent {
        step: e.step_name(),
        tx_hash: e.hash().map(|h| h.to_string()),
        nonce: e.nonce(),
        label: e.label,
        detail,
        intent_id: None,
    }
}
