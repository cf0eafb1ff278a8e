//! The `defai` command line, as a library: [`main`] is the `defai` binary; [`main_with`] is
//! the same commands with a user's own strategies registered, for a binary of their own:
//!
//! ```no_run
//! # use defai::strategies::{BuildError, Registry};
//! # use defai::core::{Params, Strategy};
//! // Your own factory builds your strategy from its parameters; here, ema_cross under a new name.
//! fn my_strategy(p: Params) -> Result<Box<dyn Strategy>, BuildError> {
//!     Ok(Box::new(defai::strategies::EmaCross::from_params(p)?))
//! }
//! fn main() -> anyhow::Result<()> {
//!     let mut registry = Registry::builtin();
//!     registry.register("my_strategy", my_strategy)?;
//!     defai::cli::main_with(registry) // `backtest`, `paper`, `run` … now know `my_strategy`
//! }
//! ```

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::chain::ChainArgs;
use crate::config::{Config, VenueKind};
use crate::connectors::StateDir;
use crate::control::{AgentHandle, ApiClient, ApiServer};
use crate::core::{KillMode, SwitchAction};
use crate::engine::{self, Mode, RunSpec};
use crate::output;
use crate::runtime::{ApiAgent, ApiOptions, serve_api};
use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "defai",
    version,
    about = "Autonomous DeFi agents: paper-trade, backtest, and trade on EVM chains"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Paper-trade: the live agent loop against a simulated Uniswap V2 pool, replaying market
    /// data. With no arguments: bundled ETH/USDC hourly data, ema_cross, 10,000 USDC.
    /// With --devnet (or a config whose venue is uniswap_v2): reads the real pool every block and
    /// fills on the simulated pool from its exact reserves; never loads a key or signs.
    Paper {
        #[command(flatten)]
        run: RunArgs,
        /// Replay speed: N × real time, or `max` (default for replayed files).
        #[arg(long, default_value = "max", value_parser = parse_speed)]
        speed: Speed,
        #[command(flatten)]
        chain: ChainFlags,
        #[command(flatten)]
        api: ApiFlags,
    },
    /// Trade live on an EVM chain: signs and sends swaps through Uniswap V2. The key comes from
    /// DEFAI_PRIVATE_KEY or --keystore (password: DEFAI_KEYSTORE_PASSWORD or a prompt).
    Run {
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        chain: ChainFlags,
        /// Encrypted JSON keystore holding the key.
        #[arg(long)]
        keystore: Option<PathBuf>,
        /// Allow known mainnet chain ids (real money).
        #[arg(long)]
        allow_mainnet: bool,
        /// Another agent config to run in this same process, concurrently (repeatable): e.g.
        /// trading + prediction + rebalancing. Each keeps its own strategy, budget and risk
        /// limits; agents on one wallet share its nonce manager. Prints
        /// `{"agents": [summary, ...]}`.
        #[arg(long = "also", value_name = "CONFIG")]
        also: Vec<PathBuf>,
        #[command(flatten)]
        api: ApiFlags,
    },
    /// Train the PriceDirection model (candle, CPU) and write weights + metadata to DIR.
    /// Deterministic for a given seed; the split is chronological (train, validation, held-out
    /// tail) and the held-out metrics go into the metadata.
    Train {
        /// OHLCV CSV (default: the bundled ETH/USDC hourly data).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Output folder for price_direction.safetensors and price_direction.json.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Label horizon in bars.
        #[arg(long, default_value_t = 6)]
        horizon: usize,
        #[arg(long, default_value_t = 60)]
        max_epochs: usize,
        /// Print the result as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Evaluate kelly_bettor offline: seeded binary markets with known true probabilities, a
    /// noisy market price and a less noisy forecast; paper FPMM fills with the contract's math.
    /// Reports the bettor's return and the Brier scores of its forecasts and of the market.
    PredictEval {
        #[arg(long, default_value_t = 200)]
        markets: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Starting collateral, whole dUSD.
        #[arg(long, default_value_t = 1000.0)]
        bankroll: f64,
        /// Fractional Kelly.
        #[arg(long, default_value_t = 0.25)]
        fraction: f64,
        #[arg(long)]
        json: bool,
    },
    /// Backtest the rebalancer (WETH / DVT / dUSD target weights) on the bundled ETH series plus a
    /// generated DVT series correlated with it; reports turnover, fees, gas and tracking error.
    Rebalance {
        /// Target weights WETH,DVT,dUSD.
        #[arg(long, default_value = "0.4,0.3,0.3")]
        targets: String,
        /// Drift (weight points) that triggers a rebalance.
        #[arg(long, default_value_t = 0.05)]
        band: f64,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
    /// Start a local anvil devnet with WETH, dUSD (6 decimals), DVT (18), the real Uniswap V2
    /// factory and router, and pools; runs until Ctrl-C.
    Devnet {
        /// RPC port (0: any free port).
        #[arg(long, default_value_t = 8545)]
        port: u16,
        /// Seconds between blocks (default: one block per transaction).
        #[arg(long)]
        block_time: Option<f64>,
        /// Where to write addresses, chain id and RPC URL.
        #[arg(long, default_value = "devnet.json")]
        out: PathBuf,
        /// WETH price in dUSD at start (default: the last close of the bundled data, or the
        /// first close of --replay).
        #[arg(long)]
        price: Option<f64>,
        /// dUSD on each side of each pool.
        #[arg(long, default_value_t = 5_000_000)]
        depth_usd: u64,
        /// Move the WETH/dUSD pool to each close of this OHLCV CSV in turn.
        #[arg(long)]
        replay: Option<PathBuf>,
        /// Wall-clock seconds between replayed bars.
        #[arg(long, default_value_t = 1.0)]
        bar_seconds: f64,
    },
    /// Backtest: the same loop on a simulated clock, as fast as it goes.
    Backtest {
        #[command(flatten)]
        run: RunArgs,
    },
    /// Trip the kill switch of the agent using a state folder (running or not; a running agent
    /// applies it within one cycle, a stopped one when it starts).
    Kill {
        /// The agent's state folder (its `--state`).
        #[arg(long)]
        state: PathBuf,
        /// halt (nothing passes), reduce_only (only exposure-reducing intents), flatten
        /// (unwind to quote within the price-impact limit, a slice per cycle, then halt) or
        /// flatten_now (the same unwind ignoring the price-impact limit).
        #[arg(long, default_value = "halt")]
        mode: KillMode,
        /// Why: recorded with the switch state.
        #[arg(long)]
        reason: String,
    },
    /// Check or explain the journal of a state folder.
    Audit {
        #[command(subcommand)]
        what: AuditCmd,
    },
    /// Lift a tripped kill switch.
    Resume {
        #[arg(long)]
        state: PathBuf,
        #[arg(long)]
        reason: String,
    },
    /// The state of the agent using a state folder: asks its control API (address and token
    /// from the folder); when none answers, reads the latched kill switch from the folder.
    Status {
        /// The agent's state folder (its `--state`).
        #[arg(long)]
        state: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Measure backtest throughput (bars/s) of ema_cross through the real engine path; with a
    /// flag, a fleet's memory (--agents), the journal (--journal), on-chain execution, the model
    /// or the other strategies.
    Bench {
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
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Benchmark on-chain execution instead: swaps through the real router on a fresh
        /// devnet (needs `npm ci`).
        #[arg(long)]
        chain: bool,
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
    },
}

#[derive(Args)]
struct RunArgs {
    /// TOML config (see examples/configs/).
    #[arg(long)]
    config: Option<PathBuf>,
    /// OHLCV CSV to replay (overrides `market.data`); `.gz` is fine.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Strategy name (overrides `strategy.name`).
    #[arg(long)]
    strategy: Option<String>,
    /// Strategy parameter, `key=value`; repeatable; overrides the config file.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// Print exactly one JSON summary object on stdout and nothing else.
    #[arg(long)]
    json: bool,
    /// Write trades.csv, equity.csv and equity.png into this folder.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Skip malformed data rows (counted as `skipped_rows`) instead of stopping.
    #[arg(long)]
    skip_bad_rows: bool,
    /// State folder: the journal, the latched kill switch and the control API's address and
    /// token live here; `defai kill|resume|status|audit` reach the agent through it. Default:
    /// `$DEFAI_STATE_ROOT/<agent>-<mode>` (root default `./state`). A replay (backtest, paper on
    /// a file) starts it afresh; chain runs resume from it.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Replay only the model's held-out tail (from its metadata; the `model` parameter or the
    /// shipped model), plus the features' warm-up bars before it.
    #[arg(long)]
    heldout: bool,
    /// Also run this strategy (default parameters) over the same bars and report it beside
    /// the main one (summary `baselines`, a curve in equity.png); repeatable.
    #[arg(long = "baseline", value_name = "STRATEGY")]
    baselines: Vec<String>,
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Recompute the journal's hash chain; exit non-zero naming the first altered or missing
    /// record.
    Verify {
        #[arg(long, default_value = "state")]
        state: PathBuf,
    },
    /// The journal records of the intent behind a transaction: intent, verdict, decision,
    /// transaction steps, fill.
    Show {
        #[arg(long, default_value = "state")]
        state: PathBuf,
        #[arg(long)]
        tx: String,
    },
}

/// The control API and dashboard (`paper`, `run`).
#[derive(Args, Clone)]
struct ApiFlags {
    /// Serve the control API and dashboard here (port 0: any free port). Its URL goes to
    /// `<state>/api.json`, its bearer token to `<state>/api-token`.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    api: std::net::SocketAddr,
    /// No control API or dashboard (`defai kill|resume` still work through the state folder).
    #[arg(long)]
    no_api: bool,
    /// Allow --api on an address other than loopback.
    #[arg(long)]
    api_public: bool,
}

#[derive(Args)]
struct ChainFlags {
    /// Take the chain and contracts from a `devnet.json` written by `defai devnet`.
    #[arg(long)]
    devnet: Option<PathBuf>,
    /// Stop after N market events (blocks).
    #[arg(long)]
    max_cycles: Option<u64>,
}

#[derive(Clone, Copy)]
enum Speed {
    Max,
    Times(f64),
}

fn parse_speed(s: &str) -> Result<Speed, String> {
    if s.eq_ignore_ascii_case("max") {
        return Ok(Speed::Max);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(Speed::Times(v)),
        _ => Err(format!("`{s}` is not a positive number or `max`")),
    }
}

/// The `defai` binary: every command, with the built-in strategies.
///
/// # Errors
/// The command failed (the error says why; with `--json` it is also printed as one JSON object).
pub fn main() -> Result<()> {
    main_with(crate::strategies::Registry::builtin())
}

/// The `defai` commands with `registry`'s strategies: a config or `--strategy`-free run
/// naming a registered strategy runs it (bar strategies; `kelly_bettor` and `rebalancer` are
/// built in).
///
/// # Errors
/// A registry was installed already in this process, or the command failed.
pub fn main_with(registry: crate::strategies::Registry) -> Result<()> {
    crate::strategies::install(registry)?;
    // With --json, scripts read stdout: a run that fails still prints one JSON object there.
    let json = std::env::args().any(|a| a == "--json");
    let result = run_cli();
    if let (Err(e), true) = (&result, json) {
        println!("{}", serde_json::json!({ "error": format!("{e:#}") }));
    }
    result
}

fn run_cli() -> Result<()> {
    // candle's CPU kernels use a rayon pool; for models this small one thread is ~10× faster per
    // decision than two (thread hand-off dominates). An explicit setting wins.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: first thing in main, before any other thread exists.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(
                    "warn,defai::api=info,defai::wait=info,defai::markets=info",
                )
            }),
        )
        .init();
    // One thread: the loop is sequential and deterministic; nothing here needs a pool.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if let Command::Bench {
        json,
        chain: true,
        swaps,
        concurrency,
        ..
    } = cli.command
    {
        return chain_bench(swaps, concurrency, json);
    }
    rt.block_on(async {
        match cli.command {
            Command::Paper {
                run,
                speed,
                chain,
                api,
            } => {
                let speed = match speed {
                    Speed::Max => None,
                    Speed::Times(v) => Some(v),
                };
                let chain_mode =
                    chain.devnet.is_some() || run_config(&run)?.venue.kind == VenueKind::UniswapV2;
                if chain_mode {
                    let args = ChainArgs {
                        devnet: chain.devnet,
                        ..ChainArgs::default()
                    };
                    run_agent(
                        Mode::Paper,
                        run,
                        None,
                        Some((args, chain.max_cycles)),
                        Some(&api),
                    )
                    .await
                } else {
                    run_agent(Mode::Paper, run, speed, None, Some(&api)).await
                }
            }
            Command::Backtest { run } => run_agent(Mode::Backtest, run, None, None, None).await,
            Command::Run {
                run,
                chain,
                keystore,
                allow_mainnet,
                also,
                api,
            } => {
                let args = ChainArgs {
                    devnet: chain.devnet,
                    keystore,
                    allow_mainnet,
                    ..ChainArgs::default()
                };
                if also.is_empty() {
                    run_agent(
                        Mode::Live,
                        run,
                        None,
                        Some((args, chain.max_cycles)),
                        Some(&api),
                    )
                    .await
                } else {
                    let mut configs: Vec<PathBuf> = run.config.iter().cloned().collect();
                    configs.extend(also);
                    run_fleet(configs, args, chain.max_cycles, run.params, &api).await
                }
            }
            Command::PredictEval {
                markets,
                seed,
                bankroll,
                fraction,
                json,
            } => predict_eval(markets, seed, bankroll, fraction, json).await,
            Command::Rebalance {
                targets,
                band,
                seed,
                json,
            } => rebalance(&targets, band, seed, json).await,
            Command::Train {
                data,
                out,
                seed,
                horizon,
                max_epochs,
                json,
            } => train(data, &out, seed, horizon, max_epochs, json),
            Command::Devnet {
                port,
                block_time,
                out,
                price,
                depth_usd,
                replay,
                bar_seconds,
            } => {
                devnet(
                    port,
                    block_time,
                    &out,
                    price,
                    depth_usd,
                    replay,
                    bar_seconds,
                )
                .await
            }
            Command::Bench {
                json, model: true, ..
            } => model_bench(json),
            Command::Bench {
                json,
                strategies: true,
                ..
            } => {
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
            Command::Bench {
                json,
                agents: Some(agents),
                bars,
                seconds,
                durability,
                strategy,
                ..
            } => {
                let series = engine::load_data(&Config::default(), None, false)?;
                let opts = crate::bench::FleetOptions {
                    agents,
                    bars,
                    seconds,
                    strategy: strategy.unwrap_or_else(|| "ema_cross".into()),
                    durability: crate::bench::parse_durability(&durability)?,
                };
                let r = crate::bench::fleet(series, &opts).await?;
                if json {
                    println!("{}", serde_json::to_string(&r)?);
                } else {
                    println!("{}", r.render());
                }
                Ok(())
            }
            Command::Bench {
                json,
                journal: true,
                bars,
                runs,
                strategy,
                ..
            } => {
                let series = engine::load_data(&Config::default(), None, false)?;
                let opts = crate::bench::JournalOptions {
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
            Command::Bench {
                bars, runs, json, ..
            } => bench(bars.unwrap_or(1_000_000), runs.unwrap_or(5), json).await,
            Command::Kill {
                state,
                mode,
                reason,
            } => control(&state, SwitchAction::Kill(mode), &reason).await,
            Command::Resume { state, reason } => {
                control(&state, SwitchAction::Resume, &reason).await
            }
            Command::Status { state, json } => status(&state, json).await,
            Command::Audit { what } => audit(what),
        }
    })
}

/// `$DEFAI_STATE_ROOT/<agent>-<mode>`, root default `./state`: one folder per agent and mode,
/// so a paper run never shares a journal or a kill switch with the live agent.
fn default_state_dir(config: &Config, mode: Mode) -> PathBuf {
    let root = std::env::var_os("DEFAI_STATE_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("state"));
    root.join(format!("{}-{}", config.agent_name(), mode.name()))
}

/// Starts the control API and dashboard for `agents` (one server for all of them), unless
/// `--no-api` ([`serve_api`]).
fn start_api(
    flags: &ApiFlags,
    agents: &[ApiAgent],
) -> Result<Option<(Vec<AgentHandle>, ApiServer)>> {
    if flags.no_api {
        return Ok(None);
    }
    let options = ApiOptions {
        addr: flags.api,
        public: flags.api_public,
    };
    Ok(Some(serve_api(&options, agents)?))
}

fn run_config(args: &RunArgs) -> Result<Config> {
    Ok(match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    })
}

async fn run_agent(
    mode: Mode,
    args: RunArgs,
    speed: Option<f64>,
    chain: Option<(ChainArgs, Option<u64>)>,
    api: Option<&ApiFlags>,
) -> Result<()> {
    let mut config = run_config(&args)?;
    if let Some(name) = &args.strategy
        && name != &config.strategy.name
    {
        // The file's parameters belong to the strategy it names, not to this one.
        config.strategy.name = name.clone();
        config.strategy.params.clear();
    }
    let stop = Arc::new(AtomicBool::new(false));
    if speed.is_some() || chain.is_some() {
        // Paced replays can run for hours: Ctrl-C ends the replay and still prints the summary.
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::Relaxed);
            }
        });
    }
    let state = args
        .state
        .clone()
        .unwrap_or_else(|| default_state_dir(&config, mode));
    // Held to the end of the run: dropping it stops the server.
    let api = match api {
        Some(flags) => start_api(
            flags,
            &[ApiAgent {
                name: config.agent_name(),
                state: state.clone(),
                mode,
                strategy: config.strategy.name.clone(),
            }],
        )?,
        None => None,
    };
    let board = api.as_ref().and_then(|(h, _)| h.first().cloned());
    let spec = RunSpec {
        mode,
        config,
        params: args.params.clone(),
        speed,
        progress: !args.json && std::io::stderr().is_terminal(),
        record: args.out.is_some(),
        stop,
        state: Some(state),
        max_cycles: chain.as_ref().and_then(|c| c.1),
        fresh_state: chain.is_none(),
        // A backtest is a pure function of its inputs; a paper replay in a folder the user named
        // keeps its kill switch latched across runs, like a live agent.
        reset_switch: chain.is_none() && (mode == Mode::Backtest || args.state.is_none()),
        strategy: None,
        observers: board.iter().map(|b| b.observer()).collect(),
        journal: None,
        rebalance_model: None,
    };
    if spec.config.strategy.name == "rebalancer" {
        let Some((chain_args, _)) = chain else {
            bail!(
                "the live rebalancer runs with `defai run --devnet FILE`; backtest it with `defai rebalance`"
            );
        };
        let s = crate::chain::run_rebalancer(spec, chain_args).await?;
        println!("{}", serde_json::to_string(&s)?);
        return Ok(());
    }
    if spec.config.strategy.name == "kelly_bettor" {
        let Some((chain_args, _)) = chain else {
            bail!(
                "kelly_bettor bets on prediction markets: run it with `defai run --devnet FILE`, or evaluate it offline with `defai predict-eval`"
            );
        };
        let json = args.json;
        let s = crate::chain::run_bettor(spec, chain_args).await?;
        if json {
            println!("{}", serde_json::to_string(&s)?);
        } else {
            println!(
                "kelly_bettor on chain {}: {} cycles, {} markets seen, {} bets, redeemed {} ({} units)",
                s.chain_id, s.cycles, s.markets_seen, s.bets, s.redeemed_collateral, s.redeemed
            );
            println!(
                "collateral {} → {}; refused {}; failures {}; kill switch {:?}",
                s.start_collateral,
                s.end_collateral,
                s.risk.refused,
                s.execution_failures,
                s.kill_switch.state
            );
        }
        return Ok(());
    }
    let out = match chain {
        Some((chain_args, _)) => crate::chain::run_chain(spec, chain_args).await?,
        None => {
            let mut series =
                engine::load_data(&spec.config, args.data.as_deref(), args.skip_bad_rows)?;
            if args.heldout {
                heldout_only(&mut series, &spec.config, &args.params)?;
            }
            engine::run_with_baselines(spec, &series, &args.baselines).await?
        }
    };
    if let (Some(dir), Some(rec)) = (&args.out, &out.recording) {
        output::write_outputs(dir, rec, out.summary.start_equity)
            .with_context(|| format!("writing outputs to {}", dir.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&out.summary)?);
    } else {
        print!("{}", output::summary_table(&out.summary));
        if let Some(dir) = &args.out {
            println!(
                "wrote {0}/trades.csv, {0}/equity.csv, {0}/equity.png",
                dir.display()
            );
        }
    }
    Ok(())
}

/// Keeps the model's held-out tail (and the warm-up bars before it).
fn heldout_only(
    series: &mut crate::connectors::Series,
    config: &Config,
    overrides: &[String],
) -> Result<()> {
    use crate::models::PriceDirection;
    let from_override = overrides
        .iter()
        .rev()
        .find_map(|kv| kv.strip_prefix("model=").map(str::to_string));
    let from_config = config
        .strategy
        .params
        .iter()
        .find(|(k, _)| k.get_ref() == "model")
        .and_then(|(_, v)| v.get_ref().as_str().map(str::to_string));
    let model = match from_override.or(from_config).as_deref() {
        None | Some("shipped") => PriceDirection::shipped()?,
        Some(dir) => PriceDirection::load(std::path::Path::new(dir))?,
    };
    let start = model.meta().split.heldout_start_ts;
    let Some(idx) = series.bars.iter().position(|b| b.ts >= start) else {
        bail!("the data ends before the model's held-out tail (starts at ts {start})");
    };
    let from = idx.saturating_sub(crate::models::WARMUP - 1);
    series.bars.drain(..from);
    series.report.source = format!("{} (held-out tail from ts {start})", series.report.source);
    Ok(())
}

/// `defai kill|resume`: through the control API of the agent using `state` when one answers,
/// else by writing the command into the folder (which a running agent's watcher picks up as
/// well; a stopped one applies it when it starts).
async fn control(state: &std::path::Path, action: SwitchAction, reason: &str) -> Result<()> {
    if reason.trim().is_empty() {
        bail!("--reason must say why");
    }
    let why_not = match control_via_api(state, action, reason).await {
        Ok(done) => {
            println!("{done}");
            return Ok(());
        }
        Err(why) => why,
    };
    let dir = StateDir::open(state)?;
    let cmd = dir.send_command(action, reason)?;
    let current = dir.load_switch()?.map(|r| r.state).unwrap_or_default();
    println!(
        "sent {:?} (command {}) through the state folder {} ({why_not}); switch was {:?}; a \
         running agent applies it within one cycle",
        cmd.action,
        cmd.id,
        state.display(),
        current
    );
    Ok(())
}

/// Sends the command through the API; `Err` says why the API path was not taken.
async fn control_via_api(
    state: &std::path::Path,
    action: SwitchAction,
    reason: &str,
) -> std::result::Result<String, String> {
    let client = match ApiClient::for_state_dir(state) {
        Ok(Some(c)) => c,
        Ok(None) => return Err("no control API published there".into()),
        Err(e) => return Err(e.to_string()),
    };
    let agent = match client.agent_for(state).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            return Err(format!(
                "the server at {} runs no agent on this folder",
                client.url()
            ));
        }
        Err(e) => return Err(e.to_string()),
    };
    let name = agent["name"].as_str().unwrap_or_default().to_string();
    let (path, mut body) = match action {
        SwitchAction::Kill(mode) => (
            "/kill",
            serde_json::json!({ "mode": serde_json::to_value(mode).map_err(|e| e.to_string())? }),
        ),
        SwitchAction::Resume => ("/resume", serde_json::json!({})),
    };
    body["agent"] = name.clone().into();
    body["reason"] = reason.into();
    let answer = client.post(path, &body).await.map_err(|e| e.to_string())?;
    let command = answer["agents"][0]["command"].as_u64().unwrap_or_default();
    Ok(format!(
        "sent {action:?} (command {command}) to agent `{name}` through its control API at {}; \
         switch was {}; the agent applies it within one cycle",
        client.url(),
        agent["kill_switch"]["state"].as_str().unwrap_or("unknown")
    ))
}

/// `defai status`: the running agent's status from its API, else what its folder latched.
async fn status(state: &std::path::Path, json: bool) -> Result<()> {
    let why_not = match ApiClient::for_state_dir(state) {
        Ok(None) => "no control API published there".to_string(),
        Err(e) => e.to_string(),
        Ok(Some(client)) => match client.agent_for(state).await {
            Ok(Some(agent)) => {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"source": "api", "running": true, "url": client.url(), "agent": agent})
                    );
                } else {
                    let k = &agent["kill_switch"];
                    let c = &agent["counters"];
                    println!(
                        "agent `{}` ({} {}, {}) through {}: kill switch {}{}",
                        agent["name"].as_str().unwrap_or_default(),
                        agent["mode"].as_str().unwrap_or_default(),
                        agent["strategy"].as_str().unwrap_or_default(),
                        agent["phase"].as_str().unwrap_or_default(),
                        client.url(),
                        k["state"].as_str().unwrap_or("unknown"),
                        k["reason"]
                            .as_str()
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default()
                    );
                    let equity = agent["equity"]
                        .as_f64()
                        .map(|e| format!("{e:.2}"))
                        .unwrap_or_else(|| "-".into());
                    let ret = agent["return_pct"]
                        .as_f64()
                        .map(|r| format!(" ({r:+.2} %)"))
                        .unwrap_or_default();
                    println!(
                        "  {} bars, equity {equity}{ret}; {} intents: {} approved, {} resized, {} refused; {} fills, {} execution failures",
                        agent["bars"],
                        c["intents"],
                        c["approved"],
                        c["resized"],
                        c["refused"],
                        c["fills"],
                        c["execution_failures"]
                    );
                }
                return Ok(());
            }
            Ok(None) => format!(
                "the server at {} runs no agent on this folder",
                client.url()
            ),
            Err(e) => e.to_string(),
        },
    };
    if !state.is_dir() {
        bail!("{}: no such state folder", state.display());
    }
    let record = StateDir::open(state)?.load_switch()?.unwrap_or_default();
    if json {
        println!(
            "{}",
            serde_json::json!({"source": "state_folder", "running": false, "state_dir": state,
                "api_error": why_not, "kill_switch": record})
        );
    } else {
        println!(
            "no control API answers for {} ({why_not}): the agent is not running (or runs with \
             --no-api)",
            state.display()
        );
        println!(
            "  latched kill switch: {:?}{}",
            record.state,
            record
                .reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

async fn bench(bars: usize, runs: usize, json: bool) -> Result<()> {
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

async fn devnet(
    port: u16,
    block_time: Option<f64>,
    out: &std::path::Path,
    price: Option<f64>,
    depth_usd: u64,
    replay: Option<PathBuf>,
    bar_seconds: f64,
) -> Result<()> {
    use crate::connectors::evm::{Devnet, DevnetConfig, MarketMover};
    if !(bar_seconds.is_finite() && bar_seconds >= 0.0) {
        bail!("--bar-seconds must be a non-negative number");
    }
    let bars = match &replay {
        Some(path) => crate::connectors::load_csv_file(path, Default::default())?.bars,
        None => Vec::new(),
    };
    let price = match (price, bars.first()) {
        (Some(p), _) => p,
        (None, Some(first)) => first.close,
        (None, None) => engine::load_data(&Config::default(), None, false)?
            .bars
            .last()
            .map(|b| b.close)
            .context("bundled data is empty")?,
    };
    let mut cfg = DevnetConfig::at_price(price);
    cfg.port = port;
    cfg.block_time = block_time;
    cfg.depth_usd = depth_usd;
    let devnet = Devnet::start(cfg).await?;
    devnet.info().write(out)?;
    eprintln!(
        "devnet ready: {} (chain id {}), WETH/dUSD pool {} at {price}; wrote {}; Ctrl-C (or SIGTERM, SIGHUP) stops it",
        devnet.rpc_url(),
        devnet.info().chain_id,
        devnet.info().weth_usd_pair,
        out.display()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let mut devnet = devnet;
    let replay = if bars.is_empty() {
        None
    } else {
        // Chain time advances by the data's own bar spacing per replayed bar.
        let spacing = bars
            .windows(2)
            .map(|w| w[1].ts - w[0].ts)
            .filter(|d| *d > 0)
            .min()
            .unwrap_or(3600) as u64;
        let mover = MarketMover::new(devnet.info(), devnet.deployer().clone(), spacing).await?;
        let closes: Vec<f64> = bars.iter().map(|b| b.close).collect();
        let flag = stop.clone();
        Some(tokio::spawn(async move {
            let done = mover
                .replay(
                    &closes,
                    std::time::Duration::from_secs_f64(bar_seconds),
                    &flag,
                )
                .await;
            if let Ok(n) = &done {
                eprintln!("replayed {n} bars");
            }
            done
        }))
    };
    // SIGINT, SIGTERM and SIGHUP stop anvil with us (dropping the devnet kills it); anvil
    // dying ends us with an error.
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
    let ended = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break "SIGINT",
            _ = term.recv() => break "SIGTERM",
            _ = hup.recv() => break "SIGHUP",
            _ = tick.tick() => {
                if let Some(status) = devnet.anvil_exited() {
                    stop.store(true, Ordering::Relaxed);
                    bail!("anvil exited ({status}): the devnet is gone");
                }
            }
        }
    };
    stop.store(true, Ordering::Relaxed);
    if let Some(task) = replay {
        match task.await {
            Ok(Err(e)) => eprintln!("market mover: {e}"),
            Err(e) => eprintln!("market mover: {e}"),
            Ok(Ok(_)) => {}
        }
    }
    eprintln!("{ended}: stopping anvil");
    drop(devnet);
    Ok(())
}

/// The on-chain benchmark runs on two worker threads: senders and the receipt polling overlap.
fn chain_bench(swaps: usize, concurrency: usize, json: bool) -> Result<()> {
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

fn train(
    data: Option<PathBuf>,
    out: &std::path::Path,
    seed: u64,
    horizon: usize,
    max_epochs: usize,
    json: bool,
) -> Result<()> {
    use crate::models::train::{TrainConfig, train_to_dir};
    let series = engine::load_data(&Config::default(), data.as_deref(), false)?;
    let cfg = TrainConfig {
        seed,
        horizon,
        max_epochs,
        ..TrainConfig::default()
    };
    let source = series.report.source.clone();
    let command = format!(
        "defai train{} --out {} --seed {seed} --horizon {horizon} --max-epochs {max_epochs}",
        data.as_ref()
            .map(|d| format!(" --data {}", d.display()))
            .unwrap_or_default(),
        out.display()
    );
    let pb = (!json && std::io::stderr().is_terminal()).then(|| {
        let pb = indicatif::ProgressBar::new(max_epochs as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} training [{bar:30}] epoch {pos}/{len} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb
    });
    let started = std::time::Instant::now();
    let (model, epochs) = train_to_dir(&series.bars, &source, &command, &cfg, out, &mut |e| {
        if let Some(pb) = &pb {
            pb.set_position(e.epoch as u64);
            pb.set_message(format!(
                "train {:.4} val {:.4}",
                e.train_loss, e.validation_loss
            ));
        }
    })?;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let secs = started.elapsed().as_secs_f64();
    let m = &model.meta().metrics;
    if json {
        println!(
            "{}",
            serde_json::json!({"out": out, "model_hash": model.hash(), "training_s": secs,
                "epochs": epochs.len(), "metrics": m, "split": model.meta().split})
        );
    } else {
        println!(
            "trained in {secs:.1} s ({} epochs, best {}), wrote {}",
            epochs.len(),
            m.best_epoch,
            out.display()
        );
        println!("model hash {}", model.hash());
        println!(
            "held-out: accuracy {:.4} (majority class {:.4}), log-loss {:.4} (base rate {:.4}), Brier {:.4}",
            m.heldout_accuracy,
            m.majority_baseline_accuracy,
            m.heldout_log_loss,
            m.base_rate_log_loss,
            m.heldout_brier
        );
    }
    Ok(())
}

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

async fn predict_eval(
    markets: usize,
    seed: u64,
    bankroll: f64,
    fraction: f64,
    json: bool,
) -> Result<()> {
    if markets == 0
        || bankroll.is_nan()
        || bankroll <= 0.0
        || !(0.0..=1.0).contains(&fraction)
        || fraction == 0.0
    {
        bail!("--markets and --bankroll must be positive, --fraction in (0, 1]");
    }
    let gen_cfg = crate::connectors::paper_fpmm::GenConfig {
        markets,
        ..Default::default()
    };
    let kelly = crate::strategies::KellyConfig {
        fraction,
        ..Default::default()
    };
    let (e, cycles_per_s) = crate::predict::evaluate(seed, &gen_cfg, &kelly, bankroll).await?;
    if json {
        let mut v = serde_json::to_value(&e)?;
        v["cycles_per_s"] = serde_json::json!(cycles_per_s);
        println!("{v}");
    } else {
        println!(
            "kelly_bettor on {} generated markets (seed {seed}), {} cycles",
            e.markets, e.cycles
        );
        println!(
            "  bets {}, bankroll {:.2} → {:.2} dUSD ({:+.2} %), redeemed {:.2}",
            e.bets, e.start_bankroll, e.end_bankroll, e.return_pct, e.redeemed
        );
        println!(
            "  Brier: forecasts {:.4}, market prices {:.4} (trust the market: never bets, +0.00 %)",
            e.brier_forecast, e.brier_market
        );
        println!("  {cycles_per_s:.0} cycles/s over {} markets", e.markets);
    }
    Ok(())
}

async fn rebalance(targets: &str, band: f64, seed: u64, json: bool) -> Result<()> {
    let t: Vec<f64> = targets
        .split(',')
        .map(|v| v.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--targets {targets:?}: expected three numbers"))?;
    let [w, d, u] = t[..] else {
        bail!(
            "--targets needs three weights (WETH,DVT,dUSD), got {}",
            t.len()
        );
    };
    if t.iter().any(|x| !x.is_finite() || *x < 0.0) || ((w + d + u) - 1.0).abs() > 1e-9 {
        bail!("--targets must be non-negative and sum to 1");
    }
    if !(band.is_finite() && band > 0.0 && band < 1.0) {
        bail!("--band must be in (0, 1)");
    }
    let series = engine::load_data(&Config::default(), None, false)?;
    let cfg = crate::strategies::rebalancer::RebalanceConfig {
        band,
        ..Default::default()
    };
    let r = crate::rebalance::backtest(&series.bars, seed, [w, d, u], &cfg, 10_000.0)
        .await
        .map_err(anyhow::Error::msg)?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "rebalancer {targets} (band {band}), {} hourly bars; {}",
            r.bars, r.second_series
        );
        println!(
            "  equity {:.2} → {:.2} ({:+.2} %), never rebalanced {:+.2} %",
            r.start_equity, r.end_equity, r.return_pct, r.hold_return_pct
        );
        println!(
            "  {} rebalances, {} trades, turnover {:.1}×, fees {:.2}, gas {:.2}",
            r.rebalances, r.trades, r.turnover, r.fees_paid, r.gas_paid
        );
        println!(
            "  tracking error: mean {:.2} %, max {:.2} %",
            r.tracking_error_pct, r.max_tracking_error_pct
        );
    }
    Ok(())
}

/// Several agents in one process, each from its own config, run concurrently; one nonce
/// manager per wallet across all of them. One control API serves them all; its `POST /kill`
/// without an agent halts every one.
async fn run_fleet(
    configs: Vec<PathBuf>,
    args: ChainArgs,
    max_cycles: Option<u64>,
    params: Vec<String>,
    api: &ApiFlags,
) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut set = tokio::task::JoinSet::new();
    let mut names = std::collections::BTreeSet::new();
    let mut specs = Vec::new();
    for (i, path) in configs.into_iter().enumerate() {
        let config = Config::load(&path)?;
        let state = default_state_dir(&config, Mode::Live);
        if !names.insert(state.clone()) {
            bail!(
                "{}: two agents named `{}` would share the state folder {}; give one an [agent] name",
                path.display(),
                config.agent_name(),
                state.display()
            );
        }
        let spec = RunSpec {
            mode: Mode::Live,
            config,
            params: params.clone(),
            speed: None,
            progress: false,
            record: false,
            stop: stop.clone(),
            state: Some(state),
            max_cycles,
            fresh_state: false,
            reset_switch: false,
            strategy: None,
            observers: Vec::new(),
            journal: None,
            rebalance_model: None,
        };
        specs.push((i, path, spec));
    }
    let agents: Vec<ApiAgent> = specs
        .iter()
        .map(|(_, _, spec)| ApiAgent {
            name: spec.config.agent_name(),
            state: spec.state.clone().unwrap_or_default(),
            mode: spec.mode,
            strategy: spec.config.strategy.name.clone(),
        })
        .collect();
    // Held until every agent is done: dropping it stops the server.
    let api = start_api(api, &agents)?;
    let mut handles = api.as_ref().map(|(h, _)| h.clone()).unwrap_or_default();
    handles.reverse();
    for (i, path, mut spec) in specs {
        let board = handles.pop();
        spec.observers.extend(board.iter().map(|b| b.observer()));
        let args = ChainArgs {
            devnet: args.devnet.clone(),
            keystore: args.keystore.clone(),
            allow_mainnet: args.allow_mainnet,
            nonces: args.nonces.clone(),
        };
        set.spawn(async move {
            let result = run_one(spec, args).await;
            if let Some(b) = &board {
                b.finish(result.as_ref().map(|_| ()).map_err(|e| format!("{e:#}")));
            }
            anyhow::Ok((i, path, result?))
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = set.join_next().await {
        let (i, path, value) = joined.map_err(|e| anyhow::anyhow!("agent task: {e}"))??;
        results.push((i, serde_json::json!({"config": path, "summary": value})));
    }
    results.sort_by_key(|r| r.0);
    let agents: Vec<serde_json::Value> = results.into_iter().map(|r| r.1).collect();
    println!("{}", serde_json::json!({ "agents": agents }));
    Ok(())
}

/// One agent of a fleet, to its summary.
async fn run_one(spec: RunSpec, args: ChainArgs) -> Result<serde_json::Value> {
    let name = spec.config.strategy.name.clone();
    match name.as_str() {
        "kelly_bettor" => serde_json::to_value(crate::chain::run_bettor(spec, args).await?),
        "rebalancer" => serde_json::to_value(crate::chain::run_rebalancer(spec, args).await?),
        _ => serde_json::to_value(crate::chain::run_chain(spec, args).await?.summary),
    }
    .map_err(|e| anyhow::anyhow!("summary: {e}"))
}

fn audit(what: AuditCmd) -> Result<()> {
    use crate::connectors::journal::Journal;
    let open = |state: &std::path::Path| -> Result<Journal> {
        let path = state.join("journal.sqlite");
        if !path.is_file() {
            bail!(
                "{}: no journal (run an agent with --state {})",
                path.display(),
                state.display()
            );
        }
        Ok(Journal::open(&path)?)
    };
    match what {
        AuditCmd::Verify { state } => {
            let j = open(&state)?;
            let v = j.verify()?;
            println!(
                "{}: {} records, chain intact, head {}",
                j.path().display(),
                v.records,
                v.head
            );
        }
        AuditCmd::Show { state, tx } => {
            let j = open(&state)?;
            let records = j.explain_tx(&tx)?;
            if records.is_empty() {
                bail!("no journal record mentions transaction {tx}");
            }
            for r in records {
                println!(
                    "#{} ts {} {} {} {}",
                    r.seq,
                    r.ts,
                    r.kind,
                    r.intent_id.unwrap_or_default(),
                    r.body
                );
            }
        }
    }
    Ok(())
}
