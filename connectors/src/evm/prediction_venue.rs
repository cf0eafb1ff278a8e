//! The Gnosis CTF/FPMM markets as a [`PredictionVenue`]: what a bettor's agent bets on in
//! live mode. Model features come from a forecasts table (market address → probability), the
//! output of whatever forecaster the operator runs.

use std::collections::BTreeMap;

use agent_core::amount::Token;
use agent_core::fpmm::prices;
use agent_core::prediction::{BetFill, MarketView, PredictionVenue};
use agent_core::venue::{VenueError, VenueEvent};
use agent_core::{Bet, IntentId};
use alloy::primitives::{Address, B256, U256};

use super::error::EvmError;
use super::prediction::{Market, PredictionMarkets};
use super::tx::to_venue_event;

fn venue_error(e: EvmError) -> VenueError {
    match e {
        EvmError::Rpc { .. } => VenueError::Transport(e.to_string()),
        other => VenueError::Rejected(other.to_string()),
    }
}

/// Bets from one wallet on a fixed set of markets.
#[derive(Debug)]
pub struct ChainPredictionVenue {
    pm: PredictionMarkets,
    markets: Vec<Market>,
    collateral: Token,
    forecasts: BTreeMap<Address, f64>,
    events: Vec<VenueEvent>,
    /// The chain id the venue must stay on, checked every `check_every` cycles (`None`: not
    /// checked).
    chain_check: Option<(u64, u32)>,
    health_checks: u32,
}

impl ChainPredictionVenue {
    /// Loads and checks each `(address, question_id)` market of `oracle`; `forecasts` gives
    /// each market's probability of outcome 0, the model's one feature (a market without one
    /// gets no features, so no bet).
    ///
    /// # Errors
    /// As [`PredictionMarkets::market`], for the first market that fails its checks.
    pub async fn open(
        pm: PredictionMarkets,
        markets: &[(Address, B256)],
        oracle: Address,
        collateral: Token,
        forecasts: BTreeMap<Address, f64>,
    ) -> Result<Self, EvmError> {
        let mut loaded = Vec::with_capacity(markets.len());
        for (address, question) in markets {
            loaded.push(pm.market(*address, *question, oracle).await?);
        }
        Ok(Self {
            pm,
            markets: loaded,
            collateral,
            forecasts,
            events: Vec::new(),
            chain_check: None,
            health_checks: 0,
        })
    }

    /// Re-checks every `every` cycles (0: never) that the RPC still reports `chain_id`: a
    /// change halts the agent (its health check fails).
    pub fn with_chain_check(mut self, chain_id: u64, every: u32) -> Self {
        self.chain_check = (every > 0).then_some((chain_id, every));
        self
    }

    fn find(&self, id: &str) -> Result<&Market, VenueError> {
        self.markets
            .iter()
            .find(|m| m.address.to_string().eq_ignore_ascii_case(id))
            .ok_or_else(|| VenueError::Unsupported(format!("unknown market {id}")))
    }

    fn collect_events(&mut self) {
        let log = self.pm.drain_events();
        self.events.extend(log.into_iter().map(to_venue_event));
    }
}

impl PredictionVenue for ChainPredictionVenue {
    fn name(&self) -> &str {
        "gnosis_fpmm"
    }

    fn collateral(&self) -> &Token {
        &self.collateral
    }

    async fn markets(&mut self) -> Result<Vec<MarketView>, VenueError> {
        let me = self.pm.address();
        let mut out = Vec::with_capacity(self.markets.len());
        for m in &self.markets {
            let pool = self.pm.pool_balances(m).await.map_err(venue_error)?;
            out.push(MarketView {
                id: m.address.to_string(),
                prices: prices(&pool),
                pool,
                fee: m.fee,
                closes_at: None,
                resolved: self.pm.is_resolved(m).await.map_err(venue_error)?,
                held: self.pm.outcome_balances(m, me).await.map_err(venue_error)?,
                features: self
                    .forecasts
                    .get(&m.address)
                    .map(|p| vec![*p])
                    .unwrap_or_default(),
            });
        }
        Ok(out)
    }

    async fn quote_bet(&mut self, bet: &Bet) -> Result<U256, VenueError> {
        let m = self.find(&bet.market)?.clone();
        self.pm
            .calc_buy_amount(&m, bet.investment, bet.outcome)
            .await
            .map_err(venue_error)
    }

    async fn buy(
        &mut self,
        id: &IntentId,
        bet: &Bet,
        min_tokens: U256,
    ) -> Result<BetFill, VenueError> {
        let m = self.find(&bet.market)?.clone();
        let trade = self
            .pm
            .buy(&m, bet.outcome, bet.investment, min_tokens)
            .await;
        self.collect_events();
        let trade = trade.map_err(venue_error)?;
        Ok(BetFill {
            id: id.clone(),
            market: bet.market.clone(),
            outcome: bet.outcome,
            investment: trade.collateral,
            tokens: trade.tokens,
            gas_native: trade.fee_wei(),
            tx_hash: trade.txs.last().map(|t| t.hash.to_string()),
        })
    }

    async fn redeem(&mut self) -> Result<U256, VenueError> {
        let me = self.pm.address();
        let mut total = U256::ZERO;
        for m in self.markets.clone() {
            if !self.pm.is_resolved(&m).await.map_err(venue_error)? {
                continue;
            }
            let held = self
                .pm
                .outcome_balances(&m, me)
                .await
                .map_err(venue_error)?;
            if held.iter().all(|h| h.is_zero()) {
                continue;
            }
            let settled = self.pm.redeem(&m).await;
            self.collect_events();
            total += settled.map_err(venue_error)?.collateral;
        }
        Ok(total)
    }

    async fn collateral_balance(&mut self) -> Result<U256, VenueError> {
        let Some(m) = self.markets.first() else {
            return Ok(U256::ZERO);
        };
        let m = m.clone();
        self.pm
            .collateral_balance(&m, self.pm.address())
            .await
            .map_err(venue_error)
    }

    fn drain_events(&mut self) -> Vec<VenueEvent> {
        std::mem::take(&mut self.events)
    }

    fn set_recorder(&mut self, recorder: std::sync::Arc<dyn agent_core::venue::StepRecorder>) {
        self.pm.set_recorder(recorder);
    }

    /// Settles a restart's open transactions (approvals, buys, redemptions) from their
    /// receipts: the collateral each moved in or out of the wallet (outcome tokens are the
    /// markets' to report, not the book's).
    async fn settle(
        &mut self,
        unsettled: &[agent_core::venue::UnsettledTx],
    ) -> Result<Vec<agent_core::venue::SettledTx>, VenueError> {
        if unsettled.is_empty() {
            return Ok(Vec::new());
        }
        let Some(m) = self.markets.first() else {
            return Err(VenueError::Unsupported(
                "open transactions in the journal and no market to read the collateral of".into(),
            ));
        };
        let tracked = super::recovery::Tracked {
            wallet: self.pm.address(),
            tokens: vec![(self.collateral.clone(), m.collateral)],
            native: Token::new("native", 18),
        };
        let wait = self.pm.sender().policy().receipt_timeout;
        super::recovery::settle(self.pm.chain(), &tracked, unsettled, wait)
            .await
            .map_err(venue_error)
    }

    async fn health(&mut self) -> Result<(), String> {
        let Some((want, every)) = self.chain_check else {
            return Ok(());
        };
        self.health_checks = self.health_checks.wrapping_add(1);
        if !(self.health_checks - 1).is_multiple_of(every) {
            return Ok(());
        }
        match self.pm.chain().chain_id().await {
            Ok(id) if id == want => Ok(()),
            Ok(id) => Err(format!(
                "chain id changed: configured {want}, RPC now reports {id}"
            )),
            // An unreachable RPC is the stale-data trigger's business, not a chain change.
            Err(e) => {
                tracing::warn!(target: "defai::venue", error = %e, "chain id check failed");
                Ok(())
            }
        }
    }
}
