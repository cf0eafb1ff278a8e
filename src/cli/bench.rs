//! `defai bench`: backtest throughput and the risk gate by default; with a flag, a fleet's
//! memory, the journal's overhead, on-chain execution, the model or the other strategies.

use crate::config::Config;
use crate::engine;
use anyhow::{Result, bail};
use clap::Args;

/// `defai bench`'s flags.
#[derive(Args)]
pub(super) struct BenchArgs {
    /// Throughput: repeat the bundled data to at least this many bars (default 1,000,000).
    /// --agents, --journal: replay exactly this many (default: the bundled data, 33,158).
    #[arg(long)]
    bars: Option<usize>,
    /// Measured runs (throughput: best and median, default 5; --journal: medians, default 3).
    #[arg(long)]
    runs: Option<usize>,
    /// Benchmark memory instead: N paper agents as tasks of this one process, each with its
    /// own state folder (journal, kill switch, lock); reports the process's RSS. Run 1 and
    /// 100 as separate processes: the peak is per process.
    #[arg(long, value_name = "N")]
    agents: Option<usize>,
    /// --agents: pace every agent's replay to this many seconds of wall time, so all of them
    /// stay alive together (0 = as fast as possible, still interleaved).
    #[arg(long, default_value_t = 0.0)]
    seconds: f64,
    /// --agents: the journal's commits, `replay` (no fsync, as a paper replay) or `full`
    /// (fsync per record, as live; one fsync per bar and agent: bound it with --bars).
    #[arg(long, default_value = "replay")]
    durability: String,
    /// --agents, --journal: the strategy (default ema_cross; --journal: ema_cross and
    /// ml_signal).
    #[arg(long)]
    strategy: Option<String>,
    /// Benchmark the journal instead: the same backtest without a state folder, with a
    /// journal without fsync and with fsync per record; µs per record and per decision,
    /// and `audit verify` speed.
    #[arg(long)]
    journal: bool,
    /// --journal: leave out the full journal with fsync per record (the slow, live-like
    /// variant), e.g. with many --bars.
    #[arg(long, requires = "journal")]
    no_fsync: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Benchmark on-chain execution instead: swaps through the real router on a fresh
    /// devnet (needs `npm ci`).
    #[arg(long)]
    pub(super) chain: bool,
    /// --chain: swaps to send.
    #[arg(long, default_value_t = 1000)]
    swaps: usize,
    /// --chain: swaps in flight at once, all from one wallet and one nonce manager.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Benchmark the shipped model instead: inference latency, features + inference per
    /// bar, training time.
    #[arg(long)]
    model: bool,
    /// Benchmark the prediction and rebalancing strategies instead: bettor cycles/s over 100
    /// paper markets, rebalancer decision time for 10 assets.
    #[arg(long)]
    strategies: bool,
}

/// `defai bench` but `--chain` ([`chain_bench`], which runs outside the command's runtime): the
/// benchmark its flags pick.
pub(super) async fn bench(args: BenchArgs) -> Result<()> {
    let BenchArgs {
        bars,
        runs,
        agents,
        seconds,
        durability,
        strategy,
        journal,
        no_fsync,
        json,
        model,
        strategies,
        ..
    } = args;
    if model {
        return model_bench(json);
    }
    if strategies {
        return strategy_bench(json).await;
    }
    if let Some(agents) = agents {
        return fleet_bench(agents, bars, seconds, &durability, strategy, json).await;
    }
    if journal {
        return journal_bench(bars, runs, strategy, !no_fsync, json).await;
    }
    throughput(bars.unwrap_or(1_000_000), runs.unwrap_or(5), json).await
}

/// The default: backtest throughput of ema_cross (best and median of `runs`) and the risk
/// gate's time per intent.
async fn throughput(bars: usize, runs: usize, json: bool) -> Result<()> {
    if bars == 0 {
        bail!("--bars must be positive");
    }
    let series = engine::load_data(&Config::default(), None, false)?;
    let results = crate::bench::throughput(&series, bars, runs).await?;
    let gate = crate::bench::gate_bench(1_000_000);
    let mut rates: Vec<f64> = results.iter().map(|r| r.bars_per_s).collect();
    rates.sort_by(f64::total_cmp);
    let best = rates.last().copied().unwrap_or(0.0);
    let median = rates[rates.len() / 2];
    if json {
        println!(
            "{}",
            serde_json::json!({"bench": "backtest_throughput", "strategy": "ema_cross", "runs": results,
                "best_bars_per_s": best, "median_bars_per_s": median, "gate": gate})
        );
    } else {
        let r = &results[0];
        println!(
            "backtest throughput, ema_cross, {} bars ({} trades), {} runs",
            r.bars,
            r.trades,
            results.len()
        );
        for (i, r) in results.iter().enumerate() {
            println!(
                "  run {}: {:.3} s, {:.2} M bars/s",
                i + 1,
                r.elapsed_s,
                r.bars_per_s / 1e6
            );
        }
        println!(
            "best {:.2} M bars/s, median {:.2} M bars/s",
            best / 1e6,
            median / 1e6
        );
        println!(
            "risk gate per intent: {:.0} ns (price-impact check included; {:.0} ns without it), {:.0} ns when resized to the impact limit",
            gate.ns_per_intent, gate.ns_per_intent_without_impact, gate.ns_per_resized_intent
        );
    }
    Ok(())
}

/// `--strategies`: the bettor's cycles per second, the rebalancer's decision time, a two-leg
/// bundle's.
async fn strategy_bench(json: bool) -> Result<()> {
    let r = crate::bench::strategy_bench().await?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "kelly_bettor, paper, {} markets: {:.0} cycles/s",
            r.markets, r.bettor_cycles_per_s
        );
        println!(
            "rebalancer, 10 assets: p50 {:.2} µs, p99 {:.2} µs per decision",
            r.rebalancer_10_assets_p50_us, r.rebalancer_10_assets_p99_us
        );
        println!(
            "two-leg bundle (decision, both legs judged, filled and booked on paper): {:.2} µs",
            r.arbitrage_bundle_us
        );
    }
    Ok(())
}

/// `--agents`: a fleet of paper agents in this process, and its memory.
async fn fleet_bench(
    agents: usize,
    bars: Option<usize>,
    seconds: f64,
    durability: &str,
    strategy: Option<String>,
    json: bool,
) -> Result<()> {
    let series = engine::load_data(&Config::default(), None, false)?;
    let opts = crate::bench::FleetOptions {
        agents,
        bars,
        seconds,
        strategy: strategy.unwrap_or_else(|| "ema_cross".into()),
        durability: crate::bench::parse_durability(durability)?,
    };
    let r = crate::bench::fleet(series, &opts).await?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("{}", r.render());
    }
    Ok(())
}

/// `--journal`: the journal's cost per record and per decision, without and with fsync.
async fn journal_bench(
    bars: Option<usize>,
    runs: Option<usize>,
    strategy: Option<String>,
    fsync: bool,
    json: bool,
) -> Result<()> {
    let series = engine::load_data(&Config::default(), None, false)?;
    let opts = crate::bench::JournalOptions {
        fsync,
        bars,
        runs: runs.unwrap_or(3),
        strategies: match strategy {
            Some(s) => vec![s],
            None => vec!["ema_cross".into(), "ml_signal".into()],
        },
    };
    let r = crate::bench::journal_overhead(&series, &opts).await?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!("{}", r.render());
    }
    Ok(())
}

/// The on-chain benchmark runs on two worker threads: senders and the receipt polling overlap.
pub(super) fn chain_bench(args: &BenchArgs) -> Result<()> {
    let (swaps, concurrency, json) = (args.swaps, args.concurrency, args.json);
    if swaps == 0 || concurrency == 0 {
        bail!("--swaps and --concurrency must be positive");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let r = rt.block_on(crate::bench::chain_throughput(swaps, concurrency))?;
    let b = rt.block_on(crate::bench::chain_bundle_latency(20))?;
    if json {
        // The swap figures at the top level, as before; the bundle figures beside them.
        let mut v = serde_json::to_value(&r)?;
        v["bundles"] = serde_json::to_value(&b)?;
        println!("{v}");
    } else {
        println!(
            "on-chain swaps (anvil, real Uniswap V2 router), {} swaps, {} in flight, one wallet",
            r.swaps, r.concurrency
        );
        println!(
            "  confirmed: {:.0} swaps/s ({:.2} s), errors {}, nonces contiguous: {}, evm_mine kicks {}",
            r.confirmed_swaps_per_s, r.elapsed_s, r.errors, r.nonces_contiguous, r.kicks
        );
        println!(
            "  decision → signed transaction: p50 {:.0} µs, p99 {:.0} µs",
            r.decision_to_signed_p50_us, r.decision_to_signed_p99_us
        );
        for e in &r.error_samples {
            println!("  error: {e}");
        }
        println!(
            "two-leg bundles (agent loop, two Uniswap V2 deployments), {} bundles: decision → first leg signed p50 {:.0} µs; → both legs signed p50 {:.0} µs, p99 {:.0} µs (the first mined and booked in between)",
            b.bundles,
            b.to_first_leg_signed_p50_us,
            b.to_bundle_signed_p50_us,
            b.to_bundle_signed_p99_us
        );
    }
    Ok(())
}

/// `--model`: the shipped model's inference latency, features and inference per bar, and
/// training time.
fn model_bench(json: bool) -> Result<()> {
    let series = engine::load_data(&Config::default(), None, false)?;
    let r = crate::bench::model_bench(&series, 100_000)?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "model {} (PriceDirection MLP, candle CPU, RAYON_NUM_THREADS={})",
            &r.model_hash[..16],
            std::env::var("RAYON_NUM_THREADS").unwrap_or_default()
        );
        println!(
            "  single decision (batch 1): p50 {:.1} µs, p99 {:.1} µs over {} calls",
            r.inference_p50_us, r.inference_p99_us, r.inference_samples
        );
        println!(
            "  features + inference: {:.0} bars/s",
            r.features_and_inference_bars_per_s
        );
        println!(
            "  training (shipped settings, bundled data): {:.2} s, {} epochs",
            r.training_s, r.training_epochs
        );
    }
    Ok(())
}
