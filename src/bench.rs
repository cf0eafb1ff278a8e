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
pub fn bench_config() -> Config {
    Config::parse(
        "[risk]\nmax_drawdown_pct = 100.0\nmax_daily_loss_pct = 100.0\n",
        None,
    )
    .expect("bench config parses")
}

/// One measured run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchRun {
    pub bars: u64,
    pub trades: u64,
    pub elapsed_s: f64,
    pub bars_per_s: f64,
}

/// Runs `ema_cross` with default parameters over `series` repeated to `min_bars`, `runs` times.
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

/// Figures of the on-chain benchmark.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChainBench {
    pub swaps: usize,
    pub concurrency: usize,
    pub elapsed_s: f64,
    /// Swaps with a status-1 receipt per second, first send to last receipt.
    pub confirmed_swaps_per_s: f64,
    /// Sends that failed for any reason (nonce errors included).
    pub errors: usize,
    /// The first few errors, verbatim.
    pub error_samples: Vec<String>,
    /// From `send` (right after the decision) to a signed transaction: fee lookup, `eth_call`
    /// simulation, gas estimate, nonce lease and signing.
    pub decision_to_signed_p50_us: f64,
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
pub async fn chain_throughput(
    swaps: usize,
    concurrency: usize,
) -> Result<ChainBench, connectors::evm::EvmError> {
    use connectors::evm::alloy::primitives::U256;
    use connectors::evm::alloy::sol_types::SolCall;
    use connectors::evm::bindings::{IERC20, IUniswapV2Router02};
    use connectors::evm::{
        Devnet, DevnetConfig, NonceManager, TxPolicy, TxRequest, TxSender, TxStep,
    };
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
    let kicker = {
        let (chain, stop, kicks) = (devnet.chain().clone(), stop.clone(), kicks.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                let pending: u64 = chain.nonce(me, true).await.unwrap_or(0);
                let mined: u64 = chain.nonce(me, false).await.unwrap_or(0);
                if pending > mined {
                    let _: Result<serde_json::Value, _> = chain.dev_call("evm_mine", ()).await;
                    kicks.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let next = Arc::new(AtomicU64::new(0));
    let t0 = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (tx, next, info) = (tx.clone(), next.clone(), info.clone());
        tasks.push(tokio::spawn(async move {
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
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.extend(t.await.unwrap_or_default());
    }
    let elapsed_s = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = kicker.await;

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
    Ok(ChainBench {
        swaps,
        concurrency,
        elapsed_s,
        confirmed_swaps_per_s: (swaps - errors) as f64 / elapsed_s,
        errors,
        error_samples,
        decision_to_signed_p50_us: percentile(&lat, 0.5),
        decision_to_signed_p99_us: percentile(&lat, 0.99),
        nonces_contiguous,
        kicks: kicks.load(Ordering::Relaxed),
    })
}

/// Figures of the model benchmark.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelBench {
    pub model_hash: String,
    /// One decision (features already computed → probability), batch 1, one thread.
    pub inference_p50_us: f64,
    pub inference_p99_us: f64,
    pub inference_samples: usize,
    /// Incremental features plus inference over every bundled bar.
    pub features_and_inference_bars_per_s: f64,
    /// Training the shipped model's configuration on the bundled data.
    pub training_s: f64,
    pub training_epochs: usize,
}

/// Measures the shipped `PriceDirection` model: single-decision latency, per-bar throughput of
/// the live path, and training time.
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

/// Decision-time figures of the prediction and rebalancing strategies.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StrategyBench {
    /// Paper-mode PredictionAgent cycles per second over `markets` markets (kelly_bettor,
    /// redeem + look at every market + bets).
    pub bettor_cycles_per_s: f64,
    pub markets: usize,
    /// One rebalancer decision (weights, drift check, plan) for 10 assets, µs.
    pub rebalancer_10_assets_p50_us: f64,
    pub rebalancer_10_assets_p99_us: f64,
}

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
    Ok(StrategyBench {
        bettor_cycles_per_s: cycles_per_s,
        markets: gen_cfg.markets,
        rebalancer_10_assets_p50_us: percentile(&lat, 0.5),
        rebalancer_10_assets_p99_us: percentile(&lat, 0.99),
    })
}
