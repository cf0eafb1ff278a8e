//! `defai sweep` end to end on generated data: the grid, walk-forward, the files, determinism
//! across runs and thread counts, and the errors a user can make.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

/// 3,000 hourly bars of a seeded random walk whose drift switches regime every 100–300 bars,
/// so an EMA crossover trades; written as `timestamp,open,high,low,close,volume`.
fn generated_data(dir: &Path) -> PathBuf {
    let mut rng = fastrand::Rng::with_seed(42);
    let mut text = String::from("timestamp,open,high,low,close,volume\n");
    let (mut price, mut drift, mut left) = (2000.0f64, 0.0f64, 0u32);
    for i in 0..3000i64 {
        if left == 0 {
            drift = (rng.f64() - 0.5) * 0.004;
            left = rng.u32(100..300);
        }
        left -= 1;
        let open = price;
        // A sum of uniforms: roughly normal noise, 0.5 % a bar.
        let noise = ((0..4).map(|_| rng.f64()).sum::<f64>() - 2.0) * 0.0087;
        price *= 1.0 + drift + noise;
        let (high, low) = (open.max(price) * 1.001, open.min(price) * 0.999);
        text.push_str(&format!(
            "{},{open:.4},{high:.4},{low:.4},{price:.4},{:.3}\n",
            1_700_000_000 + i * 3600,
            10.0 + rng.f64() * 5.0
        ));
    }
    let path = dir.join("gen.csv");
    std::fs::write(&path, text).unwrap();
    path
}

/// `defai sweep --json` of ema_cross over `data` with `extra` flags, writing into `out`.
fn sweep(data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "sweep",
        "--data",
        data.to_str().unwrap(),
        "--strategy",
        "ema_cross",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    common::defai(&args, &[])
}

const GRID: [&str; 4] = ["--param", "fast=5..20:5", "--param", "slow=10..40:10"];

fn walk_forward(data: &Path, out: &Path, threads: &str) -> (Value, String) {
    let mut extra = GRID.to_vec();
    extra.extend(["--walk-forward", "3", "--seed", "7", "--threads", threads]);
    let output = sweep(data, out, &extra);
    let v = common::json_of(&output);
    (v, String::from_utf8(output.stdout).unwrap())
}

fn non_empty(path: PathBuf) {
    let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    assert!(len > 0, "{} is missing or empty", path.display());
}

#[test]
fn walk_forward_sweep_runs_end_to_end_on_both_cores_with_the_same_json_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated_data(dir.path());
    let out = dir.path().join("out");
    let (v, text) = walk_forward(&data, &out, "2");
    // 4 × 4 grid; ema_cross refuses slow <= fast: (10,10) (15,10) (20,10) (20,20).
    assert_eq!(v["grid_size"], 16);
    assert_eq!(v["trials"], 16);
    assert_eq!(v["valid_trials"], 12);
    assert_eq!(v["invalid_trials"], 4);
    assert_eq!(v["threads"], 2, "both cores used");
    assert_eq!(v["bars"], 3000);
    let folds = v["walk_forward"]["folds"].as_array().unwrap();
    assert_eq!(folds.len(), 3);
    for (i, f) in folds.iter().enumerate() {
        assert_eq!(f["in_sample"]["span"]["first_bar"], 750 * i);
        assert_eq!(f["out_of_sample"]["first_bar"], 750 * (i + 1));
        assert_eq!(f["out_of_sample"]["bars"], 750);
        let fast: u64 = f["best_params"]["fast"].as_str().unwrap().parse().unwrap();
        let slow: u64 = f["best_params"]["slow"].as_str().unwrap().parse().unwrap();
        assert!([5, 10, 15, 20].contains(&fast) && [10, 20, 30, 40].contains(&slow));
        assert!(slow > fast, "a valid combination: {fast}/{slow}");
        for side in [
            &f["in_sample"]["best"]["metrics"],
            &f["out_of_sample_metrics"],
        ] {
            for key in ["sharpe", "return_pct", "max_drawdown_pct", "calmar"] {
                assert!(side[key].is_f64(), "{key} in {side}");
            }
        }
        assert_eq!(f["in_sample"]["trials"].as_array().unwrap().len(), 16);
        assert_eq!(f["in_sample"]["deflated_sharpe"]["trials"], 12);
        let dsr = f["in_sample"]["deflated_sharpe"]["dsr"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&dsr));
    }
    let wf = &v["walk_forward"];
    assert_eq!(wf["scheme"], "rolling");
    assert!(wf["out_of_sample"]["return_pct"].is_f64());
    assert!(wf["buy_hold"]["return_pct"].is_f64());
    assert_eq!(
        wf["out_of_sample"]["returns"], 2250,
        "three out-of-sample chunks"
    );
    for f in [
        "results.csv",
        "walk_forward.csv",
        "oos_equity.csv",
        "oos_equity.png",
        "heatmap.png",
    ] {
        non_empty(out.join(f));
    }
    let results = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(
        results.lines().count(),
        1 + 3 * 16,
        "a row per trial and fold"
    );
    let folds_csv = std::fs::read_to_string(out.join("walk_forward.csv")).unwrap();
    assert_eq!(folds_csv.lines().count(), 1 + 3);

    let (_, again) = walk_forward(&data, &dir.path().join("again"), "2");
    assert_eq!(text, again, "the same JSON for the same inputs and seed");
    let (one, _) = walk_forward(&data, &dir.path().join("one"), "1");
    assert_eq!(one["threads"], 1);
    let strip = |mut v: Value| {
        v["threads"] = Value::Null;
        v
    };
    assert_eq!(strip(one), strip(v), "one thread or two: the same results");
}

#[test]
fn the_best_in_sample_parameters_are_the_first_best_by_the_metric() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated_data(dir.path());
    for metric in ["sharpe", "return", "calmar"] {
        let mut extra = GRID.to_vec();
        extra.extend(["--walk-forward", "2", "--metric", metric]);
        let v = common::json_of(&sweep(&data, &dir.path().join(metric), &extra));
        let key = match metric {
            "return" => "return_pct",
            m => m,
        };
        for f in v["walk_forward"]["folds"].as_array().unwrap() {
            let trials = f["in_sample"]["trials"].as_array().unwrap();
            let scores: Vec<Option<f64>> =
                trials.iter().map(|t| t["metrics"][key].as_f64()).collect();
            let top = scores.iter().flatten().copied().fold(f64::MIN, f64::max);
            let first = scores.iter().position(|s| *s == Some(top)).unwrap();
            assert_eq!(
                f["in_sample"]["best"]["index"], trials[first]["index"],
                "{metric}"
            );
            assert_eq!(f["in_sample"]["best"]["score"].as_f64(), Some(top));
        }
    }
}

#[test]
fn a_whole_series_sweep_ranks_every_trial_and_draws_the_heatmap() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated_data(dir.path());
    let out = dir.path().join("out");
    let mut extra = GRID.to_vec();
    extra.extend(["--param", "size=0.5", "--metric", "return"]);
    let v = common::json_of(&sweep(&data, &out, &extra));
    assert!(v["walk_forward"].is_null());
    let whole = &v["whole"];
    assert_eq!(whole["trials"].as_array().unwrap().len(), 16);
    assert_eq!(whole["span"]["bars"], 3000);
    assert_eq!(whole["best"]["params"]["size"], "0.5");
    let invalid: Vec<&Value> = whole["trials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["valid"] == false)
        .collect();
    assert_eq!(invalid.len(), 4);
    assert!(
        invalid[0]["invalid_reason"]
            .as_str()
            .unwrap()
            .contains("slow")
    );
    assert!(
        whole["deflated_sharpe"]["expected_max_sharpe_per_bar"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let results = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(results.lines().count(), 17);
    assert!(results.starts_with("fold,trial,fast,slow,size,valid,metric,return_pct"));
    non_empty(out.join("heatmap.png"));
    assert!(!out.join("walk_forward.csv").exists());
}

#[test]
fn a_random_draw_is_the_same_for_a_seed_and_a_subset_of_the_grid() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated_data(dir.path());
    let draw = |seed: &str, out: &str| {
        let mut extra = GRID.to_vec();
        extra.extend(["--random", "5", "--seed", seed]);
        let v = common::json_of(&sweep(&data, &dir.path().join(out), &extra));
        let idx: Vec<u64> = v["whole"]["trials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["index"].as_u64().unwrap())
            .collect();
        (v, idx)
    };
    let (a, ia) = draw("3", "a");
    let (b, ib) = draw("3", "b");
    assert_eq!(a, b);
    assert_eq!(
        (a["trials"].as_u64(), a["random"].as_u64()),
        (Some(5), Some(5))
    );
    assert_eq!(ia.len(), 5);
    assert!(ia.windows(2).all(|w| w[0] < w[1]) && ia.iter().all(|&i| i < 16));
    assert_eq!(ia, ib);
}

#[test]
fn a_parameter_the_strategy_does_not_know_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated_data(dir.path());
    let out = sweep(&data, &dir.path().join("o"), &["--param", "fats=5..10"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown parameter `fats`"), "{err}");
    let out = sweep(&data, &dir.path().join("o"), &["--param", "fast=5..x"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--param fast=5..x") && err.contains("`x` is not a number"),
        "{err}"
    );
    let out = sweep(
        &data,
        &dir.path().join("o"),
        &["--param", "fast=20", "--param", "slow=10"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no valid trial"),
        "{err}"
    );
    let out = sweep(&data, &dir.path().join("o"), &["--walk-forward", "500"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--walk-forward 500"),
        "{err}"
    );
}

#[test]
fn the_benchmark_reports_one_thread_and_two_threads_over_the_same_trials() {
    let dir = tempfile::tempdir().unwrap();
    let data = generated_data(dir.path());
    let mut args = vec!["sweep", "--bench", "--json", "--threads", "2", "--data"];
    args.push(data.to_str().unwrap());
    args.extend(GRID);
    let v = common::json_of(&common::defai(&args, &[]));
    assert_eq!(v["bench"], "sweep");
    assert_eq!(v["threads"], 2);
    assert_eq!(v["trials"], 16);
    // 12 valid trials over all 3,000 bars.
    assert_eq!(v["bars_replayed"], 36_000);
    for key in ["one_thread_bars_per_s", "threads_bars_per_s", "speedup"] {
        assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {v}");
    }
}
