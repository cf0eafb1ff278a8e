//! Market data as the agent sees it: bars, the pair they price, and the events a source yields.

use crate::amount::{Token, U256};

/// One OHLCV candle. Prices are quote per whole base token; they are market *observations*
/// (floats), turned into integers only where money is computed from them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// Open time, unix seconds (UTC).
    pub ts: i64,
    /// First trade price of the interval, quote per whole base token.
    pub open: f64,
    /// Highest price of the interval, quote per whole base token.
    pub high: f64,
    /// Lowest price of the interval, quote per whole base token.
    pub low: f64,
    /// Last price of the interval, quote per whole base token: the reference price strategies
    /// and the risk gate use.
    pub close: f64,
    /// Traded volume of the interval in whole base tokens, as the data source reports it; 0 for
    /// a bar built from a pool read.
    pub volume: f64,
}

impl Bar {
    /// The first field that makes this bar unusable, if any: non-finite or non-positive prices,
    /// `high < low`, open or close outside `[low, high]`, negative or non-finite volume.
    ///
    /// # Errors
    ///
    /// A [`BarFault`] naming the first failing check, in this order: each price (open, high,
    /// low, close) not finite or not positive, volume not finite or negative, `high` below
    /// `low`, `close` outside `[low, high]`, `open` outside `[low, high]`.
    #[inline]
    pub fn validate(&self) -> Result<(), BarFault> {
        // Every check at once for the usual good bar: a positive low, a finite high above it,
        // open and close between them, a finite non-negative volume. Only a bad bar goes through
        // the checks one by one to name its first fault.
        let (low, high) = (self.low, self.high);
        if low > 0.0
            && high.is_finite()
            && low <= high
            && (low..=high).contains(&self.close)
            && (low..=high).contains(&self.open)
            && self.volume.is_finite()
            && self.volume >= 0.0
        {
            return Ok(());
        }
        self.first_fault()
    }

    /// The checks of [`Bar::validate`] one by one, in its order: the first that fails.
    fn first_fault(&self) -> Result<(), BarFault> {
        for (field, v) in [
            ("open", self.open),
            ("high", self.high),
            ("low", self.low),
            ("close", self.close),
        ] {
            if !v.is_finite() {
                return Err(BarFault {
                    field,
                    problem: "is not finite",
                });
            }
            if v <= 0.0 {
                return Err(BarFault {
                    field,
                    problem: "is not positive",
                });
            }
        }
        if !self.volume.is_finite() {
            return Err(BarFault {
                field: "volume",
                problem: "is not finite",
            });
        }
        if self.volume < 0.0 {
            return Err(BarFault {
                field: "volume",
                problem: "is negative",
            });
        }
        if self.high < self.low {
            return Err(BarFault {
                field: "high",
                problem: "is below low",
            });
        }
        if self.close < self.low || self.close > self.high {
            return Err(BarFault {
                field: "close",
                problem: "is outside [low, high]",
            });
        }
        if self.open < self.low || self.open > self.high {
            return Err(BarFault {
                field: "open",
                problem: "is outside [low, high]",
            });
        }
        Ok(())
    }
}

/// Why a bar was rejected: the field and what is wrong with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{field} {problem}")]
pub struct BarFault {
    /// The field at fault: `open`, `high`, `low`, `close` or `volume`.
    pub field: &'static str,
    /// What is wrong with it, e.g. `is not finite`, `is outside [low, high]`.
    pub problem: &'static str,
}

/// The traded pair: a base token priced in a quote token (ETH/USDC: base ETH, quote USDC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// The token priced and traded (ETH in ETH/USDC).
    pub base: Token,
    /// The token prices are in (USDC in ETH/USDC); the agent values its equity in it.
    pub quote: Token,
}

impl Pair {
    /// The pair `base`/`quote`: `base` priced in `quote`.
    pub fn new(base: Token, quote: Token) -> Self {
        Self { base, quote }
    }
    /// Whether `sell → buy` is a swap of this pair, in either direction.
    pub fn trades(&self, sell: &Token, buy: &Token) -> bool {
        (sell == &self.base && buy == &self.quote) || (sell == &self.quote && buy == &self.base)
    }

    /// Whether selling `sell` for `buy` shrinks exposure: anything sold into the quote token.
    pub fn reduces_exposure(&self, sell: &Token, buy: &Token) -> bool {
        sell != &self.quote && buy == &self.quote
    }

    /// ETH (18 decimals) priced in USDC (6 decimals), the bundled data's pair.
    pub fn eth_usdc() -> Self {
        Self::new(Token::new("ETH", 18), Token::new("USDC", 6))
    }
}

/// What a market source yields, in time order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MarketEvent {
    /// A closed candle of the agent's pair.
    Bar(Bar),
    /// A pool read at a block: the candle strategies see, plus the exact reserves behind it (a
    /// paper venue fills against these, wei for wei what the chain would give).
    // Boxed: keeps every event (and the backtest's hot loop) as small as a bar.
    Pool {
        /// The candle strategies see (a chain source builds it from the pool's price: this
        /// read's as close, the previous read's as open).
        bar: Bar,
        /// The pool's reserves and gas price at the block read.
        pool: Box<PoolSnapshot>,
    },
    /// Time passed with no new market data (a quiet chain's timer cycle): `ts` is the time of
    /// the latest data (unix s). The kill switch, health checks and the stale-data limit run on
    /// it; strategies see no bar.
    Tick {
        /// Time of the latest market data, unix seconds.
        ts: i64,
    },
    /// Several markets read at one time (a chain cycle over several pools, a backtest step over
    /// several series), every price in the same quote token — the agent's numéraire. The first
    /// entry is the agent's own pair: [`MarketEvent::as_bar`] gives its bar, so a one-pair
    /// strategy runs unchanged; a multi-asset strategy reads every entry.
    // Boxed: keeps every event (and the backtest's hot loop) as small as a bar.
    Markets(Box<MarketSet>),
    /// The prediction markets a betting venue lists at one cycle, with our holdings and the
    /// collateral already put into each: what a betting strategy decides on. Built by the
    /// agent from the venue's listing on each cycle of its source.
    Predictions(Box<crate::prediction::PredictionSet>),
}

/// The markets of one [`MarketEvent::Markets`]: time, then one entry per pair.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketSet {
    /// Event time, unix seconds (UTC).
    pub ts: i64,
    /// One entry per pair, the agent's own pair first; at most one entry per pair.
    pub markets: Vec<PairMarket>,
}

/// One pair's latest data in a [`MarketSet`].
#[derive(Debug, Clone, PartialEq)]
pub struct PairMarket {
    /// The pair; its quote token is the set's numéraire.
    pub pair: Pair,
    /// The candle strategies see; `bar.ts` is the set's time.
    pub bar: Bar,
    /// The pool's exact state, when read from a chain (a paper venue fills against it).
    pub pool: Option<PoolSnapshot>,
    /// The venue this market was read on, by its key in a [`crate::VenueSet`], when several
    /// venues trade the pair (two DEXes); `None`: the pair's only venue.
    pub venue: Option<String>,
}

impl MarketSet {
    /// The entry of `pair`, if the set has one.
    pub fn get(&self, pair: &Pair) -> Option<&PairMarket> {
        self.markets.iter().find(|m| &m.pair == pair)
    }

    /// The entry read on the venue keyed `venue`, if any.
    pub fn at(&self, venue: &str) -> Option<&PairMarket> {
        self.markets
            .iter()
            .find(|m| m.venue.as_deref() == Some(venue))
    }

    /// The entry whose base token is `token` (its price in the numéraire), if any.
    pub fn of_base(&self, token: &Token) -> Option<&PairMarket> {
        self.markets.iter().find(|m| &m.pair.base == token)
    }
}

/// A constant-product pool's exact state at one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSnapshot {
    /// The block number the reserves were read at.
    pub block: u64,
    /// Reserve of the pair's base token, in its units.
    pub reserve_base: U256,
    /// Reserve of the pair's quote token, in its units.
    pub reserve_quote: U256,
    /// What one gas costs in the next block (base fee + tip), wei.
    pub gas_price_wei: U256,
}

impl MarketEvent {
    /// Event time, unix seconds.
    #[inline]
    pub fn ts(&self) -> i64 {
        match self {
            MarketEvent::Bar(b) | MarketEvent::Pool { bar: b, .. } => b.ts,
            MarketEvent::Tick { ts } => *ts,
            MarketEvent::Markets(set) => set.ts,
            MarketEvent::Predictions(set) => set.ts,
        }
    }
    /// The bar of the agent's pair: the event's own, or a [`MarketSet`]'s first entry's.
    /// `None` for a tick (and an empty set).
    #[inline]
    pub fn as_bar(&self) -> Option<&Bar> {
        match self {
            MarketEvent::Bar(b) | MarketEvent::Pool { bar: b, .. } => Some(b),
            MarketEvent::Markets(set) => set.markets.first().map(|m| &m.bar),
            MarketEvent::Tick { .. } | MarketEvent::Predictions(_) => None,
        }
    }
    /// The exact pool state of the agent's pair, when the event carries it.
    #[inline]
    pub fn pool(&self) -> Option<&PoolSnapshot> {
        match self {
            MarketEvent::Pool { pool, .. } => Some(pool),
            MarketEvent::Markets(set) => set.markets.first().and_then(|m| m.pool.as_ref()),
            MarketEvent::Bar(_) | MarketEvent::Tick { .. } | MarketEvent::Predictions(_) => None,
        }
    }
    /// The prediction markets of a [`MarketEvent::Predictions`], else `None`.
    pub fn predictions(&self) -> Option<&crate::prediction::PredictionSet> {
        match self {
            MarketEvent::Predictions(set) => Some(set),
            _ => None,
        }
    }
    /// The several markets of a [`MarketEvent::Markets`], else `None`.
    #[inline]
    pub fn markets(&self) -> Option<&MarketSet> {
        match self {
            MarketEvent::Markets(set) => Some(set),
            _ => None,
        }
    }
    /// The bar and pool state of `pair` in this event: a one-pair event's own (it is the
    /// agent's pair), or the set's entry for `pair`.
    #[inline]
    pub fn for_pair(&self, pair: &Pair) -> Option<(&Bar, Option<&PoolSnapshot>)> {
        match self {
            MarketEvent::Markets(set) => set.get(pair).map(|m| (&m.bar, m.pool.as_ref())),
            _ => self.as_bar().map(|b| (b, self.pool())),
        }
    }
}
