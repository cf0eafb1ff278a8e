//! Uniswap V2 on a real chain: [`PoolRef`] reads a pair's reserves, [`ChainSource`] turns them
//! into the market events strategies see in backtest, and [`UniswapV2Venue`] quotes from the
//! reserves and swaps through the router with exact approvals, `amountOutMin` and a deadline.
//! After each fill the balances are read back from the chain: the chain is the record.

use alloy::eips::BlockId;
use alloy::primitives::{Address, B256, U256};
use alloy::rpc::types::TransactionReceipt;
use alloy::sol_types::SolCall;

use agent_core::amount::{Token, base_to_quote, pow10, to_f64};
use agent_core::intent::{Depth, Fill, Order, Quote, Swap};
use agent_core::market::{Bar, MarketEvent, Pair, PoolSnapshot};
use agent_core::source::{MarketSource, SourceError};
use agent_core::venue::{Booking, SettledTx, UnsettledTx, Venue, VenueError, VenueEvent};

use super::bindings::{IERC20, IUniswapV2Pair, IUniswapV2Router02, IWETH9};
use super::cycle::{CycleClock, Trigger};
use super::error::EvmError;
use super::rpc::Chain;
use super::tx::{TxEvent, TxOutcome, TxRequest, TxSender};
use crate::amm::{AmmError, get_amount_out};

/// Uniswap V2's LP fee.
pub const FEE_BPS: u32 = 30;

/// A pair contract holding the agent's pair.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolRef {
    /// The pair as the agent books it (base and quote tokens with their decimals).
    pub pair: Pair,
    /// The UniswapV2Pair contract.
    pub pool: Address,
    /// The base token's ERC-20 contract.
    pub base: Address,
    /// The quote token's ERC-20 contract.
    pub quote: Address,
    base_is_token0: bool,
}

impl PoolRef {
    /// Checks that `pool` holds exactly `base` and `quote` (as `token0`/`token1`, either way
    /// round).
    ///
    /// # Errors
    /// [`EvmError::Contract`] naming the pool when it holds other tokens, or when `token0()` /
    /// `token1()` revert or return no address (not a pair); [`EvmError::Rpc`] when the RPC
    /// fails.
    pub async fn resolve(
        chain: &Chain,
        pair: Pair,
        pool: Address,
        base: Address,
        quote: Address,
    ) -> Result<Self, EvmError> {
        let latest = BlockId::latest();
        let t0 = chain
            .view(pool, IUniswapV2Pair::token0Call {}, latest)
            .await?;
        let t1 = chain
            .view(pool, IUniswapV2Pair::token1Call {}, latest)
            .await?;
        let base_is_token0 = match (t0, t1) {
            (a, b) if a == base && b == quote => true,
            (a, b) if a == quote && b == base => false,
            _ => {
                return Err(EvmError::Contract {
                    contract: pool.to_string(),
                    detail: format!("pair holds {t0} / {t1}, not base {base} / quote {quote}"),
                });
            }
        };
        Ok(Self {
            pair,
            pool,
            base,
            quote,
            base_is_token0,
        })
    }

    /// (base, quote) reserves at `at`, in each token's smallest units (`getReserves`).
    ///
    /// # Errors
    /// [`EvmError::Contract`] when `getReserves()` reverts or returns undecodable data;
    /// [`EvmError::Rpc`] when the RPC fails (or the node lacks the state of block `at`).
    pub async fn reserves(&self, chain: &Chain, at: BlockId) -> Result<(U256, U256), EvmError> {
        let r = chain
            .view(self.pool, IUniswapV2Pair::getReservesCall {}, at)
            .await?;
        let (r0, r1) = (U256::from(r.reserve0), U256::from(r.reserve1));
        Ok(if self.base_is_token0 {
            (r0, r1)
        } else {
            (r1, r0)
        })
    }

    /// Checks that `router` swaps on this pool: its factory's pair for the two tokens is this
    /// pool. Otherwise prices and `amountOutMin` would come from one pool and the swap happen
    /// on another (a second DEX's router with the first DEX's pool, say).
    ///
    /// # Errors
    /// [`EvmError::ChainGuard`] naming the pool, the router and the pair its factory lists; an
    /// RPC failure.
    pub async fn check_router(&self, chain: &Chain, router: Address) -> Result<(), EvmError> {
        use super::bindings::IUniswapV2Factory;
        let factory = chain
            .view(
                router,
                IUniswapV2Router02::factoryCall {},
                BlockId::latest(),
            )
            .await?;
        let listed = chain
            .view(
                factory,
                IUniswapV2Factory::getPairCall {
                    tokenA: self.base,
                    tokenB: self.quote,
                },
                BlockId::latest(),
            )
            .await?;
        if listed != self.pool {
            return Err(EvmError::ChainGuard(format!(
                "pool {} is not what router {router} swaps on: its factory {factory} lists {listed} for {}/{}",
                self.pool, self.pair.base, self.pair.quote
            )));
        }
        Ok(())
    }

    /// The pool's price at the latest block, quote per whole base (a float, for reports and
    /// signals only).
    ///
    /// # Errors
    /// As [`PoolRef::reserves`].
    pub async fn price(&self, chain: &Chain) -> Result<f64, EvmError> {
        let (base, quote) = self.reserves(chain, BlockId::latest()).await?;
        Ok(self.price_f64(base, quote))
    }

    /// Quote per whole base, as a float (for bars and signals only).
    pub fn price_f64(&self, reserve_base: U256, reserve_quote: U256) -> f64 {
        let b = to_f64(reserve_base, self.pair.base.decimals());
        let q = to_f64(reserve_quote, self.pair.quote.decimals());
        if b > 0.0 { q / b } else { f64::NAN }
    }

    /// Token address for a side of the pair.
    pub fn address_of(&self, token: &Token) -> Option<Address> {
        if token == &self.pair.base {
            Some(self.base)
        } else if token == &self.pair.quote {
            Some(self.quote)
        } else {
            None
        }
    }
}

/// How far an event's time may run ahead of both its block's time and the wall clock, seconds,
/// when several blocks come in one second (see `ChainSource`).
pub const MAX_AHEAD_S: i64 = 60;

/// Market events from one pool or several: one per new block, carrying the block's exact
/// reserves (a block in the same second as the previous event is stamped a second later) (several pools: one [`MarketEvent::Markets`] with every pool read
/// at that block, the first pool the agent's own pair); on a quiet chain, a
/// [`MarketEvent::Tick`] per [`CycleClock`] timer cycle (stamped with the latest block's time: no
/// new data), so a live agent keeps cycling — its kill switch, health checks, stale-data limit
/// and `--max-cycles` with it — when no block comes.
#[derive(Debug)]
pub struct ChainSource {
    chain: Chain,
    pools: Vec<PoolRef>,
    clock: CycleClock,
    last_ts: i64,
    /// The previous close of each pool, the next bar's open.
    last_close: Vec<Option<f64>>,
    /// Each pool's venue key in the agent's `VenueSet`, when two venues trade one pair.
    keys: Vec<Option<String>>,
    /// The last block turned into an event.
    last_block: Option<u64>,
}

impl ChainSource {
    /// Cycles on new blocks and on `clock`'s timer.
    pub fn new(chain: Chain, pool: PoolRef, clock: CycleClock) -> Self {
        Self::pools(chain, vec![pool], clock)
    }

    /// Several pools read at each new block (a multi-asset agent's, the agent's own pair
    /// first), on new blocks and on `clock`'s timer.
    pub fn pools(chain: Chain, pools: Vec<PoolRef>, clock: CycleClock) -> Self {
        Self {
            chain,
            last_close: vec![None; pools.len()],
            keys: vec![None; pools.len()],
            pools,
            clock,
            last_ts: i64::MIN,
            last_block: None,
        }
    }

    /// Pools on venues of their own, each under its key in the agent's `VenueSet` (two DEXes of
    /// one pair: the events carry both, each entry named by its key), the agent's own first.
    pub fn keyed_pools(chain: Chain, pools: Vec<(String, PoolRef)>, clock: CycleClock) -> Self {
        let (keys, pools): (Vec<_>, Vec<_>) = pools.into_iter().map(|(k, p)| (Some(k), p)).unzip();
        let mut source = Self::pools(chain, pools, clock);
        source.keys = keys;
        source
    }

    /// The pools at block `number`. A block stamped no later than the previous event (several
    /// blocks in one second: the agent's own transactions on an automine devnet) is stamped
    /// one second after it, so that event times only move forward and the agent sees what its
    /// own trades did to the pools (a flatten's next slice is judged on them) — but never more
    /// than [`MAX_AHEAD_S`] ahead of both the block's time and the wall clock (trade-rate
    /// windows, UTC days and data ages stay close to honest): such a block is held back
    /// (`None`) until a later cycle, when time has caught up.
    async fn event_at(&mut self, number: u64) -> Result<Option<MarketEvent>, EvmError> {
        let block = self.chain.block(Some(number)).await?;
        let block_ts = block.timestamp as i64;
        let ts = block_ts.max(self.last_ts.saturating_add(1));
        if ts
            > block_ts
                .max(agent_core::clock::wall_s())
                .saturating_add(MAX_AHEAD_S)
        {
            return Ok(None);
        }
        let tip = self.chain.priority_fee().await?;
        let gas_price_wei = U256::from(block.base_fee_wei.saturating_add(tip));
        let mut markets = Vec::with_capacity(self.pools.len());
        for ((pool, last), key) in self.pools.iter().zip(&self.last_close).zip(&self.keys) {
            let (rb, rq) = pool.reserves(&self.chain, number.into()).await?;
            let close = pool.price_f64(rb, rq);
            let open = last.unwrap_or(close);
            let bar = Bar {
                ts,
                open,
                high: open.max(close),
                low: open.min(close),
                close,
                volume: 0.0,
            };
            let snapshot = PoolSnapshot {
                block: number,
                reserve_base: rb,
                reserve_quote: rq,
                gas_price_wei,
            };
            markets.push(agent_core::PairMarket {
                pair: pool.pair.clone(),
                bar,
                pool: Some(snapshot),
                venue: key.clone(),
            });
        }
        // Every read succeeded: only now does the source move on.
        self.last_ts = ts;
        self.last_block = Some(number);
        for (last, m) in self.last_close.iter_mut().zip(&markets) {
            *last = Some(m.bar.close);
        }
        if let [
            agent_core::PairMarket {
                bar,
                pool: Some(pool),
                ..
            },
        ] = markets.as_slice()
        {
            // One pool: the one-pair event the bar agent has always seen.
            return Ok(Some(MarketEvent::Pool {
                bar: *bar,
                pool: Box::new(*pool),
            }));
        }
        Ok(Some(MarketEvent::Markets(Box::new(
            agent_core::MarketSet { ts, markets },
        ))))
    }
}

impl MarketSource for ChainSource {
    async fn next_event(&mut self) -> Result<Option<MarketEvent>, SourceError> {
        loop {
            let cycle = self
                .clock
                .next()
                .await
                .map_err(|e| SourceError(e.to_string()))?;
            // A block not yet turned into an event (new, or held back while its time would
            // have run ahead): its event now, if its time allows.
            if self.last_block.is_none_or(|b| cycle.block.number > b)
                && let Some(event) = self
                    .event_at(cycle.block.number)
                    .await
                    .map_err(|e| SourceError(e.to_string()))?
            {
                return Ok(Some(event));
            }
            if cycle.trigger == Trigger::Timer {
                // No new data. The agent still cycles (kill switch, health, stale-data limit
                // against the latest block's time); strategies see no bar.
                return Ok(Some(MarketEvent::Tick {
                    ts: (cycle.block.timestamp as i64).max(self.last_ts),
                }));
            }
        }
    }
}

/// Settings of the live venue.
#[derive(Debug, Clone, PartialEq)]
pub struct UniswapV2Config {
    /// The UniswapV2Router02 the venue swaps through (and approves, exactly per swap).
    pub router: Address,
    /// Seconds after the next block's timestamp ([`Chain::next_block_timestamp`]) a swap stays
    /// valid: the router's `deadline`.
    pub deadline_s: u64,
    /// Gas one swap burns, approval included, for quotes (the receipt has the truth).
    pub gas_per_swap: u64,
    /// Chain id the venue must stay on; checked every `chain_check_every` events.
    pub chain_id: u64,
    /// Venue health checks between two chain id checks: the first check asks, then every
    /// `chain_check_every`-th; 0 never asks.
    pub chain_check_every: u32,
}

impl UniswapV2Config {
    /// Swaps through `router` on chain `chain_id`, valid 60 s past the next block's time, quoted at
    /// 150,000 gas a swap, the chain id checked on the first health check and every one after.
    pub fn new(router: Address, chain_id: u64) -> Self {
        Self {
            router,
            deadline_s: 60,
            gas_per_swap: 150_000,
            chain_id,
            chain_check_every: 1,
        }
    }
}

/// A transaction the sender gave up on while the node still held it: it may yet be mined.
#[derive(Debug, Clone)]
struct OpenTx {
    /// The order it serves.
    order: Order,
    /// It is the swap itself (an approval fills nothing).
    fills: bool,
    label: String,
    nonce: u64,
    hashes: Vec<B256>,
    /// Event time of the execution that sent it.
    ts: i64,
    /// Gas (wei) already paid for the order (its approval), booked with it when it settles.
    extra_gas: U256,
}

impl OpenTx {
    /// A step the venue took on this transaction, as a venue event of its intent.
    fn step(&self, step: &'static str, hash: B256, detail: String) -> VenueEvent {
        VenueEvent {
            step,
            label: self.label.clone(),
            tx_hash: Some(hash.to_string()),
            nonce: Some(self.nonce),
            detail,
            intent_id: Some(self.order.id.to_string()),
        }
    }
}

/// Swaps the agent's pair through UniswapV2Router02 from one wallet.
pub struct UniswapV2Venue {
    pool: PoolRef,
    tx: TxSender,
    native: Token,
    cfg: UniswapV2Config,
    events: Vec<VenueEvent>,
    last_price: f64,
    gas_price_wei: U256,
    health_checks: u32,
    /// Given up on, still held by the node.
    open: Vec<OpenTx>,
    /// Tokens booked besides the pool's two (the other assets of a multi-asset wallet), so
    /// that this venue can settle any of the wallet's transactions after a restart.
    also_tracks: Vec<(Token, Address)>,
    /// Gas of failed transactions, not yet handed to the agent.
    charges: Vec<Booking>,
    /// The journal, for steps the venue takes itself (a late receipt).
    recorder: Option<std::sync::Arc<dyn agent_core::venue::StepRecorder>>,
    /// This venue's key in the agent's `VenueSet`, when two venues trade the pair.
    key: Option<String>,
}

impl std::fmt::Debug for UniswapV2Venue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UniswapV2Venue")
            .field("pool", &self.pool)
            .field("sender", &self.tx.address())
            .field("native", &self.native)
            .field("cfg", &self.cfg)
            .field("key", &self.key)
            .field("open", &self.open.len())
            .field("journaled", &self.recorder.is_some())
            .finish_non_exhaustive()
    }
}

impl UniswapV2Venue {
    /// `native` is the chain's gas token as the portfolio books it (e.g. `ETH`, 18 decimals).
    pub fn new(pool: PoolRef, tx: TxSender, native: Token, cfg: UniswapV2Config) -> Self {
        Self {
            pool,
            tx,
            native,
            cfg,
            events: Vec::new(),
            last_price: 0.0,
            gas_price_wei: U256::ZERO,
            health_checks: 0,
            open: Vec::new(),
            charges: Vec::new(),
            recorder: None,
            also_tracks: Vec::new(),
            key: None,
        }
    }

    /// One venue per DEX trading `pair` (a Uniswap V2 deployment each: `(key, pool, router)`),
    /// keyed by `key` behind one [`VenueSet`](agent_core::VenueSet) so that a strategy routes a
    /// swap with [`Swap::on`](agent_core::Swap::on), and the pools keyed alike for
    /// [`ChainSource::keyed_pools`]. Every venue sends through `tx` (one wallet, one nonce
    /// manager); `cfg` is shared but for each DEX's router. `tokens` are the pair's base and
    /// quote token contracts, `native` the gas token as the portfolio books it.
    ///
    /// # Errors
    /// A pool that cannot be resolved, does not hold `tokens` or is not the router's
    /// ([`PoolRef::resolve`], [`PoolRef::check_router`]); a key listed twice
    /// ([`EvmError::ChainGuard`]).
    pub async fn keyed_set(
        chain: &Chain,
        tx: &TxSender,
        pair: &Pair,
        tokens: (Address, Address),
        dexes: &[(&str, Address, Address)],
        native: &Token,
        cfg: &UniswapV2Config,
    ) -> Result<(agent_core::VenueSet<UniswapV2Venue>, Vec<(String, PoolRef)>), EvmError> {
        let (mut venues, mut pools) = (Vec::new(), Vec::new());
        for (key, address, router) in dexes {
            let pool = PoolRef::resolve(chain, pair.clone(), *address, tokens.0, tokens.1).await?;
            pool.check_router(chain, *router).await?;
            let cfg = UniswapV2Config {
                router: *router,
                ..cfg.clone()
            };
            let venue = Self::new(pool.clone(), tx.clone(), native.clone(), cfg);
            venues.push((key.to_string(), pair.clone(), venue.at_venue(key)));
            pools.push((key.to_string(), pool));
        }
        let set = agent_core::VenueSet::keyed(venues).map_err(EvmError::ChainGuard)?;
        Ok((set, pools))
    }

    /// Follows the set entry read on the venue keyed `key` (a second DEX of the same pair) for
    /// its price and gas, rather than the pair's first entry.
    pub fn at_venue(mut self, key: &str) -> Self {
        self.key = Some(key.to_string());
        self
    }

    /// Also books the movements of `tokens` (symbol and contract) when it settles a
    /// transaction: the other assets of a wallet that trades several pools, so that one venue
    /// settles a restart's open transactions whichever pool they were for.
    pub fn also_tracking(mut self, tokens: impl IntoIterator<Item = (Token, Address)>) -> Self {
        for (t, a) in tokens {
            let known = a == self.pool.base
                || a == self.pool.quote
                || self.also_tracks.iter().any(|(_, x)| *x == a);
            if !known {
                self.also_tracks.push((t, a));
            }
        }
        self
    }

    /// The pool it trades.
    pub fn pool(&self) -> &PoolRef {
        &self.pool
    }
    /// The wallet's transaction sender.
    pub fn sender(&self) -> &TxSender {
        &self.tx
    }
    /// The chain's gas token as the portfolio books it.
    pub fn native(&self) -> &Token {
        &self.native
    }

    fn record(&mut self, log: Vec<TxEvent>) {
        self.events
            .extend(log.into_iter().map(super::tx::to_venue_event));
    }

    async fn token_balance(&self, token: Address) -> Result<U256, EvmError> {
        self.tx
            .chain()
            .view(
                token,
                IERC20::balanceOfCall {
                    owner: self.tx.address(),
                },
                BlockId::latest(),
            )
            .await
    }

    /// (base, quote, native) balances of the wallet, in each token's smallest units (native:
    /// wei).
    ///
    /// # Errors
    /// [`EvmError::Contract`] when a token's `balanceOf` reverts; [`EvmError::Rpc`] when the
    /// RPC fails.
    pub async fn read_balances(&self) -> Result<(U256, U256, U256), EvmError> {
        Ok((
            self.token_balance(self.pool.base).await?,
            self.token_balance(self.pool.quote).await?,
            self.tx.chain().balance(self.tx.address()).await?,
        ))
    }

    async fn send(&mut self, req: TxRequest) -> Result<TxOutcome, EvmError> {
        let mut log = Vec::new();
        let out = self.tx.send(&req, &mut log).await;
        self.record(log);
        out
    }

    /// Wraps `amount` wei of native ETH into the pool's base token (when it is WETH:
    /// `deposit()` with value).
    ///
    /// # Errors
    /// As [`TxSender::send`].
    pub async fn wrap(&mut self, amount: U256) -> Result<TxOutcome, EvmError> {
        let req = TxRequest::call("wrap", self.pool.base, IWETH9::depositCall {}.abi_encode())
            .with_value(amount);
        self.send(req).await
    }

    /// Unwraps `amount` of the pool's base token (WETH, 18 decimals) into native ETH
    /// (`withdraw(wad)`).
    ///
    /// # Errors
    /// As [`TxSender::send`] (WETH9 reverts a withdrawal of more than the wallet holds: a
    /// [`EvmError::SimulationReverted`], nothing sent).
    pub async fn unwrap(&mut self, amount: U256) -> Result<TxOutcome, EvmError> {
        let req = TxRequest::call(
            "unwrap",
            self.pool.base,
            IWETH9::withdrawCall { wad: amount }.abi_encode(),
        );
        self.send(req).await
    }

    fn sides(&self, swap: &Swap) -> Result<(Address, Address, bool), VenueError> {
        match (
            self.pool.address_of(&swap.sell),
            self.pool.address_of(&swap.buy),
        ) {
            (Some(s), Some(b)) if s != b => Ok((s, b, swap.sell == self.pool.pair.base)),
            _ => Err(VenueError::Unsupported(format!(
                "{} → {} is not {}/{}",
                swap.sell, swap.buy, self.pool.pair.base, self.pool.pair.quote
            ))),
        }
    }

    /// Executes `order`; every transaction of it that was mined is added to `spent` (label,
    /// hash, fee in wei) as it is, so that a failure later on still books what it cost. The fill
    /// is read from the swap's own receipt (its token transfers and gas), never from balance
    /// differences, which money moved by anyone else would distort.
    async fn execute_on_chain(
        &mut self,
        order: &Order,
        ts: i64,
        spent: &mut Vec<(&'static str, B256, U256)>,
    ) -> Result<Fill, EvmError> {
        let swap = &order.swap;
        let (sell, buy, _) = self.sides(swap).map_err(|e| EvmError::Contract {
            contract: self.pool.pool.to_string(),
            detail: e.to_string(),
        })?;
        let me = self.tx.address();
        let router = self.cfg.router;
        let chain = self.tx.chain().clone();

        // Check the output before anything is sent (an approval is a transaction too).
        let path = vec![sell, buy];
        self.check_amount_out(&chain, order, &path).await?;
        self.approve_input(&chain, sell, swap.amount_in, spent)
            .await?;
        let deadline = chain.next_block_timestamp().await? + self.cfg.deadline_s;
        let call = IUniswapV2Router02::swapExactTokensForTokensCall {
            amountIn: swap.amount_in,
            amountOutMin: order.min_amount_out,
            path,
            to: me,
            deadline: U256::from(deadline),
        };
        let mined = self
            .send(TxRequest::call("swap", router, call.abi_encode()))
            .await?;
        self.landed(&chain, order, ts, &mined, spent).await
    }

    /// Refuses `order` before anything is sent when the router's `getAmountsOut` along `path`
    /// gives less than its `amountOutMin`.
    async fn check_amount_out(
        &self,
        chain: &Chain,
        order: &Order,
        path: &[Address],
    ) -> Result<(), EvmError> {
        let amounts = chain
            .view(
                self.cfg.router,
                IUniswapV2Router02::getAmountsOutCall {
                    amountIn: order.swap.amount_in,
                    path: path.to_vec(),
                },
                BlockId::latest(),
            )
            .await?;
        let expected = amounts.last().copied().unwrap_or_default();
        if expected < order.min_amount_out {
            return Err(EvmError::SimulationReverted {
                label: "swap".into(),
                reason: format!(
                    "getAmountsOut gives {expected}, below amountOutMin {}",
                    order.min_amount_out
                ),
            });
        }
        Ok(())
    }

    /// Approves the router for exactly `amount` of `sell` when its allowance is short (never an
    /// unlimited approval); a mined approval is added to `spent`.
    async fn approve_input(
        &mut self,
        chain: &Chain,
        sell: Address,
        amount: U256,
        spent: &mut Vec<(&'static str, B256, U256)>,
    ) -> Result<(), EvmError> {
        let router = self.cfg.router;
        let allowance = chain
            .view(
                sell,
                IERC20::allowanceCall {
                    owner: self.tx.address(),
                    spender: router,
                },
                BlockId::latest(),
            )
            .await?;
        if allowance < amount {
            // Exactly this swap's input: never an unlimited approval.
            let approve = IERC20::approveCall {
                spender: router,
                value: amount,
            };
            let approved = self
                .send(TxRequest::call("approve", sell, approve.abi_encode()))
                .await?;
            spent.push(("approve", approved.hash, approved.fee_wei));
        }
        Ok(())
    }

    /// The fill of `order`'s `mined` swap, read from its receipt with the gas of what `spent`
    /// holds (its approval). A swap whose receipt cannot be read yet stays open, to become the
    /// fill before the next event.
    async fn landed(
        &mut self,
        chain: &Chain,
        order: &Order,
        ts: i64,
        mined: &TxOutcome,
        spent: &mut Vec<(&'static str, B256, U256)>,
    ) -> Result<Fill, EvmError> {
        // From here on the swap is on chain: whatever fails, it must still become this
        // order's fill. Its approval's gas rides with it.
        let approve_gas = spent
            .iter()
            .fold(U256::ZERO, |a, (_, _, fee)| a.saturating_add(*fee));
        spent.clear();
        let landed = OpenTx {
            order: order.clone(),
            fills: true,
            label: "swap".into(),
            nonce: mined.nonce,
            hashes: vec![mined.hash],
            ts,
            extra_gas: approve_gas,
        };
        let tracked = self.tracked();
        match self.settle_one(chain, &tracked, &landed, false).await {
            Ok(Some(Booking::LateFill(fill))) => Ok(*fill),
            Ok(other) => {
                // A mined status-1 swap always books as a fill; anything else is a bug in the
                // reading, and the chain's balances correct the book (counted).
                self.charges.extend(other);
                Err(EvmError::Contract {
                    contract: self.pool.pool.to_string(),
                    detail: format!("swap {} mined but not readable as a fill", mined.hash),
                })
            }
            Err(e) => {
                // Read it again before the next event: it becomes the fill then.
                self.open.push(landed);
                Err(e)
            }
        }
    }

    /// The wallet and the tokens whose movements this venue books.
    fn tracked(&self) -> super::recovery::Tracked {
        super::recovery::Tracked {
            wallet: self.tx.address(),
            tokens: [
                (self.pool.pair.base.clone(), self.pool.base),
                (self.pool.pair.quote.clone(), self.pool.quote),
            ]
            .into_iter()
            .chain(self.also_tracks.iter().cloned())
            .collect(),
            native: self.native.clone(),
        }
    }

    /// The fill of `order`: `amounts` (in, out, gas in wei) as the chain moved them, valued at
    /// the pool's `reserves` (base, quote) for the fee and gas in quote units.
    fn fill_of(
        &self,
        order: &Order,
        ts: i64,
        (amount_in, amount_out, gas): (U256, U256, U256),
        (reserve_base, reserve_quote): (U256, U256),
        hash: B256,
    ) -> Fill {
        let swap = &order.swap;
        let price = reserve_quote.saturating_mul(self.pool.pair.base.one())
            / reserve_base.max(U256::from(1));
        let fee = amount_in * U256::from(FEE_BPS) / U256::from(10_000u32);
        let fee_quote = if swap.sell == self.pool.pair.base {
            base_to_quote(fee, self.pool.pair.base.decimals(), price)
        } else {
            fee
        };
        Fill {
            id: order.id.clone(),
            ts,
            sell: swap.sell.clone(),
            buy: swap.buy.clone(),
            amount_in,
            amount_out,
            fee,
            fee_quote,
            gas_native: gas,
            gas_cost: (self.native.clone(), gas),
            gas_quote: gas.saturating_mul(price) / pow10(18),
            tx_hash: Some(hash.to_string()),
        }
    }

    /// A step the venue took itself: journaled at once (a failure is logged: what it records
    /// already happened on chain) and queued for the audit stream.
    fn took(&mut self, event: VenueEvent) {
        if let Some(r) = &self.recorder
            && let Err(e) = r.record(&event)
        {
            tracing::error!(target: "defai::venue", step = event.step, error = %e, "step not journaled");
        }
        self.events.push(event);
    }

    /// After a failed execution: books the gas of what was mined (an approval, a reverted swap)
    /// and keeps a transaction given up on, but still held by the node, open.
    fn failed(
        &mut self,
        order: &Order,
        ts: i64,
        spent: &[(&'static str, B256, U256)],
        e: &EvmError,
    ) {
        let gas = |label: &str, hash: &str, amount: U256| Booking::Gas {
            id: order.id.clone(),
            label: label.to_string(),
            token: self.native.clone(),
            amount,
            tx_hash: Some(hash.to_string()),
        };
        let mut charges: Vec<Booking> = spent
            .iter()
            .filter(|(_, _, fee)| !fee.is_zero())
            .map(|(label, hash, fee)| gas(label, &hash.to_string(), *fee))
            .collect();
        match e {
            EvmError::Reverted {
                label,
                hash,
                fee_wei,
                ..
            } => charges.push(gas(label, hash, U256::from(*fee_wei))),
            EvmError::NotMined {
                label,
                nonce,
                hashes,
                freed: false,
                ..
            } => {
                let hashes = hashes.iter().filter_map(|h| h.parse().ok()).collect();
                self.open.push(OpenTx {
                    order: order.clone(),
                    fills: label == "swap",
                    label: label.clone(),
                    nonce: *nonce,
                    hashes,
                    ts,
                    extra_gas: U256::ZERO,
                });
            }
            _ => {}
        }
        self.charges.extend(charges);
    }

    /// Asks the node about each open transaction: a mined one becomes a late fill (or its gas,
    /// when it reverted or was an approval), one that can no longer be mined is dropped, the
    /// rest stay open.
    async fn settle_open(&mut self) -> Vec<Booking> {
        let chain = self.tx.chain().clone();
        let tracked = self.tracked();
        let mut out = Vec::new();
        let mut still = Vec::new();
        let mut pending = std::mem::take(&mut self.open).into_iter();
        while let Some(open) = pending.next() {
            match self.settle_one(&chain, &tracked, &open, true).await {
                Ok(Some(b)) => out.push(b),
                Ok(None) => still.push(open),
                Err(e) => {
                    // This one and the rest stay open: asked again before the next event.
                    tracing::warn!(target: "defai::venue", nonce = open.nonce, error = %e, "cannot settle an open transaction yet");
                    still.push(open);
                    still.extend(pending);
                    break;
                }
            }
        }
        self.open = still;
        out
    }

    /// What became of `open`: mined (a fill when it is the swap and succeeded, its gas
    /// otherwise), dropped, or still pending (`None`). The booking is built before anything is
    /// recorded, so a read that fails leaves the transaction open to be asked again. With
    /// `journal_mined`, the `mined` step is recorded here (the sender had given up on it).
    async fn settle_one(
        &mut self,
        chain: &Chain,
        tracked: &super::recovery::Tracked,
        open: &OpenTx,
        journal_mined: bool,
    ) -> Result<Option<Booking>, EvmError> {
        for h in &open.hashes {
            let Some(r) = chain.receipt(*h).await? else {
                continue;
            };
            let booking = self.booking_of(chain, tracked, open, *h, &r).await?;
            if journal_mined {
                let fee = U256::from(r.gas_used) * U256::from(r.effective_gas_price);
                let block = r.block_number.unwrap_or_default();
                self.took(open.step(
                    "mined",
                    *h,
                    format!(
                        "block {block}, status {}, fee {fee} wei (after the sender gave up on it)",
                        u8::from(r.status())
                    ),
                ));
            }
            return Ok(Some(booking));
        }
        self.settle_unmined(chain, open).await
    }

    /// The booking of `open` mined as `hash` with `receipt`: its fill when it is the swap and
    /// succeeded (the amounts the chain moved, valued at the pool before its block), else its
    /// gas; both with the gas already paid for the order.
    async fn booking_of(
        &self,
        chain: &Chain,
        tracked: &super::recovery::Tracked,
        open: &OpenTx,
        hash: B256,
        receipt: &TransactionReceipt,
    ) -> Result<Booking, EvmError> {
        let r = receipt;
        let settled = super::recovery::effects(chain, tracked, open.nonce, r).await?;
        let fee = U256::from(r.gas_used) * U256::from(r.effective_gas_price);
        let gas = fee.saturating_add(open.extra_gas);
        let block = r.block_number.unwrap_or_default();
        let status = r.status();
        Ok(match (open.fills, status) {
            (true, true) => {
                let order = &open.order;
                let sum = |side: &[(Token, U256)], t: &Token| {
                    side.iter()
                        .filter(|(x, _)| x == t)
                        .fold(U256::ZERO, |a, (_, v)| a.saturating_add(*v))
                };
                let amount_in = sum(&settled.debits, &order.swap.sell);
                let amount_out = sum(&settled.credits, &order.swap.buy);
                // Valued at the pool as it stood before the swap's block.
                let before = BlockId::number(block.saturating_sub(1));
                let reserves = self.pool.reserves(chain, before).await?;
                Booking::LateFill(Box::new(self.fill_of(
                    order,
                    open.ts,
                    (amount_in, amount_out, gas),
                    reserves,
                    hash,
                )))
            }
            _ => Booking::Gas {
                id: open.order.id.clone(),
                label: open.label.clone(),
                token: self.native.clone(),
                amount: gas,
                tx_hash: Some(hash.to_string()),
            },
        })
    }

    /// What became of `open` when none of its hashes has a receipt: still pending (`None`)
    /// while the node knows one of them or something is pending at its nonce, else dropped
    /// (journaled; the nonce manager re-reads the count).
    async fn settle_unmined(
        &mut self,
        chain: &Chain,
        open: &OpenTx,
    ) -> Result<Option<Booking>, EvmError> {
        for h in &open.hashes {
            if chain.knows(*h).await? {
                return Ok(None);
            }
        }
        // None of its hashes is known to the node. It is gone for good only when the nonce was
        // used by another transaction, or nothing at all is pending at it; otherwise (a node
        // that lost it while peers may still hold it) ask again next time.
        let me = self.tx.address();
        let latest = chain.nonce(me, false).await?;
        let pending = chain.nonce(me, true).await?;
        if latest <= open.nonce && pending > open.nonce {
            return Ok(None);
        }
        self.tx.nonces().resync().await;
        let last = *open.hashes.last().unwrap_or(&B256::ZERO);
        self.took(open.step(
            "dropped",
            last,
            format!(
                "never mined and no longer known to the node (latest nonce count {latest}, pending {pending}): it cost nothing"
            ),
        ));
        Ok(Some(Booking::Dropped {
            id: open.order.id.clone(),
            label: open.label.clone(),
            nonce: open.nonce,
        }))
    }
}

fn venue_error(e: EvmError) -> VenueError {
    match e {
        EvmError::SimulationReverted { .. } | EvmError::GasCap { .. } => {
            VenueError::Rejected(e.to_string())
        }
        EvmError::Rpc { .. } => VenueError::Transport(e.to_string()),
        other => VenueError::Rejected(other.to_string()),
    }
}

impl Venue for UniswapV2Venue {
    fn name(&self) -> &str {
        "uniswap_v2"
    }

    fn observe(&mut self, event: &MarketEvent) {
        // This pool's own market: a one-pair event, or this venue's (this pair's) entry in a set.
        let own = match (&self.key, event.markets()) {
            (Some(k), Some(set)) => set.at(k).map(|m| (&m.bar, m.pool.as_ref())),
            _ => event.for_pair(&self.pool.pair),
        };
        let Some((bar, pool)) = own else {
            return;
        };
        self.last_price = bar.close;
        if let Some(pool) = pool {
            self.gas_price_wei = pool.gas_price_wei;
        }
    }

    fn gas_estimate_quote(&self) -> f64 {
        let gas = U256::from(self.cfg.gas_per_swap).saturating_mul(self.gas_price_wei);
        to_f64(gas, 18) * self.last_price
    }

    async fn quote(&mut self, swap: &Swap) -> Result<Quote, VenueError> {
        let (_, _, sell_base) = self.sides(swap)?;
        let chain = self.tx.chain().clone();
        let (rb, rq) = self
            .pool
            .reserves(&chain, BlockId::latest())
            .await
            .map_err(venue_error)?;
        let (r_in, r_out) = if sell_base { (rb, rq) } else { (rq, rb) };
        let amount_out =
            get_amount_out(swap.amount_in, r_in, r_out, FEE_BPS).map_err(|e| match e {
                AmmError::InsufficientLiquidity => VenueError::NoLiquidity(e.to_string()),
                _ => VenueError::Rejected(e.to_string()),
            })?;
        let fees = self.tx.market_fees().await.map_err(venue_error)?;
        let gas_price = U256::from(fees.current_price_wei());
        self.gas_price_wei = gas_price;
        let gas_native = U256::from(self.cfg.gas_per_swap).saturating_mul(gas_price);
        Ok(Quote {
            amount_out,
            fee: swap.amount_in * U256::from(FEE_BPS) / U256::from(10_000u32),
            gas_native,
            gas_price_wei: gas_price,
            gas_cost: (self.native.clone(), gas_native),
            venue_price: rq.saturating_mul(self.pool.pair.base.one()) / rb.max(U256::from(1)),
            depth: Some(Depth::ConstantProduct {
                reserve_in: r_in,
                reserve_out: r_out,
                fee_bps: FEE_BPS,
            }),
        })
    }

    async fn execute(&mut self, order: &Order, ts: i64) -> Result<Fill, VenueError> {
        let mut spent = Vec::new();
        let out = self.execute_on_chain(order, ts, &mut spent).await;
        if let Err(e) = &out {
            self.failed(order, ts, &spent, e);
        }
        out.map_err(venue_error)
    }

    fn open_transactions(&self) -> usize {
        self.open.len()
    }

    fn has_bookings(&self) -> bool {
        !self.open.is_empty() || !self.charges.is_empty()
    }

    async fn bookings(&mut self) -> Result<Vec<Booking>, VenueError> {
        let mut out = std::mem::take(&mut self.charges);
        if !self.open.is_empty() {
            out.extend(self.settle_open().await);
        }
        Ok(out)
    }

    async fn balances(&mut self) -> Result<Option<Vec<(Token, U256)>>, VenueError> {
        let (b, q, n) = self.read_balances().await.map_err(venue_error)?;
        Ok(Some(vec![
            (self.pool.pair.base.clone(), b),
            (self.pool.pair.quote.clone(), q),
            (self.native.clone(), n),
        ]))
    }

    async fn health(&mut self) -> Result<(), String> {
        self.health_checks = self.health_checks.wrapping_add(1);
        if self.cfg.chain_check_every == 0
            || !(self.health_checks - 1).is_multiple_of(self.cfg.chain_check_every)
        {
            return Ok(());
        }
        match self.tx.chain().chain_id().await {
            Ok(id) if id == self.cfg.chain_id => Ok(()),
            Ok(id) => Err(format!(
                "chain id changed: configured {}, RPC now reports {id}",
                self.cfg.chain_id
            )),
            // An unreachable RPC is the stale-data trigger's business, not a chain change.
            Err(e) => {
                tracing::warn!(target: "defai::venue", error = %e, "chain id check failed");
                Ok(())
            }
        }
    }

    fn set_recorder(&mut self, recorder: std::sync::Arc<dyn agent_core::venue::StepRecorder>) {
        self.tx = self.tx.clone().with_recorder(recorder.clone());
        self.recorder = Some(recorder);
    }

    async fn settle(&mut self, open: &[UnsettledTx]) -> Result<Vec<SettledTx>, VenueError> {
        let tracked = self.tracked();
        let wait = self.tx.policy().receipt_timeout;
        super::recovery::settle(self.tx.chain(), &tracked, open, wait)
            .await
            .map_err(venue_error)
    }

    fn drain_events(&mut self) -> Vec<VenueEvent> {
        std::mem::take(&mut self.events)
    }
}
