//! Wires concrete pieces into an [`Agent`]: data, strategy, gate, paper venue, clock, observers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use agent_core::agent::AuditError;
use agent_core::{
    Agent, AgentError, AgentReport, AuditEvent, Bar, BarReplay, Clock, KillSwitch, LimitGate,
    MarketEvent, MarketSource, Observer, Pair, Portfolio, SourceError, Strategy, SwitchRecord,
    SwitchState, U256, Venue,
};
use connectors::{DataError, LoadOptions, LoadReport, PaperVenue, Series, StateDir, StateError};
use serde::Serialize;

use crate::config::{Config, ConfigError};

/// The bundled ETH/USDC hourly candles (CryptoDataDownload, Binance spot), gzip-compressed.
pub const EMBEDDED_DATA: &[u8] = include_bytes!("../data/Binance_ETHUSDC_1h.csv.gz");
/// How the bundled data is named in reports and messages.
pub const EMBEDDED_NAME: &str = "embedded:Binance_ETHUSDC_1h.csv";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Backtest,
    Paper,
    /// Signing and sending transactions on a chain (`defai run`).
    Live,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Strategy(#[from] strategies::BuildError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Chain(#[from] connectors::evm::EvmError),
    #[error(transparent)]
    Journal(#[from] agent_core::journal::JournalError),
    /// A limit that cannot be honoured (it names the key).
    #[error("{0}")]
    Limit(String),
    /// The agent cannot be built as configured (e.g. a pair listed twice).
    #[error("{0}")]
    Setup(String),
}

/// Loads the configured data: `override_path`, else `market.data`, else the bundled series.
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
        None => connectors::load_csv_bytes(EMBEDDED_NAME, EMBEDDED_DATA, opts),
    }
}

/// One row of `trades.csv`.
#[derive(Debug, Clone, Serialize)]
pub struct TradeRow {
    pub id: String,
    pub ts: i64,
    pub side: &'static str,
    pub sell: String,
    pub buy: String,
    pub amount_in: String,
    pub amount_out: String,
    pub price: f64,
    pub fee_quote: String,
    pub gas_quote: String,
    pub gas_native_wei: String,
}

/// What `--out` writes: every fill and the equity at every bar.
#[derive(Debug, Default)]
pub struct Recording {
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
struct Progress(indicatif::ProgressBar, u64);

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

/// How to run.
pub struct RunSpec {
    pub mode: Mode,
    pub config: Config,
    pub params: Vec<String>,
    /// Replay speed (× real time); `None` = as fast as possible.
    pub speed: Option<f64>,
    pub progress: bool,
    pub record: bool,
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
    /// Reports the agent to the process's operator board (control API, dashboard).
    pub board: Option<crate::control::AgentHandle>,
}

/// What the risk gate decided.
#[derive(Debug, Clone, Serialize)]
pub struct RiskSummary {
    pub approved: u64,
    pub resized: u64,
    pub refused: u64,
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
    pub state: SwitchState,
    pub tripped_at: Option<i64>,
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
            board: None,
        }
    }
}

/// The JSON summary; field names are stable.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub mode: Mode,
    pub strategy: String,
    pub data: String,
    pub pair: String,
    pub bars: u64,
    pub skipped_rows: usize,
    pub gaps: usize,
    pub missing_bars: u64,
    pub duplicates: usize,
    pub bad_events: u64,
    pub trades: u64,
    pub intents: u64,
    pub refused: u64,
    pub execution_failures: u64,
    pub strategy_faults: u64,
    /// Balance corrections from the venue's record after the start (chain modes; 0 = exact).
    pub reconciliations: u64,
    pub start_equity: f64,
    pub end_equity: f64,
    pub return_pct: f64,
    pub buy_hold_return_pct: f64,
    pub max_drawdown_pct: f64,
    pub sharpe: f64,
    pub fees_paid: f64,
    pub gas_paid: f64,
    pub gas_paid_native: f64,
    pub risk: RiskSummary,
    pub kill_switch: KillSwitchSummary,
    /// Exact final balances as decimal strings, by token symbol.
    pub balances: std::collections::BTreeMap<String, String>,
    pub elapsed_s: f64,
    pub bars_per_s: f64,
    /// The chain traded on or read from (chain modes).
    pub chain_id: Option<u64>,
    /// Every transaction the run got mined (approvals and swaps), in order.
    pub tx_hashes: Vec<String>,
    /// Gas paid in the native token's smallest unit (wei), exact.
    pub gas_paid_wei: String,
    /// Other strategies over the same bars (`--baseline`), net of fees and gas.
    pub baselines: std::collections::BTreeMap<String, BaselineSummary>,
}

/// A comparison strategy's result over the same bars.
#[derive(Debug, Clone, Serialize)]
pub struct BaselineSummary {
    pub return_pct: f64,
    pub trades: u64,
    pub max_drawdown_pct: f64,
    pub fees_paid: f64,
    pub gas_paid: f64,
}

/// Where a run's market data came from, for the summary.
#[derive(Debug, Clone, Default)]
pub struct DataInfo {
    pub source: String,
    pub skipped_rows: usize,
    pub gaps: usize,
    pub missing_bars: u64,
    pub duplicates: usize,
}

impl From<&LoadReport> for DataInfo {
    fn from(l: &LoadReport) -> Self {
        Self {
            source: l.source.clone(),
            skipped_rows: l.skipped_rows,
            gaps: l.gaps,
            missing_bars: l.missing_bars,
            duplicates: l.duplicates,
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
        }
    }
}

pub struct RunOutput {
    pub summary: Summary,
    pub report: AgentReport,
    pub recording: Option<Recording>,
}

/// Builds the strategy the config names, with command-line overrides.
pub fn build_strategy(cfg: &Config, overrides: &[String]) -> Result<Box<dyn Strategy>, RunError> {
    let params = cfg.strategy_params(overrides)?;
    Ok(strategies::build(&cfg.strategy.name, params)?)
}

/// Runs one agent over `series` as `spec` says.
pub async fn run(spec: RunSpec, series: &Series) -> Result<RunOutput, RunError> {
    run_shared(spec, series.bars.clone().into(), &series.report).await
}

/// Runs `spec`, then each baseline strategy (default parameters, same config otherwise) over the
/// same bars, adding their results to the summary and their equity to the recording.
pub async fn run_with_baselines(
    spec: RunSpec,
    series: &Series,
    baselines: &[String],
) -> Result<RunOutput, RunError> {
    let bars: Arc<[Bar]> = series.bars.clone().into();
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
            board: None,
        };
        base_runs.push((
            name.clone(),
            run_shared(b, bars.clone(), &series.report).await?,
        ));
    }
    let mut out = run_shared(spec, bars, &series.report).await?;
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
pub async fn run_shared(
    spec: RunSpec,
    bars: Arc<[Bar]>,
    loaded: &LoadReport,
) -> Result<RunOutput, RunError> {
    let cfg = &spec.config;
    let pair = Pair::new(cfg.base(), cfg.quote());
    // A replay always fills on the simulated pool, whatever venue the config names for chain
    // modes: the same strategy and gate, simulated execution.
    let venue = PaperVenue::new(pair.clone(), cfg.paper_amm()?);
    let portfolio = Portfolio::with_balances([(pair.quote.clone(), cfg.starting_quote()?)]);
    let total = Some(bars.len() as u64);
    let clock = match (spec.mode, spec.speed) {
        (Mode::Paper, Some(speed)) => Clock::replay(speed),
        _ => Clock::Simulated,
    };
    let run = Drive {
        pair,
        portfolio,
        clock,
        total,
        data: loaded.into(),
        chain_id: None,
        bet_limits: None,
        wall_data_age: false,
    };
    run.go(&spec, BarReplay::new(bars), venue).await
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

/// The journal of the state folder (`DIR/journal.sqlite`), when there is one, and what it
/// says a restart resumes from (nothing for a replay, which starts afresh).
fn journal_observer(
    spec: &RunSpec,
) -> Result<
    Option<(
        agent_core::journal::JournalObserver,
        Option<agent_core::Resume>,
    )>,
    RunError,
> {
    let Some(dir) = &spec.state else {
        return Ok(None);
    };
    let durability = if spec.fresh_state {
        agent_core::journal::Durability::Replay
    } else {
        agent_core::journal::Durability::Full
    };
    let journal = agent_core::journal::Journal::open_with(&dir.join("journal.sqlite"), durability)?;
    let resume = if spec.fresh_state {
        None
    } else {
        Some(journal.resume()?)
    };
    Ok(Some((
        agent_core::journal::JournalObserver::new(journal),
        resume,
    )))
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
pub(crate) fn state_parts(spec: &RunSpec) -> Result<StateParts, RunError> {
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
    if let Some((mut j, resume)) = journal_observer(spec)? {
        if let (Some(r), Some((_, None))) = (&resume, &parts.baselines)
            && r.snapshot.is_some()
        {
            // An agent with a history but no saved baselines (it ran before they were kept):
            // its loss limits measure from this start. Say so where the operator looks.
            tracing::warn!(target: "defai::audit", "no risk_baselines.json beside a journal with history: drawdown and daily loss are measured from this start");
        }
        parts.recorder = Some(j.recorder());
        parts.resume = resume;
        parts.observers.push(Box::new(j));
    }
    if let Some(b) = &spec.board {
        parts.observers.push(b.observer());
    }
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
    /// Events expected, for the progress bar.
    pub total: Option<u64>,
    pub data: DataInfo,
    pub chain_id: Option<u64>,
    /// A live source stamped with chain time: data age is measured against the wall clock.
    pub wall_data_age: bool,
    /// The bet limits of an agent whose venue takes bets (default limits otherwise).
    pub bet_limits: Option<agent_core::BetLimits>,
}

impl Drive {
    /// Builds the agent (the config's strategy, gate, kill switch, observers) and runs it to
    /// the end.
    pub(crate) async fn go<S: MarketSource, V: Venue>(
        self,
        spec: &RunSpec,
        source: S,
        venue: V,
    ) -> Result<RunOutput, RunError> {
        let strategy = build_strategy(&spec.config, &spec.params)?;
        self.go_with(spec, source, venue, strategy, Vec::new())
            .await
    }

    /// [`Drive::go`] with a strategy built by the caller, holding the bases of `others` besides
    /// its own pair (a multi-asset agent; every pair quoted in the numéraire).
    pub(crate) async fn go_with<S: MarketSource, V: Venue>(
        self,
        spec: &RunSpec,
        source: S,
        venue: V,
        strategy: Box<dyn Strategy>,
        others: Vec<Pair>,
    ) -> Result<RunOutput, RunError> {
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
        let StateParts {
            lock: _lock,
            kill,
            observers,
            resume,
            recorder,
            baselines,
        } = state_parts(spec)?;
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
        // The bet limits judge any bet of any kind: `[risk] max_bet` can only tighten the
        // strategy's own cap, and the swap limits' slippage and price impact apply to bets too.
        // A kind with no bet limits of its own places no bet: any bet it proposed would be
        // refused (a largest bet of zero), never judged on default limits.
        let mut bet_limits = self.bet_limits.clone().unwrap_or(agent_core::BetLimits {
            max_bet: Some(U256::ZERO),
            ..agent_core::BetLimits::default()
        });
        if let Some(max) = cfg.max_bet()? {
            bet_limits.max_bet = Some(bet_limits.max_bet.map_or(max, |m| m.min(max)));
        }
        bet_limits.max_slippage_bps = limits.max_slippage_bps;
        bet_limits.max_price_impact_bps = limits.max_price_impact_bps;
        agent = agent.with_bet_limits(bet_limits);
        if cfg.kill_switch.start_halted() {
            agent = agent.start_halted("kill_switch.start_halted = true");
        }
        if self.wall_data_age {
            agent = agent.with_wall_data_age();
        }
        if let Some((store, saved)) = baselines {
            agent = agent.with_baselines(Box::new(store), saved);
        }
        let recording = spec
            .record
            .then(|| Arc::new(Mutex::new(Recording::default())));
        if let Some(rec) = &recording {
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
        let hashes = Arc::new(Mutex::new(Vec::new()));
        if self.chain_id.is_some() {
            agent = agent.with_observer(Box::new(TxHashes(hashes.clone())));
        }
        let bar = spec.progress.then(|| {
            let pb = match self.total {
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
        });
        if let Some(pb) = &bar {
            agent = agent.with_observer(Box::new(Progress(pb.clone(), 0)));
        }
        let report = agent.run().await?;
        if let Some(pb) = bar {
            pb.finish_and_clear();
        }
        let mut summary = Summary::new(spec.mode, &strategy_name, &self.data, &report);
        summary.chain_id = self.chain_id;
        summary.tx_hashes = hashes.lock().map(|v| v.clone()).unwrap_or_default();
        let recording = recording
            .and_then(|r| Arc::try_unwrap(r).ok())
            .and_then(|m| m.into_inner().ok());
        Ok(RunOutput {
            summary,
            report,
            recording,
        })
    }
}
