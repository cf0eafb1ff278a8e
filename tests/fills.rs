//! Fill models and reports (issue 14): `--fill next_open` trades a decision made on a bar's
//! close at the next bar's open; every summary names its fill model; the summary's monthly
//! returns compound to the run's return; equity.png has its three panels, on a log scale on
//! request.

mod common;

use std::path::{Path, PathBuf};

use common::json_of;

/// `defai` with `args` and no extra environment ([`common::defai`]).
fn defai(args: &[&str]) -> std::process::Output {
    common::defai(args, &[])
}

/// `bars` hourly bars from 2024-01-01 (about three months for 2,200) whose every open sits
/// 1.5 % above the previous close: a fill at the next open is told apart from one at the
/// decision's close by more than the fee and price impact. Returns the path and each bar's
/// `(ts, open, close)`.
fn gapped_csv(dir: &Path, bars: usize) -> (PathBuf, Vec<(i64, f64, f64)>) {
    let mut text = String::from("timestamp,open,high,low,close,volume\n");
    let mut rows = Vec::new();
    let mut prev_close: f64 = 2000.0;
    for i in 0..bars {
        let ts = 1_704_067_200 + i as i64 * 3600;
        let open = prev_close * 1.015;
        let close = 2000.0 + 300.0 * ((i as f64) / 15.0).sin();
        let (hi, lo) = (open.max(close), open.min(close));
        text.push_str(&format!("{ts},{open},{hi},{lo},{close},1\n"));
        rows.push((ts, open, close));
        prev_close = close;
    }
    let path = dir.join("gapped.csv");
    std::fs::write(&path, text).unwrap();
    (path, rows)
}

/// A config whose pool is deep enough (10⁹ quote units) that a fill's price is its pool
/// price and the 0.3 % fee, nothing more.
fn deep_pool(dir: &Path) -> PathBuf {
    let path = dir.join("deep.toml");
    std::fs::write(&path, "[venue]\ndepth_quote = 1000000000.0\n").unwrap();
    path
}

/// Backtests ema_cross 3/8 over `data` on a [`deep_pool`] with `fill`, writing outputs into
/// `out`.
fn backtest(data: &Path, fill: &str, out: &Path, extra: &[&str]) -> serde_json::Value {
    let config = deep_pool(data.parent().unwrap());
    let mut args = vec![
        "backtest",
        "--json",
        "--config",
        config.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--param",
        "fast=3",
        "--param",
        "slow=8",
        "--fill",
        fill,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    json_of(&defai(&args))
}

/// `(ts, side, price)` of each row of `trades.csv` in `out`.
fn trades(out: &Path) -> Vec<(i64, String, f64)> {
    let mut r = csv::Reader::from_path(out.join("trades.csv")).unwrap();
    let h = r.headers().unwrap().clone();
    let col = |name: &str| h.iter().position(|c| c == name).unwrap();
    let (ts, side, price) = (col("ts"), col("side"), col("price"));
    r.records()
        .map(|row| {
            let row = row.unwrap();
            (
                row[ts].parse().unwrap(),
                row[side].to_string(),
                row[price].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn next_open_fills_a_decision_at_the_next_bars_open_and_close_at_its_own_close() {
    let dir = tempfile::tempdir().unwrap();
    let (data, rows) = gapped_csv(dir.path(), 2200);
    let at = |ts: i64| rows.iter().position(|r| r.0 == ts).unwrap();
    let (close_out, next_out) = (dir.path().join("close"), dir.path().join("next"));
    let by_close = backtest(&data, "close", &close_out, &[]);
    let by_next = backtest(&data, "next_open", &next_out, &[]);
    assert_eq!(by_close["fill_model"], "close");
    assert_eq!(by_next["fill_model"], "next_open");
    for (out, next) in [(&close_out, false), (&next_out, true)] {
        let fills = trades(out);
        assert!(fills.len() >= 10, "{} fills", fills.len());
        for (ts, side, price) in fills {
            let i = at(ts);
            let Some(following) = rows.get(i + 1) else {
                assert!(!next, "nothing fills after the last bar at its next open");
                continue;
            };
            let expected = if next { following.1 } else { rows[i].2 };
            // The fill price is within the fee (0.3 %) and a price impact too small to see
            // of the expected pool price, and 1.5 % from the other model's.
            let other = if next { rows[i].2 } else { following.1 };
            let off = (price / expected - 1.0).abs();
            assert!(
                off < 0.01,
                "{side} at {ts}: {price} vs {expected} (next_open: {next})"
            );
            assert!(
                (price / other - 1.0).abs() > off,
                "{side} at {ts}: {price} vs {expected}, other {other} (next_open: {next})"
            );
        }
    }
    // The decisions are the same; only their prices differ.
    let (a, b) = (trades(&close_out), trades(&next_out));
    let decisions = |t: &[(i64, String, f64)]| -> Vec<(i64, String)> {
        t.iter().map(|(ts, s, _)| (*ts, s.clone())).collect()
    };
    assert_eq!(decisions(&a)[..4], decisions(&b)[..4]);
    assert_ne!(by_close["return_pct"], by_next["return_pct"]);

    // An unknown fill model is an error naming it, in the config too.
    let out = defai(&[
        "backtest",
        "--fill",
        "vwap",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("vwap"));
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[venue]\nfill = \"vwap\"\n").unwrap();
    let out = defai(&["backtest", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("fill") && err.contains("line 2"), "{err}");
}

#[test]
fn monthly_returns_cover_every_month_and_compound_to_the_runs_return() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = gapped_csv(dir.path(), 2200);
    let v = backtest(&data, "close", &dir.path().join("out"), &[]);
    let months: Vec<(String, f64)> = v["monthly_returns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["month"].as_str().unwrap().to_string(),
                m["return_pct"].as_f64().unwrap(),
            )
        })
        .collect();
    // 2,200 hours from 2024-01-01: January to March 2024.
    let names: Vec<&str> = months.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(
        names,
        ["2024-01", "2024-02", "2024-03", "2024-04"][..names.len()]
    );
    assert_eq!(names.len(), 4, "2,200 h reach into April: {names:?}");
    let growth: f64 = months.iter().map(|m| 1.0 + m.1 / 100.0).product();
    let total = v["return_pct"].as_f64().unwrap();
    assert!(
        ((growth - 1.0) * 100.0 - total).abs() < 1e-6,
        "{months:?} vs {total}"
    );
    // The table prints them as a grid row for 2024.
    let out = defai(&[
        "backtest",
        "--data",
        data.to_str().unwrap(),
        "--param",
        "fast=3",
        "--param",
        "slow=8",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("fill model") && text.contains("close"),
        "{text}"
    );
    assert!(text.contains("monthly returns (%)"), "{text}");
    let row = text.lines().find(|l| l.starts_with("2024 ")).unwrap();
    assert_eq!(row.split_whitespace().count(), 1 + 4 + 1, "{row}");
}

/// Width and height of a PNG, from its IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let png = std::fs::read(path).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let be = |i: usize| u32::from_be_bytes(png[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn equity_png_has_its_three_panels_and_a_log_scale_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = gapped_csv(dir.path(), 800);
    let (linear, log) = (dir.path().join("linear"), dir.path().join("log"));
    backtest(&data, "close", &linear, &[]);
    backtest(&data, "close", &log, &["--log-scale"]);
    for d in [&linear, &log] {
        assert_eq!(png_size(&d.join("equity.png")), (1200, 1000));
    }
    assert_ne!(
        std::fs::read(linear.join("equity.png")).unwrap(),
        std::fs::read(log.join("equity.png")).unwrap(),
        "the log axis draws another picture"
    );
}
