//! `defai backtest`, `defai paper` and `defai run`: one agent from a config (and the flags that
//! override it), built with the library's [`AgentBuilder`]; `run --also` hands over to
//! [`super::fleet`].

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::AgentBuilder;
use crate::chain::ChainArgs;
use crate::config::{Config, VenueKind};
use crate::control::{AgentHandle, ApiServer};
use crate::engine::{self, Mode, RunSpec};
use crate::output;
use crate::runtime::{ApiAgent, ApiOptions, serve_api};
use anyhow::{Context as _, Result, bail};
use clap::Args;

// The flags of every command that runs an agent (`backtest`, `paper`, `run`).
#[derive(Args)]
pub(super) struct RunArgs {
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
    /// What the state folder's journal keeps: `compact` (a replay's default: the run's input
    /// and config, intents, verdicts and fills, a swap intent filled at its bar as one `trade` record;
    /// no record per bar, repeated refusals counted)
    /// or `full` (every event, a market record per bar; chain runs always keep this).
    #[arg(long, value_name = "compact|full")]
    journal: Option<crate::connectors::journal::Detail>,
    /// When a replay's order fills (overrides `[venue] fill`): `close` (the decision bar's
    /// close) or `next_open` (the next bar's open).
    #[arg(long, value_name = "close|next_open", value_parser = parse_fill)]
    fill: Option<crate::config::FillModel>,
    /// Draw equity.png's equity panel on a log scale (with --out).
    #[arg(long)]
    log_scale: bool,
}

/// Parses `--fill`.
fn parse_fill(s: &str) -> Result<crate::config::FillModel, String> {
    match s {
        "close" => Ok(crate::config::FillModel::Close),
        "next_open" => Ok(crate::config::FillModel::NextOpen),
        other => Err(format!("`{other}` is not close or next_open")),
    }
}

/// The control API and dashboard (`paper`, `run`).
#[derive(Args, Clone)]
pub(super) struct ApiFlags {
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

// The chain of `paper` and `run`.
#[derive(Args)]
pub(super) struct ChainFlags {
    /// Take the chain and contracts from a `devnet.json` written by `defai devnet`.
    #[arg(long)]
    devnet: Option<PathBuf>,
    /// Stop after N market events (blocks).
    #[arg(long)]
    max_cycles: Option<u64>,
}

/// `--speed`: `max` (as fast as it runs) or a multiple of real time.
#[derive(Clone, Copy)]
pub(super) enum Speed {
    Max,
    Times(f64),
}

/// Parses `--speed`.
pub(super) fn parse_speed(s: &str) -> Result<Speed, String> {
    if s.eq_ignore_ascii_case("max") {
        return Ok(Speed::Max);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(Speed::Times(v)),
        _ => Err(format!("`{s}` is not a positive number or `max`")),
    }
}

/// The chain a run trades on and its `--max-cycles`; `None`: a replay of market data.
type OnChain = Option<(ChainArgs, Option<u64>)>;

/// The control API's server and its agents' board handles, while it serves.
type Api = Option<(Vec<AgentHandle>, ApiServer)>;

/// `defai paper`: a replay of market data, or (`--devnet`, a `uniswap_v2` venue) the chain's
/// pool read every block.
pub(super) async fn paper(
    run: RunArgs,
    speed: Speed,
    chain: ChainFlags,
    api: &ApiFlags,
) -> Result<()> {
    let speed = match speed {
        Speed::Max => None,
        Speed::Times(v) => Some(v),
    };
    let chain_mode = chain.devnet.is_some() || run_config(&run)?.venue.kind == VenueKind::UniswapV2;
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
            Some(api),
        )
        .await
    } else {
        run_agent(Mode::Paper, run, speed, None, Some(api)).await
    }
}

/// `defai backtest`.
pub(super) async fn backtest(run: RunArgs) -> Result<()> {
    run_agent(Mode::Backtest, run, None, None, None).await
}

/// `defai run`: one agent live on a chain, or with `--also` a fleet of them.
pub(super) async fn live(
    run: RunArgs,
    chain: ChainFlags,
    keystore: Option<PathBuf>,
    allow_mainnet: bool,
    also: Vec<PathBuf>,
    api: &ApiFlags,
) -> Result<()> {
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
            Some(api),
        )
        .await
    } else {
        let mut configs: Vec<PathBuf> = run.config.iter().cloned().collect();
        configs.extend(also);
        super::fleet::run_fleet(configs, args, chain.max_cycles, run.params, api).await
    }
}

/// `$DEFAI_STATE_ROOT/<agent>-<mode>`, root default `./state`: one folder per agent and mode,
/// so a paper run never shares a journal or a kill switch with the live agent.
pub(super) fn default_state_dir(config: &Config, mode: Mode) -> PathBuf {
    let root = std::env::var_os("DEFAI_STATE_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("state"));
    root.join(format!("{}-{}", config.agent_name(), mode.name()))
}

/// Starts the control API and dashboard for `agents` (one server for all of them), unless
/// `--no-api` ([`serve_api`]).
pub(super) fn start_api(flags: &ApiFlags, agents: &[ApiAgent]) -> Result<Api> {
    if flags.no_api {
        return Ok(None);
    }
    let options = ApiOptions {
        addr: flags.api,
        public: flags.api_public,
    };
    Ok(Some(serve_api(&options, agents)?))
}

/// The `--config` file, or the defaults.
fn run_config(args: &RunArgs) -> Result<Config> {
    Ok(match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    })
}

/// One agent, run to its end; prints its summary.
async fn run_agent(
    mode: Mode,
    args: RunArgs,
    speed: Option<f64>,
    chain: OnChain,
    api: Option<&ApiFlags>,
) -> Result<()> {
    let config = agent_config(&args)?;
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
    let mut agent = AgentBuilder::new(config).stop_flag(stop).state_dir(state);
    if let Some(board) = &board {
        agent = agent.observer(board.observer());
    }
    let spec = agent_spec(agent, mode, &args, speed, chain.as_ref());
    if spec.config.strategy.name == "rebalancer" {
        return rebalancer(spec, chain).await;
    }
    if spec.config.strategy.name == "kelly_bettor" {
        return bettor(spec, chain, args.json).await;
    }
    bars(spec, chain, &args).await
}

/// The config with `--strategy` and `--fill` applied.
fn agent_config(args: &RunArgs) -> Result<Config> {
    let mut config = with_strategy(run_config(args)?, args.strategy.as_deref());
    if let Some(fill) = args.fill {
        config.venue.fill = fill;
    }
    Ok(config)
}

/// `config` with `--strategy` applied: another name drops the file's strategy parameters.
pub(super) fn with_strategy(mut config: Config, strategy: Option<&str>) -> Config {
    if let Some(name) = strategy
        && name != config.strategy.name
    {
        // The file's parameters belong to the strategy it names, not to this one.
        config.strategy.name = name.to_string();
        config.strategy.params.clear();
    }
    config
}

/// The run's spec: `agent` (config, stop flag, state folder, board) with the run's flags, for
/// `mode`. The state folder's journal starts afresh on a replay; a chain run resumes from it.
fn agent_spec(
    mut agent: AgentBuilder,
    mode: Mode,
    args: &RunArgs,
    speed: Option<f64>,
    chain: Option<&(ChainArgs, Option<u64>)>,
) -> RunSpec {
    agent = agent
        .params(args.params.clone())
        .progress(!args.json && std::io::stderr().is_terminal());
    if let Some(speed) = speed {
        agent = agent.speed(speed);
    }
    if args.out.is_some() {
        agent = agent.record();
    }
    if let Some(cycles) = chain.and_then(|c| c.1) {
        agent = agent.max_cycles(cycles);
    }
    if let Some(detail) = args.journal {
        agent = agent.journal_detail(detail);
    }
    // The builder's own finishers (`backtest`, `paper`, `live` …) fix these three themselves,
    // but not as the commands do: a paper replay in the default folder starts its switch
    // afresh, `--baseline` runs beside the agent, `paper --devnet` runs the bettor and the
    // rebalancer in paper mode, and the API serves (and the folder exists) before the data
    // loads. So the commands take the spec and drive the engine themselves.
    let mut spec = agent.into_spec();
    spec.mode = mode;
    spec.fresh_state = chain.is_none();
    // A backtest is a pure function of its inputs; a paper replay in a folder the user named
    // keeps its kill switch latched across runs, like a live agent.
    spec.reset_switch = chain.is_none() && (mode == Mode::Backtest || args.state.is_none());
    spec
}

/// The rebalancer, on a chain only; prints its summary as JSON.
async fn rebalancer(spec: RunSpec, chain: OnChain) -> Result<()> {
    let Some((chain_args, _)) = chain else {
        bail!(
            "the live rebalancer runs with `defai run --devnet FILE`; backtest it with `defai rebalance`"
        );
    };
    let s = crate::chain::run_rebalancer(spec, chain_args).await?;
    println!("{}", serde_json::to_string(&s)?);
    Ok(())
}

/// `kelly_bettor`, on a chain only; prints its summary (`json`: as one JSON object).
async fn bettor(spec: RunSpec, chain: OnChain, json: bool) -> Result<()> {
    let Some((chain_args, _)) = chain else {
        bail!(
            "kelly_bettor bets on prediction markets: run it with `defai run --devnet FILE`, or evaluate it offline with `defai predict-eval`"
        );
    };
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
    Ok(())
}

/// A bar strategy, on a chain or over replayed data (with `--heldout`, `--baseline`); writes
/// `--out` and prints the summary.
async fn bars(spec: RunSpec, chain: OnChain, args: &RunArgs) -> Result<()> {
    let out = match chain {
        Some((chain_args, _)) => crate::chain::run_chain(spec, chain_args).await?,
        None => {
            let mut series =
                engine::load_data(&spec.config, args.data.as_deref(), args.skip_bad_rows)?;
            if args.heldout {
                heldout_only(&mut series, &spec.config, &args.params)?;
            }
            engine::run_with_baselines(spec, series, &args.baselines).await?
        }
    };
    if let (Some(dir), Some(rec)) = (&args.out, &out.recording) {
        let options = output::PlotOptions {
            log_scale: args.log_scale,
        };
        output::write_outputs(dir, rec, out.summary.start_equity, options)
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
