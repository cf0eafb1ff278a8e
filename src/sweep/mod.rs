//! Parameter sweeps with walk-forward validation (`defai sweep`): every combination of a grid
//! of strategy parameters backtested on all cores over one shared copy of the bars, ranked by a
//! metric; with walk-forward, the best in-sample parameters of each fold run on the bars that
//! follow, and the deflated Sharpe ratio says how much of the best in-sample result a best-of-N
//! pick of luck explains.
//!
//! Determinism: trials run on worker threads, each with its own current-thread tokio runtime,
//! and are collected in trial order, so a report is the same for any number of threads and,
//! with `--random`, for the same seed.
//!
//! Walk-forward scheme (rolling): the bars are cut into K + 1 equal consecutive chunks (the last
//! takes the remainder); fold i selects on chunk i (in-sample) and measures on chunk i + 1
//! (out-of-sample). The out-of-sample run replays chunk i first as warm-up (indicators start
//! warm; the strategy may enter a position there) and measures equity from the close of the
//! last in-sample bar, so the out-of-sample returns chain into one stitched curve.

pub mod grid;
#[cfg(feature = "cli")]
pub mod plot;
pub mod stats;

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use agent_core::{Bar, ParamError};
use connectors::{LoadReport, Series};
use serde::Serialize;

use crate::config::Config;
use crate::engine::{self, RunError, RunSpec};
pub use grid::{Grid, ParamSpec};
pub use stats::{DeflatedSharpe, Metrics};

/// The fewest bars a walk-forward chunk may have.
pub const MIN_CHUNK_BARS: usize = 10;

/// Why a sweep could not run; each variant names the flag or the trial at fault.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// A `--param` (or `--random`) that cannot be read, named with the reason.
    #[error("--param {spec}: {reason}")]
    Param {
        /// The flag's text (or the parameter's name).
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// More trials than a sweep runs ([`grid::MAX_TRIALS`]).
    #[error("{0}")]
    TooMany(String),
    /// `--walk-forward K` does not fit the data.
    #[error("--walk-forward {folds}: {reason}")]
    Folds {
        /// K.
        folds: usize,
        /// Why (too few bars per chunk, K = 0).
        reason: String,
    },
    /// A trial failed for a reason other than parameters the strategy refuses: an unknown
    /// parameter name, a value of the wrong type, the config, the data.
    #[error("trial {params}: {source}")]
    Run {
        /// The trial's parameters, `k=v k=v`.
        params: String,
        /// The engine's error.
        #[source]
        source: Box<RunError>,
    },
    /// The strategy refused every combination (the first refusal is given).
    #[error("no valid trial: the strategy refused every combination ({0})")]
    NoValid(String),
    /// A worker's runtime could not be built.
    #[error("starting a sweep worker: {0}")]
    Worker(#[from] std::io::Error),
}

/// What trials are ranked by (`--metric`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// The annualised Sharpe ratio ([`Metrics::sharpe`]).
    Sharpe,
    /// The return, percent ([`Metrics::return_pct`]).
    Return,
    /// The Calmar ratio ([`Metrics::calmar`]).
    Calmar,
}

impl Metric {
    /// `sharpe`, `return` or `calmar`, as `--metric` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Sharpe => "sharpe",
            Metric::Return => "return",
            Metric::Calmar => "calmar",
        }
    }

    /// The value of this metric in `m`.
    pub fn of(self, m: &Metrics) -> f64 {
        match self {
            Metric::Sharpe => m.sharpe,
            Metric::Return => m.return_pct,
            Metric::Calmar => m.calmar,
        }
    }
}

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sharpe" => Ok(Metric::Sharpe),
            "return" => Ok(Metric::Return),
            "calmar" => Ok(Metric::Calmar),
            _ => Err(format!("`{s}` is not a metric: sharpe, return or calmar")),
        }
    }
}

/// What to sweep.
#[derive(Debug, Clone)]
pub struct SweepSpec {
    /// The config every trial runs with (strategy name, `[strategy.params]` defaults, pool,
    /// risk limits); each trial's combination overrides its parameters.
    pub config: Config,
    /// The parameter grid.
    pub grid: Grid,
    /// The combinations to run, as grid indices in ascending order ([`grid::trials`]).
    pub trials: Vec<usize>,
    /// What ranks the trials.
    pub metric: Metric,
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Walk-forward folds K (`None`: one sweep over the whole series).
    pub walk_forward: Option<usize>,
    /// Drop the engine's log events inside trials (a kill switch tripping, a partial unwind:
    /// one line per trial floods the log; their effect is in the trial's metrics).
    pub quiet_trials: bool,
}

/// A stretch of the bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    /// First bar, index into the series.
    pub first_bar: usize,
    /// Bars in it.
    pub bars: usize,
    /// First bar's time, unix seconds.
    pub from_ts: i64,
    /// Last bar's time, unix seconds.
    pub to_ts: i64,
}

impl Span {
    fn of(bars: &[Bar], r: Range<usize>) -> Self {
        Self {
            first_bar: r.start,
            bars: r.len(),
            from_ts: bars[r.start].ts,
            to_ts: bars[r.end - 1].ts,
        }
    }
}

/// One trial over one span.
#[derive(Debug, Clone, Serialize)]
pub struct TrialResult {
    /// The combination's index in the grid.
    pub index: usize,
    /// Its parameters, by name.
    pub params: BTreeMap<String, String>,
    /// Whether the strategy accepted them.
    pub valid: bool,
    /// Why the strategy refused them (invalid trials).
    pub invalid_reason: Option<String>,
    /// The ranking metric's value (valid trials).
    pub score: Option<f64>,
    /// Its metrics (valid trials).
    pub metrics: Option<Metrics>,
}

/// Every trial over one span and the best of them.
#[derive(Debug, Clone, Serialize)]
pub struct Selection {
    /// The bars the trials ran on.
    pub span: Span,
    /// Every trial, in trial order.
    pub trials: Vec<TrialResult>,
    /// The best valid trial by the metric (the first in trial order on a tie).
    pub best: TrialResult,
    /// The best trial's deflated Sharpe ratio among the valid trials.
    pub deflated_sharpe: DeflatedSharpe,
}

/// One walk-forward fold.
#[derive(Debug, Clone, Serialize)]
pub struct Fold {
    /// The in-sample trials and their best.
    pub in_sample: Selection,
    /// The out-of-sample bars (measured; the in-sample bars before them were warm-up).
    pub out_of_sample: Span,
    /// The best in-sample parameters.
    pub best_params: BTreeMap<String, String>,
    /// Their metrics out of sample.
    pub out_of_sample_metrics: Metrics,
    /// Holding the base token over the out-of-sample bars, percent.
    pub buy_hold_return_pct: f64,
}

/// The walk-forward result.
#[derive(Debug, Clone, Serialize)]
pub struct WalkForward {
    /// `rolling`: fold i selects on chunk i and measures on chunk i + 1.
    pub scheme: &'static str,
    /// Each fold.
    pub folds: Vec<Fold>,
    /// The stitched out-of-sample curve (each fold's out-of-sample returns chained).
    pub out_of_sample: Metrics,
    /// Probabilistic Sharpe ratio of the stitched curve against 0 (no selection correction:
    /// each fold's parameters were chosen before its bars were seen).
    pub out_of_sample_psr: Option<f64>,
    /// Buy-and-hold over the same bars.
    pub buy_hold: Metrics,
    /// Mean of the folds' in-sample annualised Sharpe ratios (the best trial's).
    pub mean_in_sample_sharpe: f64,
    /// Mean of the folds' out-of-sample annualised Sharpe ratios.
    pub mean_out_of_sample_sharpe: f64,
    /// The stitched curve: (ts, strategy equity, buy-and-hold equity), whole quote tokens,
    /// starting at the close before the first out-of-sample bar. Not in the JSON (it is in
    /// `oos_equity.csv`).
    #[serde(skip)]
    pub curve: Vec<(i64, f64, f64)>,
}

/// What a sweep found.
#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    /// The strategy swept.
    pub strategy: String,
    /// Where the bars came from.
    pub data: String,
    /// Bars in the series.
    pub bars: usize,
    /// Bars a year, for annualising (365.25 days / the data's bar spacing).
    pub periods_per_year: f64,
    /// What ranked the trials.
    pub metric: Metric,
    /// How every trial's orders filled: `close` or `next_open` (`[venue] fill`).
    pub fill_model: &'static str,
    /// The parameters and the values of each.
    pub params: Vec<ParamOut>,
    /// Combinations in the grid.
    pub grid_size: usize,
    /// Combinations run (on the whole series, or on every fold).
    pub trials: usize,
    /// Those the strategy accepted.
    pub valid_trials: usize,
    /// Those it refused (skipped).
    pub invalid_trials: usize,
    /// Worker threads that ran the trials.
    pub threads: usize,
    /// Without walk-forward: every trial over the whole series.
    pub whole: Option<Selection>,
    /// With walk-forward: the folds and the stitched out-of-sample result.
    pub walk_forward: Option<WalkForward>,
    /// Bars replayed in all (every trial's, warm-up included), for throughput. Not in the JSON.
    #[serde(skip)]
    pub bars_replayed: u64,
}

/// A swept parameter and its values.
#[derive(Debug, Clone, Serialize)]
pub struct ParamOut {
    /// Its name.
    pub name: String,
    /// Its values in grid order.
    pub values: Vec<String>,
}

/// A walk-forward fold's bars: (in-sample, out-of-sample) index ranges into the series.
pub type FoldRanges = (Range<usize>, Range<usize>);

/// Bars a year at `interval_s` seconds a bar (365.25-day years; an hour when unknown).
pub fn periods_per_year(interval_s: i64) -> f64 {
    365.25 * 86_400.0 / interval_s.max(1) as f64
}

/// The in-sample and out-of-sample bar ranges of `k` rolling walk-forward folds over `bars`
/// bars: K + 1 chunks of `bars / (k + 1)` bars (the last also takes the remainder); fold i is
/// (chunk i, chunk i + 1).
///
/// # Errors
/// [`SweepError::Folds`] for `k = 0` or chunks under [`MIN_CHUNK_BARS`] bars.
pub fn fold_ranges(bars: usize, k: usize) -> Result<Vec<FoldRanges>, SweepError> {
    if k == 0 {
        return Err(SweepError::Folds {
            folds: k,
            reason: "at least one fold".into(),
        });
    }
    let chunk = bars / (k + 1);
    if chunk < MIN_CHUNK_BARS {
        return Err(SweepError::Folds {
            folds: k,
            reason: format!(
                "{bars} bars make chunks of {chunk}; each needs at least {MIN_CHUNK_BARS}"
            ),
        });
    }
    let end = |j: usize| if j == k { bars } else { (j + 1) * chunk };
    Ok((0..k)
        .map(|i| (i * chunk..end(i), end(i)..end(i + 1)))
        .collect())
}

/// The index of the best valid trial by its score: the highest, the first in trial order on a
/// tie; `None` when no trial is valid.
pub fn best_index(trials: &[TrialResult]) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, t) in trials.iter().enumerate() {
        if let Some(s) = t.score.filter(|s| !s.is_nan())
            && best.is_none_or(|(_, b)| s > b)
        {
            best = Some((i, s));
        }
    }
    best.map(|(i, _)| i)
}

/// What one backtest measured: metrics from a bar on, the curve measured, bars replayed.
struct Measured {
    metrics: Metrics,
    /// (ts, close, equity) from the base point on.
    curve: Vec<(i64, f64, f64)>,
    replayed: u64,
}

/// A trial's outcome: measured, refused by the strategy (why), or a fatal error.
enum Outcome {
    Done(Measured),
    Invalid(String),
    Failed(RunError),
}

/// Everything a worker needs for one backtest.
struct Job<'a> {
    config: &'a Config,
    overrides: &'a [String],
    bars: Arc<[Bar]>,
    loaded: &'a LoadReport,
    /// Measure from this bar on (the bars before it are warm-up).
    measure_from: usize,
    periods_per_year: f64,
    /// Keep the measured curve.
    keep_curve: bool,
}

impl Job<'_> {
    /// Runs the backtest on `rt` and measures it.
    fn run(&self, rt: &tokio::runtime::Runtime) -> Outcome {
        let mut spec = RunSpec::backtest(self.config.clone());
        spec.params = self.overrides.to_vec();
        spec.record = true;
        let out = match rt.block_on(engine::run_shared(spec, self.bars.clone(), self.loaded)) {
            Ok(out) => out,
            Err(e) => return classify(e),
        };
        let rec = out.recording.unwrap_or_default();
        let from_ts = self.bars.get(self.measure_from).map_or(i64::MIN, |b| b.ts);
        let first = rec.marks.iter().position(|m| m.0 >= from_ts);
        let base = first.unwrap_or(rec.marks.len()).saturating_sub(1);
        let marks = &rec.marks[base.min(rec.marks.len())..];
        let equity: Vec<f64> = marks.iter().map(|m| m.2).collect();
        let trades = rec.trades.iter().filter(|t| t.ts >= from_ts).count() as u64;
        Outcome::Done(Measured {
            metrics: Metrics::of(&equity, trades, self.periods_per_year),
            curve: if self.keep_curve {
                marks.to_vec()
            } else {
                Vec::new()
            },
            replayed: self.bars.len() as u64,
        })
    }
}

/// Parameters the strategy refuses (a value of the right type out of its range) make an
/// invalid trial; anything else (an unknown name, a wrong type, the config) is fatal.
fn classify(e: RunError) -> Outcome {
    match &e {
        RunError::Strategy(strategies::BuildError::Param(ParamError::Invalid { .. })) => {
            Outcome::Invalid(e.to_string())
        }
        _ => Outcome::Failed(e),
    }
}

/// Runs `job(rt, i)` for i in 0..n on up to `threads` workers (each with its own current-thread
/// runtime; with `quiet`, no log subscriber), calling `tick` after each; returns the results
/// in index order and the workers used.
fn parallel<T: Send>(
    n: usize,
    (threads, quiet): (usize, bool),
    job: &(dyn Fn(&tokio::runtime::Runtime, usize) -> T + Sync),
    tick: &(dyn Fn() + Sync),
) -> Result<(Vec<T>, usize), SweepError> {
    let next = AtomicUsize::new(0);
    let workers = threads.clamp(1, n.max(1));
    let work = || -> std::io::Result<Vec<(usize, T)>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut done = Vec::new();
        let mut run = || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                return;
            }
            done.push((i, job(&rt, i)));
            tick();
        };
        if quiet {
            let none = tracing::subscriber::NoSubscriber::default();
            tracing::subscriber::with_default(none, run);
        } else {
            run();
        }
        Ok(done)
    };
    let parts: Vec<std::io::Result<Vec<(usize, T)>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers).map(|_| s.spawn(work)).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut all = Vec::with_capacity(n);
    for part in parts {
        all.extend(part?);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok((all.into_iter().map(|(_, t)| t).collect(), workers))
}

/// The `key=value` overrides of each trial, in trial order.
fn trial_overrides(spec: &SweepSpec) -> Vec<Vec<String>> {
    spec.trials
        .iter()
        .map(|&i| {
            spec.grid
                .combo(i)
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect()
        })
        .collect()
}

/// Fails early, before any backtest, when the first trial's parameters are unknown to the
/// strategy or of the wrong type (a refused value is left to the trials).
fn precheck(config: &Config, overrides: &[Vec<String>]) -> Result<(), SweepError> {
    let Some(first) = overrides.first() else {
        return Ok(());
    };
    match engine::build_strategy(config, first) {
        Ok(_) => Ok(()),
        Err(e) => match classify(e) {
            Outcome::Failed(source) => Err(SweepError::Run {
                params: first.join(" "),
                source: Box::new(source),
            }),
            _ => Ok(()),
        },
    }
}

/// The trials' results over one span and the best of them, from the backtests' outcomes.
///
/// # Errors
/// The first fatal outcome in trial order, or [`SweepError::NoValid`].
fn select(
    spec: &SweepSpec,
    overrides: &[Vec<String>],
    span: Span,
    outcomes: Vec<Outcome>,
) -> Result<(Selection, u64), SweepError> {
    let mut trials = Vec::with_capacity(outcomes.len());
    let mut replayed = 0;
    for ((&index, o), kv) in spec.trials.iter().zip(outcomes).zip(overrides) {
        let params = spec.grid.combo(index).into_iter().collect();
        let (metrics, invalid_reason) = match o {
            Outcome::Done(m) => {
                replayed += m.replayed;
                (Some(m.metrics), None)
            }
            Outcome::Invalid(why) => (None, Some(why)),
            Outcome::Failed(source) => {
                return Err(SweepError::Run {
                    params: kv.join(" "),
                    source: Box::new(source),
                });
            }
        };
        trials.push(TrialResult {
            index,
            params,
            valid: metrics.is_some(),
            invalid_reason,
            score: metrics.as_ref().map(|m| spec.metric.of(m)),
            metrics,
        });
    }
    let Some(b) = best_index(&trials) else {
        let first = trials.iter().find_map(|t| t.invalid_reason.clone());
        return Err(SweepError::NoValid(
            first.unwrap_or_else(|| "no trial".into()),
        ));
    };
    let best = trials[b].clone();
    let Some(best_metrics) = best.metrics else {
        return Err(SweepError::NoValid("no trial measured".into()));
    };
    let sharpes: Vec<f64> = trials
        .iter()
        .filter_map(|t| t.metrics.map(|m| m.sharpe_per_bar))
        .collect();
    let deflated_sharpe = stats::deflated_sharpe(&best_metrics, &sharpes);
    Ok((
        Selection {
            span,
            trials,
            best,
            deflated_sharpe,
        },
        replayed,
    ))
}

/// Runs the sweep `spec` over `series`: every trial on the whole series, or with walk-forward
/// every trial on each fold's in-sample bars and the best on the out-of-sample bars after them.
/// `tick` is called after each backtest (trials × folds, plus one per fold out of sample).
///
/// # Errors
/// - [`SweepError::Folds`] when the walk-forward chunks would be too short;
/// - [`SweepError::Run`] naming the trial, for an unknown parameter, a value of the wrong type,
///   or a config or engine error (refused values only make their trial invalid);
/// - [`SweepError::NoValid`] when the strategy refused every combination;
/// - [`SweepError::Worker`] when a worker's runtime cannot start.
pub fn run_sweep(
    spec: &SweepSpec,
    series: &Series,
    tick: &(dyn Fn() + Sync),
) -> Result<SweepReport, SweepError> {
    let overrides = trial_overrides(spec);
    precheck(&spec.config, &overrides)?;
    let ppy = periods_per_year(series.report.interval_s);
    let bars = &series.bars;
    let mut report = SweepReport {
        strategy: spec.config.strategy.name.clone(),
        data: series.report.source.clone(),
        bars: bars.len(),
        periods_per_year: ppy,
        metric: spec.metric,
        fill_model: spec.config.venue.fill.name(),
        params: spec
            .grid
            .params
            .iter()
            .map(|p| ParamOut {
                name: p.name.clone(),
                values: p.values.clone(),
            })
            .collect(),
        grid_size: spec.grid.size().unwrap_or(usize::MAX),
        trials: spec.trials.len(),
        valid_trials: 0,
        invalid_trials: 0,
        threads: 0,
        whole: None,
        walk_forward: None,
        bars_replayed: 0,
    };
    let folds = match spec.walk_forward {
        Some(k) => fold_ranges(bars.len(), k)?,
        None => vec![(0..bars.len(), bars.len()..bars.len())],
    };
    if bars.is_empty() {
        return Err(SweepError::Folds {
            folds: 0,
            reason: "the data has no bars".into(),
        });
    }
    // One shared copy of each fold's in-sample bars for all its trials.
    let chunks: Vec<Arc<[Bar]>> = folds
        .iter()
        .map(|(is, _)| bars[is.clone()].into())
        .collect();
    let n = overrides.len();
    let job = |rt: &tokio::runtime::Runtime, i: usize| {
        Job {
            config: &spec.config,
            overrides: &overrides[i % n],
            bars: chunks[i / n].clone(),
            loaded: &series.report,
            measure_from: 0,
            periods_per_year: ppy,
            keep_curve: false,
        }
        .run(rt)
    };
    let (mut outcomes, threads) = parallel(
        n * folds.len(),
        (spec.threads, spec.quiet_trials),
        &job,
        tick,
    )?;
    report.threads = threads;
    let mut selections = Vec::with_capacity(folds.len());
    for (f, (is, _)) in folds.iter().enumerate().rev() {
        let mine = outcomes.split_off(f * n);
        let (sel, replayed) = select(spec, &overrides, Span::of(bars, is.clone()), mine)?;
        report.bars_replayed += replayed;
        selections.push(sel);
    }
    selections.reverse();
    let first = &selections[0];
    report.valid_trials = first.trials.iter().filter(|t| t.valid).count();
    report.invalid_trials = report.trials - report.valid_trials;
    if spec.walk_forward.is_none() {
        report.whole = selections.pop();
        return Ok(report);
    }
    let wf = walk_forward(spec, series, &folds, selections, ppy, tick)?;
    report.threads = report.threads.max(wf.1);
    report.bars_replayed += wf.2;
    report.walk_forward = Some(wf.0);
    Ok(report)
}

/// The out-of-sample half of a walk-forward: each fold's best in-sample parameters over its
/// in-sample bars (warm-up) and out-of-sample bars, measured on the latter, then stitched.
/// Returns the result, the workers used and the bars replayed.
fn walk_forward(
    spec: &SweepSpec,
    series: &Series,
    folds: &[FoldRanges],
    selections: Vec<Selection>,
    ppy: f64,
    tick: &(dyn Fn() + Sync),
) -> Result<(WalkForward, usize, u64), SweepError> {
    let bars = &series.bars;
    let best: Vec<Vec<String>> = selections
        .iter()
        .map(|s| {
            s.best
                .params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect()
        })
        .collect();
    let spans: Vec<Arc<[Bar]>> = folds
        .iter()
        .map(|(is, oos)| bars[is.start..oos.end].into())
        .collect();
    let job = |rt: &tokio::runtime::Runtime, f: usize| {
        Job {
            config: &spec.config,
            overrides: &best[f],
            bars: spans[f].clone(),
            loaded: &series.report,
            measure_from: folds[f].0.len(),
            periods_per_year: ppy,
            keep_curve: true,
        }
        .run(rt)
    };
    let (outcomes, threads) = parallel(folds.len(), (spec.threads, spec.quiet_trials), &job, tick)?;
    let mut out = Vec::with_capacity(folds.len());
    let mut replayed = 0;
    for (((sel, o), (_, oos)), kv) in selections.into_iter().zip(outcomes).zip(folds).zip(&best) {
        let m = match o {
            Outcome::Done(m) => m,
            Outcome::Invalid(why) => return Err(SweepError::NoValid(why)),
            Outcome::Failed(source) => {
                return Err(SweepError::Run {
                    params: kv.join(" "),
                    source: Box::new(source),
                });
            }
        };
        replayed += m.replayed;
        out.push((sel, Span::of(bars, oos.clone()), m));
    }
    Ok((stitch(out, ppy), threads, replayed))
}

/// The folds and the stitched out-of-sample curve against buy-and-hold over the same bars.
fn stitch(folds: Vec<(Selection, Span, Measured)>, ppy: f64) -> WalkForward {
    let start = folds
        .first()
        .and_then(|f| f.2.curve.first())
        .map_or(1.0, |c| c.2);
    let (mut equity, mut hold) = (start, start);
    let mut curve = Vec::new();
    let mut trades = 0;
    let mut out = Vec::with_capacity(folds.len());
    for (in_sample, span, m) in folds {
        if curve.is_empty()
            && let Some(c) = m.curve.first()
        {
            curve.push((c.0, equity, hold));
        }
        for w in m.curve.windows(2) {
            if w[0].2 > 0.0 {
                equity *= w[1].2 / w[0].2;
            }
            if w[0].1 > 0.0 {
                hold *= w[1].1 / w[0].1;
            }
            curve.push((w[1].0, equity, hold));
        }
        trades += m.metrics.trades;
        let (first, last) = (m.curve.first(), m.curve.last());
        let buy_hold_return_pct = match (first, last) {
            (Some(a), Some(b)) if a.1 > 0.0 => (b.1 / a.1 - 1.0) * 100.0,
            _ => 0.0,
        };
        out.push(Fold {
            best_params: in_sample.best.params.clone(),
            in_sample,
            out_of_sample: span,
            out_of_sample_metrics: m.metrics,
            buy_hold_return_pct,
        });
    }
    let strat: Vec<f64> = curve.iter().map(|c| c.1).collect();
    let held: Vec<f64> = curve.iter().map(|c| c.2).collect();
    let oos = Metrics::of(&strat, trades, ppy);
    let k = out.len().max(1) as f64;
    let mean = |f: &dyn Fn(&Fold) -> f64| out.iter().map(f).sum::<f64>() / k;
    WalkForward {
        scheme: "rolling",
        mean_in_sample_sharpe: mean(&|f| f.in_sample.best.metrics.map_or(0.0, |m| m.sharpe)),
        mean_out_of_sample_sharpe: mean(&|f| f.out_of_sample_metrics.sharpe),
        folds: out,
        out_of_sample_psr: stats::probabilistic_sharpe(
            oos.sharpe_per_bar,
            0.0,
            oos.returns,
            oos.skew,
            oos.kurtosis,
        ),
        out_of_sample: oos,
        buy_hold: Metrics::of(&held, 0, ppy),
        curve,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_are_consecutive_equal_chunks_with_the_remainder_out_of_sample_last() {
        let f = fold_ranges(1003, 3).unwrap();
        assert_eq!(
            f,
            [
                (0..250, 250..500),
                (250..500, 500..750),
                (500..750, 750..1003)
            ]
        );
        assert_eq!(fold_ranges(100, 1).unwrap(), [(0..50, 50..100)]);
        assert!(
            fold_ranges(100, 0)
                .unwrap_err()
                .to_string()
                .contains("--walk-forward 0")
        );
        let e = fold_ranges(100, 10).unwrap_err().to_string();
        assert!(
            e.contains("--walk-forward 10") && e.contains("chunks of 9"),
            "{e}"
        );
    }

    fn trial(index: usize, score: Option<f64>) -> TrialResult {
        TrialResult {
            index,
            params: BTreeMap::new(),
            valid: score.is_some(),
            invalid_reason: None,
            score,
            metrics: None,
        }
    }

    #[test]
    fn the_best_trial_is_the_highest_score_and_the_first_on_a_tie() {
        let t = [
            trial(0, None),
            trial(1, Some(1.0)),
            trial(2, Some(3.0)),
            trial(3, Some(f64::NAN)),
            trial(4, Some(3.0)),
            trial(5, Some(-2.0)),
        ];
        assert_eq!(best_index(&t), Some(2));
        assert_eq!(best_index(&t[..2]), Some(1));
        assert_eq!(best_index(&[trial(0, None)]), None);
    }

    #[test]
    fn metric_names_parse_and_unknown_ones_are_refused() {
        assert_eq!("calmar".parse::<Metric>(), Ok(Metric::Calmar));
        assert!("sortino".parse::<Metric>().unwrap_err().contains("sortino"));
    }

    #[test]
    fn hourly_bars_are_8766_periods_a_year() {
        assert!((periods_per_year(3600) - 8766.0).abs() < 1e-9);
    }
}
