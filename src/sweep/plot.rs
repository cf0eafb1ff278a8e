//! The sweep's pictures (feature `cli`): the heatmap of the metric over two varying parameters
//! and the stitched out-of-sample equity against buy-and-hold.

use std::path::Path;

use plotters::prelude::*;

use super::{Grid, SweepReport, WalkForward};
use crate::output::{OutputError, draw_legend, plot_error, register_font};

/// The heatmap's cells: for each trial, its column (value of the first varying parameter),
/// row (value of the second) and score (without walk-forward: over the whole series; with it:
/// the mean in-sample score over the folds), `None` for an invalid trial. `None` unless exactly
/// two parameters vary.
pub fn heatmap_cells(
    report: &SweepReport,
    grid: &Grid,
) -> Option<Vec<(usize, usize, Option<f64>)>> {
    let varying: Vec<usize> = (0..grid.params.len())
        .filter(|&i| grid.params[i].values.len() > 1)
        .collect();
    let [a, b] = varying[..] else {
        return None;
    };
    let selections: Vec<&super::Selection> = match (&report.whole, &report.walk_forward) {
        (Some(w), _) => vec![w],
        (None, Some(wf)) => wf.folds.iter().map(|f| &f.in_sample).collect(),
        _ => return None,
    };
    let first = selections.first()?;
    Some(
        (0..first.trials.len())
            .map(|t| {
                let digits = grid.digits(first.trials[t].index);
                let scores: Option<Vec<f64>> =
                    selections.iter().map(|s| s.trials[t].score).collect();
                let mean = scores.map(|s| s.iter().sum::<f64>() / s.len().max(1) as f64);
                (digits[a], digits[b], mean)
            })
            .collect(),
    )
}

/// A colour from red (`t` = 0) through yellow to green (`t` = 1).
fn ramp(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let (r, g) = if t < 0.5 {
        (1.0, t * 2.0)
    } else {
        (2.0 - t * 2.0, 1.0)
    };
    RGBColor((r * 220.0) as u8, (g * 190.0) as u8, 60)
}

/// Draws `path` (a PNG): the trials' scores over the grid of the two varying parameters, red
/// (worst) to green (best), each cell labelled; grey cells are combinations the strategy
/// refused, white ones were not drawn (`--random`).
///
/// # Errors
/// [`OutputError::Plot`] when the chart cannot be drawn or saved.
pub fn heatmap(
    path: &Path,
    grid: &Grid,
    cells: &[(usize, usize, Option<f64>)],
    title: &str,
) -> Result<(), OutputError> {
    register_font();
    let perr = plot_error(path);
    let varying = grid.varying();
    let (xp, yp) = (varying[0], varying[1]);
    let (nx, ny) = (xp.values.len(), yp.values.len());
    let scores = cells.iter().filter_map(|c| c.2);
    let lo = scores.clone().fold(f64::INFINITY, f64::min);
    let hi = scores.fold(f64::NEG_INFINITY, f64::max);
    let root = BitMapBackend::new(path, (1000, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| perr(&e))?;
    // Segmented axes (0..n − 1 has n segments): each value is a cell, labelled at its centre.
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d((0..nx - 1).into_segmented(), (0..ny - 1).into_segmented())
        .map_err(|e| perr(&e))?;
    let label = |values: &[String], v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => values.get(*i).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(xp.name.as_str())
        .y_desc(yp.name.as_str())
        .x_labels(nx.min(25))
        .y_labels(ny.min(25))
        .x_label_formatter(&|v| label(&xp.values, v))
        .y_label_formatter(&|v| label(&yp.values, v))
        .draw()
        .map_err(|e| perr(&e))?;
    chart
        .draw_series(cells.iter().map(|&(x, y, s)| {
            let color = match s {
                Some(s) if hi > lo => ramp((s - lo) / (hi - lo)),
                Some(_) => ramp(1.0),
                None => RGBColor(200, 200, 200),
            };
            Rectangle::new(
                [
                    (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
                ],
                color.filled(),
            )
        }))
        .map_err(|e| perr(&e))?;
    if nx * ny <= 400 {
        chart
            .draw_series(cells.iter().filter_map(|&(x, y, s)| {
                s.map(|s| {
                    Text::new(
                        format!("{s:.2}"),
                        (SegmentValue::CenterOf(x), SegmentValue::CenterOf(y)),
                        ("sans-serif", 12),
                    )
                })
            }))
            .map_err(|e| perr(&e))?;
    }
    root.present().map_err(|e| perr(&e))?;
    Ok(())
}

/// Draws `path` (a 1200×600 PNG): the stitched out-of-sample equity against buy-and-hold over
/// the same bars, whole quote tokens over UTC dates.
///
/// # Errors
/// [`OutputError::Plot`] when the chart cannot be drawn or saved.
pub fn oos_equity(path: &Path, wf: &WalkForward) -> Result<(), OutputError> {
    register_font();
    let perr = plot_error(path);
    let day = |ts: i64| ts as f64 / 86_400.0;
    let strat: Vec<(f64, f64)> = wf.curve.iter().map(|c| (day(c.0), c.1)).collect();
    let hold: Vec<(f64, f64)> = wf.curve.iter().map(|c| (day(c.0), c.2)).collect();
    let (x0, x1) = match (strat.first(), strat.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => (a.0, b.0),
        (Some(a), _) => (a.0, a.0 + 1.0),
        _ => (0.0, 1.0),
    };
    let ys = || strat.iter().chain(&hold).map(|p| p.1);
    let ymax = ys().fold(1.0f64, f64::max) * 1.05;
    let ymin = ys().fold(ymax, f64::min) * 0.95;
    let root = BitMapBackend::new(path, (1200, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| perr(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Walk-forward: stitched out-of-sample equity vs buy & hold (quote units)",
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, ymin..ymax)
        .map_err(|e| perr(&e))?;
    chart
        .configure_mesh()
        .x_desc("date (UTC)")
        .x_label_formatter(&|d| {
            chrono::DateTime::from_timestamp((*d * 86_400.0) as i64, 0)
                .map(|t| t.format("%Y-%m-%d").to_string())
                .unwrap_or_default()
        })
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|e| perr(&e))?;
    let grey = RGBColor(160, 160, 160);
    chart
        .draw_series(LineSeries::new(strat, BLUE.stroke_width(2)))
        .map_err(|e| perr(&e))?
        .label("out-of-sample strategy")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(hold, grey))
        .map_err(|e| perr(&e))?
        .label("buy & hold")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], grey));
    for f in &wf.folds {
        let x = day(f.out_of_sample.from_ts);
        chart
            .draw_series(LineSeries::new([(x, ymin), (x, ymax)], grey.mix(0.4)))
            .map_err(|e| perr(&e))?;
    }
    draw_legend(&mut chart, &perr)?;
    root.present().map_err(|e| perr(&e))?;
    Ok(())
}
