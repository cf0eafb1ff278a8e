//! `defai bench --agents` and `defai bench --journal` end to end: the reports have their fields
//! and the figures are sane. Nothing here checks a speed or a memory target (benchmarks report
//! those; see docs/benchmarks.md).

mod common;

use std::process::{Command, Output};

fn defai(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_defai"))
        .env("DEFAI_STATE_ROOT", common::state_root())
        .env_remove("RUST_LOG")
        .args(args)
        .output()
        .expect("run defai")
}

fn json_of(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    serde_json::from_str(&stdout).expect("stdout is one JSON object")
}

fn u(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count: {v}"))
}

fn f(v: &serde_json::Value, key: &str) -> f64 {
    let x = v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number: {v}"));
    assert!(x.is_finite(), "{key} = {x}");
    x
}

#[test]
fn a_fleet_of_agents_shares_one_process_and_reports_its_memory() {
    let root = common::state_root();
    let out = Command::new(env!("CARGO_BIN_EXE_defai"))
        .env("DEFAI_STATE_ROOT", &root)
        .env_remove("RUST_LOG")
        .args([
            "bench",
            "--agents",
            "3",
            "--bars",
            "2000",
            "--seconds",
            "1",
            "--json",
        ])
        .output()
        .expect("run defai");
    let v = json_of(&out);
    assert_eq!(v["bench"], "fleet_memory");
    assert_eq!(u(&v, "agents"), 3);
    assert_eq!(u(&v, "finished"), 3);
    assert_eq!(u(&v, "bars_per_agent"), 2000);
    assert_eq!(u(&v, "total_bars"), 6000);
    assert_eq!(v["strategy"], "ema_cross");
    assert_eq!(v["durability"], "replay");
    // Paced: every agent sleeps between bars, so all three are alive together.
    assert_eq!(u(&v, "max_coexisting"), 3);
    assert!(f(&v, "speed") > 0.0);
    let agents = v["per_agent"].as_array().expect("per_agent");
    assert_eq!(agents.len(), 3);
    for a in agents {
        assert_eq!(u(a, "bars"), 2000, "{a}");
        assert!(u(a, "trades") > 0, "{a}");
        assert!(f(a, "finished_s") >= f(a, "started_s"), "{a}");
    }
    let baseline = &v["baseline"];
    assert!(u(baseline, "rss_kb") > 0, "{baseline}");
    let peak = u(&v, "peak_rss_kb");
    assert!(peak >= u(baseline, "rss_kb"), "{v}");
    assert!(u(&v["after"], "rss_kb") > 0);
    assert!(u(&v, "rss_samples") > 0);
    // Each agent's kill switch file store watches its control file from a thread.
    assert!(u(&v, "max_threads") >= 4, "{v}");
    assert!(f(&v, "per_agent_kb") >= 0.0);
    assert!(f(&v, "wall_s") > 0.0 && f(&v, "bars_per_s") > 0.0);
    assert!(u(&v, "state_bytes") > 0, "every agent wrote a journal");
    // Targets exist for 1 and 100 agents only.
    assert!(v["target_mb"].is_null() && v["target_met"].is_null());
    // The scratch state folders are gone afterwards.
    let left: Vec<_> = std::fs::read_dir(&root).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn one_agent_is_checked_against_its_target() {
    let v = json_of(&defai(&[
        "bench", "--agents", "1", "--bars", "500", "--json",
    ]));
    assert_eq!(u(&v, "finished"), 1);
    assert_eq!(f(&v, "target_mb"), 40.0);
    // The verdict is the peak against the target, not just any boolean.
    let peak_mb = u(&v, "peak_rss_kb") as f64 / 1024.0;
    assert_eq!(v["target_met"], peak_mb <= 40.0, "{v}");
    assert!(v["speed"].is_null(), "unpaced by default");
}

#[test]
fn the_journal_benchmark_reports_the_cost_per_record_and_decision() {
    let v = json_of(&defai(&[
        "bench",
        "--journal",
        "--bars",
        "600",
        "--runs",
        "1",
        "--json",
    ]));
    assert_eq!(v["bench"], "journal_overhead");
    assert_eq!(u(&v, "runs"), 1);
    let strategies = v["strategies"].as_array().expect("strategies");
    let names: Vec<&str> = strategies
        .iter()
        .filter_map(|s| s["strategy"].as_str())
        .collect();
    assert_eq!(names, ["ema_cross", "ml_signal"]);
    for s in strategies {
        assert_eq!(u(s, "bars"), 600, "{s}");
        let (records, intents) = (u(s, "records"), u(s, "intents"));
        assert!(intents > 0 && records >= intents, "{s}");
        let kinds = s["records_by_kind"].as_object().expect("kinds");
        assert_eq!(
            kinds.values().filter_map(|n| n.as_u64()).sum::<u64>(),
            records,
            "{s}"
        );
        assert_eq!(kinds["intent"].as_u64(), Some(intents), "{s}");
        assert!(f(s, "records_per_intent") >= 1.0);
        assert!(f(s, "none_loop_s") > 0.0);
        // The default (compact) journal keeps far fewer records than the full one.
        let compact = u(s, "compact_records");
        assert!(compact > 0 && compact < records, "{s}");
        assert!(f(s, "compact_bytes_per_bar") > 0.0, "{s}");
        for d in ["compact", "replay", "full"] {
            let c = &s[d];
            for key in [
                "loop_s",
                "overhead_s",
                "per_record_us",
                "per_intent_us",
                "per_decision_us",
                "wall_s",
                "per_run_s",
            ] {
                f(c, key);
            }
            assert!(
                f(c, "loop_s") > 0.0 && f(c, "wall_s") >= f(c, "loop_s"),
                "{c}"
            );
        }
        assert!(f(s, "verify_records_per_s") > 0.0);
        assert!(u(s, "journal_bytes") > 0);
    }
    // ml_signal journals each model decision.
    assert!(strategies[1]["records_by_kind"]["decision"].as_u64() > Some(0));
}

#[test]
fn the_journal_benchmark_without_fsync_leaves_the_live_variant_out_and_still_verifies() {
    let v = json_of(&defai(&[
        "bench",
        "--journal",
        "--no-fsync",
        "--strategy",
        "ema_cross",
        "--bars",
        "600",
        "--runs",
        "1",
        "--json",
    ]));
    let s = &v["strategies"][0];
    assert!(s["full"].is_null(), "{s}");
    assert!(f(&s["replay"], "loop_s") > 0.0, "{s}");
    // Records and verification come from the full journal without fsync.
    assert!(u(s, "records") > u(s, "compact_records"), "{s}");
    assert!(f(s, "verify_records_per_s") > 0.0, "{s}");
}

#[test]
fn bad_bench_arguments_are_errors_not_panics() {
    for args in [
        &["bench", "--agents", "0"][..],
        &["bench", "--agents", "1", "--durability", "sometimes"],
        &["bench", "--agents", "1", "--seconds=-1"],
        &["bench", "--agents", "1", "--strategy", "nope"],
        &["bench", "--journal", "--runs", "0"],
        &["bench", "--journal", "--bars", "0"],
    ] {
        let out = defai(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
