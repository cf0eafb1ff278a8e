//! What a run leaves behind: the summary table, `trades.csv`, `equity.csv` and `equity.png`.

use std::io::Write;
use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::engine::{Recording, Summary};

/// A run's output files could not be written. Each variant names the file; the run itself
/// has completed, so fixing the folder (space, permissions) and running again is enough.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The output folder could not be created, or a file in it created, written or flushed.
    #[error("{path}: {error}")]
    Io {
        /// The folder or file that could not be written.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// `trades.csv` could not be created or a row written to it.
    #[error("{path}: {error}")]
    Csv {
        /// The path of `trades.csv`.
        path: String,
        /// The CSV writer's error (usually an I/O error underneath).
        error: csv::Error,
    },
    /// The equity chart could not be drawn or saved as PNG.
    #[error("{path}: drawing failed: {error}")]
    Plot {
        /// The path of the PNG.
        path: String,
        /// What the plotting backend said.
        error: String,
    },
}

/// The human summary, one aligned `key  value` per line.
pub fn summary_table(s: &Summary) -> String {
    let rows: Vec<(&str, String)> = vec![
        ("mode", format!("{:?}", s.mode).to_lowercase()),
        ("strategy", s.strategy.clone()),
        ("data", s.data.clone()),
        ("pair", s.pair.clone()),
        ("bars", s.bars.to_string()),
        ("skipped rows", s.skipped_rows.to_string()),
        (
            "gaps (missing bars)",
            format!("{} ({})", s.gaps, s.missing_bars),
        ),
        ("trades", s.trades.to_string()),
        (
            "risk verdicts",
            format!(
                "{} approved, {} resized, {} refused{}",
                s.risk.approved,
                s.risk.resized,
                s.risk.refused,
                if s.risk.refused_by_reason.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({})",
                        s.risk
                            .refused_by_reason
                            .iter()
                            .map(|(k, v)| format!("{k}: {v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ),
        ),
        (
            "kill switch",
            match (&s.kill_switch.reason, s.kill_switch.tripped_at) {
                (Some(r), Some(t)) => format!(
                    "{:?} since {} — {r}",
                    s.kill_switch.state,
                    chrono::DateTime::from_timestamp(t, 0)
                        .map(|d| d.to_rfc3339())
                        .unwrap_or_default()
                ),
                _ => format!("{:?}", s.kill_switch.state),
            },
        ),
        ("start equity", format!("{:.2}", s.start_equity)),
        ("end equity", format!("{:.2}", s.end_equity)),
        ("return", format!("{:+.2} %", s.return_pct)),
        ("buy & hold", format!("{:+.2} %", s.buy_hold_return_pct)),
        ("max drawdown", format!("{:.2} %", s.max_drawdown_pct)),
        ("sharpe", format!("{:.2}", s.sharpe)),
        ("fill model", s.fill_model.to_string()),
        ("fees paid", format!("{:.2}", s.fees_paid)),
        (
            "gas paid",
            format!("{:.2} ({:.6} native)", s.gas_paid, s.gas_paid_native),
        ),
        (
            "elapsed",
            format!("{:.3} s ({:.0} bars/s)", s.elapsed_s, s.bars_per_s),
        ),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out: String = rows
        .iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect();
    out.push_str(&monthly_table(&s.monthly_returns));
    out
}

/// The monthly returns as a year × month grid in percent, with each year's compounded
/// return; empty without months.
fn monthly_table(months: &[crate::engine::MonthlyReturn]) -> String {
    if months.is_empty() {
        return String::new();
    }
    let mut out = String::from("monthly returns (%)\nyear ");
    for m in [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ] {
        out.push_str(&format!("{m:>7}"));
    }
    out.push_str("   year\n");
    let mut rows: std::collections::BTreeMap<&str, [Option<f64>; 12]> = Default::default();
    for m in months {
        let (year, month) = m.month.split_at(4);
        if let Ok(i) = month.trim_start_matches('-').parse::<usize>()
            && (1..=12).contains(&i)
        {
            rows.entry(year).or_insert([None; 12])[i - 1] = Some(m.return_pct);
        }
    }
    for (year, cells) in rows {
        out.push_str(year);
        out.push(' ');
        let mut growth = 1.0;
        for c in cells {
            match c {
                Some(r) => {
                    growth *= 1.0 + r / 100.0;
                    out.push_str(&format!("{r:>+7.1}"));
                }
                None => out.push_str(&format!("{:>7}", "")),
            }
        }
        out.push_str(&format!("{:>+7.1}\n", (growth - 1.0) * 100.0));
    }
    out
}

/// Writes `trades.csv`, `equity.csv` and `equity.png` ([`plot_equity`], drawn as `options`
/// say) into `dir` (created if missing).
/// `start_equity` (whole quote tokens) sizes the buy-and-hold comparison: that much put into the
/// base token at the first recorded price.
///
/// `trades.csv` has one row per fill (just the header when there were none); `equity.csv` one
/// row per bar: `ts` (unix seconds), `price` (close, quote per base token), `equity` and
/// `buy_hold_equity` (whole quote tokens), plus `<name>_equity` for each baseline run over the
/// same bars.
///
/// # Errors
/// - [`OutputError::Io`] when `dir` or a file in it cannot be created or written;
/// - [`OutputError::Csv`] when a row of `trades.csv` cannot be written;
/// - [`OutputError::Plot`] as [`plot_equity`].
pub fn write_outputs(
    dir: &Path,
    rec: &Recording,
    start_equity: f64,
    options: PlotOptions,
) -> Result<(), OutputError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |error| OutputError::Io {
            path: path.clone(),
            error,
        }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;

    let trades = dir.join("trades.csv");
    let csv_err = |error| OutputError::Csv {
        path: trades.display().to_string(),
        error,
    };
    let mut w = csv::Writer::from_path(&trades).map_err(csv_err)?;
    for t in &rec.trades {
        w.serialize(t).map_err(csv_err)?;
    }
    if rec.trades.is_empty() {
        w.write_record([
            "id",
            "ts",
            "side",
            "sell",
            "buy",
            "amount_in",
            "amount_out",
            "price",
            "fee_quote",
            "gas_quote",
            "gas_native_wei",
        ])
        .map_err(csv_err)?;
    }
    w.flush().map_err(io(&trades))?;

    let equity = dir.join("equity.csv");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&equity).map_err(io(&equity))?);
    let hold = buy_and_hold(rec, start_equity);
    // Baselines ran over the same bars: one column each, row for row.
    let extra: Vec<&(String, Vec<(i64, f64)>)> = rec
        .baselines
        .iter()
        .filter(|(_, m)| m.len() == rec.marks.len())
        .collect();
    let mut header = "ts,price,equity,buy_hold_equity".to_string();
    for (name, _) in &extra {
        header.push_str(&format!(",{name}_equity"));
    }
    writeln!(f, "{header}").map_err(io(&equity))?;
    for (i, (ts, price, eq)) in rec.marks.iter().enumerate() {
        let mut row = format!("{ts},{price},{eq:.6},{:.6}", hold(*price));
        for (_, m) in &extra {
            row.push_str(&format!(",{:.6}", m[i].1));
        }
        writeln!(f, "{row}").map_err(io(&equity))?;
    }
    f.flush().map_err(io(&equity))?;

    plot_equity(&dir.join("equity.png"), rec, start_equity, options)
}

/// Equity of putting `start_equity` into the base token at the first recorded price.
fn buy_and_hold(rec: &Recording, start_equity: f64) -> impl Fn(f64) -> f64 {
    let first_price = rec.marks.first().map(|m| m.1).unwrap_or(0.0);
    move |price| {
        if first_price > 0.0 {
            start_equity * price / first_price
        } else {
            0.0
        }
    }
}

/// The curves of the equity plot in (UTC day, whole quote tokens): the strategy's equity,
/// buy-and-hold and any baselines, with the date range and the top of the value axis.
struct EquityCurves {
    strat: Vec<(f64, f64)>,
    hold: Vec<(f64, f64)>,
    baselines: Vec<(String, Vec<(f64, f64)>)>,
    /// First and last day (one day from the first when the marks span no time; 0..1 without
    /// marks).
    x: (f64, f64),
    /// 5 % above the highest value of any curve (and at least 1.05).
    ymax: f64,
}

impl EquityCurves {
    /// 95 % of the lowest positive value of any curve (at least a millionth of `ymax`): the
    /// bottom of a log axis, which cannot reach zero.
    fn ymin_positive(&self) -> f64 {
        let min = self
            .strat
            .iter()
            .chain(&self.hold)
            .chain(self.baselines.iter().flat_map(|(_, v)| v))
            .map(|p| p.1)
            .filter(|v| *v > 0.0)
            .fold(f64::MAX, f64::min);
        (min * 0.95).clamp(self.ymax * 1e-6, self.ymax * 0.5)
    }

    /// The curves of `rec`, buy-and-hold from `start_equity`.
    fn of(rec: &Recording, start_equity: f64) -> Self {
        let hold_at = buy_and_hold(rec, start_equity);
        let hold: Vec<(f64, f64)> = rec
            .marks
            .iter()
            .map(|(ts, p, _)| (*ts as f64 / 86_400.0, hold_at(*p)))
            .collect();
        let strat: Vec<(f64, f64)> = rec
            .marks
            .iter()
            .map(|(ts, _, e)| (*ts as f64 / 86_400.0, *e))
            .collect();
        let (x0, x1) = match (strat.first(), strat.last()) {
            (Some(a), Some(b)) if b.0 > a.0 => (a.0, b.0),
            (Some(a), _) => (a.0, a.0 + 1.0),
            _ => (0.0, 1.0),
        };
        let baselines: Vec<(String, Vec<(f64, f64)>)> = rec
            .baselines
            .iter()
            .map(|(name, m)| {
                (
                    name.clone(),
                    m.iter()
                        .map(|(ts, e)| (*ts as f64 / 86_400.0, *e))
                        .collect(),
                )
            })
            .collect();
        let ymax = strat
            .iter()
            .chain(&hold)
            .chain(baselines.iter().flat_map(|(_, v)| v))
            .map(|p| p.1)
            .fold(1.0f64, f64::max)
            * 1.05;
        Self {
            strat,
            hold,
            baselines,
            x: (x0, x1),
            ymax,
        }
    }
}

static FONT: Once = Once::new();

/// How [`plot_equity`] draws.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlotOptions {
    /// The equity panel's value axis on a log scale (`--log-scale`): equal heights are equal
    /// percentage moves, so a long run's early years stay readable.
    pub log_scale: bool,
}

/// The percentage fall of each point of `curve` below its running peak (0 at a new peak,
/// −25 for a quarter below it), as (day, percent) points.
fn drawdowns(curve: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut peak = f64::MIN;
    curve
        .iter()
        .map(|&(x, v)| {
            peak = peak.max(v);
            (
                x,
                if peak > 0.0 {
                    (v / peak - 1.0) * 100.0
                } else {
                    0.0
                },
            )
        })
        .collect()
}

/// Registers the embedded font once: rendering text needs no system font packages. Every
/// chart the command line draws calls it first.
pub(crate) fn register_font() {
    FONT.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// Draws the series labels of `chart` in a white box at its upper left.
///
/// # Errors
/// [`OutputError::Plot`] (through `perr`) when the box cannot be drawn.
pub(crate) fn draw_legend<'a, 'b: 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, BitMapBackend<'b>, Cartesian2d<X, Y>>,
    perr: &dyn Fn(&dyn std::fmt::Display) -> OutputError,
) -> Result<(), OutputError> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| perr(&e))
}

/// The error of drawing `path`, for `map_err`.
pub(crate) fn plot_error(path: &Path) -> impl Fn(&dyn std::fmt::Display) -> OutputError + '_ {
    move |e| OutputError::Plot {
        path: path.display().to_string(),
        error: e.to_string(),
    }
}

/// Formats a day number (days since 1970-01-01) as `YYYY-MM`.
fn month_label(d: &f64) -> String {
    chrono::DateTime::from_timestamp((*d * 86_400.0) as i64, 0)
        .map(|t| t.format("%Y-%m").to_string())
        .unwrap_or_default()
}

/// Draws `path` (a 1200×1000 PNG) in three panels over UTC dates: the equity curve against
/// buy-and-hold (and any baselines) in whole quote tokens, on a log scale with
/// `options.log_scale`; the drawdown of each, percent below its running peak; and the price
/// with every buy (green ▲) and sell (red ▼) marked at its fill. `start_equity` as for
/// [`write_outputs`].
///
/// # Errors
/// [`OutputError::Plot`] when the chart cannot be drawn or the PNG cannot be written.
pub fn plot_equity(
    path: &Path,
    rec: &Recording,
    start_equity: f64,
    options: PlotOptions,
) -> Result<(), OutputError> {
    register_font();
    let perr = plot_error(path);
    let curves = EquityCurves::of(rec, start_equity);
    let root = BitMapBackend::new(path, (1200, 1000)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| perr(&e))?;
    let (top, rest) = root.split_vertically(520);
    let (middle, bottom) = rest.split_vertically(220);
    if options.log_scale {
        let ymin = curves.ymin_positive();
        equity_panel(&top, &curves, (ymin..curves.ymax).log_scale(), &perr)?;
    } else {
        equity_panel(&top, &curves, 0.0..curves.ymax, &perr)?;
    }
    drawdown_panel(&middle, &curves, &perr)?;
    price_panel(&bottom, rec, curves.x, &perr)?;
    root.present().map_err(|e| perr(&e))?;
    Ok(())
}

/// The equity panel: strategy, buy-and-hold and baselines against `y` (a linear or log axis).
fn equity_panel<Y>(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    c: &EquityCurves,
    y: Y,
    perr: &dyn Fn(&dyn std::fmt::Display) -> OutputError,
) -> Result<(), OutputError>
where
    Y: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    Y::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .caption("Equity vs buy & hold (quote units)", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(80)
        .build_cartesian_2d(c.x.0..c.x.1, y)
        .map_err(|e| perr(&e))?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_label_formatter(&month_label)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|e| perr(&e))?;
    chart
        .draw_series(LineSeries::new(c.strat.clone(), BLUE.stroke_width(2)))
        .map_err(|e| perr(&e))?
        .label("strategy")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(c.hold.clone(), GREY))
        .map_err(|e| perr(&e))?
        .label("buy & hold")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], GREY));
    for (i, (name, series)) in c.baselines.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(series.clone(), color))
            .map_err(|e| perr(&e))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color));
    }
    draw_legend(&mut chart, perr)
}

/// Buy-and-hold's colour.
const GREY: RGBColor = RGBColor(160, 160, 160);
/// The baselines' colours, in turn.
const PALETTE: [RGBColor; 3] = [
    RGBColor(220, 120, 0),
    RGBColor(0, 150, 70),
    RGBColor(170, 0, 170),
];

/// The drawdown panel: the strategy's and buy-and-hold's percentage below their peaks.
fn drawdown_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    c: &EquityCurves,
    perr: &dyn Fn(&dyn std::fmt::Display) -> OutputError,
) -> Result<(), OutputError> {
    let (strat, hold) = (drawdowns(&c.strat), drawdowns(&c.hold));
    let low = strat
        .iter()
        .chain(&hold)
        .map(|p| p.1)
        .fold(-1.0f64, f64::min)
        * 1.05;
    let mut chart = ChartBuilder::on(area)
        .caption("Drawdown (% below peak)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(80)
        .build_cartesian_2d(c.x.0..c.x.1, low..0.0)
        .map_err(|e| perr(&e))?;
    chart
        .configure_mesh()
        .x_label_formatter(&month_label)
        .y_label_formatter(&|v| format!("{v:.0} %"))
        .draw()
        .map_err(|e| perr(&e))?;
    chart
        .draw_series(AreaSeries::new(strat, 0.0, BLUE.mix(0.25)).border_style(BLUE))
        .map_err(|e| perr(&e))?;
    chart
        .draw_series(LineSeries::new(hold, GREY))
        .map_err(|e| perr(&e))?;
    Ok(())
}

/// The price panel: the close of every mark, each buy and sell marked at its fill price.
fn price_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    rec: &Recording,
    x: (f64, f64),
    perr: &dyn Fn(&dyn std::fmt::Display) -> OutputError,
) -> Result<(), OutputError> {
    let day = |ts: i64| ts as f64 / 86_400.0;
    let price: Vec<(f64, f64)> = rec.marks.iter().map(|(ts, p, _)| (day(*ts), *p)).collect();
    let (lo, hi) = price
        .iter()
        .map(|p| p.1)
        .chain(rec.trades.iter().map(|t| t.price))
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if lo < hi {
        (lo * 0.95, hi * 1.05)
    } else {
        (0.0, 1.0)
    };
    let mut chart = ChartBuilder::on(area)
        .caption("Price, buys ▲ and sells ▼", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(x.0..x.1, lo..hi)
        .map_err(|e| perr(&e))?;
    chart
        .configure_mesh()
        .x_desc("date (UTC)")
        .x_label_formatter(&month_label)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|e| perr(&e))?;
    chart
        .draw_series(LineSeries::new(price, BLACK.mix(0.6)))
        .map_err(|e| perr(&e))?;
    let green = RGBColor(0, 160, 0);
    let red = RGBColor(210, 0, 0);
    chart
        .draw_series(rec.trades.iter().map(|t| {
            let at = (day(t.ts), t.price);
            if t.side == "buy" {
                TriangleMarker::new(at, 6, green.filled())
            } else {
                TriangleMarker::new(at, -6, red.filled())
            }
        }))
        .map_err(|e| perr(&e))?;
    Ok(())
}
