//! Prediction markets on a real chain: Gnosis Conditional Tokens (CTF) with the
//! FixedProductMarketMaker (FPMM), as Omen uses them. [`PredictionMarkets`] creates markets
//! (condition + FPMM + initial funding), reads pool balances and prices, buys and sells outcome
//! tokens, reports the outcome as the oracle and redeems.
//!
//! Outcome tokens are ERC-1155 positions in the ConditionalTokens contract; an FPMM's pool
//! balances are simply its own balances of each position id (what the contract's private
//! `getPoolBalances()` reads), so [`crate::fpmm`] applied to them gives exactly what the contract
//! computes. Every state-changing call goes through [`TxSender::send`] (simulation, nonce
//! manager, receipts with timeouts); every amount a call moves is measured by balance difference:
//! the chain is the record.

use alloy::eips::BlockId;
use alloy::primitives::{Address, B256, U256};
use alloy::sol_types::SolCall;

use super::bindings::{
    IConditionalTokens, IERC20, IFixedProductMarketMaker, IFixedProductMarketMakerFactory,
};
use super::error::EvmError;
use super::rpc::Chain;
use super::tx::{TxEvent, TxOutcome, TxRequest, TxSender};

/// One FPMM over a single condition (one question with `position_ids.len()` outcomes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Market {
    /// The FixedProductMarketMaker (a clone made by the factory).
    pub address: Address,
    /// The ConditionalTokens condition: keccak256(oracle, question id, outcome slot count), as
    /// the contract's `getConditionId` derives it.
    pub condition_id: B256,
    /// The question the oracle answers; with the oracle and slot count it fixes the condition.
    pub question_id: B256,
    /// Who may report the payouts.
    pub oracle: Address,
    /// ERC-20 the market trades in and redeems to.
    pub collateral: Address,
    /// ERC-1155 position id of each outcome, in outcome order (index set `1 << i`).
    pub position_ids: Vec<U256>,
    /// Fee as a fraction of 1e18.
    pub fee: U256,
}

impl Market {
    /// Number of outcomes (the condition's outcome slots).
    pub fn outcomes(&self) -> usize {
        self.position_ids.len()
    }

    fn check_outcome(&self, outcome: usize) -> Result<(), EvmError> {
        if outcome < self.outcomes() {
            Ok(())
        } else {
            Err(EvmError::Contract {
                contract: self.address.to_string(),
                detail: format!(
                    "outcome {outcome} out of range: the market has {} outcomes",
                    self.outcomes()
                ),
            })
        }
    }

    /// Index sets of the single outcomes, `[1, 2, 4, ...]`: the basic partition.
    pub fn index_sets(&self) -> Vec<U256> {
        (0..self.outcomes()).map(|i| U256::from(1) << i).collect()
    }
}

/// Blocks per `eth_getLogs` request when discovering markets (public RPCs refuse wider
/// ranges; 10,000 is a common provider limit).
pub const LOG_CHUNK_BLOCKS: u64 = 10_000;

/// What [`PredictionMarkets::create_market`] sets up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketSpec {
    /// The question (any 32 bytes the oracle will report under).
    pub question_id: B256,
    /// Who will report the payouts (`reportPayouts` must come from this address).
    pub oracle: Address,
    /// The ERC-20 the market trades in and is funded with.
    pub collateral: Address,
    /// Outcome slots of the condition (2 for a yes/no question).
    pub outcomes: usize,
    /// Fraction of 1e18 (2 % = 2e16).
    pub fee: U256,
    /// Initial liquidity, collateral units.
    pub funding: U256,
    /// `addFunding`'s distribution hint: empty for even odds, else one weight per outcome; pool
    /// balance `i` becomes `funding × hint[i] / max(hint)` and the rest is sent back to the
    /// funder as outcome tokens. See [`hint_for_odds`].
    pub distribution_hint: Vec<U256>,
}

impl MarketSpec {
    /// A yes/no market at even odds.
    pub fn binary(
        question_id: B256,
        oracle: Address,
        collateral: Address,
        fee: U256,
        funding: U256,
    ) -> Self {
        Self {
            question_id,
            oracle,
            collateral,
            outcomes: 2,
            fee,
            funding,
            distribution_hint: Vec::new(),
        }
    }

    /// Starting odds proportional to `weights` (e.g. `[30, 70]`: outcome 0 at 30 %).
    pub fn with_odds(mut self, weights: &[u64]) -> Self {
        self.distribution_hint = hint_for_odds(weights);
        self
    }
}

/// The distribution hint that opens a market at probabilities proportional to `weights`.
///
/// An FPMM prices outcome `i` ∝ ∏_{j≠i} balance_j, so balances ∝ 1/weight_i give prices ∝
/// weight_i; with integers, balance_i ∝ ∏_{j≠i} weight_j. For two outcomes this is just the
/// weights swapped. Equal weights give an empty hint (the contract's even split). Exact up to
/// the contract's floor division of `funding × hint / max(hint)`.
pub fn hint_for_odds(weights: &[u64]) -> Vec<U256> {
    if weights.windows(2).all(|w| w[0] == w[1]) {
        return Vec::new();
    }
    (0..weights.len())
        .map(|i| {
            weights
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .fold(U256::from(1), |acc, (_, w)| acc * U256::from(*w))
        })
        .collect()
}

/// Collateral that redeeming `balances` pays under a reported payout vector, computed exactly as
/// `redeemPositions` does for the basic partition: Σ floor(balance_i × numerator_i / denominator).
pub fn redemption_value(balances: &[U256], numerators: &[U256], denominator: U256) -> U256 {
    if denominator.is_zero() {
        return U256::ZERO;
    }
    balances
        .iter()
        .zip(numerators)
        .map(|(b, n)| b.saturating_mul(*n) / denominator)
        .fold(U256::ZERO, |a, x| a.saturating_add(x))
}

/// A buy or sell, as measured on chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Trade {
    /// Index of the outcome bought or sold.
    pub outcome: usize,
    /// Collateral spent (buy) or received (sell), by balance difference.
    pub collateral: U256,
    /// Outcome tokens received (buy) or given (sell), by balance difference.
    pub tokens: U256,
    /// Every transaction sent, approvals included, in order.
    pub txs: Vec<TxOutcome>,
}

impl Trade {
    /// Native gas paid for all of the trade's transactions.
    pub fn fee_wei(&self) -> U256 {
        self.txs.iter().map(|t| t.fee_wei).sum()
    }
}

/// A redemption (after resolution) or a merge of full sets (any time), as measured on chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Settlement {
    /// Collateral received, by balance difference.
    pub collateral: U256,
    /// Outcome tokens given up, per outcome, by balance difference.
    pub tokens: Vec<U256>,
    /// The `mergePositions` or `redeemPositions` transaction.
    pub tx: TxOutcome,
}

/// Creates, trades and settles CTF/FPMM markets from one wallet.
pub struct PredictionMarkets {
    tx: TxSender,
    conditional_tokens: Address,
    factory: Address,
    events: Vec<TxEvent>,
}

impl std::fmt::Debug for PredictionMarkets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PredictionMarkets")
            .field("sender", &self.tx.address())
            .field("conditional_tokens", &self.conditional_tokens)
            .field("factory", &self.factory)
            .finish()
    }
}

fn latest() -> BlockId {
    BlockId::latest()
}

impl PredictionMarkets {
    /// `factory` is a FixedProductMarketMakerFactory; it is only needed to create markets.
    pub fn new(tx: TxSender, conditional_tokens: Address, factory: Address) -> Self {
        Self {
            tx,
            conditional_tokens,
            factory,
            events: Vec::new(),
        }
    }

    /// The wallet it trades from.
    pub fn address(&self) -> Address {
        self.tx.address()
    }
    /// Records every transaction step with `recorder` (the journal) before it happens.
    pub fn set_recorder(&mut self, recorder: std::sync::Arc<dyn agent_core::venue::StepRecorder>) {
        self.tx = self.tx.clone().with_recorder(recorder);
    }
    /// The wallet's transaction sender.
    pub fn sender(&self) -> &TxSender {
        &self.tx
    }
    /// The RPC endpoint.
    pub fn chain(&self) -> &Chain {
        self.tx.chain()
    }
    /// The ConditionalTokens contract holding every outcome position.
    pub fn conditional_tokens(&self) -> Address {
        self.conditional_tokens
    }
    /// The FixedProductMarketMakerFactory markets are created with.
    pub fn factory(&self) -> Address {
        self.factory
    }

    /// Lifecycle events of every transaction sent so far (simulation, signing, receipt, ...).
    pub fn drain_events(&mut self) -> Vec<TxEvent> {
        std::mem::take(&mut self.events)
    }

    async fn send(&mut self, req: TxRequest) -> Result<TxOutcome, EvmError> {
        let mut log = Vec::new();
        let out = self.tx.send(&req, &mut log).await;
        self.events.extend(log);
        out
    }

    async fn ct<C: SolCall>(&self, call: C) -> Result<C::Return, EvmError> {
        self.chain()
            .view(self.conditional_tokens, call, latest())
            .await
    }

    fn refuse(contract: Address, detail: String) -> EvmError {
        EvmError::Contract {
            contract: contract.to_string(),
            detail,
        }
    }

    // ---- reading ----

    /// The binary markets to trade, found on chain: every FixedProductMarketMaker the factory
    /// created from block `from_block` on with `collateral` on this ConditionalTokens, plus the
    /// `listed` addresses, kept only when their condition was prepared by `oracle`. Each comes
    /// with its question id (from the condition's `ConditionPreparation` event). Deduplicated,
    /// in creation order then listing order.
    ///
    /// # Errors
    /// An RPC failure, or a listed market that is not a market of this ConditionalTokens and
    /// `oracle` (named).
    pub async fn discover(
        &self,
        from_block: u64,
        collateral: Address,
        oracle: Address,
        listed: &[Address],
    ) -> Result<Vec<(Address, B256)>, EvmError> {
        use alloy::sol_types::SolEvent;
        let chain = self.chain();
        let head = chain.block_number().await?;
        // Every condition `oracle` prepared since `from_block`: condition id → question id.
        let prepared_filter = alloy::rpc::types::Filter::new()
            .address(self.conditional_tokens)
            .event_signature(IConditionalTokens::ConditionPreparation::SIGNATURE_HASH)
            .topic2(oracle.into_word());
        let mut prepared = std::collections::HashMap::new();
        for log in chain
            .logs_between(&prepared_filter, from_block, head, LOG_CHUNK_BLOCKS)
            .await?
        {
            if let Ok(e) = log.log_decode::<IConditionalTokens::ConditionPreparation>() {
                let e = e.inner.data;
                prepared.entry(e.conditionId).or_insert(e.questionId);
            }
        }
        let created = alloy::rpc::types::Filter::new()
            .address(self.factory)
            .event_signature(
                IFixedProductMarketMakerFactory::FixedProductMarketMakerCreation::SIGNATURE_HASH,
            )
            .topic2(self.conditional_tokens.into_word())
            .topic3(collateral.into_word());
        let mut found: Vec<(Address, B256)> = Vec::new();
        for log in chain
            .logs_between(&created, from_block, head, LOG_CHUNK_BLOCKS)
            .await?
        {
            let Ok(ev) = log
                .log_decode::<IFixedProductMarketMakerFactory::FixedProductMarketMakerCreation>()
            else {
                continue;
            };
            let ev = ev.inner.data;
            // One binary condition per market: what the venue trades.
            let [condition] = ev.conditionIds.as_slice() else {
                continue;
            };
            if let Some(q) = prepared.get(condition)
                && !found.iter().any(|(a, _)| *a == ev.fixedProductMarketMaker)
            {
                found.push((ev.fixedProductMarketMaker, *q));
            }
        }
        for &address in listed {
            if found.iter().any(|(a, _)| *a == address) {
                continue;
            }
            let not_a_market =
                |e: EvmError| Self::refuse(address, format!("not a FixedProductMarketMaker: {e}"));
            let theirs = chain
                .view(
                    address,
                    IFixedProductMarketMaker::collateralTokenCall {},
                    latest(),
                )
                .await
                .map_err(not_a_market)?;
            if theirs != collateral {
                return Err(Self::refuse(
                    address,
                    format!("its collateral is {theirs}, not {collateral}"),
                ));
            }
            let condition = chain
                .view(
                    address,
                    IFixedProductMarketMaker::conditionIdsCall { index: U256::ZERO },
                    latest(),
                )
                .await
                .map_err(not_a_market)?;
            let q = prepared.get(&condition).ok_or_else(|| {
                Self::refuse(
                    address,
                    format!(
                        "its condition {condition} was not prepared by oracle {oracle} (searched from block {from_block})"
                    ),
                )
            })?;
            found.push((address, *q));
        }
        Ok(found)
    }

    /// Loads an existing market and checks it: it must run on our ConditionalTokens, over exactly
    /// one condition, and that condition must be `(oracle, question_id)`'s. Position ids are
    /// computed by the ConditionalTokens contract (collection ids are elliptic-curve points).
    ///
    /// # Errors
    /// [`EvmError::Contract`] naming the market when it runs on another ConditionalTokens,
    /// spans several conditions, or its condition is not `(oracle, question_id)`'s with at least
    /// two outcomes, or when a view call reverts (not an FPMM); [`EvmError::Rpc`] when the RPC
    /// fails.
    ///
    /// # Panics
    /// If the ConditionalTokens contract reports more outcome slots than a `usize` holds (the
    /// Gnosis contract caps them at 256).
    pub async fn market(
        &self,
        address: Address,
        question_id: B256,
        oracle: Address,
    ) -> Result<Market, EvmError> {
        let chain = self.chain();
        let ct = chain
            .view(
                address,
                IFixedProductMarketMaker::conditionalTokensCall {},
                latest(),
            )
            .await?;
        if ct != self.conditional_tokens {
            return Err(Self::refuse(
                address,
                format!(
                    "market runs on ConditionalTokens {ct}, not {}",
                    self.conditional_tokens
                ),
            ));
        }
        let collateral = chain
            .view(
                address,
                IFixedProductMarketMaker::collateralTokenCall {},
                latest(),
            )
            .await?;
        let fee = chain
            .view(address, IFixedProductMarketMaker::feeCall {}, latest())
            .await?;
        let condition_id = self.single_condition(address).await?;
        let slots = self
            .question_slots(address, condition_id, question_id, oracle)
            .await?;
        let n = usize::try_from(slots).expect("at most 256 slots");
        Ok(Market {
            address,
            condition_id,
            question_id,
            oracle,
            collateral,
            position_ids: self.position_ids(condition_id, collateral, n).await?,
            fee,
        })
    }

    /// The one condition of the market at `address`; a market over several is refused.
    async fn single_condition(&self, address: Address) -> Result<B256, EvmError> {
        let chain = self.chain();
        let condition_id = chain
            .view(
                address,
                IFixedProductMarketMaker::conditionIdsCall { index: U256::ZERO },
                latest(),
            )
            .await?;
        // A public array getter reverts past the end: a second condition means a combined
        // (multi-question) market, which this connector does not trade.
        if chain
            .view(
                address,
                IFixedProductMarketMaker::conditionIdsCall {
                    index: U256::from(1),
                },
                latest(),
            )
            .await
            .is_ok()
        {
            return Err(Self::refuse(
                address,
                "market spans several conditions; only single-condition markets are supported"
                    .into(),
            ));
        }
        Ok(condition_id)
    }

    /// The outcome slots of `condition_id`, refused unless it is `(oracle, question_id)`'s
    /// condition with at least two outcomes.
    async fn question_slots(
        &self,
        address: Address,
        condition_id: B256,
        question_id: B256,
        oracle: Address,
    ) -> Result<U256, EvmError> {
        let slots = self
            .ct(IConditionalTokens::getOutcomeSlotCountCall {
                conditionId: condition_id,
            })
            .await?;
        let expected = self
            .ct(IConditionalTokens::getConditionIdCall {
                oracle,
                questionId: question_id,
                outcomeSlotCount: slots,
            })
            .await?;
        if slots < U256::from(2) || expected != condition_id {
            return Err(Self::refuse(
                address,
                format!(
                    "condition {condition_id} ({slots} slots) is not question {question_id} of oracle {oracle}"
                ),
            ));
        }
        Ok(slots)
    }

    /// The ERC-1155 position id of each of the `n` outcomes of `condition_id` in `collateral`,
    /// as the ConditionalTokens contract computes them.
    async fn position_ids(
        &self,
        condition_id: B256,
        collateral: Address,
        n: usize,
    ) -> Result<Vec<U256>, EvmError> {
        let mut position_ids = Vec::with_capacity(n);
        for i in 0..n {
            let collection = self
                .ct(IConditionalTokens::getCollectionIdCall {
                    parentCollectionId: B256::ZERO,
                    conditionId: condition_id,
                    indexSet: U256::from(1) << i,
                })
                .await?;
            position_ids.push(
                self.ct(IConditionalTokens::getPositionIdCall {
                    collateralToken: collateral,
                    collectionId: collection,
                })
                .await?,
            );
        }
        Ok(position_ids)
    }

    /// `who`'s balance of each outcome token at block `at`, in collateral units (outcome
    /// tokens carry the collateral's decimals), in outcome order.
    ///
    /// # Errors
    /// [`EvmError::Contract`] when `balanceOfBatch` reverts or returns the wrong number of
    /// values; [`EvmError::Rpc`] when the RPC fails.
    pub async fn outcome_balances_at(
        &self,
        market: &Market,
        who: Address,
        at: BlockId,
    ) -> Result<Vec<U256>, EvmError> {
        let got = self
            .chain()
            .view(
                self.conditional_tokens,
                IConditionalTokens::balanceOfBatchCall {
                    owners: vec![who; market.outcomes()],
                    ids: market.position_ids.clone(),
                },
                at,
            )
            .await?;
        if got.len() != market.outcomes() {
            return Err(Self::refuse(
                self.conditional_tokens,
                format!(
                    "balanceOfBatch returned {} values for {} ids",
                    got.len(),
                    market.outcomes()
                ),
            ));
        }
        Ok(got)
    }

    /// [`PredictionMarkets::outcome_balances_at`] the latest block.
    ///
    /// # Errors
    /// As [`PredictionMarkets::outcome_balances_at`].
    pub async fn outcome_balances(
        &self,
        market: &Market,
        who: Address,
    ) -> Result<Vec<U256>, EvmError> {
        self.outcome_balances_at(market, who, latest()).await
    }

    /// The market's pool: its own balance of each outcome token, at `at`.
    ///
    /// # Errors
    /// As [`PredictionMarkets::outcome_balances_at`].
    pub async fn pool_balances_at(
        &self,
        market: &Market,
        at: BlockId,
    ) -> Result<Vec<U256>, EvmError> {
        self.outcome_balances_at(market, market.address, at).await
    }

    /// The market's pool balances at the latest block.
    ///
    /// # Errors
    /// As [`PredictionMarkets::outcome_balances_at`].
    pub async fn pool_balances(&self, market: &Market) -> Result<Vec<U256>, EvmError> {
        self.pool_balances_at(market, latest()).await
    }

    /// Marginal prices (probabilities) from the pool balances. Floats: for signals only.
    ///
    /// # Errors
    /// As [`PredictionMarkets::outcome_balances_at`].
    pub async fn prices(&self, market: &Market) -> Result<Vec<f64>, EvmError> {
        Ok(crate::fpmm::prices(&self.pool_balances(market).await?))
    }

    /// The contract's `calcBuyAmount`: outcome tokens `investment` collateral buys now.
    ///
    /// # Errors
    /// [`EvmError::Contract`] when `outcome` is out of range or the call reverts (e.g. an
    /// empty pool); [`EvmError::Rpc`] when the RPC fails.
    pub async fn calc_buy_amount(
        &self,
        market: &Market,
        investment: U256,
        outcome: usize,
    ) -> Result<U256, EvmError> {
        market.check_outcome(outcome)?;
        self.chain()
            .view(
                market.address,
                IFixedProductMarketMaker::calcBuyAmountCall {
                    investmentAmount: investment,
                    outcomeIndex: U256::from(outcome),
                },
                latest(),
            )
            .await
    }

    /// The contract's `calcSellAmount`: outcome tokens to give for exactly `return_amount`.
    ///
    /// # Errors
    /// [`EvmError::Contract`] when `outcome` is out of range or the call reverts (a return the
    /// pool cannot pay); [`EvmError::Rpc`] when the RPC fails.
    pub async fn calc_sell_amount(
        &self,
        market: &Market,
        return_amount: U256,
        outcome: usize,
    ) -> Result<U256, EvmError> {
        market.check_outcome(outcome)?;
        self.chain()
            .view(
                market.address,
                IFixedProductMarketMaker::calcSellAmountCall {
                    returnAmount: return_amount,
                    outcomeIndex: U256::from(outcome),
                },
                latest(),
            )
            .await
    }

    /// `who`'s balance of the market's collateral, in its smallest units.
    ///
    /// # Errors
    /// [`EvmError::Contract`] when `balanceOf` reverts; [`EvmError::Rpc`] when the RPC fails.
    pub async fn collateral_balance(
        &self,
        market: &Market,
        who: Address,
    ) -> Result<U256, EvmError> {
        self.chain()
            .view(
                market.collateral,
                IERC20::balanceOfCall { owner: who },
                latest(),
            )
            .await
    }

    /// The reported payout vector `(numerators, denominator)`, or `None` before resolution.
    ///
    /// # Errors
    /// [`EvmError::Contract`] when a ConditionalTokens view reverts; [`EvmError::Rpc`] when the
    /// RPC fails.
    pub async fn payouts(&self, market: &Market) -> Result<Option<(Vec<U256>, U256)>, EvmError> {
        let den = self
            .ct(IConditionalTokens::payoutDenominatorCall {
                conditionId: market.condition_id,
            })
            .await?;
        if den.is_zero() {
            return Ok(None);
        }
        let mut nums = Vec::with_capacity(market.outcomes());
        for i in 0..market.outcomes() {
            nums.push(
                self.ct(IConditionalTokens::payoutNumeratorsCall {
                    conditionId: market.condition_id,
                    index: U256::from(i),
                })
                .await?,
            );
        }
        Ok(Some((nums, den)))
    }

    /// Whether the oracle has reported (`payoutDenominator > 0`).
    ///
    /// # Errors
    /// As [`PredictionMarkets::payouts`].
    pub async fn is_resolved(&self, market: &Market) -> Result<bool, EvmError> {
        Ok(!self
            .ct(IConditionalTokens::payoutDenominatorCall {
                conditionId: market.condition_id,
            })
            .await?
            .is_zero())
    }

    // ---- writing ----

    /// Approves `spender` for exactly `amount` of `token` when the current allowance is short.
    /// Never an unlimited approval.
    async fn approve_exact(
        &mut self,
        token: Address,
        spender: Address,
        amount: U256,
        txs: &mut Vec<TxOutcome>,
    ) -> Result<(), EvmError> {
        let allowance = self
            .chain()
            .view(
                token,
                IERC20::allowanceCall {
                    owner: self.address(),
                    spender,
                },
                latest(),
            )
            .await?;
        if allowance < amount {
            let call = IERC20::approveCall {
                spender,
                value: amount,
            };
            txs.push(
                self.send(TxRequest::call("approve", token, call.abi_encode()))
                    .await?,
            );
        }
        Ok(())
    }

    /// Prepares the condition (unless it already is), creates the FPMM through the factory
    /// (its address read from the `FixedProductMarketMakerCreation` event of the receipt),
    /// approves exactly `funding` and adds it with the spec's distribution hint.
    ///
    /// # Errors
    /// Before anything is sent, [`EvmError::Contract`] when the spec is invalid (outcomes
    /// outside 2..=256, a hint of the wrong length, with a zero or leaving an outcome without
    /// liquidity, zero funding, a fee of 1e18 or more) or the wallet holds less collateral than
    /// `funding`. Then as [`TxSender::send`] for each transaction, and [`EvmError::Contract`]
    /// when the creation receipt has no matching event or the new market fails
    /// [`PredictionMarkets::market`]'s checks, [`EvmError::Rpc`] when a read fails;
    /// transactions already mined stay mined.
    pub async fn create_market(&mut self, spec: &MarketSpec) -> Result<Market, EvmError> {
        let ct = self.conditional_tokens;
        Self::check_spec(ct, spec)?;
        // Nothing is sent unless the funding is there.
        self.require_collateral(spec.collateral, spec.funding)
            .await?;
        let condition_id = self.prepared_condition(spec).await?;

        let call = IFixedProductMarketMakerFactory::createFixedProductMarketMakerCall {
            conditionalTokens: ct,
            collateralToken: spec.collateral,
            conditionIds: vec![condition_id],
            fee: spec.fee,
        };
        let created = self
            .send(TxRequest::call(
                "createFixedProductMarketMaker",
                self.factory,
                call.abi_encode(),
            ))
            .await?;
        let address = self.created_market(&created, spec, condition_id).await?;
        let market = self.market(address, spec.question_id, spec.oracle).await?;

        self.approve_exact(spec.collateral, address, spec.funding, &mut Vec::new())
            .await?;
        let call = IFixedProductMarketMaker::addFundingCall {
            addedFunds: spec.funding,
            distributionHint: spec.distribution_hint.clone(),
        };
        self.send(TxRequest::call("addFunding", address, call.abi_encode()))
            .await?;
        tracing::info!(target: "defai::prediction", market = %address, condition = %condition_id, funding = %spec.funding, "market created");
        Ok(market)
    }

    /// Refuses a spec [`PredictionMarkets::create_market`] cannot honour (named against the
    /// ConditionalTokens contract `ct`): outcomes outside 2..=256, a hint of the wrong length,
    /// with a zero or leaving an outcome without liquidity, zero funding, a fee of 1e18 or more.
    fn check_spec(ct: Address, spec: &MarketSpec) -> Result<(), EvmError> {
        if !(2..=256).contains(&spec.outcomes) {
            return Err(Self::refuse(
                ct,
                format!("{} outcomes: a condition has 2 to 256", spec.outcomes),
            ));
        }
        if !spec.distribution_hint.is_empty()
            && (spec.distribution_hint.len() != spec.outcomes
                || spec.distribution_hint.iter().any(|h| h.is_zero()))
        {
            return Err(Self::refuse(
                ct,
                format!(
                    "distribution hint {:?} must have {} non-zero weights",
                    spec.distribution_hint, spec.outcomes
                ),
            ));
        }
        if spec.funding.is_zero() || spec.fee >= crate::fpmm::one() {
            return Err(Self::refuse(
                ct,
                format!(
                    "funding {} must be non-zero and fee {} below 1e18",
                    spec.funding, spec.fee
                ),
            ));
        }
        if let Some(max) = spec.distribution_hint.iter().max()
            && spec
                .distribution_hint
                .iter()
                .any(|h| (spec.funding.saturating_mul(*h) / *max).is_zero())
        {
            return Err(Self::refuse(
                ct,
                format!(
                    "distribution hint {:?} leaves an outcome without liquidity at funding {}",
                    spec.distribution_hint, spec.funding
                ),
            ));
        }
        Ok(())
    }

    /// The id of the spec's condition, prepared first unless it already is.
    async fn prepared_condition(&mut self, spec: &MarketSpec) -> Result<B256, EvmError> {
        let outcomes = U256::from(spec.outcomes);
        let condition_id = self
            .ct(IConditionalTokens::getConditionIdCall {
                oracle: spec.oracle,
                questionId: spec.question_id,
                outcomeSlotCount: outcomes,
            })
            .await?;
        let slots = self
            .ct(IConditionalTokens::getOutcomeSlotCountCall {
                conditionId: condition_id,
            })
            .await?;
        if slots.is_zero() {
            let call = IConditionalTokens::prepareConditionCall {
                oracle: spec.oracle,
                questionId: spec.question_id,
                outcomeSlotCount: outcomes,
            };
            self.send(TxRequest::call(
                "prepareCondition",
                self.conditional_tokens,
                call.abi_encode(),
            ))
            .await?;
        }
        Ok(condition_id)
    }

    async fn require_collateral(&self, token: Address, amount: U256) -> Result<(), EvmError> {
        let have = self
            .chain()
            .view(
                token,
                IERC20::balanceOfCall {
                    owner: self.address(),
                },
                latest(),
            )
            .await?;
        if have < amount {
            return Err(Self::refuse(
                token,
                format!("collateral balance {have} is below the {amount} needed"),
            ));
        }
        Ok(())
    }

    /// The FPMM address from the factory's creation event in `created`'s receipt.
    async fn created_market(
        &self,
        created: &TxOutcome,
        spec: &MarketSpec,
        condition_id: B256,
    ) -> Result<Address, EvmError> {
        let receipt = self
            .chain()
            .receipt(created.hash)
            .await?
            .ok_or_else(|| EvmError::Rpc {
                method: "eth_getTransactionReceipt",
                detail: format!("no receipt for mined transaction {}", created.hash),
            })?;
        for log in receipt.inner.logs() {
            if log.address() != self.factory {
                continue;
            }
            let Ok(ev) = log
                .log_decode::<IFixedProductMarketMakerFactory::FixedProductMarketMakerCreation>()
            else {
                continue;
            };
            let ev = ev.inner.data;
            if ev.creator == self.address()
                && ev.conditionalTokens == self.conditional_tokens
                && ev.collateralToken == spec.collateral
                && ev.conditionIds == [condition_id]
                && ev.fee == spec.fee
            {
                return Ok(ev.fixedProductMarketMaker);
            }
        }
        Err(Self::refuse(
            self.factory,
            format!(
                "transaction {} has no matching FixedProductMarketMakerCreation event",
                created.hash
            ),
        ))
    }

    /// Buys `outcome` with `investment` collateral, receiving at least `min_tokens`. The
    /// contract's quote is checked before anything is sent (an approval is a transaction too);
    /// the collateral approval to the FPMM is exactly `investment`, never unlimited.
    ///
    /// # Errors
    /// Before anything is sent: [`EvmError::Contract`] for an outcome out of range or a
    /// collateral balance below `investment`, [`EvmError::SimulationReverted`] when
    /// `calcBuyAmount` gives less than `min_tokens`. Then as [`TxSender::send`] (an approval
    /// may be mined when the buy fails).
    pub async fn buy(
        &mut self,
        market: &Market,
        outcome: usize,
        investment: U256,
        min_tokens: U256,
    ) -> Result<Trade, EvmError> {
        market.check_outcome(outcome)?;
        let quoted = self.calc_buy_amount(market, investment, outcome).await?;
        if quoted < min_tokens {
            return Err(EvmError::SimulationReverted {
                label: "buy".into(),
                reason: format!("calcBuyAmount gives {quoted}, below the minimum {min_tokens}"),
            });
        }
        self.require_collateral(market.collateral, investment)
            .await?;
        let me = self.address();
        let coll_before = self.collateral_balance(market, me).await?;
        let held_before = self.outcome_balances(market, me).await?[outcome];

        let mut txs = Vec::new();
        self.approve_exact(market.collateral, market.address, investment, &mut txs)
            .await?;
        let call = IFixedProductMarketMaker::buyCall {
            investmentAmount: investment,
            outcomeIndex: U256::from(outcome),
            minOutcomeTokensToBuy: min_tokens,
        };
        txs.push(
            self.send(TxRequest::call(
                "fpmm buy",
                market.address,
                call.abi_encode(),
            ))
            .await?,
        );

        let coll_after = self.collateral_balance(market, me).await?;
        let held_after = self.outcome_balances(market, me).await?[outcome];
        Ok(Trade {
            outcome,
            collateral: coll_before.saturating_sub(coll_after),
            tokens: held_after.saturating_sub(held_before),
            txs,
        })
    }

    /// Sells `outcome` tokens for exactly `return_amount` collateral, giving at most
    /// `max_tokens`.
    ///
    /// The FPMM pulls the tokens with `safeTransferFrom`, which needs it to be our ERC-1155
    /// operator: ERC-1155 has no per-amount approval, only `setApprovalForAll`, which covers
    /// every position we hold in this ConditionalTokens contract (all markets). So the approval
    /// is granted just for the sell and revoked right after (also when the sell fails); an
    /// approval that already existed is left as it was.
    ///
    /// # Errors
    /// Before anything is sent: [`EvmError::Contract`] for an outcome out of range or fewer
    /// tokens held than the sell needs, [`EvmError::SimulationReverted`] when `calcSellAmount`
    /// needs more than `max_tokens`. Then as [`TxSender::send`] for the approval or the sell
    /// (a failed revocation is only logged).
    pub async fn sell(
        &mut self,
        market: &Market,
        outcome: usize,
        return_amount: U256,
        max_tokens: U256,
    ) -> Result<Trade, EvmError> {
        market.check_outcome(outcome)?;
        let needed = self
            .calc_sell_amount(market, return_amount, outcome)
            .await?;
        if needed > max_tokens {
            return Err(EvmError::SimulationReverted {
                label: "sell".into(),
                reason: format!(
                    "calcSellAmount needs {needed} tokens, above the maximum {max_tokens}"
                ),
            });
        }
        let me = self.address();
        let coll_before = self.collateral_balance(market, me).await?;
        let held_before = self.outcome_balances(market, me).await?[outcome];
        if held_before < needed {
            return Err(Self::refuse(
                market.address,
                format!("selling needs {needed} outcome-{outcome} tokens, {held_before} held"),
            ));
        }

        let ct = self.conditional_tokens;
        let approved = self
            .ct(IConditionalTokens::isApprovedForAllCall {
                owner: me,
                operator: market.address,
            })
            .await?;
        let mut txs = Vec::new();
        if !approved {
            let call = IConditionalTokens::setApprovalForAllCall {
                operator: market.address,
                approved: true,
            };
            txs.push(
                self.send(TxRequest::call("setApprovalForAll", ct, call.abi_encode()))
                    .await?,
            );
        }
        let call = IFixedProductMarketMaker::sellCall {
            returnAmount: return_amount,
            outcomeIndex: U256::from(outcome),
            maxOutcomeTokensToSell: max_tokens,
        };
        let sold = self
            .send(TxRequest::call(
                "fpmm sell",
                market.address,
                call.abi_encode(),
            ))
            .await;
        let revoked = if approved {
            None
        } else {
            let call = IConditionalTokens::setApprovalForAllCall {
                operator: market.address,
                approved: false,
            };
            let out = self
                .send(TxRequest::call("revoke approval", ct, call.abi_encode()))
                .await;
            if let Err(e) = &out {
                tracing::warn!(target: "defai::prediction", market = %market.address, error = %e, "could not revoke the ERC-1155 operator approval");
            }
            out.ok()
        };
        txs.push(sold?);
        txs.extend(revoked);

        let coll_after = self.collateral_balance(market, me).await?;
        let held_after = self.outcome_balances(market, me).await?[outcome];
        Ok(Trade {
            outcome,
            collateral: coll_after.saturating_sub(coll_before),
            tokens: held_before.saturating_sub(held_after),
            txs,
        })
    }

    /// Merges `amount` full sets (one of every outcome) back into `amount` collateral. Works
    /// before resolution; needs no approval (the sender's own positions are burned).
    ///
    /// # Errors
    /// As [`TxSender::send`] (holding fewer than `amount` of any outcome reverts in the
    /// simulation); [`EvmError::Contract`] or [`EvmError::Rpc`] when a balance cannot be read.
    pub async fn merge(&mut self, market: &Market, amount: U256) -> Result<Settlement, EvmError> {
        let me = self.address();
        let coll_before = self.collateral_balance(market, me).await?;
        let held_before = self.outcome_balances(market, me).await?;
        let call = IConditionalTokens::mergePositionsCall {
            collateralToken: market.collateral,
            parentCollectionId: B256::ZERO,
            conditionId: market.condition_id,
            partition: market.index_sets(),
            amount,
        };
        let tx = self
            .send(TxRequest::call(
                "mergePositions",
                self.conditional_tokens,
                call.abi_encode(),
            ))
            .await?;
        self.settled(market, coll_before, held_before, tx).await
    }

    async fn settled(
        &self,
        market: &Market,
        coll_before: U256,
        held_before: Vec<U256>,
        tx: TxOutcome,
    ) -> Result<Settlement, EvmError> {
        let me = self.address();
        let coll_after = self.collateral_balance(market, me).await?;
        let held_after = self.outcome_balances(market, me).await?;
        Ok(Settlement {
            collateral: coll_after.saturating_sub(coll_before),
            tokens: held_before
                .iter()
                .zip(&held_after)
                .map(|(b, a)| b.saturating_sub(*a))
                .collect(),
            tx,
        })
    }

    /// Reports the outcome: `payouts[i]` is outcome `i`'s numerator (`[1, 0]`: outcome 0 won).
    /// Only the market's oracle can: this sender must be it (the condition id is derived from
    /// `msg.sender`, so anyone else would address a condition that does not exist).
    ///
    /// # Errors
    /// [`EvmError::Contract`], nothing sent, when this sender is not the oracle or `payouts`
    /// has the wrong length or is all zero; then as [`TxSender::send`] (a condition already
    /// reported reverts in the simulation).
    pub async fn resolve(
        &mut self,
        market: &Market,
        payouts: &[U256],
    ) -> Result<TxOutcome, EvmError> {
        if self.address() != market.oracle {
            return Err(Self::refuse(
                market.address,
                format!(
                    "only the oracle {} can report; this sender is {}",
                    market.oracle,
                    self.address()
                ),
            ));
        }
        if payouts.len() != market.outcomes() || payouts.iter().all(|p| p.is_zero()) {
            return Err(Self::refuse(
                market.address,
                format!(
                    "payouts {payouts:?}: need {} numerators, not all zero",
                    market.outcomes()
                ),
            ));
        }
        let call = IConditionalTokens::reportPayoutsCall {
            questionId: market.question_id,
            payouts: payouts.to_vec(),
        };
        self.send(TxRequest::call(
            "reportPayouts",
            self.conditional_tokens,
            call.abi_encode(),
        ))
        .await
    }

    /// Redeems every outcome token held (parent collection 0, index sets `[1, 2, ...]`) after
    /// resolution. The collateral received is measured by balance difference; it equals
    /// [`redemption_value`] of the balances held before.
    ///
    /// # Errors
    /// [`EvmError::Contract`], nothing sent, when the condition is not resolved yet; then as
    /// [`TxSender::send`]; [`EvmError::Contract`] or [`EvmError::Rpc`] when a balance or the
    /// payouts cannot be read.
    pub async fn redeem(&mut self, market: &Market) -> Result<Settlement, EvmError> {
        if !self.is_resolved(market).await? {
            return Err(Self::refuse(
                market.address,
                format!("condition {} is not resolved yet", market.condition_id),
            ));
        }
        let me = self.address();
        let coll_before = self.collateral_balance(market, me).await?;
        let held_before = self.outcome_balances(market, me).await?;
        let call = IConditionalTokens::redeemPositionsCall {
            collateralToken: market.collateral,
            parentCollectionId: B256::ZERO,
            conditionId: market.condition_id,
            indexSets: market.index_sets(),
        };
        let tx = self
            .send(TxRequest::call(
                "redeemPositions",
                self.conditional_tokens,
                call.abi_encode(),
            ))
            .await?;
        self.settled(market, coll_before, held_before, tx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_invert_the_odds() {
        assert!(hint_for_odds(&[50, 50]).is_empty());
        assert_eq!(
            hint_for_odds(&[30, 70]),
            vec![U256::from(70), U256::from(30)]
        );
        // Three outcomes at 20/30/50: balances ∝ 1/p → hints 1500, 1000, 600.
        let h = hint_for_odds(&[20, 30, 50]);
        assert_eq!(h, vec![U256::from(1500), U256::from(1000), U256::from(600)]);
        let p = crate::fpmm::prices(&h);
        assert!((p[0] - 0.2).abs() < 1e-12 && (p[2] - 0.5).abs() < 1e-12);
    }

    #[test]
    fn redemption_floors_each_position() {
        let b = [U256::from(7), U256::from(5)];
        assert_eq!(
            redemption_value(&b, &[U256::from(1), U256::from(0)], U256::from(1)),
            U256::from(7)
        );
        // Each position floors on its own: 7·1/3 + 5·2/3 → 2 + 3.
        assert_eq!(
            redemption_value(&b, &[U256::from(1), U256::from(2)], U256::from(3)),
            U256::from(5)
        );
        assert_eq!(
            redemption_value(&b, &[U256::from(1)], U256::ZERO),
            U256::ZERO
        );
    }
}
