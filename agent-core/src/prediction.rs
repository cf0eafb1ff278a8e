//! Prediction markets: the betting side of the agent. A [`BettingStrategy`] looks at each open
//! market and may propose a [`Bet`]; the [`BetGate`] (bet limits) and the kill switch judge it;
//! a [`PredictionVenue`] (paper FPMM or the Gnosis contracts on chain) fills it. Every cycle
//! redeems resolved positions first, so winnings return to the bankroll before new bets.

use std::collections::BTreeMap;
use std::future::Future;

use crate::agent::{AgentError, AuditEvent, AuditStream, Observer, RiskCounts};
use crate::amount::{Token, U256};
use crate::intent::{Bet, Intent, IntentId};
use crate::kill_switch::KillSwitch;
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
    pub resolved: bool,
    /// Our outcome-token balances.
    pub held: Vec<U256>,
    /// Model features for this market (the strategy's model reads them).
    pub features: Vec<f64>,
}

impl MarketView {
    /// Collateral-equivalent liquidity: the smallest pool balance.
    pub fn liquidity(&self) -> U256 {
        self.pool.iter().copied().min().unwrap_or_default()
    }
}

/// A bet that was placed.
#[derive(Debug, Clone, PartialEq)]
pub struct BetFill {
    pub id: IntentId,
    pub market: String,
    pub outcome: usize,
    pub investment: U256,
    pub tokens: U256,
    pub gas_native: U256,
    pub tx_hash: Option<String>,
}

/// Where bets are placed and positions redeemed.
pub trait PredictionVenue: Send {
    fn name(&self) -> &str;
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
    fn drain_events(&mut self) -> Vec<VenueEvent> {
        Vec::new()
    }
}

/// Decides bets, one market at a time.
pub trait BettingStrategy: Send {
    fn name(&self) -> &str;
    /// `bankroll`: collateral available; `exposure`: collateral already put into this market.
    fn on_market(
        &mut self,
        market: &MarketView,
        bankroll: U256,
        exposure: U256,
        now: i64,
    ) -> Result<Option<Bet>, StrategyError>;
    fn decision(&self) -> Option<Decision> {
        None
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

/// What a prediction run did.
#[derive(Debug, Clone, Default)]
pub struct PredictionReport {
    pub cycles: u64,
    pub markets_seen: u64,
    pub bets: Vec<BetFill>,
    pub risk: RiskCounts,
    pub execution_failures: u64,
    pub strategy_faults: u64,
    /// Collateral received from redemptions.
    pub redeemed: U256,
    pub start_collateral: U256,
    pub end_collateral: U256,
}

/// The intent sequence number of a cycle's redemption (a cycle's bets are numbered by market).
pub const REDEEM_SEQ: u32 = u32::MAX;

/// Runs a betting strategy against a venue, cycle by cycle.
pub struct PredictionAgent<V> {
    venue: V,
    strategy: Box<dyn BettingStrategy>,
    gate: BetGate,
    kill: KillSwitch,
    audit: AuditStream,
    /// Collateral we put into each market.
    exposure: BTreeMap<String, U256>,
    report: PredictionReport,
    started: bool,
    handled: std::collections::HashSet<String>,
    max_consecutive_failures: u32,
    consecutive_failures: u32,
}

impl<V: PredictionVenue> PredictionAgent<V> {
    pub fn new(venue: V, strategy: Box<dyn BettingStrategy>, gate: BetGate) -> Self {
        Self {
            venue,
            strategy,
            gate,
            kill: KillSwitch::new(),
            audit: AuditStream::default(),
            exposure: BTreeMap::new(),
            report: PredictionReport::default(),
            started: false,
            handled: Default::default(),
            max_consecutive_failures: crate::agent::KillSwitchPolicy::default()
                .max_consecutive_failures,
            consecutive_failures: 0,
        }
    }

    /// Halts the agent (kill switch) after `n` failed bets in a row (default 3; at least 1).
    pub fn with_max_consecutive_failures(mut self, n: u32) -> Self {
        self.max_consecutive_failures = n.max(1);
        self
    }

    /// Resumes after a restart: each market's exposure is what the journal shows may have
    /// reached the chain (filled bets, and bets whose buy was signed), and intents already
    /// journaled are not placed again.
    pub fn resuming(mut self, resume: crate::agent::Resume) -> Self {
        self.exposure = resume.bet_exposure;
        self.handled = resume.handled;
        self
    }

    pub fn with_kill_switch(mut self, kill: KillSwitch) -> Self {
        self.kill = kill;
        self
    }

    pub fn with_observer(mut self, o: Box<dyn Observer>) -> Self {
        self.audit.push(o);
        self
    }

    pub fn venue_mut(&mut self) -> &mut V {
        &mut self.venue
    }

    pub fn kill_switch(&self) -> &KillSwitch {
        &self.kill
    }

    fn emit(&mut self, e: AuditEvent<'_>) {
        self.audit.emit(e);
    }

    fn venue_events(&mut self, ts: i64) {
        for event in self.venue.drain_events() {
            self.emit(AuditEvent::Venue { ts, event: &event });
        }
    }

    /// One cycle at time `now`: redeem, then look at every open market.
    /// Nothing is sent once the journal failed: the kill switch halts (latched) and the cycle
    /// ends with [`AgentError::Audit`].
    fn audit_ok(&mut self, now: i64) -> Result<(), AgentError> {
        self.audit.halt_on_failure(&mut self.kill, now)
    }

    /// One cycle at time `now`: redeem, then look at every open market. Errors: the venue's
    /// (reads), or [`AgentError::Audit`] when the journal failed (the agent is then halted).
    pub async fn cycle(&mut self, now: i64) -> Result<(), AgentError> {
        self.audit_ok(now)?;
        if !self.started {
            self.report.start_collateral = self.venue.collateral_balance().await?;
            self.started = true;
        }
        if let Some(change) = self.kill.poll(now) {
            self.emit(AuditEvent::KillSwitch {
                ts: now,
                change: &change,
            });
        }
        self.report.cycles += 1;
        self.audit_ok(now)?;
        let name: std::sync::Arc<str> = self.strategy.name().into();
        // Redeem first: winnings fund this cycle's bets. A redemption is an action of its own,
        // with its intent, verdict and fill, like any other.
        let listed = self.venue.markets().await?;
        let resolved: Vec<String> = listed
            .iter()
            .filter(|m| m.resolved && m.held.iter().any(|h| !h.is_zero()))
            .map(|m| m.id.clone())
            .collect();
        let markets = if resolved.is_empty() {
            listed
        } else {
            self.redeem(IntentId::new(name.clone(), now, REDEEM_SEQ), resolved, now)
                .await?;
            // Holdings changed: the bets below see the markets as they are now.
            self.venue.markets().await?
        };
        for (seq, market) in markets.iter().enumerate() {
            if market.resolved {
                continue;
            }
            self.report.markets_seen += 1;
            let bankroll = self.venue.collateral_balance().await?;
            let exposure = self.exposure.get(&market.id).copied().unwrap_or_default();
            let decided = self.strategy.on_market(market, bankroll, exposure, now);
            if let Some(d) = self.strategy.decision() {
                self.emit(AuditEvent::Decision {
                    ts: now,
                    decision: &d,
                });
            }
            let bet = match decided {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(error) => {
                    self.report.strategy_faults += 1;
                    self.emit(AuditEvent::StrategyFault {
                        ts: now,
                        error: &error,
                    });
                    if matches!(
                        error,
                        StrategyError::NonFinite { .. } | StrategyError::OutOfRange { .. }
                    ) {
                        let reason = format!("model/strategy fault: {error}");
                        if let Some(change) =
                            self.kill
                                .trip(crate::kill_switch::KillMode::Halt, &reason, now)
                        {
                            self.emit(AuditEvent::KillSwitch {
                                ts: now,
                                change: &change,
                            });
                        }
                    }
                    continue;
                }
            };
            let id = IntentId::new(name.clone(), now, seq as u32);
            if self.handled.contains(&id.to_string()) {
                tracing::warn!(target: "defai::audit", %id, "intent already in the journal: not placed again");
                continue;
            }
            let intent = Intent::Bet(bet.clone());
            self.emit(AuditEvent::Intent {
                ts: now,
                id: &id,
                intent: &intent,
            });
            self.audit_ok(now)?;
            let verdict = match self.kill.allows(false) {
                Err(r) => Verdict::Refuse(r),
                Ok(()) => match self.venue.quote_bet(&bet).await {
                    Ok(tokens) => self.gate.judge(&bet, market, bankroll, exposure, tokens),
                    Err(e) => Verdict::Refuse(Refusal::new("quote_failed", e.to_string())),
                },
            };
            self.emit(AuditEvent::Verdict {
                ts: now,
                id: &id,
                verdict: &verdict,
            });
            self.audit_ok(now)?;
            let min_tokens = match &verdict {
                Verdict::Approve { min_amount_out } => {
                    self.report.risk.approved += 1;
                    *min_amount_out
                }
                Verdict::Resize { .. } | Verdict::Refuse(_) => {
                    let code = match &verdict {
                        Verdict::Refuse(r) => r.code,
                        _ => "resize_not_allowed",
                    };
                    self.report.risk.refuse(code);
                    continue;
                }
            };
            let bought = self.venue.buy(&id, &bet, min_tokens).await;
            self.venue_events(now);
            match bought {
                Ok(fill) => {
                    self.consecutive_failures = 0;
                    *self.exposure.entry(market.id.clone()).or_default() += fill.investment;
                    self.emit(AuditEvent::BetFill(&fill));
                    tracing::info!(target: "defai::audit", market = %fill.market, outcome = fill.outcome, investment = %fill.investment, tokens = %fill.tokens, "bet");
                    self.report.bets.push(fill);
                }
                Err(error) => {
                    self.report.execution_failures += 1;
                    self.consecutive_failures += 1;
                    self.emit(AuditEvent::ExecutionFailed {
                        ts: now,
                        id: &id,
                        error: &error,
                    });
                    if self.consecutive_failures >= self.max_consecutive_failures {
                        let reason = format!(
                            "{} consecutive execution failures, last: {error}",
                            self.consecutive_failures
                        );
                        if let Some(change) =
                            self.kill
                                .trip(crate::kill_switch::KillMode::Halt, &reason, now)
                        {
                            self.emit(AuditEvent::KillSwitch {
                                ts: now,
                                change: &change,
                            });
                        }
                    }
                }
            }
        }
        self.audit_ok(now)
    }

    /// Redeems the positions of the `resolved` markets under intent `id`: journaled intent,
    /// verdict (the kill switch: a redemption removes risk, so only `halted` stops it), the
    /// venue's transactions under that intent, and a fill with the collateral received.
    async fn redeem(
        &mut self,
        id: IntentId,
        resolved: Vec<String>,
        now: i64,
    ) -> Result<(), AgentError> {
        if self.handled.contains(&id.to_string()) {
            tracing::warn!(target: "defai::audit", %id, "redemption already in the journal: not sent again");
            return Ok(());
        }
        let collateral = self.venue.collateral().clone();
        let intent = Intent::Redeem(crate::intent::Redeem {
            markets: resolved,
            collateral: collateral.clone(),
        });
        self.emit(AuditEvent::Intent {
            ts: now,
            id: &id,
            intent: &intent,
        });
        self.audit_ok(now)?;
        let verdict = match self.kill.allows(true) {
            Ok(()) => Verdict::Approve {
                min_amount_out: U256::ZERO,
            },
            Err(r) => Verdict::Refuse(r),
        };
        self.emit(AuditEvent::Verdict {
            ts: now,
            id: &id,
            verdict: &verdict,
        });
        self.audit_ok(now)?;
        self.report.risk.record(&verdict);
        if let Verdict::Refuse(_) = &verdict {
            return Ok(());
        }
        let redeemed = self.venue.redeem().await;
        self.venue_events(now);
        match redeemed {
            Ok(amount) => {
                self.report.redeemed = self.report.redeemed.saturating_add(amount);
                tracing::info!(target: "defai::audit", %id, %amount, "redeemed");
                self.emit(AuditEvent::Redeemed {
                    ts: now,
                    id: &id,
                    collateral: &collateral,
                    amount,
                });
            }
            Err(error) => {
                self.report.execution_failures += 1;
                self.emit(AuditEvent::ExecutionFailed {
                    ts: now,
                    id: &id,
                    error: &error,
                });
            }
        }
        self.audit_ok(now)
    }

    /// The report so far (collateral read now). Errors as [`PredictionAgent::cycle`], and when
    /// the journal cannot commit what it took.
    pub async fn finish(self) -> Result<(PredictionReport, KillSwitch), AgentError> {
        let (report, kill, _) = self.finish_keep_venue().await?;
        Ok((report, kill))
    }

    /// Like [`PredictionAgent::finish`], handing the venue back too.
    pub async fn finish_keep_venue(
        mut self,
    ) -> Result<(PredictionReport, KillSwitch, V), AgentError> {
        self.report.end_collateral = self.venue.collateral_balance().await?;
        self.audit
            .finish(&mut self.kill, crate::agent::wall_clock_s())?;
        Ok((self.report, self.kill, self.venue))
    }
}
