//! [`PaperVenue`]: a simulated Uniswap V2 pool, re-centred on every bar's close, with gas.
//!
//! Fills have price impact, the LP fee and gas, computed with the same integer math as the pool
//! contract, so a paper run costs what a live one would.

use agent_core::amount::{base_to_quote, pow10, price_to_units};
use agent_core::{
    Depth, Fill, MarketEvent, Order, Pair, Quote, Swap, Token, U256, Venue, VenueError,
};

use crate::amm::{AmmError, get_amount_out};

/// Pool and gas parameters, in exact units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaperAmmConfig {
    /// LP fee in basis points (Uniswap V2: 30).
    pub fee_bps: u32,
    /// Quote-side reserve of the simulated pool after each re-centring, in quote units. The base
    /// side is set so that the pool's price equals the bar's close.
    pub depth_quote: U256,
    /// Gas units one swap burns (Uniswap V2 router swap: ~120,000 with approvals amortised).
    pub gas_per_swap: u64,
    /// Gas price in wei.
    pub gas_price_wei: U256,
}

impl PaperAmmConfig {
    /// 30 bps, 5,000,000 quote of depth, 120,000 gas at 20 gwei.
    pub fn default_for(pair: &Pair) -> Self {
        Self {
            fee_bps: 30,
            depth_quote: U256::from(5_000_000u64) * pair.quote.one(),
            gas_per_swap: 120_000,
            gas_price_wei: U256::from(20_000_000_000u64),
        }
    }
}

/// A simulated constant-product pool for one pair. Gas is charged in the quote token at the
/// bar's close, valuing the native gas token at the base token's price (the bundled pair is
/// ETH/USDC, where the base *is* the native token).
#[derive(Debug, Clone)]
pub struct PaperVenue {
    pair: Pair,
    cfg: PaperAmmConfig,
    /// (base reserve, quote reserve); `None` before the first bar.
    reserves: Option<(U256, U256)>,
    /// Latest close as seen; turned into integers only when a quote needs the pool.
    close: f64,
    /// The price the pool is re-centred on: the latest close, or with
    /// [`PaperVenue::fill_at_next_open`] the next bar's open (NaN after the last bar: no pool).
    centre: f64,
    /// The whole series and the index of the next bar after the latest one seen, with
    /// [`PaperVenue::fill_at_next_open`].
    next_open: Option<(std::sync::Arc<[agent_core::Bar]>, usize)>,
    /// The pool is re-centred lazily, on the first quote after a new bar.
    stale: bool,
    /// Latest close as quote units per whole base; set on re-centring.
    price: U256,
    /// Gas of one swap: native wei (fixed by the config) and its quote value at `price`.
    gas_native: U256,
    gas_quote: U256,
    /// `gas_native` in whole tokens, kept as a float for the per-bar gas estimate.
    gas_native_tokens: f64,
    /// The token whose price values gas (the chain's gas token, e.g. WETH), read from a
    /// [`MarketEvent::Markets`] set; `None`: the pool's own base token.
    gas_token: Option<Token>,
    /// That token's latest close, quote per whole token.
    gas_close: Option<f64>,
    /// This venue's key in the agent's `VenueSet`, when several venues trade the pair: it
    /// follows that entry of a [`MarketEvent::Markets`] set.
    key: Option<String>,
}

impl PaperVenue {
    /// A venue for `pair` with no price yet: quotes fail with [`VenueError::NoLiquidity`]
    /// until the first bar. Gas per swap is `gas_per_swap × gas_price_wei` of an 18-decimal
    /// native token.
    pub fn new(pair: Pair, cfg: PaperAmmConfig) -> Self {
        let gas_native = U256::from(cfg.gas_per_swap).saturating_mul(cfg.gas_price_wei);
        Self {
            pair,
            reserves: None,
            close: 0.0,
            centre: 0.0,
            next_open: None,
            stale: false,
            price: U256::ZERO,
            gas_native,
            gas_quote: U256::ZERO,
            gas_native_tokens: agent_core::amount::to_f64(gas_native, 18),
            gas_token: None,
            gas_close: None,
            key: None,
            cfg,
        }
    }

    /// Fills an order decided on a bar at the next bar's open (`[venue] fill = "next_open"`):
    /// on each bar the pool is re-centred on the open of the bar after it in `bars` (the
    /// replayed series, ascending by time), so a decision made on a close never trades at that
    /// close. After the last bar there is no next open: quotes fail with
    /// [`VenueError::NoLiquidity`]. Bars read from a chain (with the pool's reserves) still
    /// fill on those reserves.
    pub fn fill_at_next_open(mut self, bars: std::sync::Arc<[agent_core::Bar]>) -> Self {
        self.next_open = Some((bars, 0));
        self
    }

    /// Follows the set entry read on the venue keyed `key` (a second DEX of the same pair),
    /// rather than the pair's first entry.
    pub fn at_venue(mut self, key: &str) -> Self {
        self.key = Some(key.to_string());
        self
    }

    /// Values gas at the price of `token` — the chain's gas token, another pair of the
    /// multi-market events this venue sees — rather than at the pool's base token (a pool of an
    /// asset that is not the gas token).
    pub fn gas_priced_by(mut self, token: Token) -> Self {
        self.gas_token = Some(token);
        self
    }

    /// Quote units of one whole gas token at the latest prices: the gas token's close when it
    /// is priced by another pair, else the pool's own price.
    fn gas_token_price(&self) -> U256 {
        match self.gas_close {
            Some(c) => price_to_units(c, self.pair.quote.decimals()).unwrap_or(self.price),
            None => self.price,
        }
    }

    /// The pool and gas parameters.
    pub fn config(&self) -> &PaperAmmConfig {
        &self.cfg
    }

    /// Current (base, quote) reserves, after re-centring on the latest close.
    pub fn reserves(&mut self) -> Option<(U256, U256)> {
        self.recentre();
        self.reserves
    }

    fn recentre(&mut self) {
        if !self.stale {
            return;
        }
        self.stale = false;
        let Some(price) = price_to_units(self.centre, self.pair.quote.decimals()) else {
            self.reserves = None;
            return;
        };
        self.price = price;
        let base = self.cfg.depth_quote.saturating_mul(self.pair.base.one()) / price;
        self.reserves = Some((base, self.cfg.depth_quote));
        // The native gas token has 18 decimals and is priced like the base token (or the gas
        // token named by `gas_priced_by`).
        self.gas_quote = self.gas_native.saturating_mul(self.gas_token_price()) / pow10(18);
    }

    /// Reserves ordered (in, out) for a swap, or why not.
    fn sides(&mut self, sell: &Token, buy: &Token) -> Result<(bool, U256, U256), VenueError> {
        self.recentre();
        let (rb, rq) = self
            .reserves
            .ok_or_else(|| VenueError::NoLiquidity("no market price seen yet".into()))?;
        if sell == &self.pair.base && buy == &self.pair.quote {
            Ok((true, rb, rq))
        } else if sell == &self.pair.quote && buy == &self.pair.base {
            Ok((false, rq, rb))
        } else {
            Err(VenueError::Unsupported(format!(
                "{sell} → {buy} is not {}/{}",
                self.pair.base, self.pair.quote
            )))
        }
    }

    fn amm(e: AmmError) -> VenueError {
        match e {
            AmmError::InsufficientLiquidity => VenueError::NoLiquidity(e.to_string()),
            _ => VenueError::Rejected(e.to_string()),
        }
    }

    fn quote_now(&mut self, swap: &Swap) -> Result<(Quote, bool), VenueError> {
        let (sell_base, r_in, r_out) = self.sides(&swap.sell, &swap.buy)?;
        let amount_out =
            get_amount_out(swap.amount_in, r_in, r_out, self.cfg.fee_bps).map_err(Self::amm)?;
        let fee =
            swap.amount_in.saturating_mul(U256::from(self.cfg.fee_bps)) / U256::from(10_000u32);
        let (rb, rq) = if sell_base {
            (r_in, r_out)
        } else {
            (r_out, r_in)
        };
        let venue_price = rq.saturating_mul(self.pair.base.one()) / rb;
        Ok((
            Quote {
                amount_out,
                fee,
                gas_native: self.gas_native,
                gas_price_wei: self.cfg.gas_price_wei,
                gas_cost: (self.pair.quote.clone(), self.gas_quote),
                venue_price,
                depth: Some(Depth::ConstantProduct {
                    reserve_in: r_in,
                    reserve_out: r_out,
                    fee_bps: self.cfg.fee_bps,
                }),
            },
            sell_base,
        ))
    }
}

impl Venue for PaperVenue {
    fn name(&self) -> &str {
        "paper_amm"
    }

    #[inline]
    fn observe(&mut self, event: &MarketEvent) {
        if let Some(t) = &self.gas_token
            && let Some(m) = event.markets().and_then(|set| set.of_base(t))
        {
            self.gas_close = Some(m.bar.close);
        }
        // This pool's own market: a one-pair event, or this venue's (this pair's) entry in a set.
        let own = match (&self.key, event.markets()) {
            (Some(k), Some(set)) => set.at(k).map(|m| (&m.bar, m.pool.as_ref())),
            _ => event.for_pair(&self.pair),
        };
        let Some((bar, pool)) = own else {
            return;
        };
        self.close = bar.close;
        self.centre = match &mut self.next_open {
            None => bar.close,
            Some((bars, next)) => {
                while bars.get(*next).is_some_and(|b| b.ts <= bar.ts) {
                    *next += 1;
                }
                bars.get(*next).map_or(f64::NAN, |b| b.open)
            }
        };
        self.stale = true;
        // A real pool's exact reserves: fill against them, not a re-centred simulation.
        if let Some(pool) = pool
            && !pool.reserve_base.is_zero()
        {
            self.stale = false;
            self.reserves = Some((pool.reserve_base, pool.reserve_quote));
            self.price =
                pool.reserve_quote.saturating_mul(self.pair.base.one()) / pool.reserve_base;
            if !pool.gas_price_wei.is_zero() {
                self.cfg.gas_price_wei = pool.gas_price_wei;
                self.gas_native =
                    U256::from(self.cfg.gas_per_swap).saturating_mul(pool.gas_price_wei);
                self.gas_native_tokens = agent_core::amount::to_f64(self.gas_native, 18);
            }
            self.gas_quote = self.gas_native.saturating_mul(self.gas_token_price()) / pow10(18);
        }
    }

    fn gas_estimate_quote(&self) -> f64 {
        self.gas_native_tokens * self.gas_close.unwrap_or(self.close)
    }

    async fn quote(&mut self, swap: &Swap) -> Result<Quote, VenueError> {
        self.quote_now(swap).map(|(q, _)| q)
    }

    async fn execute(&mut self, order: &Order, ts: i64) -> Result<Fill, VenueError> {
        let (q, sell_base) = self.quote_now(&order.swap)?;
        if q.amount_out < order.min_amount_out {
            return Err(VenueError::Slippage {
                min: order.min_amount_out,
                got: q.amount_out,
            });
        }
        // As in the pair contract: the whole input (fee included) joins the reserves.
        let (rb, rq) = self.reserves.unwrap_or_default();
        self.reserves = Some(if sell_base {
            (rb + order.swap.amount_in, rq - q.amount_out)
        } else {
            (rb - q.amount_out, rq + order.swap.amount_in)
        });
        let fee_quote = if sell_base {
            base_to_quote(q.fee, self.pair.base.decimals(), self.price)
        } else {
            q.fee
        };
        let gas_quote = q.gas_cost.1;
        Ok(Fill {
            id: order.id.clone(),
            ts,
            sell: order.swap.sell.clone(),
            buy: order.swap.buy.clone(),
            amount_in: order.swap.amount_in,
            amount_out: q.amount_out,
            fee: q.fee,
            fee_quote,
            gas_native: q.gas_native,
            gas_cost: q.gas_cost,
            gas_quote,
            tx_hash: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_core::{Bar, IntentId};

    fn venue_at(close: f64) -> PaperVenue {
        let pair = Pair::eth_usdc();
        let mut cfg = PaperAmmConfig::default_for(&pair);
        cfg.depth_quote = U256::from(200_000_000_000u64); // 200,000 USDC
        let mut v = PaperVenue::new(pair, cfg);
        v.observe(&MarketEvent::Bar(Bar {
            ts: 0,
            open: close,
            high: close,
            low: close,
            close,
            volume: 0.0,
        }));
        v
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn pool_is_centred_on_the_close() {
        let mut v = venue_at(2000.0);
        // 200,000 USDC / 2000 = 100 ETH.
        assert_eq!(
            v.reserves(),
            Some((
                U256::from(100u128 * 10u128.pow(18)),
                U256::from(200_000_000_000u64)
            ))
        );
    }

    #[test]
    fn fill_uses_uniswap_math_fee_and_gas() {
        let mut v = venue_at(2000.0);
        let pair = Pair::eth_usdc();
        let swap = Swap {
            sell: pair.base.clone(),
            buy: pair.quote.clone(),
            amount_in: U256::from(10u128.pow(18)),
            venue: None,
        };
        let order = Order {
            id: IntentId::new("t", 0, 0),
            swap,
            min_amount_out: U256::ZERO,
        };
        let fill = block_on(v.execute(&order, 0)).unwrap();
        assert_eq!(
            fill.amount_out,
            U256::from(1_974_316_068u64),
            "same as get_amount_out by hand"
        );
        assert_eq!(
            fill.fee,
            U256::from(3_000_000_000_000_000u64),
            "0.3% of 1 ETH"
        );
        assert_eq!(
            fill.fee_quote,
            U256::from(6_000_000u64),
            "0.003 ETH at 2000 = 6 USDC"
        );
        // 120,000 gas × 20 gwei = 0.0024 ETH = 4.8 USDC at 2000.
        assert_eq!(fill.gas_native, U256::from(2_400_000_000_000_000u64));
        assert_eq!(
            fill.gas_cost,
            (pair.quote.clone(), U256::from(4_800_000u64))
        );
        // A second identical trade in the same bar gets a worse price: the pool moved.
        let order2 = Order {
            id: IntentId::new("t", 0, 1),
            ..order.clone()
        };
        let fill2 = block_on(v.execute(&order2, 0)).unwrap();
        assert!(fill2.amount_out < fill.amount_out);
        // A new bar re-centres the pool.
        v.observe(&MarketEvent::Bar(Bar {
            ts: 1,
            open: 2000.0,
            high: 2000.0,
            low: 2000.0,
            close: 2000.0,
            volume: 0.0,
        }));
        let fill3 = block_on(v.execute(&order, 1)).unwrap();
        assert_eq!(fill3.amount_out, fill.amount_out);
    }

    #[test]
    fn execute_refuses_below_min_out_without_moving_the_pool() {
        let mut v = venue_at(2000.0);
        let pair = Pair::eth_usdc();
        let swap = Swap {
            sell: pair.quote.clone(),
            buy: pair.base.clone(),
            amount_in: U256::from(1_000_000_000u64),
            venue: None,
        };
        let before = v.reserves();
        let order = Order {
            id: IntentId::new("t", 0, 0),
            swap,
            min_amount_out: U256::from(10u128.pow(18)),
        };
        assert!(matches!(
            block_on(v.execute(&order, 0)),
            Err(VenueError::Slippage { .. })
        ));
        assert_eq!(v.reserves(), before);
    }

    #[test]
    fn no_price_no_liquidity_and_foreign_tokens_refused() {
        let pair = Pair::eth_usdc();
        let mut v = PaperVenue::new(pair.clone(), PaperAmmConfig::default_for(&pair));
        let swap = Swap {
            sell: pair.quote.clone(),
            buy: pair.base.clone(),
            amount_in: U256::from(1u8),
            venue: None,
        };
        assert!(matches!(
            block_on(v.quote(&swap)),
            Err(VenueError::NoLiquidity(_))
        ));
        let mut v = venue_at(100.0);
        let odd = Swap {
            sell: Token::new("DAI", 18),
            buy: pair.base.clone(),
            amount_in: U256::from(1u8),
            venue: None,
        };
        assert!(matches!(
            block_on(v.quote(&odd)),
            Err(VenueError::Unsupported(_))
        ));
    }
}
