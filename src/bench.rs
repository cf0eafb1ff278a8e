//! Backtest throughput through the real engine path (loop, gate, venue, portfolio).

use std::sync::Arc;

use agent_core::Bar;
use connectors::Series;

use crate::config::Config;
use crate::engine::{RunError, RunSpec, run_shared};

/// `bars` repeated end to end until there are at least `min_len`, timestamps shifted so time
/// keeps moving forward (prices jump at the seams; the engine does not care).
pub fn repeat_bars(bars: &[Bar], min_len: usize) -> Vec<Bar> {
    if bars.is_empty() {
        return Vec::new();
    }
    let span = bars[bars.len() - 1].ts - bars[0].ts + 3600;
    let copies = min_len.div_ceil(bars.len()).max(1);
    let mut out = Vec::with_capacity(copies * bars.len());
    for k in 0..copies as i64 {
        out.extend(bars.iter().map(|b| Bar {
            ts: b.ts + k * span,
            ..*b
        }));
    }
    out
}

/// The default config with the loss limits out of reach: the benchmark measures the engine while
/// the strategy keeps trading, not a halted agent refusing intents.
///
/// # Panics
/// Only if the built-in config text (two `[risk]` keys) stopped parsing: a bug in this crate,
/// not something input can cause.
pub fn bench_config() -> Config {
    Config::parse(
        "[risk]\nmax_drawdown_pct = 100.0\nmax_daily_loss_pct = 100.0\n",
        None,
    )
    .expect("bench config parses")
}

/// One measured backtest run of [`throughput`]: an element of `runs` in `defai bench --json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchRun {
    /// Bars the agent loop processed (the series repeated to at least `--bars`).
    pub bars: u64,
    /// Fills the run booked.
    pub trades: u64,
    /// Wall-clock time of the agent loop alone (set-up and summary excluded), seconds.
    pub elapsed_s: f64,
    /// `bars / elapsed_s`, bars per second (0 when no time was measured).
    pub bars_per_s: f64,
}

/// Runs `ema_cross` with default parameters over `series` repeated to `min_bars`, `runs` times.
///
/// # Errors
/// The first [`RunError`] of a run: the strategy, venue or agent cannot be set up, or the
/// agent loop fails.
pub async fn throughput(
    series: &Series,
    min_bars: usize,
    runs: usize,
) -> Result<Vec<BenchRun>, RunError> {
    let big: Arc<[Bar]> = repeat_bars(&series.bars, min_bars).into();
    let mut out = Vec::new();
    for _ in 0..runs.max(1) {
        let o = run_shared(
            RunSpec::backtest(bench_config()),
            big.clone(),
            &series.report,
        )
        .await?;
        out.push(BenchRun {
            bars: o.summary.bars,
            trades: o.summary.trades,
            elapsed_s: o.summary.elapsed_s,
            bars_per_s: o.summary.bars_per_s,
        });
    }
    Ok(out)
}

/// The risk gate's cost per intent: pre-check and verdict of one exposure-increasing swap on a
/// paper pool, with and without the price-impact check (nanoseconds, median of 5 rounds): the
/// `gate` object of `defai bench --json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GateBench {
    /// Intents judged (pre-check plus verdict) per round of each variant.
    pub intents: u64,
    /// Every default limit, the price-impact check included; a trade within all of them.
    pub ns_per_intent: f64,
    /// The same with `max_price_impact_bps` off: the check's own cost is the difference.
    pub ns_per_intent_without_impact: f64,
    /// A trade over the impact limit, resized to the largest size within it (closed form plus
    /// the check with the pool's integer math).
    pub ns_per_resized_intent: f64,
}

/// Measures [`GateBench`]: `intents` judgements per round, median of 5 rounds.
///
/// # Panics
/// Only if the constant-product quote of the fixed 5,000 USDC trade into the fixed pool
/// failed, which its constant inputs rule out.
pub fn gate_bench(intents: u64) -> GateBench {
    use agent_core::{
        Depth, Intent, IntentId, LimitGate, Pair, Portfolio, Quote, RiskContext, RiskGate,
        RiskLimits, U256,
    };
    let pair = Pair::eth_usdc();
    let portfolio = Portfolio::with_balances([(pair.quote.clone(), U256::from(10_000_000_000u64))]);
    let bar = Bar {
        ts: 1_600_000_000,
        open: 2000.0,
        high: 2000.0,
        low: 2000.0,
        close: 2000.0,
        volume: 1.0,
    };
    let (rq, rb) = (
        U256::from(5_000_000_000_000u64),
        U256::from(2_500u64) * pair.base.one(),
    );
    let quote_for = |amount: U256| {
        let out = agent_core::amm::get_amount_out(amount, rq, rb, 30).expect("pool quotes");
        Quote {
            amount_out: out,
            fee: amount * U256::from(30u8) / U256::from(10_000u32),
            gas_native: U256::from(2_400_000_000_000_000u64),
            gas_price_wei: U256::from(20_000_000_000u64),
            gas_cost: (pair.quote.clone(), U256::from(4_800_000u64)),
            venue_price: U256::from(2_000_000_000u64),
            depth: Some(Depth::ConstantProduct {
                reserve_in: rq,
                reserve_out: rb,
                fee_bps: 30,
            }),
        }
    };
    let run = |limits: RiskLimits, amount: U256| {
        let intent = Intent::swap(&pair.quote, &pair.base, amount);
        let quote = quote_for(amount);
        let id = IntentId::new("bench", bar.ts, 0);
        let mut rounds: Vec<f64> = (0..5)
            .map(|_| {
                let mut gate = LimitGate::new(limits.clone());
                let started = std::time::Instant::now();
                for k in 0..intents {
                    let ctx = RiskContext::new(&pair, &portfolio, &bar, bar.ts + k as i64);
                    let pre = gate.pre_check(&id, &intent, &ctx);
                    let verdict = gate.evaluate(&id, &intent, &quote, &ctx);
                    std::hint::black_box((pre.is_ok(), verdict));
                }
                started.elapsed().as_nanos() as f64 / intents.max(1) as f64
            })
            .collect();
        rounds.sort_by(f64::total_cmp);
        rounds[rounds.len() / 2]
    };
    let limits = RiskLimits {
        max_trades_per_hour: None,
        ..RiskLimits::default()
    };
    let small = U256::from(5_000_000_000u64); // 5,000 USDC: 10 bps of impact
    GateBench {
        intents,
        ns_per_intent: run(limits.clone(), small),
        ns_per_intent_without_impact: run(
            RiskLimits {
                max_price_impact_bps: None,
                ..limits.clone()
            },
            small,
        ),
        ns_per_resized_intent: run(
            RiskLimits {
                max_price_impact_bps: Some(5),
                ..limits
            },
            small,
        ),
    }
}

/// Figures of the on-chain benchmark (`defai bench --chain --json`, top level).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChainBench {
    /// Swaps sent (`--swaps`).
    pub swaps: usize,
    /// Swaps in flight at once from the one wallet (`--concurrency`).
    pub concurrency: usize,
    /// Wall-clock time from the first send to the last receipt or error, seconds.
    pub elapsed_s: f64,
    /// Swaps with a status-1 receipt per second, first send to last receipt.
    pub confirmed_swaps_per_s: f64,
    /// Sends that failed for any reason (nonce errors included).
    pub errors: usize,
    /// The first few errors, verbatim.
    pub error_samples: Vec<String>,
    /// From `send` (right after the decision) to a signed transaction: fee lookup, `eth_call`
    /// simulation, gas estimate, nonce lease and signing.
    /// Median over the sends that got as far as signing, microseconds.
    pub decision_to_signed_p50_us: f64,
    /// The same, 99th percentile (nearest rank), microseconds.
    pub decision_to_signed_p99_us: f64,
    /// Whether the nonces used were exactly start..start+swaps.
    pub nonces_contiguous: bool,
    /// `evm_mine` calls the background kicker made (anvil's automine can leave a few
    /// transactions pending under a flood).
    pub kicks: u64,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Sends `swaps` small WETH→dUSD swaps through the real router on a fresh devnet, from one
/// wallet and one [`NonceManager`](connectors::evm::NonceManager), `concurrency` at a time.
///
/// # Errors
/// An [`EvmError`](connectors::evm::EvmError) when anvil cannot be started or the devnet
/// deployed, the wallet or transaction sender cannot be made, the one approval fails, or the
/// starting nonce cannot be read. A failed swap is counted in [`ChainBench::errors`], not
/// returned.
pub async fn chain_throughput(
    swaps: usize,
    concurrency: usize,
) -> Result<ChainBench, connectors::evm::EvmError> {
    use connectors::evm::alloy::primitives::U256;
    use connectors::evm::alloy::sol_types::SolCall;
    use connectors::evm::bindings::IERC20;
    use connectors::evm::{Devnet, DevnetConfig, NonceManager, TxPolicy, TxRequest, TxSender};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let devnet = Devnet::start(DevnetConfig::at_price(1338.12)).await?;
    let info = devnet.info().clone();
    let wallet = devnet.wallet(0)?;
    let me = wallet.address();
    let nonces = Arc::new(NonceManager::new(me));
    let tx = TxSender::new(
        devnet.chain().clone(),
        wallet,
        info.chain_id,
        nonces,
        TxPolicy::default(),
    )?;
    let amount = U256::from(1_000_000_000_000_000u64); // 0.001 WETH
    // One approval of exactly what the benchmark will sell.
    let total = amount * U256::from(swaps);
    let approve = IERC20::approveCall {
        spender: info.router,
        value: total,
    };
    tx.send(
        &TxRequest::call("approve", info.weth, approve.abi_encode()),
        &mut Vec::new(),
    )
    .await?;
    let start_nonce = devnet.chain().nonce(me, false).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let kicks = Arc::new(AtomicU64::new(0));
    let kicker = tokio::spawn(kick_pending(
        devnet.chain().clone(),
        me,
        stop.clone(),
        kicks.clone(),
    ));
    let next = Arc::new(AtomicU64::new(0));
    let t0 = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (tx, next, info) = (tx.clone(), next.clone(), info.clone());
        tasks.push(tokio::spawn(swap_until_done(tx, next, info, amount, swaps)));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.extend(t.await.unwrap_or_default());
    }
    let elapsed_s = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = kicker.await;

    let tally = SwapTally::of(&results, start_nonce, swaps);
    Ok(ChainBench {
        swaps,
        concurrency,
        elapsed_s,
        confirmed_swaps_per_s: (swaps - tally.errors) as f64 / elapsed_s,
        errors: tally.errors,
        error_samples: tally.error_samples,
        decision_to_signed_p50_us: percentile(&tally.signed_us, 0.5),
        decision_to_signed_p99_us: percentile(&tally.signed_us, 0.99),
        nonces_contiguous: tally.nonces_contiguous,
        kicks: kicks.load(Ordering::Relaxed),
    })
}

/// One swap of [`chain_throughput`]: the nonce it was mined with (or the send's error), and
/// when it was signed, µs after its send started (`None` when it never got that far).
type SwapResult = (Result<u64, connectors::evm::EvmError>, Option<f64>);

/// Mines a block every 250 ms while `me` has transactions pending (anvil's automine can leave
/// a few behind under a flood), counting each in `kicks`, until `stop`.
async fn kick_pending(
    chain: connectors::evm::Chain,
    me: connectors::evm::alloy::primitives::Address,
    stop: Arc<std::sync::atomic::AtomicBool>,
    kicks: Arc<std::sync::atomic::AtomicU64>,
) {
    use std::sync::atomic::Ordering;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let pending: u64 = chain.nonce(me, true).await.unwrap_or(0);
        let mined: u64 = chain.nonce(me, false).await.unwrap_or(0);
        if pending > mined {
            let _: Result<serde_json::Value, _> = chain.dev_call("evm_mine", ()).await;
            kicks.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Sends WETH→dUSD swaps of `amount` through the devnet's router, one after another, while the
/// shared counter `next` is below `swaps`.
async fn swap_until_done(
    tx: connectors::evm::TxSender,
    next: Arc<std::sync::atomic::AtomicU64>,
    info: connectors::evm::DevnetInfo,
    amount: connectors::evm::alloy::primitives::U256,
    swaps: usize,
) -> Vec<SwapResult> {
    use connectors::evm::alloy::primitives::U256;
    use connectors::evm::alloy::sol_types::SolCall;
    use connectors::evm::bindings::IUniswapV2Router02;
    use connectors::evm::{TxRequest, TxStep};
    use std::sync::atomic::Ordering;

    let me = tx.address();
    let mut out = Vec::new();
    while (next.fetch_add(1, Ordering::Relaxed) as usize) < swaps {
        let call = IUniswapV2Router02::swapExactTokensForTokensCall {
            amountIn: amount,
            amountOutMin: U256::from(1u64),
            path: vec![info.weth, info.usd],
            to: me,
            deadline: U256::from(u64::MAX),
        };
        let mut log = Vec::new();
        let sent = tx
            .send(
                &TxRequest::call("swap", info.router, call.abi_encode()),
                &mut log,
            )
            .await;
        let signed = log.iter().find_map(|e| match e.step {
            TxStep::Signed { .. } => Some(e.at.as_secs_f64() * 1e6),
            _ => None,
        });
        out.push((sent.map(|o| o.nonce), signed));
    }
    out
}

/// The swaps of [`chain_throughput`] summed up.
struct SwapTally {
    /// Sends that failed.
    errors: usize,
    /// The first three errors, verbatim.
    error_samples: Vec<String>,
    /// Whether the nonces used were exactly start..start+swaps.
    nonces_contiguous: bool,
    /// Send → signed of every send that got as far as signing, µs, ascending.
    signed_us: Vec<f64>,
}

impl SwapTally {
    /// Sums up `results` of `swaps` swaps, the first sent at `start_nonce`.
    fn of(results: &[SwapResult], start_nonce: u64, swaps: usize) -> Self {
        let mut used: Vec<u64> = results
            .iter()
            .filter_map(|(r, _)| r.as_ref().ok().copied())
            .collect();
        used.sort_unstable();
        let errors = results.iter().filter(|(r, _)| r.is_err()).count();
        let error_samples = results
            .iter()
            .filter_map(|(r, _)| r.as_ref().err().map(|e| e.to_string()))
            .take(3)
            .collect();
        let nonces_contiguous = used
            .iter()
            .enumerate()
            .all(|(i, n)| *n == start_nonce + i as u64)
            && used.len() == swaps;
        let mut lat: Vec<f64> = results.iter().filter_map(|(_, s)| *s).collect();
        lat.sort_by(f64::total_cmp);
        Self {
            errors,
            error_samples,
            nonces_contiguous,
            signed_us: lat,
        }
    }
}

/// Figures of the model benchmark (`defai bench --model --json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelBench {
    /// SHA-256 (hex) of the shipped model's weights and metadata: which model was measured.
    pub model_hash: String,
    /// One decision (features already computed → probability), batch 1, one thread: median
    /// over `inference_samples` timed calls after up to 1,000 warm-up calls, microseconds.
    pub inference_p50_us: f64,
    /// The same, 99th percentile (nearest rank), microseconds.
    pub inference_p99_us: f64,
    /// Timed single-decision calls the percentiles are over.
    pub inference_samples: usize,
    /// Incremental features plus inference over every bundled bar, bars per second (one pass).
    pub features_and_inference_bars_per_s: f64,
    /// Training the shipped model's configuration on the bundled data: wall time, seconds.
    pub training_s: f64,
    /// Epochs that training ran (early stopping may end it before the maximum).
    pub training_epochs: usize,
}

/// Measures the shipped `PriceDirection` model: single-decision latency, per-bar throughput of
/// the live path, and training time.
///
/// # Errors
/// A [`models::ModelError`] when the shipped model cannot be loaded, `series` has no bar with
/// complete features ([`models::ModelError::Input`]), or inference or training fails.
pub fn model_bench(series: &Series, samples: usize) -> Result<ModelBench, models::ModelError> {
    use models::{FeatureState, PriceDirection, batch_features};
    let model = PriceDirection::shipped()?;
    let feats: Vec<_> = batch_features(&series.bars).into_iter().flatten().collect();
    if feats.is_empty() {
        return Err(models::ModelError::Input(
            "no bars with complete features".into(),
        ));
    }
    for f in feats.iter().take(1000) {
        model.probability_up(f)?;
    }
    let mut lat = Vec::with_capacity(samples);
    for i in 0..samples {
        let f = &feats[i % feats.len()];
        let t = std::time::Instant::now();
        let p = model.probability_up(f)?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(p);
    }
    lat.sort_by(f64::total_cmp);

    let t = std::time::Instant::now();
    let mut state = FeatureState::new();
    for bar in &series.bars {
        if let Some(f) = state.update(bar) {
            std::hint::black_box(model.probability_up(&f)?);
        }
    }
    let per_bar = series.bars.len() as f64 / t.elapsed().as_secs_f64();

    let meta = model.meta();
    let cfg = models::TrainConfig {
        seed: meta.seed,
        horizon: meta.horizon_bars,
        hidden: meta.hidden,
        ..models::TrainConfig::default()
    };
    let t = std::time::Instant::now();
    let trained = models::train(&series.bars, "bench", "bench", &cfg, &mut |_| {})?;
    Ok(ModelBench {
        model_hash: model.hash().to_string(),
        inference_p50_us: percentile(&lat, 0.5),
        inference_p99_us: percentile(&lat, 0.99),
        inference_samples: samples,
        features_and_inference_bars_per_s: per_bar,
        training_s: t.elapsed().as_secs_f64(),
        training_epochs: trained.epochs.len(),
    })
}

/// Decision-time figures of the prediction and rebalancing strategies (`defai bench
/// --strategies --json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct StrategyBench {
    /// Paper-mode bettor cycles per second through the agent loop over `markets` markets (kelly_bettor,
    /// redeem + look at every market + bets).
    pub bettor_cycles_per_s: f64,
    /// Generated paper prediction markets the bettor cycles over.
    pub markets: usize,
    /// One rebalancer decision (weights, drift check, plan) for 10 assets: median over 20,000
    /// decisions on random holdings, µs.
    pub rebalancer_10_assets_p50_us: f64,
    /// The same, 99th percentile (nearest rank), µs.
    pub rebalancer_10_assets_p99_us: f64,
    /// A two-leg bundle through the agent loop on two paper pools of one pair, µs per bundle:
    /// the decision, both legs judged (kill switch, gate, quotes), both executed and booked.
    /// Signing adds what `defai bench --chain` measures per transaction.
    pub arbitrage_bundle_us: f64,
}

/// Proposes the same two-leg round trip on every event: 100 quote tokens of base on venue
/// `.0`, sold on venue `.1` (the second leg sells what the first filled).
struct EveryEventBundle(&'static str, &'static str);

impl agent_core::Strategy for EveryEventBundle {
    fn name(&self) -> &str {
        "bundle_bench"
    }
    fn on_event(
        &mut self,
        _: &agent_core::MarketEvent,
        ctx: &agent_core::Context<'_>,
    ) -> Result<Vec<agent_core::Intent>, agent_core::StrategyError> {
        use agent_core::{Intent, Swap, U256};
        let (base, quote) = (&ctx.pair.base, &ctx.pair.quote);
        Ok(vec![Intent::Bundle(vec![
            Swap::new(quote, base, U256::from(100u64) * quote.one()).on(self.0),
            Swap::new(base, quote, base.one() / U256::from(25u8)).on(self.1),
        ])])
    }
}

/// Decision → signed latency of a two-leg bundle on chain ([`chain_bundle_latency`]), µs: the
/// `bundles` object of `defai bench --chain --json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BundleLatency {
    /// Bundles with both legs signed: the samples the percentiles are over.
    pub bundles: usize,
    /// From the bundle's intent (right after the decision; both legs are then judged, each
    /// with its quote) to the first leg's signed swap. Median, µs.
    pub to_first_leg_signed_p50_us: f64,
    /// To the second leg's signed swap: the first leg sent, mined (anvil automines) and
    /// booked from its receipt, the second sized to what it filled, simulated and signed.
    /// Median, µs.
    pub to_bundle_signed_p50_us: f64,
    /// The same, 99th percentile (nearest rank), µs.
    pub to_bundle_signed_p99_us: f64,
}

/// Wall-clock times of a bundle's intent and of every signed swap, shared by the observer and
/// the step recorder of [`chain_bundle_latency`].
#[derive(Default)]
struct BundleClock(std::sync::Mutex<Vec<(bool, std::time::Instant)>>);

impl BundleClock {
    fn push(&self, bundle: bool) {
        if let Ok(mut v) = self.0.lock() {
            v.push((bundle, std::time::Instant::now()));
        }
    }
}

struct BundleObserver(Arc<BundleClock>);

impl agent_core::Observer for BundleObserver {
    fn on_audit(&mut self, e: &agent_core::AuditEvent<'_>) -> Result<(), agent_core::AuditError> {
        if let agent_core::AuditEvent::Intent { intent, .. } = e
            && matches!(intent, agent_core::Intent::Bundle(_))
        {
            self.0.push(true);
        }
        Ok(())
    }
}

struct SignedSteps(Arc<BundleClock>);

impl agent_core::venue::StepRecorder for SignedSteps {
    fn record(&self, e: &agent_core::venue::VenueEvent) -> Result<(), String> {
        if e.step == "signed" && e.label == "swap" {
            self.0.push(false);
        }
        Ok(())
    }
}

/// Runs a two-leg bundle per cycle for `bundles` cycles on a fresh devnet's two Uniswap V2
/// deployments (the same artifacts, two factories and routers, one WETH/dUSD pool each)
/// through the agent loop, the limit gate and the real transaction sender, and times each
/// from its intent to its legs' signed swaps.
///
/// # Errors
/// A [`RunError`] when anvil cannot be started or the devnet deployed, the wallet or sender
/// cannot be made, a pool cannot be resolved or does not belong to its router
/// ([`RunError::Chain`]), the two venues cannot form one set ([`RunError::Setup`]), or the
/// agent loop fails ([`RunError::Agent`]).
pub async fn chain_bundle_latency(bundles: usize) -> Result<BundleLatency, RunError> {
    use agent_core::{Agent, LimitGate, Pair, Portfolio, RiskLimits, TakeEvents, Token, Venue};
    use connectors::evm::{
        ChainSource, CycleClock, Devnet, DevnetConfig, NonceManager, TxPolicy, TxSender,
        UniswapV2Config, UniswapV2Venue,
    };
    let devnet = Devnet::start(DevnetConfig::at_price(1338.12)).await?;
    let (info, chain) = (devnet.info().clone(), devnet.chain().clone());
    let wallet = devnet.wallet(3)?;
    let nonces = Arc::new(NonceManager::new(wallet.address()));
    let tx = TxSender::new(
        chain.clone(),
        wallet,
        info.chain_id,
        nonces,
        TxPolicy::default(),
    )?;
    let pair = Pair::new(Token::new("WETH", 18), Token::new("dUSD", 6));
    let (mut venues, keyed) = UniswapV2Venue::keyed_set(
        &chain,
        &tx,
        &pair,
        (info.weth, info.usd),
        &info.dexes(),
        &Token::new("ETH", 18),
        &UniswapV2Config::new(info.router, info.chain_id),
    )
    .await?;
    let clock = Arc::new(BundleClock::default());
    venues.set_recorder(Arc::new(SignedSteps(clock.clone())));
    let cycles = CycleClock::new(
        chain.clone(),
        std::time::Duration::from_millis(20),
        std::time::Duration::from_secs(1),
    );
    let source = TakeEvents::new(ChainSource::keyed_pools(chain, keyed, cycles), bundles);
    let strategy = Box::new(EveryEventBundle("dex1", "dex2"));
    Agent::new(pair, source, venues, strategy, Portfolio::new())
        .with_gate(Box::new(LimitGate::new(RiskLimits::permissive())))
        .with_wall_data_age()
        .with_observer(Box::new(BundleObserver(clock.clone())))
        .run()
        .await?;
    let times = clock.0.lock().map(|v| v.clone()).unwrap_or_default();
    let (mut first, mut both) = (Vec::new(), Vec::new());
    for (i, (is_bundle, t0)) in times.iter().enumerate() {
        if !is_bundle {
            continue;
        }
        let signed: Vec<_> = times[i + 1..]
            .iter()
            .take_while(|(b, _)| !b)
            .map(|(_, t)| t.duration_since(*t0).as_secs_f64() * 1e6)
            .collect();
        if let [a, b, ..] = signed[..] {
            first.push(a);
            both.push(b);
        }
    }
    first.sort_by(f64::total_cmp);
    both.sort_by(f64::total_cmp);
    Ok(BundleLatency {
        bundles: both.len(),
        to_first_leg_signed_p50_us: percentile(&first, 0.5),
        to_bundle_signed_p50_us: percentile(&both, 0.5),
        to_bundle_signed_p99_us: percentile(&both, 0.99),
    })
}

/// µs per bundle of [`EveryEventBundle`] over `events` two-pool events.
async fn bundle_bench(events: usize) -> Result<f64, agent_core::VenueError> {
    use agent_core::{
        Agent, Bar, EventReplay, MarketEvent, MarketSet, Pair, PairMarket, Portfolio, RiskLimits,
        U256,
    };
    let pair = Pair::eth_usdc();
    let bar = |ts: i64, p: f64| Bar {
        ts,
        open: p,
        high: p,
        low: p,
        close: p,
        volume: 1.0,
    };
    let replay = (0..events as i64)
        .map(|i| {
            let entry = |key: &str, p: f64| PairMarket {
                pair: pair.clone(),
                bar: bar(i * 60, p),
                pool: None,
                venue: Some(key.to_string()),
            };
            MarketEvent::Markets(Box::new(MarketSet {
                ts: i * 60,
                markets: vec![entry("a", 2000.0), entry("b", 2040.0)],
            }))
        })
        .collect();
    let cfg = connectors::PaperAmmConfig::default_for(&pair);
    let venue = |key: &str| connectors::PaperVenue::new(pair.clone(), cfg.clone()).at_venue(key);
    let venues = agent_core::VenueSet::keyed(vec![
        ("a".into(), pair.clone(), venue("a")),
        ("b".into(), pair.clone(), venue("b")),
    ])
    .map_err(agent_core::VenueError::Rejected)?;
    let start = U256::from(1_000_000u64) * pair.quote.one();
    let agent = Agent::new(
        pair.clone(),
        EventReplay::new(replay),
        venues,
        Box::new(EveryEventBundle("a", "b")),
        Portfolio::with_balances([(pair.quote.clone(), start)]),
    )
    .with_gate(Box::new(agent_core::LimitGate::new(
        RiskLimits::permissive(),
    )));
    let t = std::time::Instant::now();
    let report = agent
        .run()
        .await
        .map_err(|e| agent_core::VenueError::Rejected(e.to_string()))?;
    let bundles = (report.fills / 2).max(1);
    Ok(t.elapsed().as_secs_f64() * 1e6 / bundles as f64)
}

/// Measures [`StrategyBench`]: the kelly_bettor paper evaluation over 100 generated markets
/// (seed 3, resolving within 200 cycles, 1,000 dUSD bankroll), 20,000 rebalancer decisions
/// for 10 random holdings, and 20,000 two-pool bundle events on paper venues.
///
/// # Errors
/// A [`agent_core::VenueError`] when the bettor's evaluation or the bundle run fails (an agent
/// error is reported as [`agent_core::VenueError::Rejected`] with its message).
pub async fn strategy_bench() -> Result<StrategyBench, agent_core::VenueError> {
    use agent_core::amount::{Token, U256};
    use strategies::rebalancer::{Holding, RebalanceConfig, plan};
    let gen_cfg = connectors::paper_fpmm::GenConfig {
        markets: 100,
        horizon_cycles: 200,
        ..Default::default()
    };
    let (_, cycles_per_s) =
        crate::predict::evaluate(3, &gen_cfg, &strategies::KellyConfig::default(), 1_000.0).await?;

    let mut rng = fastrand::Rng::with_seed(5);
    let mut lat = Vec::new();
    for _ in 0..20_000 {
        let holdings: Vec<Holding> = (0..10)
            .map(|i| Holding {
                token: Token::new(&format!("T{i}"), 18),
                balance: U256::from(rng.u64(1..1_000_000)) * U256::from(10u64).pow(U256::from(15)),
                price: 0.5 + rng.f64() * 10.0,
                target: 0.1,
            })
            .collect();
        let targets = vec![0.1; 10];
        let t = std::time::Instant::now();
        let legs = plan(&holdings, &targets, 9, 0.5, &RebalanceConfig::default());
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(legs);
    }
    lat.sort_by(f64::total_cmp);
    let arbitrage_bundle_us = bundle_bench(20_000).await?;
    Ok(StrategyBench {
        arbitrage_bundle_us,
        bettor_cycles_per_s: cycles_per_s,
        markets: gen_cfg.markets,
        rebalancer_10_assets_p50_us: percentile(&lat, 0.5),
        rebalancer_10_assets_p99_us: percentile(&lat, 0.99),
    })
}

// ---------------------------------------------------------------------------------------------
// Issue 7: memory of a fleet of agents in one process, and the journal's cost per decision.
// ---------------------------------------------------------------------------------------------

impl From<RunError> for BenchError {
    fn from(e: RunError) -> Self {
        BenchError::Run(Box::new(e))
    }
}

/// Why a fleet or journal benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A run through the engine failed: the strategy could not be built, the state folder
    /// opened, or a backtest failed.
    #[error(transparent)]
    Run(Box<RunError>),
    /// A config value was refused (the error names file, line and key).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A journal could not be opened, verified or read.
    #[error(transparent)]
    Journal(#[from] connectors::journal::JournalError),
    /// A file-system operation on the benchmark's scratch folders failed.
    #[error("{path}: {error}")]
    Io {
        /// The file or folder.
        path: String,
        /// What the operation failed with.
        error: std::io::Error,
    },
    /// A benchmark option out of range, an unknown durability or no bars to replay; the
    /// message names the option.
    #[error("{0}")]
    Input(String),
    /// One agent of the fleet failed (the first failure; the others still ran to the end).
    #[error("agent {agent}: {error}")]
    Agent {
        /// The agent's index, from 0 (its state folder is `agent-NNNNN`).
        agent: usize,
        /// Its error's message.
        error: String,
    },
    /// An agent's task ended without a result (it panicked).
    #[error("agent task: {0}")]
    Task(String),
}

fn io_error(path: &std::path::Path) -> impl Fn(std::io::Error) -> BenchError + '_ {
    move |error| BenchError::Io {
        path: path.display().to_string(),
        error,
    }
}

/// The process's memory as Linux reports it in `/proc/self/status`, in kB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MemSample {
    /// `VmRSS`: resident now.
    pub rss_kb: u64,
    /// `VmHWM`: the most ever resident (since start, or since the peak was last reset).
    pub peak_rss_kb: u64,
    /// `RssAnon`: heap, stacks and other anonymous memory.
    pub anon_kb: u64,
    /// `RssFile`: mapped files (the binary's code and data, SQLite's shared-memory index).
    pub file_kb: u64,
    /// `RssShmem`: shared memory (tmpfs, shared anonymous mappings).
    pub shmem_kb: u64,
    /// `Threads`: the process's threads (a count, not kB).
    pub threads: u64,
}

impl MemSample {
    /// Reads `/proc/self/status`; `None` where there is none (not Linux).
    pub fn now() -> Option<Self> {
        Self::parse(&std::fs::read_to_string("/proc/self/status").ok()?)
    }

    /// Parses the text of a `/proc/<pid>/status` file; `None` without `VmRSS` and `VmHWM`.
    pub fn parse(status: &str) -> Option<Self> {
        let mut m = MemSample::default();
        let (mut rss, mut hwm) = (false, false);
        for line in status.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let Some(n) = value
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
            else {
                continue;
            };
            match key {
                "VmRSS" => (m.rss_kb, rss) = (n, true),
                "VmHWM" => (m.peak_rss_kb, hwm) = (n, true),
                "RssAnon" => m.anon_kb = n,
                "RssFile" => m.file_kb = n,
                "RssShmem" => m.shmem_kb = n,
                "Threads" => m.threads = n,
                _ => {}
            }
        }
        (rss && hwm).then_some(m)
    }
}

/// Resets `VmHWM` to the current RSS (Linux ≥ 4.0), so a peak measured afterwards belongs to
/// what ran afterwards. False where the kernel refuses.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// CPU time the process has used (user + system, all threads, finished ones included), from
/// `/proc/self/stat` in USER_HZ ticks (100 per second on Linux).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold anything.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// The file system type holding `path` (the longest mount point that contains it), from
/// `/proc/self/mounts`: fsync costs nothing on tmpfs and a disk write elsewhere.
fn fs_type(path: &std::path::Path) -> String {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return "unknown".into();
    };
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, mount, kind) = (f.next()?, f.next()?, f.next()?);
            let mount = mount.replace("\\040", " ");
            path.starts_with(&mount)
                .then(|| (mount.len(), kind.to_string()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, kind)| kind)
        .unwrap_or_else(|| "unknown".into())
}

/// A scratch folder for the benchmark's state folders, removed when dropped. Under
/// `$DEFAI_STATE_ROOT` when that is set, else the system's temporary folder.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(label: &str) -> Result<Self, BenchError> {
        let base = std::env::var_os("DEFAI_STATE_ROOT")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = base.join(format!(
            "defai-bench-{label}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Bytes of the regular files under `dir` (one level of sub-folders deep).
fn bytes_under(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => bytes_under(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Exactly `n` bars: the first `n` of `bars`, or `bars` repeated (see [`repeat_bars`]) and cut
/// at `n`. `None`: all of `bars`.
///
/// # Errors
/// [`BenchError::Input`] when `bars` is empty or `n` is `Some(0)`.
pub fn bars_exact(bars: &[Bar], n: Option<usize>) -> Result<Arc<[Bar]>, BenchError> {
    if bars.is_empty() {
        return Err(BenchError::Input("no bars to replay".into()));
    }
    Ok(match n {
        None => bars.into(),
        Some(0) => return Err(BenchError::Input("--bars must be positive".into())),
        Some(n) if n <= bars.len() => bars[..n].into(),
        Some(n) => {
            let mut v = repeat_bars(bars, n);
            v.truncate(n);
            v.into()
        }
    })
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// How hard each journal commit waits for the disk, as the report names it.
fn durability_name(d: connectors::journal::Durability) -> &'static str {
    match d {
        connectors::journal::Durability::Full => "full",
        connectors::journal::Durability::Replay => "replay",
    }
}

/// Parses `full` or `replay`.
///
/// # Errors
/// [`BenchError::Input`] for any other text (matching is exact and case-sensitive).
pub fn parse_durability(s: &str) -> Result<connectors::journal::Durability, BenchError> {
    match s {
        "full" => Ok(connectors::journal::Durability::Full),
        "replay" => Ok(connectors::journal::Durability::Replay),
        other => Err(BenchError::Input(format!(
            "durability `{other}`: expected `full` (fsync per record, as live) or `replay` (no fsync)"
        ))),
    }
}

/// The RSS targets of issue 7: 40 MB for one agent, 400 MB for 100 agents in one process.
pub fn rss_target_mb(agents: usize) -> Option<f64> {
    match agents {
        1 => Some(40.0),
        100 => Some(400.0),
        _ => None,
    }
}

/// What `defai bench --agents N` runs.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Paper agents to run in the one process, 1 to 10,000 (`--agents`).
    pub agents: usize,
    /// Bars each agent replays (`None`: the whole series).
    pub bars: Option<usize>,
    /// Wall time every agent's replay is paced to (the paper clock at span / seconds × real
    /// time); 0 = as fast as possible.
    pub seconds: f64,
    /// The built-in strategy every agent runs (with its default parameters unless it is the
    /// benchmark config's own, `ema_cross`).
    pub strategy: String,
    /// The journal's commits: `Full` (fsync per record) is what a live agent uses.
    pub durability: connectors::journal::Durability,
}

/// One agent of the fleet: an element of `per_agent` in `defai bench --agents N --json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FleetAgent {
    /// Bars its agent loop processed.
    pub bars: u64,
    /// Fills it booked.
    pub trades: u64,
    /// Intents its strategy proposed.
    pub intents: u64,
    /// The agent loop's own wall-clock time, seconds.
    pub elapsed_s: f64,
    /// When its task first ran, seconds from the fleet's start.
    pub started_s: f64,
    /// When its task returned, seconds from the fleet's start.
    pub finished_s: f64,
}

/// Figures of `defai bench --agents N` (the object `--json` prints). Memory figures are kB as
/// Linux reports them in `/proc/self/status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FleetBench {
    /// Always `fleet_memory`: which benchmark produced the object.
    pub bench: &'static str,
    /// Agents run (`--agents`).
    pub agents: usize,
    /// The strategy every agent ran.
    pub strategy: String,
    /// Bars each agent replayed.
    pub bars_per_agent: usize,
    /// The pacing asked for (`--seconds`, wall seconds each replay is stretched to; 0 = as fast
    /// as possible).
    pub paced_s: f64,
    /// The replay speed the pacing gives: the bars' time span over `paced_s`, × real time
    /// (`null` when unpaced).
    pub speed: Option<f64>,
    /// The journal's durability: `full` (fsync per record, as live) or `replay` (no fsync).
    pub durability: &'static str,
    /// The tokio runtime the agents ran on (flavour, and that they are tasks of one `JoinSet`).
    pub runtime: &'static str,
    /// File system of the state folders.
    pub state_fs: String,
    /// After the data is loaded and shared, before any agent starts.
    pub baseline: MemSample,
    /// The process's peak RSS over its whole life (data loading included): what the targets
    /// are checked against.
    pub peak_rss_kb: u64,
    /// The peak while the agents ran (`VmHWM` reset after the baseline; `null` where the
    /// kernel does not allow the reset).
    pub peak_rss_agents_kb: Option<u64>,
    /// The highest RSS the 50 ms sampler saw while the agents ran, and the most threads.
    pub sampled_max_rss_kb: u64,
    /// The most threads the sampler saw while the agents ran (a count).
    pub max_threads: u64,
    /// Samples the 50 ms sampler took.
    pub rss_samples: u64,
    /// (peak while running − baseline RSS) / agents.
    pub per_agent_kb: f64,
    /// After every agent returned and was dropped.
    pub after: MemSample,
    /// The issue-7 RSS target for this many agents, MB of 1024 kB ([`rss_target_mb`]: 40 for
    /// one agent, 400 for 100; `null` for other counts).
    pub target_mb: Option<f64>,
    /// Whether `peak_rss_kb` / 1024 is within `target_mb` (`null` without a target).
    pub target_met: Option<bool>,
    /// The most agents alive at once (all of them when they truly coexist).
    pub max_coexisting: usize,
    /// Agents that returned a result (all of them: a failed agent fails the benchmark).
    pub finished: usize,
    /// Wall-clock time from spawning the first agent to the last one returning, seconds.
    pub wall_s: f64,
    /// CPU time of the whole process while the agents ran (user + system).
    pub cpu_s: Option<f64>,
    /// Bars processed by all agents together.
    pub total_bars: u64,
    /// `total_bars / wall_s`: the fleet's bars per second (0 when no time was measured).
    pub bars_per_s: f64,
    /// Fills booked by all agents together.
    pub trades: u64,
    /// Journal, kill switch and lock files of all agents at the end.
    pub state_bytes: u64,
    /// Each agent's figures, by agent index.
    pub per_agent: Vec<FleetAgent>,
}

/// Samples the process's RSS every 50 ms until `stop`: (max RSS kB, max threads, samples).
async fn sample_rss(stop: Arc<std::sync::atomic::AtomicBool>) -> (u64, u64, u64) {
    let (mut rss, mut threads, mut n) = (0, 0, 0);
    loop {
        if let Some(m) = MemSample::now() {
            rss = rss.max(m.rss_kb);
            threads = threads.max(m.threads);
            n += 1;
        }
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return (rss, threads, n);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The most intervals `(start, end)` open at one instant (an end before a start at a tie).
fn max_overlap(intervals: &[(f64, f64)]) -> usize {
    let mut edges: Vec<(f64, i32)> = intervals
        .iter()
        .flat_map(|&(s, e)| [(s, 1), (e, -1)])
        .collect();
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut open, mut most) = (0i64, 0i64);
    for (_, d) in edges {
        open += i64::from(d);
        most = most.max(open);
    }
    most.max(0) as usize
}

/// Runs `opts.agents` paper agents as tasks of the calling runtime (a `JoinSet`), each through
/// [`run_shared`] with its own state folder (journal, kill switch file store and its watcher
/// thread, lock), all on one shared copy of the bars, and measures the process's memory.
///
/// Paced (`seconds > 0`), every agent sleeps between bars like a live agent waiting for the next
/// candle, so all of them are alive for the whole run. Unpaced, the replay clock still goes
/// through tokio's timer, whose cooperative budget makes each agent yield every 128 bars, so
/// they still run interleaved rather than one after another.
///
/// Takes the series by value: the agents share one copy of the bars, and the loaded one is
/// freed before the baseline is measured.
///
/// # Errors
/// [`BenchError::Input`] when `opts.agents` is not in 1..=10000, `opts.seconds` is negative or
/// not finite, or there are no bars to replay (or `opts.bars` is 0); [`BenchError::Run`] when
/// the strategy cannot be built; [`BenchError::Io`] when the scratch folder cannot be
/// created; after all agents ended, [`BenchError::Agent`] for the first agent that failed or
/// [`BenchError::Task`] for one whose task panicked.
pub async fn fleet(series: Series, opts: &FleetOptions) -> Result<FleetBench, BenchError> {
    let config = fleet_config(opts)?;
    let bars = bars_exact(&series.bars, opts.bars)?;
    let span = bars[bars.len() - 1].ts - bars[0].ts;
    let speed = (opts.seconds > 0.0 && span > 0).then(|| span as f64 / opts.seconds);
    let fleet = Fleet {
        opts,
        config,
        bars,
        speed,
        scratch: Scratch::new("fleet")?,
        report: Arc::new(series.report),
    };
    drop(series.bars);

    let run = fleet.run().await?;
    let state_bytes = bytes_under(&fleet.scratch.0);
    Ok(fleet.bench(run, state_bytes))
}

/// [`bench_config`] running `strategy`, with its default parameters unless it is the
/// config's own (`ema_cross`).
fn bench_config_running(strategy: &str) -> Config {
    let mut config = bench_config();
    if strategy != config.strategy.name {
        config.strategy.name = strategy.to_string();
        config.strategy.params.clear();
    }
    config
}

/// The config every agent of the fleet runs, once `opts` are checked (the agents, the pacing)
/// and its strategy is known to build.
fn fleet_config(opts: &FleetOptions) -> Result<Config, BenchError> {
    if opts.agents == 0 || opts.agents > 10_000 {
        return Err(BenchError::Input("--agents must be in 1..=10000".into()));
    }
    if !opts.seconds.is_finite() || opts.seconds < 0.0 {
        return Err(BenchError::Input(
            "--seconds must be a finite number ≥ 0".into(),
        ));
    }
    let config = bench_config_running(&opts.strategy);
    // A bad strategy name fails here, once, rather than in every agent.
    crate::engine::build_strategy(&config, &[])?;
    Ok(config)
}

/// A fleet ready to run: what every agent shares (the config, one copy of the bars and their
/// load report, the pacing) and the scratch folder their state folders go in.
struct Fleet<'a> {
    opts: &'a FleetOptions,
    config: Config,
    bars: Arc<[Bar]>,
    report: Arc<connectors::LoadReport>,
    /// The replay speed, × real time (`None`: unpaced).
    speed: Option<f64>,
    scratch: Scratch,
}

/// What a fleet's run measured: the process's memory and CPU around it, and each agent's
/// figures.
struct FleetRun {
    /// Before the peak was reset (its peak includes loading the data).
    before: Option<MemSample>,
    /// Whether `VmHWM` could be reset after `before`.
    peak_reset: bool,
    /// After the reset, before any agent starts.
    baseline: MemSample,
    /// From spawning the first agent to the last one returning, seconds.
    wall_s: f64,
    /// CPU time of the process over the same span.
    cpu_s: Option<f64>,
    /// After every agent returned.
    after: MemSample,
    /// What the 50 ms sampler saw: (max RSS kB, max threads, samples).
    sampled: (u64, u64, u64),
    /// Each agent's figures, by index.
    per_agent: Vec<FleetAgent>,
}

impl Fleet<'_> {
    /// Agent `i`'s run: paper mode on the shared config, in its own state folder, paced at
    /// the fleet's speed.
    fn spec(&self, i: usize) -> RunSpec {
        use connectors::journal::Durability;
        use std::sync::atomic::AtomicBool;
        RunSpec {
            mode: crate::engine::Mode::Paper,
            config: self.config.clone(),
            params: Vec::new(),
            // f64::MAX: event time is replayed through the timer but every deadline has passed.
            speed: Some(self.speed.unwrap_or(f64::MAX)),
            progress: false,
            record: false,
            stop: Arc::new(AtomicBool::new(false)),
            state: Some(self.scratch.0.join(format!("agent-{i:05}"))),
            max_cycles: None,
            // A fresh folder either way; `fresh_state` picks the journal's durability.
            fresh_state: self.opts.durability == Durability::Replay,
            reset_switch: true,
            strategy: None,
            observers: Vec::new(),
            journal: None,
            rebalance_model: None,
            journal_detail: None,
        }
    }

    /// Runs every agent as a task of one `JoinSet` while sampling the process's memory; after
    /// all ended, the first agent that failed (or whose task panicked) fails the run.
    async fn run(&self) -> Result<FleetRun, BenchError> {
        use std::sync::atomic::{AtomicBool, Ordering};

        let before = MemSample::now();
        let peak_reset = reset_peak_rss();
        let baseline = MemSample::now().unwrap_or_default();
        let cpu0 = cpu_seconds();
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = tokio::spawn(sample_rss(stop.clone()));
        let t0 = std::time::Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for i in 0..self.opts.agents {
            let spec = self.spec(i);
            let (bars, report) = (self.bars.clone(), self.report.clone());
            set.spawn(async move {
                let started = t0.elapsed().as_secs_f64();
                // Keep only the figures: the agent's report and portfolio are dropped here.
                let out = run_shared(spec, bars, &report).await.map(|o| FleetAgent {
                    bars: o.summary.bars,
                    trades: o.summary.trades,
                    intents: o.summary.intents,
                    elapsed_s: o.summary.elapsed_s,
                    started_s: started,
                    finished_s: 0.0,
                });
                (
                    i,
                    out.map(|mut a| {
                        a.finished_s = t0.elapsed().as_secs_f64();
                        a
                    }),
                )
            });
        }
        let (per_agent, first_error) = join_agents(set, self.opts.agents).await;
        let wall_s = t0.elapsed().as_secs_f64();
        let cpu_s = cpu_seconds().zip(cpu0).map(|(b, a)| b - a);
        let after = MemSample::now().unwrap_or_default();
        stop.store(true, Ordering::Relaxed);
        let sampled = sampler.await.unwrap_or((0, 0, 0));
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok(FleetRun {
            before,
            peak_reset,
            baseline,
            wall_s,
            cpu_s,
            after,
            sampled,
            per_agent: per_agent.into_iter().flatten().collect(),
        })
    }

    /// The figures of the fleet's `run`, its state folders holding `state_bytes`.
    fn bench(&self, run: FleetRun, state_bytes: u64) -> FleetBench {
        let opts = self.opts;
        let FleetRun {
            before,
            peak_reset,
            baseline,
            wall_s,
            cpu_s,
            after,
            sampled: (sampled_max_rss_kb, max_threads, rss_samples),
            per_agent,
        } = run;
        let load_peak = before.map(|m| m.peak_rss_kb).unwrap_or(0);
        let agents_peak = after.peak_rss_kb.max(sampled_max_rss_kb);
        let peak_rss_kb = load_peak.max(agents_peak);
        let running_peak = if peak_reset {
            agents_peak
        } else {
            sampled_max_rss_kb
        };
        let target_mb = rss_target_mb(opts.agents);
        let total_bars: u64 = per_agent.iter().map(|a| a.bars).sum();
        FleetBench {
            bench: "fleet_memory",
            agents: opts.agents,
            strategy: opts.strategy.clone(),
            bars_per_agent: self.bars.len(),
            paced_s: opts.seconds,
            speed: self.speed,
            durability: durability_name(opts.durability),
            runtime: runtime_name(),
            state_fs: fs_type(&self.scratch.0),
            baseline,
            peak_rss_kb,
            peak_rss_agents_kb: peak_reset.then_some(agents_peak),
            sampled_max_rss_kb,
            max_threads,
            rss_samples,
            per_agent_kb: running_peak.saturating_sub(baseline.rss_kb) as f64 / opts.agents as f64,
            after,
            target_mb,
            target_met: target_mb.map(|t| peak_rss_kb as f64 / 1024.0 <= t),
            max_coexisting: max_overlap(
                &per_agent
                    .iter()
                    .map(|a| (a.started_s, a.finished_s))
                    .collect::<Vec<_>>(),
            ),
            finished: per_agent.len(),
            wall_s,
            cpu_s,
            total_bars,
            bars_per_s: if wall_s > 0.0 {
                total_bars as f64 / wall_s
            } else {
                0.0
            },
            trades: per_agent.iter().map(|a| a.trades).sum(),
            state_bytes,
            per_agent,
        }
    }
}

/// Waits for every agent of `set` (`agents` of them): each one's figures by index, and the
/// first failure (an agent's error, or a task that panicked).
async fn join_agents(
    mut set: tokio::task::JoinSet<(usize, Result<FleetAgent, RunError>)>,
    agents: usize,
) -> (Vec<Option<FleetAgent>>, Option<BenchError>) {
    let mut per_agent: Vec<Option<FleetAgent>> = vec![None; agents];
    let mut first_error = None;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((i, Ok(a))) => per_agent[i] = Some(a),
            Ok((i, Err(e))) => {
                first_error.get_or_insert(BenchError::Agent {
                    agent: i,
                    error: e.to_string(),
                });
            }
            Err(e) => {
                first_error.get_or_insert(BenchError::Task(e.to_string()));
            }
        }
    }
    (per_agent, first_error)
}

/// The tokio runtime the fleet's agents run on, as the report names it.
fn runtime_name() -> &'static str {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::CurrentThread) => {
            "tokio current_thread: one thread, the agents are tasks of one JoinSet"
        }
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
            "tokio multi_thread: the agents are tasks of one JoinSet"
        }
        _ => "tokio: the agents are tasks of one JoinSet",
    }
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

impl FleetBench {
    /// The human-readable report.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let pacing = match self.speed {
            Some(x) => format!("paced to {:.1} s ({x:.3e} × real time)", self.paced_s),
            None => "as fast as possible".into(),
        };
        let _ = writeln!(
            s,
            "{} paper agents ({}), {} bars each, {pacing}, journal durability {} on {}",
            self.agents, self.strategy, self.bars_per_agent, self.durability, self.state_fs
        );
        let _ = writeln!(s, "runtime: {}", self.runtime);
        let _ = writeln!(
            s,
            "baseline (data loaded, no agent): RSS {:.1} MB (anon {:.1}, file {:.1}), {} threads",
            mb(self.baseline.rss_kb),
            mb(self.baseline.anon_kb),
            mb(self.baseline.file_kb),
            self.baseline.threads
        );
        if let Some(p) = self.peak_rss_agents_kb {
            let _ = writeln!(s, "peak RSS while the agents ran: {:.1} MB", mb(p));
        }
        let _ = writeln!(
            s,
            "peak RSS of the process (VmHWM, data loading included): {:.1} MB",
            mb(self.peak_rss_kb)
        );
        let _ = writeln!(
            s,
            "per agent: {:.0} kB above the baseline; sampled max RSS {:.1} MB, up to {} threads",
            self.per_agent_kb,
            mb(self.sampled_max_rss_kb),
            self.max_threads
        );
        let _ = writeln!(
            s,
            "after all agents returned: RSS {:.1} MB",
            mb(self.after.rss_kb)
        );
        match (self.target_mb, self.target_met) {
            (Some(t), Some(met)) => {
                let _ = writeln!(
                    s,
                    "target ≤ {t:.0} MB for {} agent{}: {}",
                    self.agents,
                    if self.agents == 1 { "" } else { "s" },
                    if met { "met" } else { "NOT met" }
                );
            }
            _ => {
                let _ = writeln!(
                    s,
                    "targets (issue 7): ≤ 40 MB for 1 agent, ≤ 400 MB for 100 agents (none set for {})",
                    self.agents
                );
            }
        }
        let _ = writeln!(
            s,
            "{} of {} agents finished, up to {} alive at once; {} bars, {} trades in {:.2} s wall{} = {:.0} bars/s",
            self.finished,
            self.agents,
            self.max_coexisting,
            self.total_bars,
            self.trades,
            self.wall_s,
            self.cpu_s
                .map(|c| format!(" ({c:.2} s CPU)"))
                .unwrap_or_default(),
            self.bars_per_s
        );
        let _ = write!(
            s,
            "state folders: {:.1} MB on disk",
            self.state_bytes as f64 / 1e6
        );
        s
    }
}

/// What `defai bench --journal` runs.
#[derive(Debug, Clone)]
pub struct JournalOptions {
    /// Bars every backtest replays (`--bars`; `None`: the whole series), cut from or repeated
    /// to exactly that many ([`bars_exact`]).
    pub bars: Option<usize>,
    /// Runs of each variant (medians are reported), 1 to 1,000.
    pub runs: usize,
    /// Built-in strategies to measure, one after another (`--strategy`, else `ema_cross` and
    /// `ml_signal`).
    pub strategies: Vec<String>,
    /// Also run the full journal with fsync per record (as live); `false` (`--no-fsync`) leaves
    /// that slow variant out, and the record counts and `audit verify` are taken from the full
    /// journal without fsync.
    pub fsync: bool,
}

/// The journal's cost at one durability.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JournalCost {
    /// Median time of the agent loop (`elapsed_s` of the summary), where every record is
    /// written: serialising, hashing, the SQLite insert and, at `Full`, the fsync.
    pub loop_s: f64,
    /// `loop_s` minus the same without a state folder: the cost of the records.
    pub overhead_s: f64,
    /// `overhead_s` per journal record of a run, µs (0 without records).
    pub per_record_us: f64,
    /// `overhead_s` per intent of a run, µs (0 without intents).
    pub per_intent_us: f64,
    /// Per bar: every bar is one strategy decision (hold or trade).
    pub per_decision_us: f64,
    /// Median wall time of the whole run (`run_shared`).
    pub wall_s: f64,
    /// Median of wall minus loop: once per run, the state folder's set-up and tear-down
    /// (lock, SQLite open and schema, kill switch watcher thread start and join, the WAL
    /// checkpoint when the journal closes).
    pub per_run_s: f64,
}

/// One strategy's journal figures: an element of `strategies` in `defai bench --journal --json`.
/// Counts are of one run (every run replays the same bars).
#[derive(Debug, Clone, serde::Serialize)]
pub struct JournalStrategyBench {
    /// The strategy measured.
    pub strategy: String,
    /// Bars each run replayed.
    pub bars: u64,
    /// Intents the strategy proposed per run.
    pub intents: u64,
    /// Fills per run.
    pub trades: u64,
    /// Records a full journal holds after one run (the fsynced one's; with `--no-fsync`, the
    /// one without fsync: the same records).
    pub records: u64,
    /// The same records counted by record kind.
    pub records_by_kind: std::collections::BTreeMap<String, u64>,
    /// `records / intents` (0 without intents).
    pub records_per_intent: f64,
    /// Median loop time without a state folder (no journal, in-memory kill switch), seconds.
    pub none_loop_s: f64,
    /// Median wall time of the whole run without a state folder, seconds.
    pub none_wall_s: f64,
    /// What `defai backtest` writes by default: a compact journal (no market record per bar,
    /// repeated refusals counted), no fsync. `per_record_us` is per full-journal record.
    pub compact: JournalCost,
    /// Records the compact journal holds after one run.
    pub compact_records: u64,
    /// Size of the compact journal file after one run, bytes.
    pub compact_bytes: u64,
    /// `compact_bytes / bars`.
    pub compact_bytes_per_bar: f64,
    /// Bars/s of the compact-journal loop over bars/s without a state folder (1 = free).
    pub compact_vs_engine: f64,
    /// A full journal (a market record per bar) without fsync (`--journal full` on a replay).
    pub replay: JournalCost,
    /// `Durability::Full`: fsync per record (live); `None` with `--no-fsync`.
    pub full: Option<JournalCost>,
    /// `Journal::verify` over the full journal (as `records` says which): median wall time,
    /// seconds.
    pub verify_s: f64,
    /// `records / verify_s`: records verified per second (0 when no time was measured).
    pub verify_records_per_s: f64,
    /// Size of that full journal's file after one run, bytes.
    pub journal_bytes: u64,
}

/// Figures of `defai bench --journal` (the object `--json` prints).
#[derive(Debug, Clone, serde::Serialize)]
pub struct JournalBench {
    /// Always `journal_overhead`: which benchmark produced the object.
    pub bench: &'static str,
    /// Runs of each variant the medians are over (`--runs`).
    pub runs: usize,
    /// File system type of the state folders (e.g. `tmpfs`, `ext4`; `unknown` where
    /// `/proc/self/mounts` cannot tell): fsync is free on tmpfs.
    pub state_fs: String,
    /// One entry per strategy, in the order asked.
    pub strategies: Vec<JournalStrategyBench>,
}

/// Backtests each strategy over the same bars without a state folder, with a compact and a
/// full journal at `Durability::Replay` and (unless `opts.fsync` is off) a full one at
/// `Durability::Full`, `runs` times each (interleaved), and times
/// [`Journal::verify`](connectors::journal::Journal::verify) over the slowest one's journal.
///
/// # Errors
/// [`BenchError::Input`] when `opts.runs` is not in 1..=1000 or there are no bars to replay
/// (or `opts.bars` is 0); [`BenchError::Io`] when a scratch or state folder cannot be created
/// or removed; [`BenchError::Run`] when a strategy cannot be built or a run fails;
/// [`BenchError::Journal`] when a journal cannot be opened, verified or read.
pub async fn journal_overhead(
    series: &Series,
    opts: &JournalOptions,
) -> Result<JournalBench, BenchError> {
    if opts.runs == 0 || opts.runs > 1000 {
        return Err(BenchError::Input("--runs must be in 1..=1000".into()));
    }
    let bench = JournalRuns {
        bars: bars_exact(&series.bars, opts.bars)?,
        report: &series.report,
        scratch: Scratch::new("journal")?,
        runs: opts.runs,
        fsync: opts.fsync,
    };
    let mut out = Vec::new();
    for name in &opts.strategies {
        let config = bench_config_running(name);
        crate::engine::build_strategy(&config, &[])?;
        if let Some(figures) = bench.measure(name, &config).await?.figures() {
            out.push(figures);
        }
    }
    Ok(JournalBench {
        bench: "journal_overhead",
        runs: opts.runs,
        state_fs: fs_type(&bench.scratch.0),
        strategies: out,
    })
}

/// What every strategy's journal runs share: the bars, their load report, the scratch folder
/// the state folders go in and the runs of each variant.
struct JournalRuns<'a> {
    bars: Arc<[Bar]>,
    report: &'a connectors::LoadReport,
    scratch: Scratch,
    runs: usize,
    /// Whether the full journal with fsync per record runs ([`JournalOptions::fsync`]).
    fsync: bool,
}

/// One strategy's journal runs: the (loop, wall) seconds of each variant, the verification
/// times, and what the first full-durability journal held.
#[derive(Default)]
struct JournalSamples {
    none: Vec<(f64, f64)>,
    compact: Vec<(f64, f64)>,
    replay: Vec<(f64, f64)>,
    full: Vec<(f64, f64)>,
    verify: Vec<f64>,
    /// The first run's summary (every run replays the same bars).
    first: Option<crate::engine::Summary>,
    by_kind: std::collections::BTreeMap<String, u64>,
    records: u64,
    journal_bytes: u64,
    /// The first default (compact) journal's records and size, bytes.
    compact_records: u64,
    compact_bytes: u64,
}

/// A journal variant `defai bench --journal` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// No state folder: the engine path.
    None,
    /// What `defai backtest` writes: a compact replay journal.
    Compact,
    /// A full journal (a market record per bar), no fsync.
    Replay,
    /// A full journal with fsync per record, as live.
    Full,
}

impl JournalRuns<'_> {
    /// Backtests `config` without a state folder, with a journal at `Durability::Replay` and
    /// with one at `Durability::Full` (unless `fsync` is off), interleaved, `runs` times; each
    /// full journal of the slowest durability run is verified, and every state folder removed
    /// after its run.
    async fn measure(&self, name: &str, config: &Config) -> Result<JournalSamples, BenchError> {
        use connectors::journal::Detail;

        let mut s = JournalSamples::default();
        for run in 0..self.runs {
            let verified = if self.fsync {
                Variant::Full
            } else {
                Variant::Replay
            };
            for variant in [
                Variant::None,
                Variant::Compact,
                Variant::Replay,
                Variant::Full,
            ] {
                if variant == Variant::Full && !self.fsync {
                    continue;
                }
                let dir = (variant != Variant::None)
                    .then(|| self.scratch.0.join(format!("{name}-{variant:?}-{run}")));
                let spec = RunSpec {
                    state: dir.clone(),
                    fresh_state: variant != Variant::Full,
                    journal_detail: (variant == Variant::Replay).then_some(Detail::Full),
                    ..RunSpec::backtest(config.clone())
                };
                let t = std::time::Instant::now();
                let o = run_shared(spec, self.bars.clone(), self.report).await?;
                let times = (o.summary.elapsed_s, t.elapsed().as_secs_f64());
                match variant {
                    Variant::None => s.none.push(times),
                    Variant::Compact => s.compact.push(times),
                    Variant::Replay => s.replay.push(times),
                    Variant::Full => s.full.push(times),
                }
                match (&dir, variant) {
                    (Some(dir), v) if v == verified => {
                        s.verify(&dir.join("journal.sqlite"), run == 0)?
                    }
                    (Some(dir), Variant::Compact) if run == 0 => {
                        s.compact_size(&dir.join("journal.sqlite"))?
                    }
                    _ => {}
                }
                if let Some(dir) = &dir {
                    std::fs::remove_dir_all(dir).map_err(io_error(dir))?;
                }
                s.first.get_or_insert(o.summary);
            }
        }
        Ok(s)
    }
}

impl JournalSamples {
    /// Counts the records of the compact journal at `path` and takes its size.
    fn compact_size(&mut self, path: &std::path::Path) -> Result<(), BenchError> {
        use connectors::journal::{Durability, Journal};
        let journal = Journal::open_with(path, Durability::Replay)?;
        self.compact_records = journal.verify()?.records.max(0) as u64;
        drop(journal);
        self.compact_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        Ok(())
    }

    /// Times `Journal::verify` of the full-durability journal at `path`; after the `first`
    /// run, also counts its records by kind and takes its size.
    fn verify(&mut self, path: &std::path::Path, first: bool) -> Result<(), BenchError> {
        use connectors::journal::{Durability, Journal};

        let journal = Journal::open_with(path, Durability::Replay)?;
        let t = std::time::Instant::now();
        let v = journal.verify()?;
        self.verify.push(t.elapsed().as_secs_f64());
        if first {
            self.records = v.records.max(0) as u64;
            for r in journal.records()? {
                *self.by_kind.entry(r.kind).or_default() += 1;
            }
            drop(journal);
            self.journal_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        }
        Ok(())
    }

    /// The strategy's figures: medians over its runs, costs against the runs without a state
    /// folder; `None` without a run.
    fn figures(mut self) -> Option<JournalStrategyBench> {
        let summary = self.first.take()?;
        let records = self.records;
        let loops = |v: &[(f64, f64)]| median(&mut v.iter().map(|t| t.0).collect::<Vec<_>>());
        let walls = |v: &[(f64, f64)]| median(&mut v.iter().map(|t| t.1).collect::<Vec<_>>());
        let none_loop_s = loops(&self.none);
        let cost = |v: &[(f64, f64)]| {
            let loop_s = loops(v);
            let overhead_s = loop_s - none_loop_s;
            let per = |n: u64| {
                if n > 0 {
                    overhead_s * 1e6 / n as f64
                } else {
                    0.0
                }
            };
            JournalCost {
                loop_s,
                overhead_s,
                per_record_us: per(records),
                per_intent_us: per(summary.intents),
                per_decision_us: per(summary.bars),
                wall_s: walls(v),
                per_run_s: median(&mut v.iter().map(|t| t.1 - t.0).collect::<Vec<_>>()),
            }
        };
        let verify_s = median(&mut self.verify);
        Some(JournalStrategyBench {
            strategy: summary.strategy.clone(),
            bars: summary.bars,
            intents: summary.intents,
            trades: summary.trades,
            records,
            records_by_kind: self.by_kind,
            records_per_intent: if summary.intents > 0 {
                records as f64 / summary.intents as f64
            } else {
                0.0
            },
            none_loop_s,
            none_wall_s: walls(&self.none),
            compact: cost(&self.compact),
            compact_records: self.compact_records,
            compact_bytes: self.compact_bytes,
            compact_bytes_per_bar: self.compact_bytes as f64 / summary.bars.max(1) as f64,
            compact_vs_engine: if loops(&self.compact) > 0.0 {
                none_loop_s / loops(&self.compact)
            } else {
                0.0
            },
            replay: cost(&self.replay),
            full: (!self.full.is_empty()).then(|| cost(&self.full)),
            verify_s,
            verify_records_per_s: if verify_s > 0.0 {
                records as f64 / verify_s
            } else {
                0.0
            },
            journal_bytes: self.journal_bytes,
        })
    }
}

impl JournalBench {
    /// The human-readable report.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "journal overhead, backtest through the engine, median of {} runs, state on {}",
            self.runs, self.state_fs
        );
        for b in &self.strategies {
            let kinds: Vec<String> = b
                .records_by_kind
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let _ = writeln!(
                s,
                "{}: {} bars, {} intents, {} trades; {} records ({:.2} per intent: {})",
                b.strategy,
                b.bars,
                b.intents,
                b.trades,
                b.records,
                b.records_per_intent,
                kinds.join(", ")
            );
            let _ = writeln!(
                s,
                "  no state folder     loop {:.4} s (wall {:.4} s)",
                b.none_loop_s, b.none_wall_s
            );
            let _ = writeln!(
                s,
                "  compact (default)   loop {:.4} s ({:.0} % of the engine's bars/s); {} records, {:.1} bytes per bar",
                b.compact.loop_s,
                b.compact_vs_engine * 100.0,
                b.compact_records,
                b.compact_bytes_per_bar
            );
            for (label, c) in [
                ("full (no fsync)", Some(&b.replay)),
                ("full (fsync)", b.full.as_ref()),
            ] {
                let Some(c) = c else { continue };
                let _ = writeln!(
                    s,
                    "  {label:<19} loop {:.4} s: +{:.4} s = {:.1} µs per record, {:.1} µs per intent, {:.2} µs per decision (bar); once per run {:.3} s",
                    c.loop_s,
                    c.overhead_s,
                    c.per_record_us,
                    c.per_intent_us,
                    c.per_decision_us,
                    c.per_run_s
                );
            }
            let _ = writeln!(
                s,
                "  verify: {:.4} s = {:.0} records/s; journal {:.2} MB",
                b.verify_s,
                b.verify_records_per_s,
                b.journal_bytes as f64 / 1e6
            );
        }
        s.trim_end().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_status_is_parsed_and_a_file_without_rss_is_none() {
        let status = "Name:\tdefai\nVmHWM:\t   13900 kB\nVmRSS:\t   13800 kB\nRssAnon:\t    5000 kB\nRssFile:\t    8700 kB\nRssShmem:\t     100 kB\nThreads:\t3\n";
        let m = MemSample::parse(status).unwrap();
        assert_eq!(
            m,
            MemSample {
                rss_kb: 13800,
                peak_rss_kb: 13900,
                anon_kb: 5000,
                file_kb: 8700,
                shmem_kb: 100,
                threads: 3,
            }
        );
        assert_eq!(MemSample::parse("Name: x\nVmRSS: oops kB\n"), None);
    }

    #[test]
    fn overlap_counts_agents_alive_at_once() {
        assert_eq!(max_overlap(&[]), 0);
        assert_eq!(max_overlap(&[(0.0, 1.0), (0.5, 2.0), (0.7, 0.8)]), 3);
        // One ends exactly when the next starts: never both alive.
        assert_eq!(max_overlap(&[(0.0, 1.0), (1.0, 2.0)]), 1);
    }

    #[test]
    fn bars_are_cut_or_repeated_to_exactly_n() {
        let bars: Vec<Bar> = (0..10)
            .map(|i| Bar {
                ts: i * 3600,
                open: 1.0,
                high: 1.0,
                low: 1.0,
                close: 1.0,
                volume: 1.0,
            })
            .collect();
        assert_eq!(bars_exact(&bars, None).unwrap().len(), 10);
        assert_eq!(bars_exact(&bars, Some(4)).unwrap().len(), 4);
        let long = bars_exact(&bars, Some(25)).unwrap();
        assert_eq!(long.len(), 25);
        assert!(long.windows(2).all(|w| w[0].ts < w[1].ts));
        assert!(bars_exact(&bars, Some(0)).is_err());
        assert!(bars_exact(&[], None).is_err());
    }
}
