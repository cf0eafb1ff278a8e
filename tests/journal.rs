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
    // Each swap approved and filled at its bar is one `trade` record: its intent, verdict and
    // fill, each the body its own record would have, filed under the intent.
    assert_eq!(count(&records, "trade"), trades);
    assert_eq!(count(&records, "fill"), 0);
    for trade in records.iter().filter(|r| r.kind == "trade") {
        let id = trade.intent_id.as_deref().unwrap();
        let b: serde_json::Value = serde_json::from_str(&trade.body).unwrap();
        assert_eq!((&b["kind"], &b["v"]), (&"trade".into(), &3.into()), "{b}");
        for part in ["intent", "verdict", "fill"] {
            assert_eq!(b[part]["kind"], part, "{b}");
            assert_eq!(b[part]["v"], 3, "{b}");
        }
        assert_eq!(b["intent"]["id"], id, "{b}");
        assert!(
            ["approve", "resize"].contains(&b["verdict"]["verdict"].as_str().unwrap()),
            "{b}"
        );
        // The fill sold what the intent sold, at most the amount it asked for.
        assert_eq!(
            b["fill"]["amount_in"]["symbol"],
            b["intent"]["amount_in"]["symbol"]
        );
        let units = |v: &serde_json::Value| v["units"].as_str().unwrap().parse::<u128>().unwrap();
        assert!(
            units(&b["fill"]["amount_in"]) <= units(&b["intent"]["amount_in"]),
            "{b}"
        );
        assert_eq!(
            records
                .iter()
                .filter(|r| r.intent_id.as_deref() == Some(id))
                .count(),
            1,
            "nothing else is filed under {id}"
        );
    }
    // Nothing else: the run and the starting book, a trade record per trade, and the final
    // book.
    assert_eq!(records[1].kind, "portfolio");
    assert_eq!(count(&records, "portfolio"), 2);
    assert_eq!(records.last().unwrap().kind, "portfolio");
    assert_eq!(
        count(&records, "intent") + count(&records, "trade"),
        v["intents"].as_u64().unwrap() as usize
    );
    assert_eq!(records.len(), 2 + trades + 1, "{v}");
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
    let first: serde_json::Value = serde_json::from_str(&verdict.body).unwrap();
    assert_eq!(body["verdict"]["reason"], first["reason"], "{body}");
    assert_eq!(first["verdict"], "refuse", "{first}");
    assert!(
        first["reason"]["code"]
            .as_str()
            .unwrap()
            .starts_with("kill_switch"),
        "{first}"
    );
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

#[test]
fn every_body_is_a_versioned_object_of_its_kind_and_amounts_name_their_token_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let data = zigzag_csv(dir.path(), 400);
    let state = dir.path().join("state");
    let v = backtest(&data, &state, &["--journal", "full"]);
    let records = verified_records(&state);
    for r in &records {
        let b: serde_json::Value = serde_json::from_str(&r.body)
            .unwrap_or_else(|e| panic!("record {} is not JSON: {e}", r.seq));
        assert_eq!(b["v"], 3, "record {}: {b}", r.seq);
        assert_eq!(b["kind"], r.kind.as_str(), "record {}: {b}", r.seq);
    }
    let bodies = |kind: &str| -> Vec<serde_json::Value> {
        records
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| serde_json::from_str(&r.body).unwrap())
            .collect()
    };
    let fills = bodies("fill");
    assert_eq!(fills.len() as u64, v["trades"].as_u64().unwrap(), "{v}");
    let [base, quote] = ["ETH", "USDC"];
    assert_eq!(v["pair"], format!("{base}/{quote}"));
    for f in &fills {
        // The amounts name their tokens: one side of the pair sold, the other bought, the fee
        // in the token sold.
        let (sold, bought) = (&f["amount_in"]["symbol"], &f["amount_out"]["symbol"]);
        assert_ne!(sold, bought, "{f}");
        assert_eq!(&f["fee"]["symbol"], sold, "{f}");
        for field in ["amount_in", "amount_out", "fee"] {
            let a = &f[field];
            assert!(a["symbol"] == base || a["symbol"] == quote, "{f}");
            assert_eq!(
                a["decimals"],
                if a["symbol"] == base { 18 } else { 6 },
                "{f}"
            );
            assert!(a.get("address").is_none(), "off chain, no address: {f}");
            a["units"].as_str().unwrap().parse::<u128>().unwrap();
        }
    }
    // Each verdict is structured: approvals and resizes carry the minimum of the token bought,
    // resizes and refusals a reason code.
    let units = |a: &serde_json::Value| a["units"].as_str().unwrap().parse::<u128>().unwrap();
    for verdict in bodies("verdict") {
        match verdict["verdict"].as_str().unwrap() {
            "approve" => {
                units(&verdict["min_amount_out"]);
            }
            "resize" => {
                assert!(units(&verdict["amount_in"]) > 0, "{verdict}");
                units(&verdict["min_amount_out"]);
                assert!(verdict["reason"]["code"].is_string(), "{verdict}");
            }
            "refuse" => assert!(verdict["reason"]["code"].is_string(), "{verdict}"),
            other => panic!("unknown verdict {other}: {verdict}"),
        }
    }
    // The last book is the summary's final balances, to the unit.
    let book = bodies("portfolio").pop().unwrap();
    for a in book["balances"].as_array().unwrap() {
        let symbol = a["symbol"].as_str().unwrap();
        let units: defai::core::U256 = a["units"].as_str().unwrap().parse().unwrap();
        let token = defai::core::Token::new(symbol, a["decimals"].as_u64().unwrap() as u8);
        assert_eq!(
            v["balances"][symbol].as_str(),
            Some(token.format(units).as_str()),
            "{book} vs {v}"
        );
    }
}

#[test]
fn audit_export_writes_every_record_as_json_lines_or_csv_and_refuses_an_unknown_format() {
    let dir = tempfile::tempdir().unwrap();
    let data = zigzag_csv(dir.path(), 600);
    let state = dir.path().join("state");
    backtest(&data, &state, &[]);
    let records = verified_records(&state);
    let s = state.to_str().unwrap();

    let out = defai(&["audit", "export", "--state", s]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), records.len());
    for (line, r) in lines.iter().zip(&records) {
        assert_eq!(line["seq"], r.seq);
        assert_eq!(line["kind"], r.kind.as_str());
        assert_eq!(line["hash"], r.hash.as_str());
        assert_eq!(line["schema"], 3);
        let stored: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(line["body"], stored, "the body as JSON, not as text");
    }

    let csv_path = dir.path().join("journal.csv");
    let out = defai(&[
        "audit",
        "export",
        "--state",
        s,
        "--format",
        "csv",
        "--out",
        csv_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "seq",
            "ts",
            "kind",
            "intent_id",
            "tx_hash",
            "schema",
            "body",
            "prev_hash",
            "hash"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), records.len());
    for (row, r) in rows.iter().zip(&records) {
        assert_eq!(
            &row[6],
            r.body.as_str(),
            "the stored bytes, which the hash covers"
        );
        assert_eq!(&row[8], r.hash.as_str());
    }

    let out = defai(&["audit", "export", "--state", s, "--format", "xml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("xml"));
}

#[test]
fn a_journal_written_before_structured_bodies_still_verifies_and_is_reported_as_legacy() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    {
        // Records as the previous format wrote them: Debug text and bare amounts.
        let mut j = Journal::open(&state.join("journal.sqlite")).unwrap();
        j.append(1, "portfolio", None, None, r#"{"USDC":"10000000000"}"#)
            .unwrap();
        j.append(
            2,
            "intent",
            Some("ema_cross:2:0"),
            None,
            r#""Swap(Swap { sell: USDC(6), buy: ETH(18), amount_in: 9500000000, venue: None })""#,
        )
        .unwrap();
        j.append(
            2,
            "verdict",
            Some("ema_cross:2:0"),
            None,
            r#""Approve { min_amount_out: 4700000000000000000 }""#,
        )
        .unwrap();
        j.append(
            2,
            "fill",
            Some("ema_cross:2:0"),
            None,
            r#"{"amount_in":"9500000000","amount_out":"4750000000000000000","buy":"ETH","fee":"28500000","gas_native":"0","sell":"USDC"}"#,
        )
        .unwrap();
    }
    let s = state.to_str().unwrap();
    let out = defai(&["audit", "verify", "--state", s]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("4 records, chain intact"), "{stdout}");
    assert!(
        stdout.contains("4 records in the legacy format"),
        "{stdout}"
    );
    let out = defai(&["audit", "export", "--state", s]);
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().all(|l| l["schema"] == 1), "{lines:?}");
    assert_eq!(
        lines[1]["body"],
        "Swap(Swap { sell: USDC(6), buy: ETH(18), amount_in: 9500000000, venue: None })"
    );
    // A restart reads the legacy book.
    let resume = Journal::open(&state.join("journal.sqlite"))
        .unwrap()
        .resume()
        .unwrap();
    assert_eq!(
        resume.snapshot,
        Some(vec![("USDC".to_string(), "10000000000".parse().unwrap())])
    );
    assert!(resume.handled.contains("ema_cross:2:0"));
}
