//! Prediction markets: the betting side of the one agent loop. A [`BettingStrategy`] looks at
//! each open market and may propose a [`Bet`] ([`Bettor`] makes it the loop's
//! [`crate::Strategy`]); the [`BetGate`] (bet limits), the kill switch and the loss limits judge
//! it; a [`PredictionVenue`] (paper FPMM or the Gnosis contracts on chain) fills it, as the
//! agent's venue through [`Betting`]. Every cycle redeems resolved positions first, so winnings
//! return to the bankroll before new bets.

use std::future::Future;

use crate::amount::{Token, U256};
use crate::intent::{Bet, Intent, IntentId};
use crate::risk::{Refusal, Verdict};
use crate::strategy::{Decision, StrategyError};
use crate::venue::{VenueError, VenueEvent};

/// An open or resolved market as the agent sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketView {
    /// Address or id.
    pub id: String,
    /// The FPMM's pool balance of each outcome token (collateral units).
    pub pool: Vec<U256>,
    /// LP fee, 1e18 = 100 %.
    pub fee: U256,
    /// Marginal prices (implied probabilities), floats for signals.
    pub prices: Vec<f64>,
    /// When trading closes (unix s), when known.
    pub closes_at: Option<i64>,
    /// The market's outcome is known: no more trading, and held winning tokens can be
    /// redeemed for collateral.
    pub resolved: bool,
    /// Our outcome-token balances.
    pub held: Vec<U256>,
    /// Model features for this market (the strategy's model reads them).
    pub features: Vec<f64>,
}

impl MarketView {
    /// What our outcome tokens here are worth at their exact marginal prices
    /// ([`crate::fpmm::marginal_price`]), collateral units, rounded down. A token whose price
    /// cannot be computed (an empty pool) counts at one collateral unit, the most an outcome
    /// token redeems for: an exposure measured with it is never understated.
    pub fn position_value(&self) -> U256 {
        self.held
            .iter()
            .enumerate()
            .filter(|(_, h)| !h.is_zero())
            .fold(U256::ZERO, |sum, (i, h)| {
                let v = crate::fpmm::marginal_price(i, &self.pool)
                    .ok()
                    .and_then(|(num, den)| h.checked_mul(num).map(|x| x / den))
                    .unwrap_or(*h);
                sum.saturating_add(v)
            })
    }

    /// Collateral-equivalent liquidity: the smallest pool balance.
    pub fn liquidity(&self) -> U256 {
        self.pool.iter().copied().min().unwrap_or_default()
    }
}

/// The markets of a [`crate::MarketEvent::Predictions`] event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PredictionSet {
    /// Cycle time, unix seconds.
    pub ts: i64,
    /// Every market the venue lists, resolved ones included, with our holdings.
    pub markets: Vec<MarketView>,
    /// Collateral already put into each market (same order as `markets`), collateral units:
    /// every bet that may have reached the chain, restored from the journal on a restart.
    pub exposure: Vec<U256>,
}

/// A bet that was placed.
#[derive(Debug, Clone, PartialEq)]
pub struct BetFill {
    /// The bet's intent id.
    pub id: IntentId,
    /// The market's address or id.
    pub market: String,
    /// Index of the outcome bought.
    pub outcome: usize,
    /// Collateral spent, its units, LP fee included.
    pub investment: U256,
    /// Outcome tokens received, their units (the collateral's decimals).
    pub tokens: U256,
    /// Gas burned, wei (0 on a paper venue).
    pub gas_native: U256,
    /// The buy transaction's hash, on chain.
    pub tx_hash: Option<String>,
}

/// Where bets are placed and positions redeemed.
///
/// # Example
///
/// Paper bets on a fixed list of markets, filled with the FPMM's own math (a sketch: the pools
/// do not move and nothing resolves):
///
/// ```
/// use agent_core::fpmm::calc_buy_amount;
/// use agent_core::{Bet, BetFill, IntentId, MarketView, PredictionVenue, Token, U256, VenueError};
///
/// struct Paper { collateral: Token, cash: U256, markets: Vec<MarketView> }
///
/// impl PredictionVenue for Paper {
///     fn name(&self) -> &str { "paper" }
///     fn collateral(&self) -> &Token { &self.collateral }
///     async fn markets(&mut self) -> Result<Vec<MarketView>, VenueError> {
///         Ok(self.markets.clone())
///     }
///     async fn quote_bet(&mut self, bet: &Bet) -> Result<U256, VenueError> {
///         let no_market = || VenueError::Rejected(format!("no market {}", bet.market));
///         let m = self.markets.iter().find(|m| m.id == bet.market).ok_or_else(no_market)?;
///         calc_buy_amount(bet.investment, bet.outcome, &m.pool, m.fee)
///             .map_err(|e| VenueError::Rejected(e.to_string()))
///     }
///     async fn buy(&mut self, id: &IntentId, bet: &Bet, min_tokens: U256)
///         -> Result<BetFill, VenueError> {
///         let tokens = self.quote_bet(bet).await?;
///         if tokens < min_tokens {
///             return Err(VenueError::Slippage { min: min_tokens, got: tokens });
///         }
///         self.cash = self.cash.saturating_sub(bet.investment);
///         Ok(BetFill { id: id.clone(), market: bet.market.clone(), outcome: bet.outcome,
///             investment: bet.investment, tokens, gas_native: U256::ZERO, tx_hash: None })
///     }
///     async fn redeem(&mut self) -> Result<U256, VenueError> { Ok(U256::ZERO) }
///     async fn collateral_balance(&mut self) -> Result<U256, VenueError> { Ok(self.cash) }
/// }
/// ```
pub trait PredictionVenue: Send {
    /// A short name for logs and reports (`paper_fpmm`, `gnosis_fpmm`).
    fn name(&self) -> &str;
    /// The token bets are paid in and positions redeem for (the agent's numéraire).
    fn collateral(&self) -> &Token;
    /// Every market the venue lists, with our holdings.
    fn markets(&mut self) -> impl Future<Output = Result<Vec<MarketView>, VenueError>> + Send;
    /// Outcome tokens `bet` would buy now.
    fn quote_bet(&mut self, bet: &Bet) -> impl Future<Output = Result<U256, VenueError>> + Send;
    /// Buys, refusing fewer than `min_tokens`.
    fn buy(
        &mut self,
        id: &IntentId,
        bet: &Bet,
        min_tokens: U256,
    ) -> impl Future<Output = Result<BetFill, VenueError>> + Send;
    /// Redeems every resolved position; returns the collateral received.
    fn redeem(&mut self) -> impl Future<Output = Result<U256, VenueError>> + Send;
    /// Collateral the wallet holds.
    fn collateral_balance(&mut self) -> impl Future<Output = Result<U256, VenueError>> + Send;
    /// Steps taken since the last call (a chain venue's transaction steps), for the audit
    /// stream.
    fn drain_events(&mut self) -> Vec<VenueEvent> {
        Vec::new()
    }
    /// Sees every event of the agent's source before the markets are listed (a simulated venue
    /// moves its clock to the event's time, resolving what is due).
    fn observe(&mut self, _event: &crate::MarketEvent) {}
    /// Checked before every cycle; an error halts the agent (e.g. the chain id changed).
    fn health(&mut self) -> impl Future<Output = Result<(), String>> + Send {
        async { Ok(()) }
    }
    /// Where to record transaction steps as they happen (the journal), before each is taken.
    /// Venues that send nothing ignore it.
    fn set_recorder(&mut self, _recorder: std::sync::Arc<dyn crate::venue::StepRecorder>) {}
    /// After a restart: what became of the transactions the journal saw leave but not finish,
    /// with their effect on the collateral (as [`crate::Venue::settle`]). Venues that send
    /// nothing have nothing to settle.
    fn settle(
        &mut self,
        unsettled: &[crate::venue::UnsettledTx],
    ) -> impl Future<Output = Result<Vec<crate::venue::SettledTx>, VenueError>> + Send {
        let n = unsettled.len();
        async move {
            if n == 0 {
                Ok(Vec::new())
            } else {
                Err(VenueError::Unsupported(format!(
                    "{n} unsettled transaction(s) in the journal, and this venue cannot look them up"
                )))
            }
        }
    }
}

/// A [`PredictionVenue`] as the agent's [`crate::Venue`]: the agent lists its markets every
/// cycle, places bets and redeems through it; it executes no swaps. Its collateral balance is
/// the record the agent's book follows.
#[derive(Debug)]
pub struct Betting<P>(pub P);

impl<P: PredictionVenue> crate::Venue for Betting<P> {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn observe(&mut self, event: &crate::MarketEvent) {
        self.0.observe(event);
    }

    async fn quote(&mut self, swap: &crate::Swap) -> Result<crate::Quote, VenueError> {
        Err(VenueError::Unsupported(format!(
            "{} executes bets, not the swap {} → {}",
            self.0.name(),
            swap.sell,
            swap.buy
        )))
    }

    async fn execute(&mut self, order: &crate::Order, _ts: i64) -> Result<crate::Fill, VenueError> {
        Err(VenueError::Unsupported(format!(
            "{} executes bets, not the swap of {}",
            self.0.name(),
            order.id
        )))
    }

    async fn balances(&mut self) -> Result<Option<Vec<(Token, U256)>>, VenueError> {
        let held = self.0.collateral_balance().await?;
        Ok(Some(vec![(self.0.collateral().clone(), held)]))
    }

    async fn health(&mut self) -> Result<(), String> {
        self.0.health().await
    }

    fn drain_events(&mut self) -> Vec<VenueEvent> {
        self.0.drain_events()
    }

    fn set_recorder(&mut self, recorder: std::sync::Arc<dyn crate::venue::StepRecorder>) {
        self.0.set_recorder(recorder);
    }

    async fn settle(
        &mut self,
        unsettled: &[crate::venue::UnsettledTx],
    ) -> Result<Vec<crate::venue::SettledTx>, VenueError> {
        self.0.settle(unsettled).await
    }

    fn lists_markets(&self) -> bool {
        true
    }

    async fn markets(&mut self) -> Result<Vec<MarketView>, VenueError> {
        self.0.markets().await
    }

    async fn quote_bet(&mut self, bet: &Bet) -> Result<U256, VenueError> {
        self.0.quote_bet(bet).await
    }

    async fn place_bet(
        &mut self,
        id: &IntentId,
        bet: &Bet,
        min_tokens: U256,
    ) -> Result<BetFill, VenueError> {
        self.0.buy(id, bet, min_tokens).await
    }

    async fn redeem(&mut self) -> Result<U256, VenueError> {
        self.0.redeem().await
    }
}

/// Decides bets, one market at a time.
///
/// # Example
///
/// Bet `stake` on outcome 0 of any market pricing it below 30 %, once per market:
///
/// ```
/// use agent_core::{Bet, BettingStrategy, MarketView, StrategyError, Token, U256};
///
/// struct Longshot { stake: U256, collateral: Token }
///
/// impl BettingStrategy for Longshot {
///     fn name(&self) -> &str { "longshot" }
///     fn on_market(&mut self, market: &MarketView, bankroll: U256, exposure: U256, _now: i64)
///         -> Result<Option<Bet>, StrategyError> {
///         let cheap = market.prices.first().is_some_and(|p| *p < 0.3);
///         if !cheap || !exposure.is_zero() || bankroll < self.stake {
///             return Ok(None);
///         }
///         Ok(Some(Bet { market: market.id.clone(), outcome: 0, investment: self.stake,
///             collateral: self.collateral.clone() }))
///     }
/// }
/// ```
pub trait BettingStrategy: Send {
    /// A short stable name; it prefixes the bets' intent ids.
    fn name(&self) -> &str;
    /// `bankroll`: collateral available; `exposure`: collateral already put into this market.
    /// Both in collateral units; `now` is the cycle's time, unix seconds. Only called for
    /// unresolved markets. Returns the bet to propose, if any (the gate may still refuse it).
    ///
    /// # Errors
    ///
    /// A [`StrategyError`] when the strategy cannot decide on this market (e.g. a model output
    /// that is not finite); it ends the cycle's decisions, and no bet is placed this cycle.
    fn on_market(
        &mut self,
        market: &MarketView,
        bankroll: U256,
        exposure: U256,
        now: i64,
    ) -> Result<Option<Bet>, StrategyError>;
    /// What a model-driven strategy decided on the last market (model, its output), for the
    /// audit stream; rule-based strategies return `None`.
    fn decision(&self) -> Option<Decision> {
        None
    }
}

/// A [`BettingStrategy`] as the runtime's [`crate::Strategy`]: on each
/// [`crate::MarketEvent::Predictions`] it asks the betting strategy about every open market in
/// the venue's order, with the bankroll the book holds less what this cycle's earlier bets
/// take, and the collateral already in that market; the bets come back as
/// [`Intent::Bet`]s for the gate. A fault on one market ends the cycle's decisions (no bet
/// this cycle), as any strategy fault does. Other events give nothing.
pub struct Bettor {
    inner: Box<dyn BettingStrategy>,
    decisions: Vec<Decision>,
}

impl Bettor {
    /// Runs `inner` as the agent's strategy.
    pub fn new(inner: Box<dyn BettingStrategy>) -> Self {
        Self {
            inner,
            decisions: Vec::new(),
        }
    }
}

impl std::fmt::Debug for Bettor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bettor")
            .field("strategy", &self.inner.name())
            .finish()
    }
}

impl crate::Strategy for Bettor {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn on_event(
        &mut self,
        event: &crate::MarketEvent,
        ctx: &crate::Context<'_>,
    ) -> Result<Vec<Intent>, StrategyError> {
        self.decisions.clear();
        let Some(set) = event.predictions() else {
            return Ok(Vec::new());
        };
        let mut bankroll = ctx.portfolio.balance(&ctx.pair.quote);
        let mut bets = Vec::new();
        for (market, exposure) in set.markets.iter().zip(&set.exposure) {
            if market.resolved {
                continue;
            }
            let bet = self.inner.on_market(market, bankroll, *exposure, set.ts);
            self.decisions.extend(self.inner.decision());
            if let Some(bet) = bet? {
                bankroll = bankroll.saturating_sub(bet.investment);
                bets.push(Intent::Bet(bet));
            }
        }
        Ok(bets)
    }

    fn decisions(&mut self) -> Vec<Decision> {
        std::mem::take(&mut self.decisions)
    }
}

/// Limits on bets.
#[derive(Debug, Clone, PartialEq)]
pub struct BetLimits {
    /// Largest single bet, collateral units.
    pub max_bet: Option<U256>,
    /// Never bet the bankroll below this.
    pub floor_balance: U256,
    /// Collateral per market, all bets together.
    pub max_market_exposure: Option<U256>,
    /// The fill may fall this far below the quote.
    pub max_slippage_bps: u32,
    /// How far the average price per outcome token (LP fee excluded) may be above the
    /// outcome's marginal price before the buy, bps (`[risk] max_price_impact_bps`).
    pub max_price_impact_bps: Option<u32>,
}

impl Default for BetLimits {
    fn default() -> Self {
        Self {
            max_bet: None,
            floor_balance: U256::ZERO,
            max_market_exposure: None,
            max_slippage_bps: 100,
            max_price_impact_bps: Some(100),
        }
    }
}

/// Judges bets against [`BetLimits`]: refuses, never resizes (a strategy sized the bet for a
/// reason; a different size is a different bet).
#[derive(Debug, Clone, Default)]
pub struct BetGate {
    /// The limits every bet is judged against.
    pub limits: BetLimits,
}

impl BetGate {
    /// Judges `bet` on `market` (its pool and fee before the buy), from a `bankroll` with
    /// `exposure` already in the market, given the venue's quote of `quote_tokens`.
    pub fn judge(
        &self,
        bet: &Bet,
        market: &MarketView,
        bankroll: U256,
        exposure: U256,
        quote_tokens: U256,
    ) -> Verdict {
        let l = &self.limits;
        if bet.investment.is_zero() {
            return Verdict::Refuse(Refusal::new("zero_amount", "bet of zero"));
        }
        if let Some(max) = l.max_bet
            && bet.investment > max
        {
            return Verdict::Refuse(Refusal::new(
                "max_bet",
                format!("bet {} exceeds max_bet {max}", bet.investment),
            ));
        }
        if bankroll < bet.investment || bankroll - bet.investment < l.floor_balance {
            return Verdict::Refuse(Refusal::new(
                "floor_balance",
                format!(
                    "bet {} from bankroll {bankroll} leaves less than the floor {}",
                    bet.investment, l.floor_balance
                ),
            ));
        }
        if let Some(max) = l.max_market_exposure
            && exposure.saturating_add(bet.investment) > max
        {
            return Verdict::Refuse(Refusal::new(
                "max_market_exposure",
                format!(
                    "{exposure} already in this market + {} exceeds {max}",
                    bet.investment
                ),
            ));
        }
        if quote_tokens.is_zero() {
            return Verdict::Refuse(Refusal::new("no_liquidity", "the market gives nothing"));
        }
        if let Some(max_bps) = l.max_price_impact_bps {
            // The venue's quote, or what the listed pool gives if that is less (the pool may
            // have moved since it was listed): the worse price is the one judged.
            let impact =
                crate::fpmm::calc_buy_amount(bet.investment, bet.outcome, &market.pool, market.fee)
                    .and_then(|listed| {
                        crate::risk::impact::bet_impact_of(
                            bet.investment,
                            quote_tokens.min(listed),
                            bet.outcome,
                            &market.pool,
                            market.fee,
                            max_bps,
                        )
                    });
            match impact {
                Ok((true, _)) => {}
                Ok((false, bps)) => {
                    return Verdict::Refuse(Refusal::new(
                        "price_impact",
                        format!(
                            "bet {} pays {bps} bps above the outcome's marginal price (max {max_bps})",
                            bet.investment
                        ),
                    ));
                }
                Err(e) => {
                    return Verdict::Refuse(Refusal::new(
                        "price_impact",
                        format!("price impact cannot be computed: {e}"),
                    ));
                }
            }
        }
        match crate::risk::min_out_for_slippage(quote_tokens, l.max_slippage_bps) {
            Some(min) => Verdict::Approve {
                min_amount_out: min,
            },
            None => Verdict::Refuse(Refusal::new(
                "bad_limit",
                format!(
                    "max_slippage_bps {} is not within 0..=10000",
                    l.max_slippage_bps
                ),
            )),
        }
    }
}

/// The intent sequence number of a cycle's redemption (a cycle's bets are numbered by market).
pub const REDEEM_SEQ: u32 = u32::MAX;
