//! What a replay's journal keeps (issue 14): the run's input and config in its first record,
//! intents, verdicts and fills, no record per bar, and a run of identical refusals as one
//! counted record; `--journal full` keeps every bar. `defai audit verify` passes on both.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::json_of;

/// `defai` with `args` and no extra environment ([`common::defai`]).
fn defai(args: &[&str]) -> std::process::Output {
    common::defai(args, &[])
}

use defai::connectors::journal::{Journal, Record};

/// A zig-zag hourly series: a 2/4 EMA cross trades on it every few dozen bars.
fn zigzag_csv(dir: &Path, bars: usize) -> PathBuf {
    let mut text = String::from("timestamp,open,high,low,close,volume\n");
    for i in 0..bars {
        let px = 2000.0 + 200.0 * ((i as f64) / 6.0).sin();
        text.push_str(&format!(
            "{},{px},{px},{px},{px},1\n",
            1_700_000_000 + i as i64 * 3600
        ));
    }
    let path = dir.join("zigzag.csv");
    std::fs::write(&path, text).unwrap();
    path
}

/// `defai backtest` of a 2/4 EMA cross over `data` into `state`, with `extra` flags.
fn backtest(data: &Path, state: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "backtest",
        "--json",
        "--data",
        data.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
        "--param",
        "fast=2",
        "--param",
        "slow=4",
    ];
    args.extend_from_slice(extra);
    json_of(&defai(&args))
}

/// The journal's records; it verifies through `defai audit verify` first.
fn verified_records(state: &Path) -> Vec<Record> {
    let out = defai(&["audit", "verify", "--state", state.to_str().unwrap()]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("chain intact"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Journal::open(&state.join("journal.sqlite"))
        .unwrap()
        .records()
        .unwrap()
}

fn count(records: &[Record], kind: &str) -> usize {
    records.iter().filter(|r| r.kind == kind).count()
}

/// SHA-256 of `path` as coreutils' `sha256sum` prints it.
fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn a_replay_journals_its_input_and_config_and_every_trade_but_no_record_per_bar() {
    let dir = tempfile::tempdir().unwrap();
    let data = zigzag_csv(dir.path(), 2000);
    let state = dir.path().join("state");
    let v = backtest(&data, &state, &[]);
    let trades = v["trades"].as_u64().unwrap() as usize;
    assert!(trades > 20, "{v}");

    let records = verified_records(&state);
    let run: serde_json::Value = serde_json::from_str(&records[0].body).unwrap();
    assert_eq!(records[0].kind, "run");
    assert_eq!(run["mode"], "backtest");
    assert_eq!(run["strategy"], "ema_cross");
    assert_eq!(run["params"], serde_json::json!(["fast=2", "slow=4"]));
    assert_eq!(run["journal"], "compact");
    assert_eq!(run["input"]["sha256"], sha256sum(&data));
    assert_eq!(
        run["input"]["bytes"],
        std::fs::metadata(&data).unwrap().len()
    );
    assert_eq!(run["input"]["bars"], 2000);
    assert_eq!(
        records[0].ts, 1_700_000_000,
        "a replay's run is at its first bar"
    );

    assert_eq!(count(&records, "market"), 0);
    assert_eq!(count(&records, "fill"), trades);
    // Each fill follows its own intent and verdict.
    for fill in records.iter().filter(|r| r.kind == "fill") {
        let id = fill.intent_id.as_deref().unwrap();
        let before: Vec<&str> = records
            .iter()
            .filter(|r| r.seq < fill.seq && r.intent_id.as_deref() == Some(id))
            .map(|r| r.kind.as_str())
            .collect();
        assert_eq!(before, ["intent", "verdict"], "{id}");
    }
    // Nothing else: the run and the starting book, intent, verdict and fill per trade, and the
    // final book.
    assert_eq!(records[1].kind, "portfolio");
    assert_eq!(count(&records, "portfolio"), 2);
    assert_eq!(records.last().unwrap().kind, "portfolio");
    assert_eq!(
        count(&records, "intent"),
        v["intents"].as_u64().unwrap() as usize
    );
    assert_eq!(records.len(), 2 + 3 * trades + 1, "{v}");
}

#[test]
fn a_full_journal_keeps_one_market_record_per_bar() {
    let dir = tempfile::tempdir().unwrap();
    let data = zigzag_csv(dir.path(), 500);
    let state = dir.path().join("state");
    let v = backtest(&data, &state, &["--journal", "full"]);
    let records = verified_records(&state);
    assert_eq!(count(&records, "market"), 500);
    assert_eq!(
        count(&records, "fill"),
        v["trades"].as_u64().unwrap() as usize
    );
    let run: serde_json::Value = serde_json::from_str(&records[0].body).unwrap();
    assert_eq!(run["journal"], "full");

    let bad = defai(&[
        "backtest",
        "--data",
        data.to_str().unwrap(),
        "--journal",
        "terse",
    ]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("terse"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn refusals_after_a_halt_collapse_into_one_counted_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = zigzag_csv(dir.path(), 2000);
    let cfg = dir.path().join("halted.toml");
    std::fs::write(&cfg, "[kill_switch]\nstart_halted = true\n").unwrap();
    let cfg = cfg.to_str().unwrap();

    let compact = dir.path().join("compact");
    let v = backtest(&data, &compact, &["--config", cfg]);
    assert_eq!(v["trades"], 0, "{v}");
    let refused = v["refused"].as_u64().unwrap();
    assert!(refused > 20, "{v}");
    let records = verified_records(&compact);
    assert_eq!(count(&records, "intent"), 1);
    assert_eq!(count(&records, "verdict"), 1);
    let repeated: Vec<&Record> = records
        .iter()
        .filter(|r| r.kind == "refusals_repeated")
        .collect();
    assert_eq!(repeated.len(), 1);
    let body: serde_json::Value = serde_json::from_str(&repeated[0].body).unwrap();
    assert_eq!(body["count"].as_u64().unwrap() + 1, refused, "{body}");
    assert!(
        body["first_ts"].as_i64() < body["last_ts"].as_i64(),
        "{body}"
    );
    let verdict = records.iter().find(|r| r.kind == "verdict").unwrap();
    assert_eq!(
        body["verdict"].as_str(),
        serde_json::from_str::<serde_json::Value>(&verdict.body)
            .unwrap()
            .as_str()
    );
    assert!(verdict.body.contains("kill_switch"), "{}", verdict.body);
    // Intent ids are `strategy:ts:seq`: the last one counted is the last bar's refusal.
    let last = body["last_intent"].as_str().unwrap();
    assert!(
        last.starts_with(&format!("ema_cross:{}:", body["last_ts"])),
        "{body}"
    );

    // The full journal of the same run holds every refusal.
    let full = dir.path().join("full");
    backtest(&data, &full, &["--config", cfg, "--journal", "full"]);
    let records = verified_records(&full);
    assert_eq!(count(&records, "verdict") as u64, refused);
    assert_eq!(count(&records, "refusals_repeated"), 0);
}
