//! Where orders are executed: the [`Venue`] trait, implemented by the paper venue and the
//! on-chain venue alike.

use std::future::Future;

use crate::amount::{Token, U256};
use crate::intent::{Fill, IntentId, Order, Quote, Swap};
use crate::market::MarketEvent;

/// Why a venue did not quote or fill.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VenueError {
    #[error("output {got} is below the minimum {min}")]
    Slippage { min: U256, got: U256 },
    #[error("no liquidity: {0}")]
    NoLiquidity(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("rejected: {0}")]
    Rejected(String),
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
    pub tx_hash: Option<String>,
    pub nonce: Option<u64>,
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
        id: IntentId,
        /// What the transaction was for (`approve`, `swap`).
        label: String,
        token: Token,
        amount: U256,
        tx_hash: Option<String>,
    },
    /// A transaction given up on can no longer be mined (dropped, or its nonce taken): it cost
    /// nothing, and the intent is closed without a fill.
    Dropped {
        id: IntentId,
        label: String,
        nonce: u64,
    },
}

/// Writes venue steps durably the moment they happen — the journal — so that a step is on disk
/// before the action that follows it (a signed transaction is recorded before it is broadcast).
pub trait StepRecorder: Send + Sync {
    /// An error means the step is not recorded; the venue must not take the next action.
    fn record(&self, event: &VenueEvent) -> Result<(), String>;
}

/// A transaction the journal saw leave (signed) but not finish before the agent stopped: one
/// nonce, every hash signed for it (replacements), and the intent it served.
#[derive(Debug, Clone, PartialEq)]
pub struct UnsettledTx {
    pub intent_id: Option<String>,
    pub label: String,
    pub nonce: u64,
    pub hashes: Vec<String>,
}

/// What became of an [`UnsettledTx`], and what it did to the wallet's balances.
#[derive(Debug, Clone, PartialEq)]
pub struct SettledTx {
    pub nonce: u64,
    pub outcome: Settlement,
    /// Tokens the transaction brought in and took out (gas included), from its receipt.
    pub credits: Vec<(Token, U256)>,
    pub debits: Vec<(Token, U256)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Settlement {
    /// Mined (status 1 or reverted, gas paid either way).
    Mined {
        hash: String,
        block: u64,
        success: bool,
    },
    /// No hash was mined and none is pending: the transaction never reached the chain, or was
    /// dropped. It cost nothing.
    Dropped,
    /// The node still holds it unmined: it may yet execute.
    Pending { hash: String },
}

/// An execution venue. Quotes and fills are async because on a chain they are RPC calls; the
/// paper venue answers at once.
///
/// `quote` must not change any state a later `execute` depends on: the risk gate sees the quote,
/// and only an approved [`Order`] reaches `execute`, which must refuse to fill below
/// `order.min_amount_out`.
pub trait Venue: Send {
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
}
