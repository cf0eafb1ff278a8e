//! Wires concrete pieces into an [`Agent`]: data, strategy, gate, paper venue, clock, observers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use agent_core::agent::AuditError;
use agent_core::{
    Agent, AgentError, AgentReport, AuditEvent, Bar, BarReplay, Clock, JournalBackend, KillSwitch,
    LimitGate, MarketEvent, MarketSource, Observer, Pair, Portfolio, SourceError, Strategy,
    SwitchRecord, SwitchState, U256, Venue,
};
use connectors::journal::Detail;
use connectors::{
    DataError, InputIdentity, LoadOptions, LoadReport, PaperVenue, Series, StateDir, StateError,
};
use serde::Serialize;

use crate::config::{Config, ConfigError};

/// The bundled ETH/USDC hourly candles (CryptoDataDownload, Binance spot), gzip-compressed
/// (feature `embedded-data`).
#[cfg(feature = "embedded-data")]
pub const EMBEDDED_DATA: &[u8] = include_bytes!("../data/Binance_ETHUSDC_1h.csv.gz");
/// How the bundled data is named in reports and messages.
pub const EMBEDDED_NAME: &str = "embedded:Binance_ETHUSDC_1h.csv";

/// How an agent runs: the same strategy, gate and journal in every mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Replaying bars on the simulated pool with the simulated clock (`defai backtest`).
    Backtest,
    /// Filling on the simulated pool: over a replayed file (optionally paced), or over a chain's
    /// pool read every block (`defai paper`); never signs anything.
    Paper,
    /// Signing and sending transactions on a chain (`defai run`).
    Live,
}

impl Mode {
    /// `backtest`, `paper` or `live`: the name in summaries, state folders and the API.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Backtest => "backtest",
            Mode::Paper => "paper",
            Mode::Live => "live",
        }
    }
}

/// Why a run could not start or stopped with an error; each variant names what failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A config value that is missing, malformed or cannot be converted (file, line, key).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The market data file (unreadable, a bad row named by line and field, no rows).
    #[error(transparent)]
    Data(#[from] DataError),
    /// The strategy's name or parameters.
    #[error(transparent)]
    Strategy(#[from] strategies::BuildError),
    /// The agent loop stopped: the journal could not write, the venue lost track, a setup error.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The state folder: held by another agent, unreadable or unwritable.
    #[error(transparent)]
    State(#[from] StateError),
    /// The chain: unreachable, a refused chain id, a contract unlike the config, the wallet.
    #[error(transparent)]
    Chain(#[from] connectors::evm::EvmError),
    /// The journal could not be opened or read back for a restart.
    #[error(transparent)]
    Journal(#[from] connectors::journal::JournalError),
    /// A limit that cannot be honoured (it names the key).
    #[error("{0}")]
    Limit(String),
    /// The agent cannot be built as configured (e.g. a pair listed twice).
    #[error("{0}")]
    Setup(String),
}

/// Loads the configured data: `override_path`, else `market.data`, else the bundled series.
///
/// # Errors
/// The file cannot be read, a row is malformed (named by line and field, unless
/// `skip_bad_rows`), there are no rows, or neither a file nor the bundled data (feature
/// `embedded-data`) is there.
pub fn load_data(
    cfg: &Config,
    override_path: Option<&std::path::Path>,
    skip_bad_rows: bool,
) -> Result<Series, DataError> {
    let opts = LoadOptions {
        skip_bad_rows: skip_bad_rows || cfg.market.skip_bad_rows,
    };
    match override_path
        .map(|p| p.to_path_buf())
        .or_else(|| cfg.data_path())
    {
        Some(path) => connectors::load_csv_file(&path, opts),
        #[cfg(feature = "embedded-data")]
        None => connectors::load_csv_bytes(EMBEDDED_NAME, EMBEDDED_DATA, opts),
        #[cfg(not(feature = "embedded-data"))]
        None => Err(DataError::Io {
            source_name: EMBEDDED_NAME.into(),
            error: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no `market.data` in the config, and this build has no bundled data (enable the \
                 `embedded-data` feature, or name a CSV file)",
            ),
        }),
    }
}

/// One row of `trades.csv`.
#[derive(Debug, Clone, Serialize)]
pub struct TradeRow {
    /// The intent's id (`strategy:sequence`).
    pub id: String,
    /// When it filled (unix seconds; bar time in a replay, block time on a chain).
    pub ts: i64,
    /// `buy` (quote into base) or `sell` (base into quote).
    pub side: &'static str,
    /// The token sold (symbol).
    pub sell: String,
    /// The token bought (symbol).
    pub buy: String,
    /// What was sold, a decimal string in the sold token's units.
    pub amount_in: String,
    /// What was bought, a decimal string in the bought token's units.
    pub amount_out: String,
    /// The fill's price, quote per whole base token (for reports only).
    pub price: f64,
    /// The LP fee, a decimal string in quote token units.
    pub fee_quote: String,
    /// The gas, valued in quote token units (decimal string).
    pub gas_quote: String,
    /// The gas in the native token's smallest unit (wei), exact.
    pub gas_native_wei: String,
}

/// What `--out` writes: every fill and the equity at every bar.
#[derive(Debug, Default)]
pub struct Recording {
    /// Every fill, in order.
    pub trades: Vec<TradeRow>,
    /// (ts, price, equity)
    pub marks: Vec<(i64, f64, f64)>,
    /// Other strategies run over the same bars for comparison: name, (ts, equity).
    pub baselines: Vec<(String, Vec<(i64, f64)>)>,
}

struct Recorder {
    pair: Pair,
    rec: Arc<Mutex<Recording>>,
}

impl Observer for Recorder {
    fn on_audit(&mut self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
        let Ok(mut rec) = self.rec.lock() else {
            return Ok(());
        };
        match event {
            AuditEvent::Mark { ts, price, equity } => rec.marks.push((*ts, *price, *equity)),
            AuditEvent::Fill(f) => {
                let buy_base = f.buy == self.pair.base;
                let (base_amt, quote_amt) = if buy_base {
                    (f.amount_out, f.amount_in)
                } else {
                    (f.amount_in, f.amount_out)
                };
                let base = self.pair.base.to_f64(base_amt);
                rec.trades.push(TradeRow {
                    id: f.id.to_string(),
                    ts: f.ts,
                    side: if buy_base { "buy" } else { "sell" },
                    sell: f.sell.symbol().to_string(),
                    buy: f.buy.symbol().to_string(),
                    amount_in: f.sell.format(f.amount_in),
                    amount_out: f.buy.format(f.amount_out),
                    price: if base > 0.0 {
                        self.pair.quote.to_f64(quote_amt) / base
                    } else {
                        0.0
                    },
                    fee_quote: self.pair.quote.format(f.fee_quote),
                    gas_quote: self.pair.quote.format(f.gas_quote),
                    gas_native_wei: f.gas_native.to_string(),
                });
            }
            _ => {}
        }
        Ok(())
    }
}

/// Ticks a progress bar every few thousand bars (cheap enough for the backtest loop).
#[cfg(feature = "cli")]
struct Progress(indicatif::ProgressBar, u64);

#[cfg(feature = "cli")]
impl Observer for Progress {
    fn on_audit(&mut self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
        if let AuditEvent::Mark { .. } = event {
            self.1 += 1;
            if self.1.is_multiple_of(4096) {
                self.0.inc(4096);
            }
        }
        Ok(())
    }
}

/// Ends the replay early when `stop` is set (Ctrl-C), so the run still reports what it did.
/// `remaining` caps the events (`--max-cycles`).
struct StoppableSource<S> {
    inner: S,
    stop: Arc<AtomicBool>,
    cycles_left: Option<u64>,
}

impl<S: MarketSource> MarketSource for StoppableSource<S> {
    async fn next_event(&mut self) -> Result<Option<MarketEvent>, SourceError> {
        if self.stop.load(Ordering::Relaxed) || self.cycles_left == Some(0) {
            return Ok(None);
        }
        if let Some(n) = &mut self.cycles_left {
            *n -= 1;
        }
        self.inner.next_event().await
    }
    fn remaining(&self) -> Option<usize> {
        self.inner.remaining()
    }
}

/// How to run one agent: the mode, the config and everything besides it. Build one with
/// [`RunSpec::backtest`] or through [`AgentBuilder`](crate::runtime::AgentBuilder).
pub struct RunSpec {
    /// Backtest, paper or live.
    pub mode: Mode,
    /// The agent's config (market, strategy, risk, kill switch, venue, chain).
    pub config: Config,
    /// `key=value` overrides of `[strategy] params` (`--param`).
    pub params: Vec<String>,
    /// Replay speed (× real time); `None` = as fast as possible.
    pub speed: Option<f64>,
    /// Show a progress bar on stderr (feature `cli`; ignored without it).
    pub progress: bool,
    /// Keep every fill and the equity at every bar in [`RunOutput::recording`].
    pub record: bool,
    /// Set it (e.g. on Ctrl-C) to end the run after the current event, with its report.
    pub stop: Arc<AtomicBool>,
    /// State folder: the kill switch is latched there and operator commands are read from it.
    /// `None`: nothing persists (the switch starts active every run).
    pub state: Option<std::path::PathBuf>,
    /// Stop after this many market events (`--max-cycles`).
    pub max_cycles: Option<u64>,
    /// A replay (backtest, paper on a file): the state folder's journal starts afresh each run,
    /// since the run itself is reproducible. Chain runs keep and resume it.
    pub fresh_state: bool,
    /// Also start the latched kill switch afresh (backtests, and replays in a default folder);
    /// a replay in a folder the user named keeps its switch latched across runs.
    pub reset_switch: bool,
    /// The strategy object to run. `None`: the one `config.strategy` names, built by the
    /// installed registry ([`strategies::build`]) with `params` as overrides.
    pub strategy: Option<Box<dyn Strategy>>,
    /// Observers of the audit stream besides the state folder's journal (which comes first):
    /// e.g. the operator board's (`control::AgentHandle::observer`).
    pub observers: Vec<Box<dyn Observer>>,
    /// The journal to write to instead of the state folder's SQLite one (e.g. a shared
    /// database); it is written before every other observer, and a restart resumes from it.
    pub journal: Option<Box<dyn JournalBackend>>,
    /// The model that tilts the built-in rebalancer's targets
    /// ([`Rebalancer::with_model`](strategies::Rebalancer::with_model)) in a live rebalancing
    /// run; its strength is the `tilt` parameter (default 0.1). A `model` parameter beside it, or
    /// a [`RunSpec::strategy`] that replaces the built-in rebalancer, is refused.
    pub rebalance_model: Option<Box<dyn models::ProbabilityModel>>,
    /// How much the state folder's journal keeps. `None`: [`Detail::Compact`] for a replay,
    /// [`Detail::Full`] for a chain run; a compact journal for a chain run is refused (its
    /// restart resumes from every record).
    pub journal_detail: Option<Detail>,
}

/// What the risk gate decided.
#[derive(Debug, Clone, Serialize)]
pub struct RiskSummary {
    /// Intents the gate passed as proposed.
    pub approved: u64,
    /// Intents it cut down (then sent).
    pub resized: u64,
    /// Intents it refused (never sent).
    pub refused: u64,
    /// Refusals by reason code (e.g. `max_position`, `kill_switch`, `stale_data`).
    pub refused_by_reason: std::collections::BTreeMap<String, u64>,
    /// Why intents were cut down (e.g. `price_impact`, `max_trade_notional`).
    pub resized_by_reason: std::collections::BTreeMap<String, u64>,
    /// Exposure-reducing intents (a flatten's included) cut to the price-impact limit's slice;
    /// the rest was sold in later cycles.
    pub partial_unwinds: u64,
}

impl From<&agent_core::RiskCounts> for RiskSummary {
    fn from(r: &agent_core::RiskCounts) -> Self {
        let named = |m: &std::collections::BTreeMap<&'static str, u64>| {
            m.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        Self {
            approved: r.approved,
            resized: r.resized,
            refused: r.refused,
            refused_by_reason: named(&r.refused_by_reason),
            resized_by_reason: named(&r.resized_by_reason),
            partial_unwinds: r.partial_unwinds,
        }
    }
}

/// The kill switch at the end of the run.
#[derive(Debug, Clone, Serialize)]
pub struct KillSwitchSummary {
    /// Active, Reducing (flattening) or Halted.
    pub state: SwitchState,
    /// When it tripped (unix seconds, agent time); `None` while it never did.
    pub tripped_at: Option<i64>,
    /// Why (the limit or the operator's reason).
    pub reason: Option<String>,
}

impl From<&SwitchRecord> for KillSwitchSummary {
    fn from(r: &SwitchRecord) -> Self {
        Self {
            state: r.state,
            tripped_at: r.tripped_at,
            reason: r.reason.clone(),
        }
    }
}

impl std::fmt::Debug for RunSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunSpec")
            .field("mode", &self.mode)
            .field("agent", &self.config.agent_name())
            .field("params", &self.params)
            .field("state", &self.state)
            .field("max_cycles", &self.max_cycles)
            .field("fresh_state", &self.fresh_state)
            .field("strategy", &self.strategy.as_ref().map(|s| s.name()))
            .field("observers", &self.observers.len())
            .field("own_journal", &self.journal.is_some())
            .field("journal_detail", &self.journal_detail)
            .field(
                "rebalance_model",
                &self.rebalance_model.as_ref().map(|m| m.model_id()),
            )
            .finish_non_exhaustive()
    }
}

impl RunSpec {
    /// A backtest of `config`: simulated clock, no progress bar, no recording, nothing persisted.
    pub fn backtest(config: Config) -> Self {
        Self {
            mode: Mode::Backtest,
            config,
            params: Vec::new(),
            speed: None,
            progress: false,
            record: false,
            stop: Arc::new(AtomicBool::new(false)),
            state: None,
            max_cycles: None,
            fresh_state: true,
            reset_switch: true,
            strategy: None,
            observers: Vec::new(),
            journal: None,
            rebalance_model: None,
            journal_detail: None,
        }
    }
}

/// The JSON summary; field names are stable.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// How it ran.
    pub mode: Mode,
    /// The strategy's name.
    pub strategy: String,
    /// Where the market data came from (file, `embedded:…`, or the chain and pool).
    pub data: String,
    /// The agent's pair, `BASE/QUOTE`.
    pub pair: String,
    /// Market events seen (bars in a replay, cycles on a chain).
    pub bars: u64,
    /// Rows of the data file skipped as malformed (`--skip-bad-rows`).
    pub skipped_rows: usize,
    /// Gaps in the data's time series.
    pub gaps: usize,
    /// Bars missing in those gaps, at the data's spacing.
    pub missing_bars: u64,
    /// Rows with a timestamp seen before (dropped).
    pub duplicates: usize,
    /// Market events the agent refused as malformed (non-finite or inconsistent prices).
    pub bad_events: u64,
    /// Fills.
    pub trades: u64,
    /// Intents the strategy proposed.
    pub intents: u64,
    /// Intents the gate refused.
    pub refused: u64,
    /// Approved intents the venue failed to execute.
    pub execution_failures: u64,
    /// Events on which the strategy returned an error (no intent was taken from it).
    pub strategy_faults: u64,
    /// Balance corrections from the venue's record after the start (chain modes; 0 = exact).
    pub reconciliations: u64,
    /// Equity at the first event, whole quote tokens.
    pub start_equity: f64,
    /// Equity at the last event, whole quote tokens.
    pub end_equity: f64,
    /// End against start equity, percent, net of fees and gas.
    pub return_pct: f64,
    /// Holding the base token from the first close to the last, percent.
    pub buy_hold_return_pct: f64,
    /// The largest fall of equity from a peak, percent.
    pub max_drawdown_pct: f64,
    /// Annualised Sharpe ratio of the per-event equity returns (zero risk-free rate).
    pub sharpe: f64,
    /// LP fees paid, whole quote tokens.
    pub fees_paid: f64,
    /// Gas paid, valued in whole quote tokens.
    pub gas_paid: f64,
    /// Gas paid in whole native tokens (ETH).
    pub gas_paid_native: f64,
    /// What the risk gate decided.
    pub risk: RiskSummary,
    /// The kill switch at the end.
    pub kill_switch: KillSwitchSummary,
    /// Exact final balances as decimal strings, by token symbol.
    pub balances: std::collections::BTreeMap<String, String>,
    /// Wall time of the agent loop, seconds.
    pub elapsed_s: f64,
    /// `bars / elapsed_s`.
    pub bars_per_s: f64,
    /// The chain traded on or read from (chain modes).
    pub chain_id: Option<u64>,
    /// Every transaction the run got mined (approvals and swaps), in order.
    pub tx_hashes: Vec<String>,
    /// Gas paid in the native token's smallest unit (wei), exact.
    pub gas_paid_wei: String,
    /// Other strategies over the same bars (`--baseline`), net of fees and gas.
    pub baselines: std::collections::BTreeMap<String, BaselineSummary>,
    /// How orders filled: `close` (the decision bar's close) or `next_open` (the next bar's
    /// open) in a replay ([`FillModel`](crate::config::FillModel)); `pool` (a chain's pool
    /// state, paper) or `chain` (live transactions).
    pub fill_model: &'static str,
    /// Return per calendar month (UTC) of the equity marks, percent, oldest first: `YYYY-MM`
    /// and the change of equity from the month's first mark (the last mark before it, after
    /// the first month) to its last.
    pub monthly_returns: Vec<MonthlyReturn>,
}

/// One month's return in [`Summary::monthly_returns`].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MonthlyReturn {
    /// The month, `YYYY-MM` (UTC).
    pub month: String,
    /// Equity change over the month, percent.
    pub return_pct: f64,
}

/// A comparison strategy's result over the same bars.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineSummary {
    /// Its return, percent, net of fees and gas.
    pub return_pct: f64,
    /// Its fills.
    pub trades: u64,
    /// Its largest fall from a peak, percent.
    pub max_drawdown_pct: f64,
    /// LP fees it paid, whole quote tokens.
    pub fees_paid: f64,
    /// Gas it paid, whole quote tokens.
    pub gas_paid: f64,
}

/// Where a run's market data came from, for the summary.
#[derive(Debug, Clone, Default)]
pub struct DataInfo {
    /// The file, `embedded:…`, or the chain and pool read.
    pub source: String,
    /// Malformed rows skipped.
    pub skipped_rows: usize,
    /// Gaps in the time series.
    pub gaps: usize,
    /// Bars missing in the gaps.
    pub missing_bars: u64,
    /// Repeated timestamps dropped.
    pub duplicates: usize,
    /// The input's size and SHA-256, for the journal's `run` record (`None`: the chain, or
    /// bars handed over without their bytes).
    pub identity: Option<InputIdentity>,
    /// Bars replayed and the first one's time, unix seconds (`None` for a chain run).
    pub bars: Option<(u64, i64)>,
    /// The contract address (`0x…`) of each token the run trades, by symbol: a chain run's,
    /// named in the journal's amounts and its `run` record. Empty off chain.
    pub tokens: std::collections::BTreeMap<String, String>,
}

impl From<&LoadReport> for DataInfo {
    fn from(l: &LoadReport) -> Self {
        Self {
            source: l.source.clone(),
            skipped_rows: l.skipped_rows,
            gaps: l.gaps,
            missing_bars: l.missing_bars,
            duplicates: l.duplicates,
            identity: l.identity.clone(),
            bars: None,
            tokens: Default::default(),
        }
    }
}

impl Summary {
    fn new(mode: Mode, strategy: &str, loaded: &DataInfo, r: &AgentReport) -> Self {
        let q = &r.pair.quote;
        let elapsed_s = r.elapsed.as_secs_f64();
        Summary {
            mode,
            strategy: strategy.to_string(),
            data: loaded.source.clone(),
            pair: format!("{}/{}", r.pair.base, r.pair.quote),
            bars: r.bars,
            skipped_rows: loaded.skipped_rows,
            gaps: loaded.gaps,
            missing_bars: loaded.missing_bars,
            duplicates: loaded.duplicates,
            bad_events: r.bad_events,
            trades: r.fills,
            intents: r.intents,
            refused: r.risk.refused,
            execution_failures: r.execution_failures,
            strategy_faults: r.strategy_faults,
            reconciliations: r.reconciliations,
            start_equity: q.to_f64(r.start_equity),
            end_equity: q.to_f64(r.end_equity),
            return_pct: r.return_pct(),
            buy_hold_return_pct: r.buy_hold_return_pct(),
            max_drawdown_pct: r.max_drawdown_pct,
            sharpe: r.sharpe,
            fees_paid: q.to_f64(r.portfolio.fees_quote()),
            gas_paid: q.to_f64(r.portfolio.gas_quote()),
            gas_paid_native: agent_core::amount::to_f64(r.portfolio.gas_native(), 18),
            risk: (&r.risk).into(),
            kill_switch: (&r.kill_switch).into(),
            balances: r
                .portfolio
                .balances()
                .iter()
                .map(|(t, a)| (t.symbol().to_string(), t.format(*a)))
                .collect(),
            elapsed_s,
            bars_per_s: if elapsed_s > 0.0 {
                r.bars as f64 / elapsed_s
            } else {
                0.0
            },
            chain_id: None,
            tx_hashes: Vec::new(),
            gas_paid_wei: r.portfolio.gas_native().to_string(),
            baselines: Default::default(),
            fill_model: "close",
            monthly_returns: r
                .monthly_returns
                .iter()
                .map(|&(y, m, return_pct)| MonthlyReturn {
                    month: format!("{y:04}-{m:02}"),
                    return_pct,
                })
                .collect(),
        }
    }
}

/// What a run returns: its summary, the agent's full report, and the recording when asked for.
#[derive(Debug)]
pub struct RunOutput {
    /// The JSON summary (`defai backtest --json`).
    pub summary: Summary,
    /// The agent's report: exact portfolio, counters, risk verdicts, kill switch, bets.
    pub report: AgentReport,
    /// Every fill and mark (`RunSpec::record`), `None` otherwise.
    pub recording: Option<Recording>,
}

/// Builds the strategy the config names, with command-line overrides.
///
/// # Errors
/// An override that is not `key=value`, an unknown strategy name, or a parameter the strategy
/// refuses (named).
pub fn build_strategy(cfg: &Config, overrides: &[String]) -> Result<Box<dyn Strategy>, RunError> {
    let params = cfg.strategy_params(overrides)?;
    Ok(strategies::build(&cfg.strategy.name, params)?)
}

/// Runs one agent over `series` as `spec` says.
///
/// # Errors
/// The config, the strategy, the state folder or the journal ([`RunError`]).
pub async fn run(spec: RunSpec, series: &Series) -> Result<RunOutput, RunError> {
    run_shared(spec, series.bars.clone().into(), &series.report).await
}

/// Runs `spec`, then each baseline strategy (default parameters, same config otherwise) over the
/// same bars, adding their results to the summary and their equity to the recording.
///
/// # Errors
/// As [`run`], for the agent or any baseline.
pub async fn run_with_baselines(
    spec: RunSpec,
    series: Series,
    baselines: &[String],
) -> Result<RunOutput, RunError> {
    let Series { bars, report } = series;
    // Moved into the shared slice (one copy), not cloned first (two): a 2M-bar file's bars
    // are ≈ 100 MB.
    let bars: Arc<[Bar]> = bars.into();
    let mut base_runs = Vec::new();
    for name in baselines {
        let mut config = spec.config.clone();
        config.strategy.name = name.clone();
        config.strategy.params.clear();
        let b = RunSpec {
            mode: Mode::Backtest,
            config,
            params: Vec::new(),
            speed: None,
            progress: false,
            record: spec.record,
            stop: spec.stop.clone(),
            state: None,
            max_cycles: None,
            fresh_state: true,
            reset_switch: true,
            strategy: None,
            observers: Vec::new(),
            journal: None,
            rebalance_model: None,
            journal_detail: None,
        };
        base_runs.push((name.clone(), run_shared(b, bars.clone(), &report).await?));
    }
    let mut out = run_shared(spec, bars, &report).await?;
    for (name, b) in base_runs {
        let s = &b.summary;
        out.summary.baselines.insert(
            name.clone(),
            BaselineSummary {
                return_pct: s.return_pct,
                trades: s.trades,
                max_drawdown_pct: s.max_drawdown_pct,
                fees_paid: s.fees_paid,
                gas_paid: s.gas_paid,
            },
        );
        if let (Some(rec), Some(brec)) = (&mut out.recording, &b.recording) {
            rec.baselines.push((
                name,
                brec.marks.iter().map(|(ts, _, e)| (*ts, *e)).collect(),
            ));
        }
    }
    Ok(out)
}

/// [`run`] over bars already shared (benchmarks replay one copy many times without copying).
///
/// # Errors
/// As [`run`].
pub async fn run_shared(
    spec: RunSpec,
    bars: Arc<[Bar]>,
    loaded: &LoadReport,
) -> Result<RunOutput, RunError> {
    let cfg = &spec.config;
    let pair = Pair::new(cfg.base(), cfg.quote());
    // A replay always fills on the simulated pool, whatever venue the config names for chain
    // modes: the same strategy and gate, simulated execution.
    let venue = match cfg.venue.fill {
        crate::config::FillModel::Close => PaperVenue::new(pair.clone(), cfg.paper_amm()?),
        crate::config::FillModel::NextOpen => {
            PaperVenue::new(pair.clone(), cfg.paper_amm()?).fill_at_next_open(bars.clone())
        }
    };
    let portfolio = Portfolio::with_balances([(pair.quote.clone(), cfg.starting_quote()?)]);
    let total = Some(bars.len() as u64);
    let clock = match (spec.mode, spec.speed) {
        (Mode::Paper, Some(speed)) => Clock::replay(speed),
        _ => Clock::Simulated,
    };
    let mut data = DataInfo::from(loaded);
    data.bars = bars.first().map(|b| (bars.len() as u64, b.ts));
    let run = Drive {
        pair,
        portfolio,
        clock,
        total,
        data,
        chain_id: None,
        bet_limits: None,
        wall_data_age: false,
    };
    let mut spec = spec;
    run.go(&mut spec, BarReplay::new(bars), venue).await
}

/// The kill switch latched in the state folder (with its operator-command watcher), or a fresh
/// in-memory one without a state folder.
fn kill_switch_for(spec: &RunSpec) -> Result<KillSwitch, RunError> {
    Ok(match &spec.state {
        Some(dir) => {
            let state = StateDir::open(dir)?;
            let record = state.load_switch()?.unwrap_or_default();
            KillSwitch::restore(record, Some(Box::new(state.switch_store()?)))
        }
        None => KillSwitch::new(),
    })
}

/// Claims the state folder for this run (refused while another agent holds it) and, for a
/// replay, starts it afresh. Hold the guard for the whole run.
fn claim_state(spec: &RunSpec) -> Result<Option<connectors::StateLock>, RunError> {
    let Some(dir) = &spec.state else {
        return Ok(None);
    };
    let state = StateDir::open(dir)?;
    let lock = state.lock()?;
    if spec.fresh_state {
        state.reset_replay(spec.reset_switch)?;
    }
    Ok(Some(lock))
}

/// A run's journal and what a restart resumes from (`None` for a replay).
type OpenJournal = (Box<dyn JournalBackend>, Option<agent_core::Resume>);

/// The run's journal: the spec's own backend, else the state folder's SQLite journal
/// (`DIR/journal.sqlite`) when there is a folder; with what it says a restart resumes from
/// (nothing for a replay, which starts afresh).
fn journal_backend(
    spec: &mut RunSpec,
    tokens: &std::collections::BTreeMap<String, String>,
) -> Result<Option<OpenJournal>, RunError> {
    use connectors::journal::{Addresses, Durability, Journal, JournalObserver};
    let journal: Box<dyn JournalBackend> = match (spec.journal.take(), &spec.state) {
        (Some(j), _) => j,
        (None, None) => return Ok(None),
        (None, Some(dir)) => {
            let durability = if spec.fresh_state {
                Durability::Replay
            } else {
                Durability::Full
            };
            let journal = Journal::open_with(&dir.join("journal.sqlite"), durability)?;
            Box::new(
                JournalObserver::with_detail(journal, journal_detail(spec)?)
                    .with_addresses(Addresses(tokens.clone())),
            )
        }
    };
    let resume = if spec.fresh_state {
        None
    } else {
        Some(journal.resume().map_err(AgentError::Audit)?)
    };
    Ok(Some((journal, resume)))
}

/// The detail of the state folder's journal: the spec's, else compact for a replay and full
/// for a chain run.
///
/// # Errors
/// [`RunError::Setup`] for a compact journal asked of a chain run.
fn journal_detail(spec: &RunSpec) -> Result<Detail, RunError> {
    match (spec.journal_detail, spec.fresh_state) {
        (Some(Detail::Compact), false) => Err(RunError::Setup(
            "a compact journal is for replays: a chain run journals every record, since its restart resumes from them".into(),
        )),
        (Some(d), _) => Ok(d),
        (None, true) => Ok(Detail::Compact),
        (None, false) => Ok(Detail::Full),
    }
}

/// The journal's first record of a run ([`AuditEvent::Run`]): the mode, the strategy and the
/// `--param` overrides, the journal's detail, the input (its source with URLs redacted, size
/// and SHA-256, bars and first bar's time, or the chain id) and the config (its path and its
/// settings as TOML, without comments, every URL-like or secret-like value redacted), as JSON.
/// Its time is the first bar's for a replay (0 for a replay of an event source), the wall
/// clock's for a chain run.
fn run_description(
    spec: &RunSpec,
    data: &DataInfo,
    strategy: &str,
    chain_id: Option<u64>,
) -> (i64, String) {
    let cfg = &spec.config;
    let input = serde_json::json!({
        "source": connectors::redact_urls(&data.source),
        "bytes": data.identity.as_ref().map(|i| i.bytes),
        "sha256": data.identity.as_ref().map(|i| &i.sha256),
        "bars": data.bars.map(|b| b.0),
        "first_ts": data.bars.map(|b| b.1),
        "chain_id": chain_id,
        "tokens": data.tokens,
    });
    let description = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "mode": spec.mode.name(),
        "strategy": strategy,
        "params": spec.params,
        "journal": journal_detail(spec).map(|d| d.to_string()).ok(),
        "input": input,
        "config": {
            "path": cfg.source.as_ref().map(|p| p.display().to_string()),
            "settings": redacted_config(cfg.text()),
        },
    });
    let ts = match data.bars {
        Some((_, first)) => first,
        None if spec.fresh_state => 0,
        None => chrono::Utc::now().timestamp(),
    };
    (ts, description.to_string())
}

/// Config text as TOML again without its comments, with the value of every key that names an
/// endpoint or a secret (a `_`-separated word of its name is `url`, `key`, `secret`,
/// `password`, `token` or `mnemonic`)
/// replaced by `"<redacted>"` and URLs in other strings cut to scheme and host; `None` for text
/// that does not parse (it did, as the config).
fn redacted_config(text: &str) -> Option<String> {
    fn scrub(table: &mut toml::Table) {
        for (key, value) in table.iter_mut() {
            let k = key.to_ascii_lowercase();
            if k.split(['_', '-'])
                .any(|w| ["url", "key", "secret", "password", "token", "mnemonic"].contains(&w))
            {
                *value = toml::Value::String("<redacted>".into());
            } else {
                scrub_value(value);
            }
        }
    }
    fn scrub_value(value: &mut toml::Value) {
        match value {
            toml::Value::String(s) => *s = connectors::redact_urls(s),
            toml::Value::Table(t) => scrub(t),
            toml::Value::Array(a) => a.iter_mut().for_each(scrub_value),
            _ => {}
        }
    }
    let mut table: toml::Table = toml::from_str(text).ok()?;
    scrub(&mut table);
    toml::to_string(&table).ok()
}

/// What the state folder gives a run: its lock (hold it for the whole run), the latched kill
/// switch, observers (the journal, the operator board), what a restart resumes from, and the
/// recorder a sending venue writes its steps through.
pub(crate) struct StateParts {
    pub lock: Option<connectors::StateLock>,
    pub kill: KillSwitch,
    pub observers: Vec<Box<dyn Observer>>,
    pub resume: Option<agent_core::Resume>,
    pub recorder: Option<Arc<dyn agent_core::StepRecorder>>,
    /// Where a resuming run keeps the risk gate's loss and rate baselines, and what the last
    /// run saved there (none for a replay, which starts afresh).
    pub baselines: Option<(
        connectors::FileBaselineStore,
        Option<agent_core::RiskBaselines>,
    )>,
}

/// Claims the state folder, then opens what lives in it: one call per agent run.
pub(crate) fn state_parts(
    spec: &mut RunSpec,
    run: (i64, String),
    tokens: &std::collections::BTreeMap<String, String>,
) -> Result<StateParts, RunError> {
    // Claimed first: a replay's reset must happen before the switch and journal are read.
    let lock = claim_state(spec)?;
    let mut parts = StateParts {
        lock,
        kill: kill_switch_for(spec)?,
        observers: Vec::new(),
        resume: None,
        recorder: None,
        baselines: None,
    };
    if let (Some(dir), false) = (&spec.state, spec.fresh_state) {
        let state = StateDir::open(dir)?;
        parts.baselines = Some((state.baseline_store(), state.load_baselines()?));
    }
    if let Some((mut j, resume)) = journal_backend(spec, tokens)? {
        j.on_audit(&AuditEvent::Run {
            ts: run.0,
            description: &run.1,
        })
        .map_err(AgentError::Audit)?;
        if let (Some(r), Some((_, None))) = (&resume, &parts.baselines)
            && r.snapshot.is_some()
        {
            // An agent with a history but no saved baselines (it ran before they were kept):
            // its loss limits measure from this start. Say so where the operator looks.
            tracing::warn!(target: "defai::audit", "no risk_baselines.json beside a journal with history: drawdown and daily loss are measured from this start");
        }
        parts.recorder = Some(j.recorder());
        parts.resume = resume;
        parts.observers.push(j);
    }
    parts.observers.append(&mut spec.observers);
    Ok(parts)
}

/// Collects the hashes of mined transactions from the audit stream.
pub(crate) struct TxHashes(pub(crate) Arc<Mutex<Vec<String>>>);

impl Observer for TxHashes {
    fn on_audit(&mut self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
        if let AuditEvent::Venue { event, .. } = event
            && event.step == "mined"
            && let (Some(h), Ok(mut v)) = (&event.tx_hash, self.0.lock())
        {
            v.push(h.clone());
        }
        Ok(())
    }
}

/// Everything an agent run needs besides its source and venue.
pub(crate) struct Drive {
    pub pair: Pair,
    pub portfolio: Portfolio,
    pub clock: Clock,
    /// Events expected, for the progress bar (feature `cli`).
    #[cfg_attr(not(feature = "cli"), allow(dead_code))]
    pub total: Option<u64>,
    pub data: DataInfo,
    pub chain_id: Option<u64>,
    /// A live source stamped with chain time: data age is measured against the wall clock.
    pub wall_data_age: bool,
    /// The bet limits of an agent whose venue takes bets (default limits otherwise).
    pub bet_limits: Option<agent_core::BetLimits>,
}

impl Drive {
    /// Builds the agent (the spec's strategy object, else the config's, the gate, kill switch
    /// and observers) and runs it to the end.
    pub(crate) async fn go<S: MarketSource, V: Venue>(
        self,
        spec: &mut RunSpec,
        source: S,
        venue: V,
    ) -> Result<RunOutput, RunError> {
        let strategy = match spec.strategy.take() {
            Some(s) => s,
            None => build_strategy(&spec.config, &spec.params)?,
        };
        self.go_with(spec, source, venue, strategy, Vec::new())
            .await
    }

    /// [`Drive::go`] with a strategy built by the caller, holding the bases of `others` besides
    /// its own pair (a multi-asset agent; every pair quoted in the numéraire).
    pub(crate) async fn go_with<S: MarketSource, V: Venue>(
        self,
        spec: &mut RunSpec,
        source: S,
        venue: V,
        strategy: Box<dyn Strategy>,
        others: Vec<Pair>,
    ) -> Result<RunOutput, RunError> {
        let StateParts {
            lock: _lock,
            kill,
            observers,
            resume,
            recorder,
            baselines,
        } = state_parts(
            spec,
            run_description(spec, &self.data, strategy.name(), self.chain_id),
            &self.data.tokens,
        )?;
        let cfg = &spec.config;
        let pair = self.pair;
        let strategy_name = strategy.name().to_string();
        let source = StoppableSource {
            inner: source,
            stop: spec.stop.clone(),
            cycles_left: spec.max_cycles,
        };
        let limits = cfg.risk_limits()?;
        let limits_age = limits.max_data_age_s;
        let gate = LimitGate::new(limits.clone());
        let mut venue = venue;
        if let Some(r) = recorder {
            venue.set_recorder(r);
        }
        let mut agent = Agent::new(pair.clone(), source, venue, strategy, self.portfolio)
            .with_gate(Box::new(gate))
            .with_kill_switch(kill, cfg.kill_policy()?, limits_age)
            .with_clock(self.clock)
            .with_pairs(others)
            .map_err(RunError::Setup)?;
        agent = agent.with_bet_limits(gate_bet_limits(self.bet_limits, cfg, &limits)?);
        if cfg.kill_switch.start_halted() {
            agent = agent.start_halted("kill_switch.start_halted = true");
        }
        if self.wall_data_age {
            agent = agent.with_wall_data_age();
        }
        if let Some((store, saved)) = baselines {
            agent = agent.with_baselines(Box::new(store), saved);
        }
        let collected = Collected::new(spec.record);
        if let Some(rec) = &collected.recording {
            agent = agent.with_observer(Box::new(Recorder {
                pair: pair.clone(),
                rec: rec.clone(),
            }));
        }
        for o in observers {
            agent = agent.with_observer(o);
        }
        if let Some(resume) = resume {
            agent = agent.resuming(resume);
        }
        if self.chain_id.is_some() {
            agent = agent.with_observer(Box::new(TxHashes(collected.hashes.clone())));
        }
        #[cfg(feature = "cli")]
        let bar = progress_bar(spec, self.total, &strategy_name);
        #[cfg(feature = "cli")]
        if let Some(pb) = &bar {
            agent = agent.with_observer(Box::new(Progress(pb.clone(), 0)));
        }
        let report = agent.run().await?;
        #[cfg(feature = "cli")]
        if let Some(pb) = bar {
            pb.finish_and_clear();
        }
        let mut summary = Summary::new(spec.mode, &strategy_name, &self.data, &report);
        summary.chain_id = self.chain_id;
        summary.fill_model = match (self.chain_id, spec.mode) {
            (None, _) => cfg.venue.fill.name(),
            (Some(_), Mode::Live) => "chain",
            // Paper on a chain: the paper pool at the real pool's reserves of each block.
            (Some(_), _) => "pool",
        };
        Ok(collected.output(summary, report))
    }
}

/// The bet limits of a run: the kind's own (none: no bet at all) with `[risk] max_bet` and the
/// swap limits' slippage and price impact applied.
fn gate_bet_limits(
    own: Option<agent_core::BetLimits>,
    cfg: &Config,
    limits: &agent_core::RiskLimits,
) -> Result<agent_core::BetLimits, RunError> {
    // The bet limits judge any bet of any kind: `[risk] max_bet` can only tighten the
    // strategy's own cap, and the swap limits' slippage and price impact apply to bets too.
    // A kind with no bet limits of its own places no bet: any bet it proposed would be
    // refused (a largest bet of zero), never judged on default limits.
    let mut bet_limits = own.unwrap_or(agent_core::BetLimits {
        max_bet: Some(U256::ZERO),
        ..agent_core::BetLimits::default()
    });
    if let Some(max) = cfg.max_bet()? {
        bet_limits.max_bet = Some(bet_limits.max_bet.map_or(max, |m| m.min(max)));
    }
    bet_limits.max_slippage_bps = limits.max_slippage_bps;
    bet_limits.max_price_impact_bps = limits.max_price_impact_bps;
    Ok(bet_limits)
}

/// The run's progress bar (`RunSpec::progress`): `total` events, or a spinner when the number
/// is not known.
#[cfg(feature = "cli")]
fn progress_bar(
    spec: &RunSpec,
    total: Option<u64>,
    strategy_name: &str,
) -> Option<indicatif::ProgressBar> {
    spec.progress.then(|| {
        let pb = match total {
            Some(n) => indicatif::ProgressBar::new(n),
            None => indicatif::ProgressBar::new_spinner(),
        };
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:40}] {pos}/{len} bars ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb.set_message(format!("{:?} {strategy_name}", spec.mode).to_lowercase());
        pb
    })
}

/// What the run's own observers collect for its output: every fill and mark (only when
/// `RunSpec::record` asks) and the hashes of mined transactions.
struct Collected {
    recording: Option<Arc<Mutex<Recording>>>,
    hashes: Arc<Mutex<Vec<String>>>,
}

impl Collected {
    /// Empty collections; a recording only when `record`.
    fn new(record: bool) -> Self {
        Self {
            recording: record.then(|| Arc::new(Mutex::new(Recording::default()))),
            hashes: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The run's output: `summary` with the mined transactions, the report and the recording.
    fn output(self, mut summary: Summary, report: AgentReport) -> RunOutput {
        summary.tx_hashes = self.hashes.lock().map(|v| v.clone()).unwrap_or_default();
        let recording = self
            .recording
            .and_then(|r| Arc::try_unwrap(r).ok())
            .and_then(|m| m.into_inner().ok());
        RunOutput {
            summary,
            report,
            recording,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redacted_config;

    #[test]
    fn the_run_record_keeps_settings_but_no_comment_endpoint_or_secret() {
        let text = r#"
# private_key = "0xdeadbeef"
[chain]
rpc_url = "https://user:pw@rpc.example/v3/APIKEY"
[wallet]
key_env = "MY_KEY"
[strategy]
name = "ema_cross"
note = "see https://user:pw@docs.example/APIKEY"
[strategy.params]
fast = 5
"#;
        let out = redacted_config(text).unwrap();
        for secret in ["deadbeef", "APIKEY", "user:pw", "MY_KEY"] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
        assert!(
            out.contains("ema_cross") && out.contains("fast = 5"),
            "{out}"
        );
        assert!(out.contains("https://…@docs.example/…"), "{out}");
    }
}
