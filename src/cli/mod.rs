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

// One module per command: `run` (backtest, paper, run), `fleet` (run --also), `control` (kill,
// resume, status), `audit`, `bench`, `devnet`, `train` (train, predict-eval), `rebalance` and
// `sweep`.
// This one parses the command line and hands each command to its module.

mod audit;
mod bench;
mod control;
mod devnet;
mod fleet;
mod rebalance;
mod run;
mod sweep;
mod train;

use std::path::PathBuf;

use crate::core::{KillMode, SwitchAction};
use anyhow::Result;
use clap::{Parser, Subcommand};

use audit::AuditCmd;
use bench::BenchArgs;
use run::{ApiFlags, ChainFlags, RunArgs, Speed, parse_speed};

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
        /// Tilt the targets by this candle model: `shipped` or a folder `defai train` wrote.
        #[arg(long, value_name = "MODEL")]
        model: Option<String>,
        /// The tilt's strength: each target moves by tilt × (2p − 1), p = P(the asset rises).
        #[arg(long, default_value_t = 0.1, requires = "model")]
        tilt: f64,
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
    /// Sweep a strategy's parameters over a grid on all cores, optionally walk-forward
    /// (in-sample selection, out-of-sample measurement, deflated Sharpe ratio).
    Sweep {
        #[command(flatten)]
        args: sweep::SweepArgs,
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
    /// Check, export or explain the journal of a state folder.
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
        #[command(flatten)]
        args: BenchArgs,
    },
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
    // The on-chain benchmark builds a runtime of its own (two worker threads), outside this one.
    if let Command::Bench { args } = &cli.command
        && args.chain
    {
        return bench::chain_bench(args);
    }
    rt.block_on(dispatch(cli.command))
}

/// Runs `command` through its module.
async fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Paper {
            run,
            speed,
            chain,
            api,
        } => run::paper(run, speed, chain, &api).await,
        Command::Backtest { run } => run::backtest(run).await,
        Command::Sweep { args } => sweep::sweep(args).await,
        Command::Run {
            run,
            chain,
            keystore,
            allow_mainnet,
            also,
            api,
        } => run::live(run, chain, keystore, allow_mainnet, also, &api).await,
        Command::PredictEval {
            markets,
            seed,
            bankroll,
            fraction,
            json,
        } => train::predict_eval(markets, seed, bankroll, fraction, json).await,
        Command::Rebalance {
            targets,
            band,
            seed,
            model,
            tilt,
            json,
        } => {
            let model = model.map(|m| (m, tilt));
            rebalance::rebalance(&targets, band, seed, model, json).await
        }
        Command::Train {
            data,
            out,
            seed,
            horizon,
            max_epochs,
            json,
        } => train::train(data, &out, seed, horizon, max_epochs, json),
        Command::Devnet {
            port,
            block_time,
            out,
            price,
            depth_usd,
            replay,
            bar_seconds,
        } => {
            devnet::devnet(
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
        Command::Bench { args } => bench::bench(args).await,
        Command::Kill {
            state,
            mode,
            reason,
        } => control::control(&state, SwitchAction::Kill(mode), &reason).await,
        Command::Resume { state, reason } => {
            control::control(&state, SwitchAction::Resume, &reason).await
        }
        Command::Status { state, json } => control::status(&state, json).await,
        Command::Audit { what } => audit::audit(what),
    }
}
