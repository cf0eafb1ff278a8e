//! `defai sweep`: a parameter sweep of any registered bar strategy on all cores, optionally
//! walk-forward ([`crate::sweep`]); writes `results.csv`, `walk_forward.csv`,
//! `oos_equity.csv`, `heatmap.png` and `oos_equity.png`, and prints a summary or one JSON
//! object. `--bench` measures aggregate bars/s on one thread and on `--threads`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config::Config;
use crate::engine;
use crate::sweep::{self, Grid, Metric, ParamSpec, SweepReport, SweepSpec, plot};
use anyhow::{Context as _, Result, bail};
use clap::Args;
use serde::Serialize;

/// `defai sweep`'s flags.
#[derive(Args)]
pub(super) struct SweepArgs {
    /// TOML config (see examples/configs/): the strategy, its default parameters, the pool,
    /// the risk limits every trial runs with.
    #[arg(long)]
    config: Option<PathBuf>,
    /// OHLCV CSV to replay (overrides `market.data`); `.gz` is fine.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Strategy name (overrides `strategy.name`); any registered bar strategy.
    #[arg(long)]
    strategy: Option<String>,
    /// A parameter to sweep: `name=a..b:step` (inclusive range, integers or floats),
    /// `name=v1,v2,v3` (a list) or `name=v` (fixed); repeatable. The grid is their cartesian
    /// product, the first parameter varying slowest.
    #[arg(long = "param", value_name = "NAME=SPEC")]
    params: Vec<String>,
    /// Run N distinct combinations drawn from the grid (seeded by --seed) instead of all.
    #[arg(long, value_name = "N")]
    random: Option<usize>,
    /// Seed of --random's draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Walk-forward with K rolling folds: K + 1 equal chunks; fold i selects the best
    /// parameters on chunk i and measures them on chunk i + 1.
    #[arg(long, value_name = "K")]
    walk_forward: Option<usize>,
    /// What ranks the trials: sharpe (annualised), return or calmar (annual return / max
    /// drawdown).
    #[arg(long, default_value = "sharpe", value_parser = parse_metric)]
    metric: Metric,
    /// Worker threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Print exactly one JSON object on stdout and nothing else.
    #[arg(long)]
    json: bool,
    /// Folder for results.csv, walk_forward.csv, oos_equity.csv and the PNGs.
    #[arg(long, required_unless_present = "bench")]
    out: Option<PathBuf>,
    /// Skip malformed data rows instead of stopping.
    #[arg(long)]
    skip_bad_rows: bool,
    /// Benchmark instead: the same sweep on one thread, then on --threads; prints aggregate
    /// bars/s of each and the ratio, writes nothing.
    #[arg(long)]
    bench: bool,
}

/// Parses `--metric`.
fn parse_metric(s: &str) -> Result<Metric, String> {
    s.parse()
}

/// The JSON `defai sweep --json` prints: the report with the draw that chose its trials.
#[derive(Serialize)]
struct Printed<'a> {
    /// `--random N`, when the trials were drawn.
    random: Option<usize>,
    /// `--seed`.
    seed: u64,
    #[serde(flatten)]
    report: &'a SweepReport,
}

/// `defai sweep`.
pub(super) async fn sweep(args: SweepArgs) -> Result<()> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let config = super::run::with_strategy(config, args.strategy.as_deref());
    let specs = args
        .params
        .iter()
        .map(|p| ParamSpec::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    let grid = Grid::new(specs)?;
    let trials = sweep::grid::trials(&grid, args.random, args.seed)?;
    let threads = match args.threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let series = engine::load_data(&config, args.data.as_deref(), args.skip_bad_rows)?;
    let spec = SweepSpec {
        config,
        grid,
        trials,
        metric: args.metric,
        threads,
        walk_forward: args.walk_forward,
        // One kill-switch line per trial would bury the summary; RUST_LOG asks for them.
        quiet_trials: std::env::var_os("RUST_LOG").is_none(),
    };
    if args.bench {
        return bench(&spec, &series, args.json);
    }
    let folds = spec.walk_forward.unwrap_or(1);
    let total = (spec.trials.len() * folds + spec.walk_forward.unwrap_or(0)) as u64;
    let pb = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(total)
    } else {
        indicatif::ProgressBar::hidden()
    };
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "sweep [{bar:40}] {pos}/{len} backtests ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let report = sweep::run_sweep(&spec, &series, &|| pb.inc(1))?;
    pb.finish_and_clear();
    let dir = args.out.as_deref().unwrap_or(Path::new("."));
    let written = write_outputs(dir, &report, &spec.grid)
        .with_context(|| format!("writing outputs to {}", dir.display()))?;
    if args.json {
        let printed = Printed {
            random: args.random,
            seed: args.seed,
            report: &report,
        };
        println!("{}", serde_json::to_string(&printed)?);
    } else {
        print!("{}", summary_text(&report));
        println!("wrote {}", written.join(", "));
    }
    Ok(())
}

/// Writes the sweep's files into `dir`; returns their paths.
fn write_outputs(dir: &Path, report: &SweepReport, grid: &Grid) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let path = dir.join("results.csv");
    write_results(&path, report, grid)?;
    written.push(path.display().to_string());
    if let Some(wf) = &report.walk_forward {
        let path = dir.join("walk_forward.csv");
        write_folds(&path, report, grid)?;
        written.push(path.display().to_string());
        let path = dir.join("oos_equity.csv");
        let mut w = csv::Writer::from_path(&path)?;
        w.write_record(["ts", "equity", "buy_hold_equity"])?;
        for (ts, e, h) in &wf.curve {
            w.write_record([ts.to_string(), format!("{e:.6}"), format!("{h:.6}")])?;
        }
        w.flush()?;
        written.push(path.display().to_string());
        let path = dir.join("oos_equity.png");
        plot::oos_equity(&path, wf)?;
        written.push(path.display().to_string());
    }
    if let Some(cells) = plot::heatmap_cells(report, grid) {
        let path = dir.join("heatmap.png");
        let what = if report.walk_forward.is_some() {
            "mean in-sample"
        } else {
            "whole series"
        };
        let title = format!("{} {} ({what})", report.strategy, report.metric.name());
        plot::heatmap(&path, grid, &cells, &title)?;
        written.push(path.display().to_string());
    }
    Ok(written)
}

/// The metric columns of a CSV row.
fn metric_cells(m: Option<&sweep::Metrics>) -> Vec<String> {
    match m {
        Some(m) => vec![
            m.return_pct.to_string(),
            m.annual_return_pct.to_string(),
            m.sharpe.to_string(),
            m.max_drawdown_pct.to_string(),
            m.calmar.to_string(),
            m.trades.to_string(),
        ],
        None => vec![String::new(); 6],
    }
}

const METRIC_COLUMNS: [&str; 6] = [
    "return_pct",
    "annual_return_pct",
    "sharpe",
    "max_drawdown_pct",
    "calmar",
    "trades",
];

/// `results.csv`: one row per trial (per fold with walk-forward, `fold` = `all` without):
/// its parameters, whether the strategy accepted them, the ranking metric and the metrics.
fn write_results(path: &Path, report: &SweepReport, grid: &Grid) -> Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    let mut header = vec!["fold".to_string(), "trial".to_string()];
    header.extend(grid.params.iter().map(|p| p.name.clone()));
    header.extend(["valid", "metric"].map(String::from));
    header.extend(METRIC_COLUMNS.map(String::from));
    header.push("invalid_reason".into());
    w.write_record(&header)?;
    let selections: Vec<(String, &sweep::Selection)> = match (&report.whole, &report.walk_forward) {
        (Some(s), _) => vec![("all".into(), s)],
        (None, Some(wf)) => wf
            .folds
            .iter()
            .enumerate()
            .map(|(i, f)| (i.to_string(), &f.in_sample))
            .collect(),
        _ => Vec::new(),
    };
    for (fold, sel) in selections {
        for t in &sel.trials {
            let mut row = vec![fold.clone(), t.index.to_string()];
            row.extend(grid.combo(t.index).into_iter().map(|(_, v)| v));
            row.push(t.valid.to_string());
            row.push(t.score.map(|s| s.to_string()).unwrap_or_default());
            row.extend(metric_cells(t.metrics.as_ref()));
            row.push(t.invalid_reason.clone().unwrap_or_default());
            w.write_record(&row)?;
        }
    }
    w.flush()?;
    Ok(())
}

/// `walk_forward.csv`: one row per fold: its in-sample and out-of-sample bars, the best
/// in-sample parameters, their metrics in and out of sample, buy-and-hold out of sample and
/// the in-sample deflated Sharpe ratio.
fn write_folds(path: &Path, report: &SweepReport, grid: &Grid) -> Result<()> {
    let Some(wf) = &report.walk_forward else {
        return Ok(());
    };
    let mut w = csv::Writer::from_path(path)?;
    let mut header: Vec<String> = [
        "fold",
        "is_from_ts",
        "is_to_ts",
        "is_bars",
        "oos_from_ts",
        "oos_to_ts",
        "oos_bars",
    ]
    .map(String::from)
    .to_vec();
    header.extend(grid.params.iter().map(|p| p.name.clone()));
    header.extend(METRIC_COLUMNS.map(|c| format!("is_{c}")));
    header.extend(METRIC_COLUMNS.map(|c| format!("oos_{c}")));
    header.extend(["oos_buy_hold_return_pct", "is_deflated_sharpe", "is_trials"].map(String::from));
    w.write_record(&header)?;
    for (i, f) in wf.folds.iter().enumerate() {
        let (is, oos) = (&f.in_sample.span, &f.out_of_sample);
        let mut row = vec![i.to_string()];
        for v in [
            is.from_ts,
            is.to_ts,
            is.bars as i64,
            oos.from_ts,
            oos.to_ts,
            oos.bars as i64,
        ] {
            row.push(v.to_string());
        }
        row.extend(
            grid.combo(f.in_sample.best.index)
                .into_iter()
                .map(|(_, v)| v),
        );
        row.extend(metric_cells(f.in_sample.best.metrics.as_ref()));
        row.extend(metric_cells(Some(&f.out_of_sample_metrics)));
        row.push(f.buy_hold_return_pct.to_string());
        let d = &f.in_sample.deflated_sharpe;
        row.push(d.dsr.map(|v| v.to_string()).unwrap_or_default());
        row.push(d.trials.to_string());
        w.write_record(&row)?;
    }
    w.flush()?;
    Ok(())
}

/// `k=v k=v` of a trial's parameters.
fn params_text(p: &std::collections::BTreeMap<String, String>) -> String {
    p.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `0.123` or `n/a`.
fn opt(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.3}"))
}

/// The human summary.
fn summary_text(r: &SweepReport) -> String {
    let mut s = format!(
        "sweep {} over {} bars ({}): grid {}, {} trials ({} valid, {} refused by the strategy), metric {}, fill model {}, {} threads\n",
        r.strategy,
        r.bars,
        r.data,
        r.grid_size,
        r.trials,
        r.valid_trials,
        r.invalid_trials,
        r.metric.name(),
        r.fill_model,
        r.threads
    );
    let line = |m: &sweep::Metrics| {
        format!(
            "return {:+.2} %, sharpe {:.2}, max drawdown {:.2} %, calmar {:.2}, {} trades",
            m.return_pct, m.sharpe, m.max_drawdown_pct, m.calmar, m.trades
        )
    };
    let dsr = |d: &sweep::DeflatedSharpe| {
        format!(
            "deflated Sharpe {} (PSR {}; best of {} trials, expected best per-bar Sharpe of luck {:.4} vs {:.4})",
            opt(d.dsr),
            opt(d.psr),
            d.trials,
            d.expected_max_sharpe_per_bar,
            d.sharpe_per_bar
        )
    };
    if let Some(w) = &r.whole {
        if let Some(m) = &w.best.metrics {
            s += &format!("best: {}: {}\n", params_text(&w.best.params), line(m));
        }
        s += &format!("{}\n", dsr(&w.deflated_sharpe));
    }
    if let Some(wf) = &r.walk_forward {
        for (i, f) in wf.folds.iter().enumerate() {
            s += &format!("fold {i}: best in-sample {}\n", params_text(&f.best_params));
            if let Some(m) = &f.in_sample.best.metrics {
                s += &format!("  in-sample      {}\n", line(m));
            }
            s += &format!(
                "  out-of-sample  {} (buy & hold {:+.2} %)\n",
                line(&f.out_of_sample_metrics),
                f.buy_hold_return_pct
            );
            s += &format!("  {}\n", dsr(&f.in_sample.deflated_sharpe));
        }
        s += &format!(
            "stitched out-of-sample: {} (PSR {}); buy & hold {:+.2} %\nmean sharpe in-sample {:.2} vs out-of-sample {:.2}\n",
            line(&wf.out_of_sample),
            opt(wf.out_of_sample_psr),
            wf.buy_hold.return_pct,
            wf.mean_in_sample_sharpe,
            wf.mean_out_of_sample_sharpe
        );
    }
    s
}

/// `--bench`: the sweep on one thread, then on `spec.threads`; aggregate bars/s of each (bars
/// replayed by all trials over wall time) and the ratio. Refuses to report when the two
/// results differ.
fn bench(spec: &SweepSpec, series: &crate::connectors::Series, json: bool) -> Result<()> {
    let mut one = spec.clone();
    one.threads = 1;
    let timed = |s: &SweepSpec| -> Result<(SweepReport, f64)> {
        let t = Instant::now();
        let r = sweep::run_sweep(s, series, &|| {})?;
        Ok((r, t.elapsed().as_secs_f64()))
    };
    let (r1, s1) = timed(&one)?;
    let (rn, sn) = timed(spec)?;
    let same = SweepReport {
        threads: rn.threads,
        ..r1.clone()
    };
    if serde_json::to_string(&same)? != serde_json::to_string(&rn)? {
        bail!(
            "the sweep on 1 and on {} threads gave different results",
            rn.threads
        );
    }
    let rate = |r: &SweepReport, s: f64| r.bars_replayed as f64 / s.max(1e-9);
    let (b1, bn) = (rate(&r1, s1), rate(&rn, sn));
    if json {
        println!(
            "{}",
            serde_json::json!({"bench": "sweep", "strategy": r1.strategy, "trials": r1.trials,
                "bars_replayed": r1.bars_replayed, "threads": rn.threads,
                "one_thread_bars_per_s": b1, "threads_bars_per_s": bn, "speedup": bn / b1.max(1e-9),
                "one_thread_s": s1, "threads_s": sn})
        );
    } else {
        println!(
            "sweep throughput, {}, {} trials, {} bars replayed each run\n1 thread:  {b1:.0} bars/s ({s1:.2} s)\n{} threads: {bn:.0} bars/s ({sn:.2} s)\nspeedup {:.2}x",
            r1.strategy,
            r1.trials,
            r1.bars_replayed,
            rn.threads,
            bn / b1.max(1e-9)
        );
    }
    Ok(())
}
