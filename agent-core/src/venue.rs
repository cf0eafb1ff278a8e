//! Where orders are executed: the [`Venue`] trait, implemented by the paper venue and the
//! on-chain venue alike.

use std::future::Future;

use crate::amount::{Token, U256};
use crate::intent::{Fill, IntentId, Order, Quote, Swap};
use crate::market::MarketEvent;

/// Why a venue did not quote or fill.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VenueError {
    /// The fill would return less than the order's minimum (the market moved since the quote):
    /// nothing was traded.
    #[error("output {got} is below the minimum {min}")]
    Slippage {
        /// The order's `min_amount_out` (or a bet's minimum of outcome tokens), token units.
        min: U256,
        /// What the venue would have given, same units.
        got: U256,
    },
    /// The pool cannot trade: an empty reserve, no price seen yet, an output the reserves
    /// cannot pay.
    #[error("no liquidity: {0}")]
    NoLiquidity(String),
    /// The venue does not do this: a swap on a betting venue, a bet on a swap venue, a pair or
    /// venue key it does not trade, a restart settlement it cannot look up.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The venue or the chain refused: a reverted transaction or simulation, a contract not
    /// allowed, a resolved market, inputs the pool's math refuses (a zero amount, a bad fee,
    /// an overflow).
    #[error("rejected: {0}")]
    Rejected(String),
    /// The venue could not be reached or did not answer (an RPC failure).
    #[error("transport: {0}")]
    Transport(String),
}

/// Something a venue did on the way to a quote or fill: for a chain venue, each step of a
/// transaction's life (simulated, signed, sent, replaced, mined). Goes to the audit stream.
#[derive(Debug, Clone, PartialEq)]
pub struct VenueEvent {
    /// `simulated`, `signed`, `sent`, `timed_out`, `replaced`, `mined`, ...
    pub step: &'static str,
    /// What the transaction was for (`approve`, `swap`).
    pub label: String,
    /// The transaction's hash, once signed.
    pub tx_hash: Option<String>,
    /// The transaction's nonce, once assigned.
    pub nonce: Option<u64>,
    /// What happened, in words (gas price, block, revert reason, ...).
    pub detail: String,
    /// The intent the step belongs to when it is not the one being handled now (a transaction
    /// given up on and mined later); `None`: the current intent's.
    pub intent_id: Option<String>,
}

/// Something a venue learnt about money after an execution returned, for the agent to book
/// (see [`Venue::bookings`]). Amounts are exact token units.
#[derive(Debug, Clone, PartialEq)]
pub enum Booking {
    /// An order whose transaction the venue gave up on (not mined in time, still held by the
    /// node) was mined after all: the fill of its intent, read from the receipt.
    LateFill(Box<Fill>),
    /// Gas that no fill carries: a swap mined with status 0, an approval whose swap then
    /// failed, a transaction given up on that was mined and reverted. `amount` units of
    /// `token` (the chain's gas token) left the wallet.
    Gas {
        /// The intent the transaction served.
        id: IntentId,
        /// What the transaction was for (`approve`, `swap`).
        label: String,
        /// The chain's gas token.
        token: Token,
        /// Gas paid, units of `token` (wei for ETH), from the receipt.
        amount: U256,
        /// The transaction's hash.
        tx_hash: Option<String>,
    },
    /// A transaction given up on can no longer be mined (dropped, or its nonce taken): it cost
    /// nothing, and the intent is closed without a fill.
    Dropped {
        /// The intent the transaction served.
        id: IntentId,
        /// What the transaction was for (`approve`, `swap`).
        label: String,
        /// The nonce it held, now free or used by another transaction.
        nonce: u64,
    },
}

/// Writes venue steps durably the moment they happen — the journal — so that a step is on disk
/// before the action that follows it (a signed transaction is recorded before it is broadcast).
///
/// # Example
///
/// Keep each step as a line in memory (a journal writes and syncs it to disk instead):
///
/// ```
/// use std::sync::Mutex;
/// use agent_core::{StepRecorder, VenueEvent};
///
/// #[derive(Default)]
/// struct Lines(Mutex<Vec<String>>);
///
/// impl StepRecorder for Lines {
///     fn record(&self, event: &VenueEvent) -> Result<(), String> {
///         let line = format!("{} {} {:?}", event.step, event.label, event.tx_hash);
///         self.0.lock().map_err(|e| e.to_string())?.push(line);
///         Ok(())
///     }
/// }
/// ```
pub trait StepRecorder: Send + Sync {
    /// An error means the step is not recorded; the venue must not take the next action.
    ///
    /// # Errors
    ///
    /// A message saying why the step could not be made durable (a database error); the venue
    /// then stops before the step's next action (e.g. does not broadcast).
    fn record(&self, event: &VenueEvent) -> Result<(), String>;
}

/// A transaction the journal saw leave (signed) but not finish before the agent stopped: one
/// nonce, every hash signed for it (replacements), and the intent it served.
#[derive(Debug, Clone, PartialEq)]
pub struct UnsettledTx {
    /// The intent the transaction served, as text (`strategy:ts:seq`), when recorded.
    pub intent_id: Option<String>,
    /// What the transaction was for (`approve`, `swap`).
    pub label: String,
    /// The nonce every hash was signed for.
    pub nonce: u64,
    /// Every hash signed at this nonce (the original and its replacements), in signing order.
    pub hashes: Vec<String>,
}

/// What became of an [`UnsettledTx`], and what it did to the wallet's balances.
#[derive(Debug, Clone, PartialEq)]
pub struct SettledTx {
    /// The nonce of the [`UnsettledTx`] this answers.
    pub nonce: u64,
    /// What became of it.
    pub outcome: Settlement,
    /// Tokens the transaction brought in, token units, from its receipt.
    pub credits: Vec<(Token, U256)>,
    /// Tokens it took out, token units, gas included, from its receipt.
    pub debits: Vec<(Token, U256)>,
}

/// What became of a transaction the journal saw leave but not finish.
#[derive(Debug, Clone, PartialEq)]
pub enum Settlement {
    /// Mined (status 1 or reverted, gas paid either way).
    Mined {
        /// The hash that was mined (one of the nonce's replacements).
        hash: String,
        /// The block it was mined in.
        block: u64,
        /// Receipt status 1: it executed; `false`: it reverted.
        success: bool,
    },
    /// No hash was mined and none is pending: the transaction never reached the chain, or was
    /// dropped. It cost nothing.
    Dropped,
    /// The node still holds it unmined: it may yet execute.
    Pending {
        /// The hash the node holds.
        hash: String,
    },
}

/// An execution venue. Quotes and fills are async because on a chain they are RPC calls; the
/// paper venue answers at once.
///
/// `quote` must not change any state a later `execute` depends on: the risk gate sees the quote,
/// and only an approved [`Order`] reaches `execute`, which must refuse to fill below
/// `order.min_amount_out`.
///
/// # Example
///
/// Fill at a fixed price (`price` quote units per whole base token), with no fee or gas:
///
/// ```
/// use agent_core::amount::{base_to_quote, quote_to_base};
/// use agent_core::{Fill, Order, Pair, Quote, Swap, U256, Venue, VenueError};
///
/// struct Fixed { pair: Pair, price: U256 }
///
/// impl Venue for Fixed {
///     fn name(&self) -> &str { "fixed" }
///     async fn quote(&mut self, swap: &Swap) -> Result<Quote, VenueError> {
///         let (d, p, a) = (self.pair.base.decimals(), self.price, swap.amount_in);
///         let amount_out = if swap.sell == self.pair.base {
///             base_to_quote(a, d, p)
///         } else {
///             quote_to_base(a, d, p)
///         };
///         let gas_cost = (self.pair.quote.clone(), U256::ZERO);
///         Ok(Quote { amount_out, fee: U256::ZERO, gas_native: U256::ZERO,
///             gas_price_wei: U256::ZERO, gas_cost, venue_price: p, depth: None })
///     }
///     async fn execute(&mut self, order: &Order, ts: i64) -> Result<Fill, VenueError> {
///         let (s, q, min) = (&order.swap, self.quote(&order.swap).await?, order.min_amount_out);
///         if q.amount_out < min {
///             return Err(VenueError::Slippage { min, got: q.amount_out });
///         }
///         Ok(Fill { id: order.id.clone(), ts, sell: s.sell.clone(), buy: s.buy.clone(),
///             amount_in: s.amount_in, amount_out: q.amount_out, fee: q.fee,
///             fee_quote: U256::ZERO, gas_native: q.gas_native, gas_cost: q.gas_cost,
///             gas_quote: U256::ZERO, tx_hash: None })
///     }
/// }
/// ```
pub trait Venue: Send {
    /// A short name for logs and reports (`paper_amm`, `uniswap_v2`).
    fn name(&self) -> &str;

    /// Sees every market event before the strategy does (a simulated pool re-centres on it).
    fn observe(&mut self, _event: &MarketEvent) {}

    /// Estimated gas of one swap, valued in the pair's quote token (float: it sizes decisions,
    /// it is never booked). Strategies use it to skip trades that gas would eat.
    fn gas_estimate_quote(&self) -> f64 {
        0.0
    }

    /// What the swap would give now, without doing it.
    fn quote(&mut self, swap: &Swap) -> impl Future<Output = Result<Quote, VenueError>> + Send;

    /// Executes an approved order at event time `ts`.
    fn execute(
        &mut self,
        order: &Order,
        ts: i64,
    ) -> impl Future<Output = Result<Fill, VenueError>> + Send;

    /// Balances as the venue's ledger of record holds them (the chain, for a chain venue), or
    /// `None` when the agent's own book is the record (paper). The agent adopts these at start
    /// and after every execution.
    fn balances(
        &mut self,
    ) -> impl Future<Output = Result<Option<Vec<(Token, U256)>>, VenueError>> + Send {
        async { Ok(None) }
    }

    /// Checked before every event; an error halts the agent (kill switch), e.g. the RPC now
    /// reports another chain id than the one configured.
    fn health(&mut self) -> impl Future<Output = Result<(), String>> + Send {
        async { Ok(()) }
    }

    /// Where to record transaction steps as they happen (the journal). Venues that send
    /// nothing ignore it.
    fn set_recorder(&mut self, _recorder: std::sync::Arc<dyn StepRecorder>) {}

    /// After a restart: finds what became of transactions the journal saw leave but not finish.
    /// Venues that send nothing have nothing to settle.
    fn settle(
        &mut self,
        unsettled: &[UnsettledTx],
    ) -> impl Future<Output = Result<Vec<SettledTx>, VenueError>> + Send {
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

    /// Transactions the venue gave up on that may still be mined (the node holds them). While
    /// any is open the agent takes no new exposure (a second order could double it) and asks
    /// [`Venue::bookings`] before every event.
    fn open_transactions(&self) -> usize {
        0
    }

    /// Whether [`Venue::bookings`] has anything to say (gas to charge, open transactions to ask
    /// about); the agent asks only then. Venues that send nothing never do.
    fn has_bookings(&self) -> bool {
        false
    }

    /// What the agent must book that no fill carried, since the last call: late fills of
    /// transactions given up on, gas of failed transactions, open transactions that can no
    /// longer be mined. Called after every execution and, while
    /// [`Venue::open_transactions`] is non-zero, before every event. Venues that send nothing
    /// have nothing to book.
    fn bookings(&mut self) -> impl Future<Output = Result<Vec<Booking>, VenueError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Steps taken since the last call, for the audit stream.
    fn drain_events(&mut self) -> Vec<VenueEvent> {
        Vec::new()
    }

    /// Whether this venue lists prediction markets: the agent then lists them every cycle
    /// ([`Venue::markets`]) and hands them to the strategy as a
    /// [`MarketEvent::Predictions`]. Swap venues do not.
    fn lists_markets(&self) -> bool {
        false
    }

    /// Every prediction market the venue lists, with our holdings (see
    /// [`Venue::lists_markets`]).
    fn markets(
        &mut self,
    ) -> impl Future<Output = Result<Vec<crate::prediction::MarketView>, VenueError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Outcome tokens `bet` would buy now, without buying.
    fn quote_bet(
        &mut self,
        _bet: &crate::intent::Bet,
    ) -> impl Future<Output = Result<U256, VenueError>> + Send {
        async { Err(VenueError::Unsupported("this venue takes no bets".into())) }
    }

    /// Places an approved bet, refusing fewer than `min_tokens` outcome tokens.
    fn place_bet(
        &mut self,
        _id: &IntentId,
        _bet: &crate::intent::Bet,
        _min_tokens: U256,
    ) -> impl Future<Output = Result<crate::prediction::BetFill, VenueError>> + Send {
        async { Err(VenueError::Unsupported("this venue takes no bets".into())) }
    }

    /// Redeems every resolved position; the collateral received, in its units.
    fn redeem(&mut self) -> impl Future<Output = Result<U256, VenueError>> + Send {
        async {
            Err(VenueError::Unsupported(
                "this venue holds no positions".into(),
            ))
        }
    }
}

/// Several venues of one type behind one [`Venue`]: each swap goes to the venue of its pair (a
/// multi-asset agent's pools, one per asset against the numéraire). Reads fan out to every venue
/// and merge; the first venue settles a restart's open transactions, so it must book every
/// token of the set (a chain venue tracking all of them).
///
/// Routing is by the swap's venue key when it names one ([`Swap::venue`]: two DEXes of one
/// pair), else by pair: the first venue of the pair.
#[derive(Debug)]
pub struct VenueSet<V> {
    venues: Vec<(crate::market::Pair, V)>,
    /// Each venue's key, in order.
    keys: Vec<String>,
    /// The venue whose gas estimate strategies see (the one whose base is the gas token).
    gas_from: usize,
    name: String,
}

impl<V: Venue> VenueSet<V> {
    /// One venue per pair, in order, each keyed `BASE/QUOTE`.
    ///
    /// # Errors
    /// No venue, or two venues for the same pair (in either direction).
    pub fn new(venues: Vec<(crate::market::Pair, V)>) -> Result<Self, String> {
        for (i, (p, _)) in venues.iter().enumerate() {
            if venues[..i].iter().any(|(q, _)| q.trades(&p.base, &p.quote)) {
                return Err(format!("two venues for the pair {}/{}", p.base, p.quote));
            }
        }
        let keyed = venues
            .into_iter()
            .map(|(p, v)| (format!("{}/{}", p.base, p.quote), p, v))
            .collect();
        Self::keyed(keyed)
    }

    /// Venues under keys of their own (several may trade one pair: two DEXes), in order; a swap
    /// names its venue by key ([`Swap::on`]), or goes to the first venue of its pair.
    ///
    /// # Errors
    /// No venue, or a key used twice.
    pub fn keyed(venues: Vec<(String, crate::market::Pair, V)>) -> Result<Self, String> {
        let Some((_, _, first)) = venues.first() else {
            return Err("a venue set needs at least one venue".into());
        };
        let name = format!("{}×{}", first.name(), venues.len());
        let mut keys: Vec<String> = Vec::with_capacity(venues.len());
        let mut out = Vec::with_capacity(venues.len());
        for (key, pair, venue) in venues {
            if keys.contains(&key) {
                return Err(format!("two venues keyed {key}"));
            }
            keys.push(key);
            out.push((pair, venue));
        }
        Ok(Self {
            venues: out,
            keys,
            gas_from: 0,
            name,
        })
    }

    /// Strategies see the gas estimate of the venue whose base token is `token` (the chain's
    /// gas token, valued at its own price); the first venue's otherwise.
    pub fn gas_estimate_from(mut self, token: &Token) -> Self {
        if let Some(i) = self.venues.iter().position(|(p, _)| &p.base == token) {
            self.gas_from = i;
        }
        self
    }

    /// The venues with their pairs, in order.
    pub fn venues(&self) -> &[(crate::market::Pair, V)] {
        &self.venues
    }

    /// The keys, in the venues' order.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    fn route(&mut self, swap: &Swap) -> Result<&mut V, VenueError> {
        let (sell, buy) = (&swap.sell, &swap.buy);
        let at = match &swap.venue {
            Some(key) => self.keys.iter().position(|k| k == key).ok_or_else(|| {
                VenueError::Unsupported(format!("no venue keyed {key} in this set"))
            })?,
            None => self
                .venues
                .iter()
                .position(|(p, _)| p.trades(sell, buy))
                .ok_or_else(|| {
                    VenueError::Unsupported(format!("no venue trades {sell} → {buy}"))
                })?,
        };
        let (pair, venue) = &mut self.venues[at];
        if !pair.trades(sell, buy) {
            return Err(VenueError::Unsupported(format!(
                "venue {} trades {}/{}, not {sell} → {buy}",
                self.keys[at], pair.base, pair.quote
            )));
        }
        Ok(venue)
    }
}

impl<V: Venue> Venue for VenueSet<V> {
    fn name(&self) -> &str {
        &self.name
    }

    fn observe(&mut self, event: &MarketEvent) {
        for (_, v) in &mut self.venues {
            v.observe(event);
        }
    }

    fn gas_estimate_quote(&self) -> f64 {
        self.venues[self.gas_from].1.gas_estimate_quote()
    }

    async fn quote(&mut self, swap: &Swap) -> Result<Quote, VenueError> {
        self.route(swap)?.quote(swap).await
    }

    async fn execute(&mut self, order: &Order, ts: i64) -> Result<Fill, VenueError> {
        self.route(&order.swap)?.execute(order, ts).await
    }

    /// Every venue's balances, merged by token (a later venue's reading of a token wins: the
    /// venues share one wallet, and the later read is the newer); `None` when the venues keep
    /// no record (paper).
    async fn balances(&mut self) -> Result<Option<Vec<(Token, U256)>>, VenueError> {
        let mut merged: Option<Vec<(Token, U256)>> = None;
        for (_, v) in &mut self.venues {
            let Some(list) = v.balances().await? else {
                continue;
            };
            let out = merged.get_or_insert_with(Vec::new);
            for (token, amount) in list {
                match out.iter_mut().find(|(t, _)| t == &token) {
                    Some(slot) => slot.1 = amount,
                    None => out.push((token, amount)),
                }
            }
        }
        Ok(merged)
    }

    async fn health(&mut self) -> Result<(), String> {
        for (_, v) in &mut self.venues {
            v.health().await?;
        }
        Ok(())
    }

    fn set_recorder(&mut self, recorder: std::sync::Arc<dyn StepRecorder>) {
        for (_, v) in &mut self.venues {
            v.set_recorder(recorder.clone());
        }
    }

    async fn settle(&mut self, unsettled: &[UnsettledTx]) -> Result<Vec<SettledTx>, VenueError> {
        self.venues[0].1.settle(unsettled).await
    }

    fn open_transactions(&self) -> usize {
        self.venues.iter().map(|(_, v)| v.open_transactions()).sum()
    }

    fn has_bookings(&self) -> bool {
        self.venues.iter().any(|(_, v)| v.has_bookings())
    }

    /// Every venue's bookings. A venue that cannot answer keeps its own for the next call (the
    /// agent asks again before the next event) while the others' are handed over: taken
    /// bookings are never dropped. An error only when nothing was taken.
    async fn bookings(&mut self) -> Result<Vec<Booking>, VenueError> {
        let mut out = Vec::new();
        let mut failure = None;
        for (_, v) in &mut self.venues {
            if v.has_bookings() {
                match v.bookings().await {
                    Ok(b) => out.extend(b),
                    Err(e) => {
                        failure.get_or_insert(e);
                    }
                }
            }
        }
        match failure {
            Some(e) if out.is_empty() => Err(e),
            _ => Ok(out),
        }
    }

    fn drain_events(&mut self) -> Vec<VenueEvent> {
        self.venues
            .iter_mut()
            .flat_map(|(_, v)| v.drain_events())
            .collect()
    }
}
