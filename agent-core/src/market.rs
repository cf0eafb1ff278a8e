//! Market data as the agent sees it: bars, the pair they price, and the events a source yields.

use crate::amount::{Token, U256};

/// One OHLCV candle. Prices are quote per whole base token; they are market *observations*
/// (floats), turned into integers only where money is computed from them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// Open time, unix seconds (UTC).
    pub ts: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

impl Bar {
    /// The first field that makes this bar unusable, if any: non-finite or non-positive prices,
    /// `high < low`, open or close outside `[low, high]`, negative or non-finite volume.
    pub fn validate(&self) -> Result<(), BarFault> {
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
    pub field: &'static str,
    pub problem: &'static str,
}

/// The traded pair: a base token priced in a quote token (ETH/USDC: base ETH, quote USDC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub base: Token,
    pub quote: Token,
}

impl Pair {
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
    Pool { bar: Bar, pool: Box<PoolSnapshot> },
    /// Time passed with no new market data (a quiet chain's timer cycle): `ts` is the time of
    /// the latest data (unix s). The kill switch, health checks and the stale-data limit run on
    /// it; strategies see no bar.
    Tick { ts: i64 },
}

/// A constant-product pool's exact state at one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSnapshot {
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
    pub fn ts(&self) -> i64 {
        match self {
            MarketEvent::Bar(b) | MarketEvent::Pool { bar: b, .. } => b.ts,
            MarketEvent::Tick { ts } => *ts,
        }
    }
    pub fn as_bar(&self) -> Option<&Bar> {
        match self {
            MarketEvent::Bar(b) | MarketEvent::Pool { bar: b, .. } => Some(b),
            MarketEvent::Tick { .. } => None,
        }
    }
    pub fn pool(&self) -> Option<&PoolSnapshot> {
        match self {
            MarketEvent::Pool { pool, .. } => Some(pool),
            MarketEvent::Bar(_) | MarketEvent::Tick { .. } => None,
        }
    }
}
