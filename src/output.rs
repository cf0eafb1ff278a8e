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
    rows.iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

/// Writes `trades.csv`, `equity.csv` and `equity.png` into `dir` (created if missing).
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
pub fn write_outputs(dir: &Path, rec: &Recording, start_equity: f64) -> Result<(), OutputError> {
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

    plot_equity(&dir.join("equity.png"), rec, start_equity)
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

/// Draws `path` (a 1200×600 PNG): the equity curve against buy-and-hold (and any baselines),
/// in whole quote tokens over UTC dates; `start_equity` as for [`write_outputs`].
///
/// # Errors
/// [`OutputError::Plot`] when the chart cannot be drawn or the PNG cannot be written.
pub fn plot_equity(path: &Path, rec: &Recording, start_equity: f64) -> Result<(), OutputError> {
    FONT.call_once(|| {
        // Embedded font: rendering text needs no system font packages.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
    let perr = |e: &dyn std::fmt::Display| OutputError::Plot {
        path: path.display().to_string(),
        error: e.to_string(),
    };
    let EquityCurves {
        strat,
        hold,
        baselines,
        x: (x0, x1),
        ymax,
    } = EquityCurves::of(rec, start_equity);

    let root = BitMapBackend::new(path, (1200, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| perr(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Equity vs buy & hold (quote units)", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, 0.0..ymax)
        .map_err(|e| perr(&e))?;
    chart
        .configure_mesh()
        .x_desc("date (UTC)")
        .x_label_formatter(&|d| {
            chrono::DateTime::from_timestamp((*d * 86_400.0) as i64, 0)
                .map(|t| t.format("%Y-%m").to_string())
                .unwrap_or_default()
        })
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|e| perr(&e))?;
    chart
        .draw_series(LineSeries::new(strat, BLUE.stroke_width(2)))
        .map_err(|e| perr(&e))?
        .label("strategy")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(hold, RGBColor(160, 160, 160)))
        .map_err(|e| perr(&e))?
        .label("buy & hold")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RGBColor(160, 160, 160)));
    let palette = [
        RGBColor(220, 120, 0),
        RGBColor(0, 150, 70),
        RGBColor(170, 0, 170),
    ];
    for (i, (name, series)) in baselines.into_iter().enumerate() {
        let color = palette[i % palette.len()];
        chart
            .draw_series(LineSeries::new(series, color))
            .map_err(|e| perr(&e))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| perr(&e))?;
    root.present().map_err(|e| perr(&e))?;
    Ok(())
}
