//! The agent loop: source → clock → venue sees the event → strategy → risk gate → venue →
//! portfolio, with every step reported to the audit stream. Backtest, paper and live mode run
//! this same loop; only the source, the clock and the venue differ.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::amount::{U256, price_to_units};
use crate::clock::Clock;
use crate::intent::{Fill, Intent, IntentId, Order};
use crate::market::{Bar, BarFault, Pair};
use crate::metrics::PerformanceTracker;
use crate::portfolio::{Portfolio, PortfolioError};
use crate::risk::{BasicRiskGate, Refusal, RiskContext, RiskGate, Verdict};
use crate::source::{MarketSource, SourceError};
use crate::strategy::{Context, Strategy, StrategyError};
use crate::venue::{Venue, VenueError};

/// One entry of the audit stream. Observers receive every event synchronously, in order; none is
/// ever dropped.
#[derive(Debug)]
pub enum AuditEvent<'a> {
    /// An event the loop refused to process (bad prices, time going backwards).
    BadEvent { ts: i64, reason: String },
    /// The strategy failed or produced an unusable output.
    StrategyFault { ts: i64, error: &'a StrategyError },
    /// A strategy asked for something.
    Intent {
        ts: i64,
        id: &'a IntentId,
        intent: &'a Intent,
    },
    /// The risk gate decided.
    Verdict {
        ts: i64,
        id: &'a IntentId,
        verdict: &'a Verdict,
    },
    /// The venue could not fill an approved order.
    ExecutionFailed {
        ts: i64,
        id: &'a IntentId,
        error: &'a VenueError,
    },
    /// An order filled and was booked.
    Fill(&'a Fill),
    /// End of an event: equity marked at the close (float, for reports).
    Mark { ts: i64, price: f64, equity: f64 },
}

/// Receives the audit stream (progress bars, recorders, journals).
pub trait Observer: Send {
    fn on_audit(&mut self, event: &AuditEvent<'_>);
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The venue filled something the portfolio cannot book: state would diverge, so stop.
    #[error("venue fill could not be booked: {0}")]
    Booking(#[from] PortfolioError),
    #[error("no usable market event: the run saw no valid bar")]
    NoData,
}

/// Counts of what the risk gate decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RiskCounts {
    pub approved: u64,
    pub resized: u64,
    pub refused: u64,
    pub refused_by_reason: BTreeMap<&'static str, u64>,
}

/// What a run did, in exact units where it is money.
#[derive(Debug, Clone)]
pub struct AgentReport {
    pub pair: Pair,
    pub bars: u64,
    pub bad_events: u64,
    pub intents: u64,
    pub risk: RiskCounts,
    pub fills: u64,
    pub execution_failures: u64,
    pub strategy_faults: u64,
    /// Equity in quote units at the first bar's close, before any trade.
    pub start_equity: U256,
    /// Equity in quote units at the last bar's close.
    pub end_equity: U256,
    pub first_price: f64,
    pub last_price: f64,
    pub max_drawdown_pct: f64,
    pub sharpe: f64,
    pub portfolio: Portfolio,
    pub elapsed: Duration,
}

impl AgentReport {
    pub fn return_pct(&self) -> f64 {
        let s = self.pair.quote.to_f64(self.start_equity);
        let e = self.pair.quote.to_f64(self.end_equity);
        if s > 0.0 { (e / s - 1.0) * 100.0 } else { 0.0 }
    }
    pub fn buy_hold_return_pct(&self) -> f64 {
        if self.first_price > 0.0 {
            (self.last_price / self.first_price - 1.0) * 100.0
        } else {
            0.0
        }
    }
}

/// One strategy, one pair, one venue. Build it, then [`Agent::run`] it to the end of the source.
pub struct Agent<S, V> {
    pair: Pair,
    source: S,
    venue: V,
    strategy: Box<dyn Strategy>,
    gate: Box<dyn RiskGate>,
    clock: Clock,
    portfolio: Portfolio,
    observers: Vec<Box<dyn Observer>>,
}

impl<S: MarketSource, V: Venue> Agent<S, V> {
    /// An agent with the [`BasicRiskGate`] and a simulated clock; replace either with the
    /// `with_*` methods. There is no way to build an agent without a gate.
    pub fn new(
        pair: Pair,
        source: S,
        venue: V,
        strategy: Box<dyn Strategy>,
        portfolio: Portfolio,
    ) -> Self {
        Self {
            pair,
            source,
            venue,
            strategy,
            gate: Box::new(BasicRiskGate::default()),
            clock: Clock::Simulated,
            portfolio,
            observers: Vec::new(),
        }
    }

    pub fn with_gate(mut self, gate: Box<dyn RiskGate>) -> Self {
        self.gate = gate;
        self
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn with_observer(mut self, observer: Box<dyn Observer>) -> Self {
        self.observers.push(observer);
        self
    }

    pub fn venue(&self) -> &V {
        &self.venue
    }

    /// Runs until the source is exhausted.
    pub async fn run(self) -> Result<AgentReport, AgentError> {
        let started = Instant::now();
        let Agent {
            pair,
            mut source,
            mut venue,
            mut strategy,
            mut gate,
            mut clock,
            mut portfolio,
            mut observers,
        } = self;
        let mut emit = |e: AuditEvent<'_>| {
            for o in observers.iter_mut() {
                o.on_audit(&e);
            }
        };

        let mut perf = PerformanceTracker::default();
        let mut risk = RiskCounts::default();
        let (mut bars, mut bad_events, mut intents_seen) = (0u64, 0u64, 0u64);
        let (mut execution_failures, mut strategy_faults) = (0u64, 0u64);
        let mut first: Option<(Bar, U256)> = None;
        let strategy_name: std::sync::Arc<str> = strategy.name().into();
        let mut last: Option<Bar> = None;

        while let Some(event) = source.next_event().await? {
            clock.wait_until(event.ts()).await;
            let Some(bar) = event.as_bar().copied() else {
                continue;
            };
            // Fail closed on data: a bad bar or time going backwards is never traded on.
            let fault = match (bar.validate(), last) {
                (Err(f), _) => Some(f.to_string()),
                (Ok(()), Some(prev)) if bar.ts <= prev.ts => Some(format!(
                    "timestamp {} is not after the previous {}",
                    bar.ts, prev.ts
                )),
                _ => None,
            };
            let price_units = price_to_units(bar.close, pair.quote.decimals());
            let (fault, price_units) = match (fault, price_units) {
                (None, Some(p)) => (None, p),
                (Some(f), _) => (Some(f), U256::ZERO),
                (None, None) => (
                    Some(
                        BarFault {
                            field: "close",
                            problem: "is not representable",
                        }
                        .to_string(),
                    ),
                    U256::ZERO,
                ),
            };
            if let Some(reason) = fault {
                bad_events += 1;
                tracing::warn!(target: "defai::audit", ts = bar.ts, %reason, "bad market event skipped");
                emit(AuditEvent::BadEvent { ts: bar.ts, reason });
                continue;
            }
            bars += 1;
            venue.observe(&event);
            if first.is_none() {
                first = Some((bar, portfolio.equity(&pair, price_units)));
            }

            let decided = {
                let ctx = Context {
                    pair: &pair,
                    portfolio: &portfolio,
                    bar: &bar,
                    gas_estimate: venue.gas_estimate_quote(),
                };
                strategy.on_event(&event, &ctx)
            };
            let intents = match decided {
                Ok(v) => v,
                Err(error) => {
                    strategy_faults += 1;
                    tracing::warn!(target: "defai::audit", ts = bar.ts, %error, "strategy fault");
                    emit(AuditEvent::StrategyFault {
                        ts: bar.ts,
                        error: &error,
                    });
                    Vec::new()
                }
            };

            for (seq, intent) in intents.into_iter().enumerate() {
                intents_seen += 1;
                let id = IntentId::new(strategy_name.clone(), bar.ts, seq as u32);
                tracing::debug!(target: "defai::audit", %id, ?intent, "intent");
                emit(AuditEvent::Intent {
                    ts: bar.ts,
                    id: &id,
                    intent: &intent,
                });

                let pre = {
                    let ctx = RiskContext {
                        pair: &pair,
                        portfolio: &portfolio,
                        bar: &bar,
                        now: bar.ts,
                    };
                    gate.pre_check(&id, &intent, &ctx)
                };
                let verdict = match (pre, intent.as_swap()) {
                    (Err(r), _) => Verdict::Refuse(r),
                    (Ok(()), None) => Verdict::Refuse(Refusal::new(
                        "unsupported_intent",
                        "venue cannot execute this intent",
                    )),
                    (Ok(()), Some(swap)) => match venue.quote(swap).await {
                        Err(e) => Verdict::Refuse(Refusal::new("quote_failed", e.to_string())),
                        Ok(quote) => {
                            let ctx = RiskContext {
                                pair: &pair,
                                portfolio: &portfolio,
                                bar: &bar,
                                now: bar.ts,
                            };
                            gate.evaluate(&id, &intent, &quote, &ctx)
                        }
                    },
                };
                // The loop enforces what a gate promises: a resize never grows an intent.
                let verdict = match (verdict, intent.as_swap()) {
                    (Verdict::Resize { amount_in, .. }, Some(swap))
                        if amount_in > swap.amount_in || amount_in.is_zero() =>
                    {
                        Verdict::Refuse(Refusal::new(
                            "bad_resize",
                            format!("gate resized {} to {amount_in}", swap.amount_in),
                        ))
                    }
                    (v, _) => v,
                };
                tracing::debug!(target: "defai::audit", %id, ?verdict, "verdict");
                emit(AuditEvent::Verdict {
                    ts: bar.ts,
                    id: &id,
                    verdict: &verdict,
                });
                let order = match (&verdict, intent.as_swap()) {
                    (Verdict::Approve { min_amount_out }, Some(swap)) => {
                        risk.approved += 1;
                        Order {
                            id: id.clone(),
                            swap: swap.clone(),
                            min_amount_out: *min_amount_out,
                        }
                    }
                    (
                        Verdict::Resize {
                            amount_in,
                            min_amount_out,
                            ..
                        },
                        Some(swap),
                    ) => {
                        risk.resized += 1;
                        let mut swap = swap.clone();
                        swap.amount_in = *amount_in;
                        Order {
                            id: id.clone(),
                            swap,
                            min_amount_out: *min_amount_out,
                        }
                    }
                    (Verdict::Refuse(r), _) => {
                        risk.refused += 1;
                        *risk.refused_by_reason.entry(r.code).or_default() += 1;
                        continue;
                    }
                    (_, None) => continue,
                };

                match venue.execute(&order, bar.ts).await {
                    Ok(fill) => {
                        portfolio.apply_fill(&fill)?;
                        let ctx = RiskContext {
                            pair: &pair,
                            portfolio: &portfolio,
                            bar: &bar,
                            now: bar.ts,
                        };
                        gate.record_fill(&fill, &ctx);
                        tracing::debug!(target: "defai::audit", id = %fill.id, amount_in = %fill.amount_in, amount_out = %fill.amount_out, "fill");
                        emit(AuditEvent::Fill(&fill));
                    }
                    Err(error) => {
                        execution_failures += 1;
                        tracing::warn!(target: "defai::audit", %id, %error, "execution failed");
                        emit(AuditEvent::ExecutionFailed {
                            ts: bar.ts,
                            id: &id,
                            error: &error,
                        });
                    }
                }
            }

            let equity = portfolio.equity_f64(&pair, bar.close);
            perf.update(bar.ts, equity);
            emit(AuditEvent::Mark {
                ts: bar.ts,
                price: bar.close,
                equity,
            });
            last = Some(bar);
        }

        let (Some((first_bar, start_equity)), Some(last_bar)) = (first, last) else {
            return Err(AgentError::NoData);
        };
        let end_price = price_to_units(last_bar.close, pair.quote.decimals()).unwrap_or(U256::ZERO);
        Ok(AgentReport {
            end_equity: portfolio.equity(&pair, end_price),
            pair,
            bars,
            bad_events,
            intents: intents_seen,
            risk,
            fills: portfolio.fills(),
            execution_failures,
            strategy_faults,
            start_equity,
            first_price: first_bar.close,
            last_price: last_bar.close,
            max_drawdown_pct: perf.max_drawdown_pct(),
            sharpe: perf.sharpe(),
            portfolio,
            elapsed: started.elapsed(),
        })
    }
}
