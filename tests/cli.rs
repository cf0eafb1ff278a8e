//! The `defai` binary end to end: what a user types, what they get.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn defai(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_defai"))
        .env("DEFAI_STATE_ROOT", common::state_root())
        .args(args)
        .env_remove("RUST_LOG")
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
    assert_eq!(
        stdout.lines().count(),
        1,
        "exactly one line on stdout: {stdout}"
    );
    serde_json::from_str(&stdout).expect("stdout is one JSON object")
}

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

#[test]
fn paper_with_no_arguments_trades_on_the_embedded_data() {
    let out = defai(&["paper"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("trades") && text.contains("end equity"),
        "{text}"
    );
}

#[test]
fn paper_json_is_one_object_with_the_stable_fields() {
    let v = json_of(&defai(&["paper", "--json"]));
    for key in [
        "mode",
        "strategy",
        "bars",
        "skipped_rows",
        "gaps",
        "trades",
        "start_equity",
        "end_equity",
        "return_pct",
        "buy_hold_return_pct",
        "max_drawdown_pct",
        "sharpe",
        "fees_paid",
        "gas_paid",
        "elapsed_s",
        "bars_per_s",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert_eq!(v["mode"], "paper");
    assert_eq!(v["strategy"], "ema_cross");
    assert_eq!(v["bars"], 33158);
    assert_eq!(v["gaps"], 19);
    assert_eq!(v["start_equity"], 10000.0);
    assert!(v["trades"].as_u64().unwrap() > 0);
    assert!(v["fees_paid"].as_f64().unwrap() > 0.0 && v["gas_paid"].as_f64().unwrap() > 0.0);
}

#[test]
fn backtest_is_deterministic_and_writes_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for d in [&a, &b] {
        let v = json_of(&defai(&[
            "backtest",
            "--json",
            "--out",
            d.to_str().unwrap(),
        ]));
        assert!(v["trades"].as_u64().unwrap() > 0);
    }
    let trades_a = std::fs::read_to_string(a.join("trades.csv")).unwrap();
    assert_eq!(
        trades_a,
        std::fs::read_to_string(b.join("trades.csv")).unwrap(),
        "same input, same trades"
    );
    assert!(trades_a.lines().count() > 10);
    let equity = std::fs::read_to_string(a.join("equity.csv")).unwrap();
    assert_eq!(equity.lines().count(), 33158 + 1);
    let png = std::fs::read(a.join("equity.png")).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "a real PNG"
    );
}

#[test]
fn config_file_and_param_overrides_apply() {
    let cfg = repo("examples/configs/ema_cross_slow.toml");
    let slow = json_of(&defai(&[
        "backtest",
        "--json",
        "--config",
        cfg.to_str().unwrap(),
    ]));
    let fast = json_of(&defai(&[
        "backtest",
        "--json",
        "--config",
        cfg.to_str().unwrap(),
        "--param",
        "fast=12",
        "--param",
        "slow=26",
    ]));
    assert!(
        slow["trades"].as_u64() < fast["trades"].as_u64(),
        "slower EMAs trade less: {slow} vs {fast}"
    );
    let default = json_of(&defai(&["backtest", "--json"]));
    assert_eq!(
        fast["trades"], default["trades"],
        "12/26 via --param equals the default"
    );
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn malformed_data_exits_nonzero_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("timestamp,open,high,low,close,volume\n");
    for i in 0..100 {
        text.push_str(&format!("{},100,101,99,100,5\n", 1_600_000_000 + i * 3600));
    }
    text.push_str("1700000000,100,101,99,NaN,5\n");
    let file = write(dir.path(), "bad.csv", &text);
    let out = defai(&["backtest", "--data", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.csv:102") && err.contains("close"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing on stdout when it fails");

    let v = json_of(&defai(&[
        "backtest",
        "--json",
        "--skip-bad-rows",
        "--data",
        file.to_str().unwrap(),
    ]));
    assert_eq!(v["skipped_rows"], 1);
    assert_eq!(v["bars"], 100);
}

#[test]
fn bad_config_exits_nonzero_naming_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "c.toml",
        "[agent]\nstarting_quote = 10000.0\n[venue]\nfee_bsp = 30\n",
    );
    let out = defai(&["backtest", "--config", cfg.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 4") && err.contains("fee_bsp"), "{err}");

    let cfg = write(
        dir.path(),
        "p.toml",
        "[strategy]\nname = \"ema_cross\"\n[strategy.params]\nfast = 12\nslwo = 3\n",
    );
    let out = defai(&["backtest", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("line 5") && err.contains("slwo"),
        "{err}"
    );

    let out = defai(&["backtest", "--strategy", "nope"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("unknown strategy `nope`"),
        "{err}"
    );
}

#[test]
fn missing_data_file_is_a_clear_error() {
    let out = defai(&["backtest", "--data", "/nonexistent/x.csv"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.csv"));
}

/// A zig-zag price series so a 2/4 EMA cross trades often.
fn zigzag_csv(dir: &Path, bars: usize) -> PathBuf {
    let mut text = String::from("timestamp,open,high,low,close,volume\n");
    for i in 0..bars {
        let px = 2000.0 + 200.0 * ((i as f64) / 6.0).sin();
        text.push_str(&format!(
            "{},{px},{px},{px},{px},1\n",
            1_600_000_000 + i * 3600
        ));
    }
    write(dir, "zigzag.csv", &text)
}

#[test]
fn kill_halts_a_running_agent_latches_across_restart_and_resume_trades_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = zigzag_csv(dir.path(), 300);
    let state = dir.path().join("state");
    let (data, state_s) = (
        data.to_str().unwrap().to_string(),
        state.to_str().unwrap().to_string(),
    );
    // 300 hourly bars at 100,000× real time: about 11 s, long enough to kill it mid-run.
    let args = [
        "paper", "--json", "--data", &data, "--state", &state_s, "--param", "fast=2", "--param",
        "slow=4", "--speed", "100000",
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_defai"))
        .env("DEFAI_STATE_ROOT", common::state_root())
        .env("RUST_LOG", "warn,defai::audit=debug")
        .env("NO_COLOR", "1")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill it once it has traded: its own audit log says when (no guess at a duration). The
    // reader drains the log to the end so the agent never blocks on it.
    let stderr = child.stderr.take().unwrap();
    let (filled, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            // Without colour codes, whatever the logger decided about them.
            let (mut plain, mut esc) = (String::new(), false);
            for c in line.chars() {
                match (esc, c) {
                    (false, '\u{1b}') => esc = true,
                    (true, 'm') => esc = false,
                    (false, c) => plain.push(c),
                    (true, _) => {}
                }
            }
            if plain.contains("defai::audit: fill") {
                let _ = filled.send(());
            }
        }
    });
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .expect("the agent traded");
    let kill = defai(&["kill", "--state", &state_s, "--reason", "e2e test"]);
    assert!(
        kill.status.success(),
        "{}",
        String::from_utf8_lossy(&kill.stderr)
    );
    let first = json_of(&child.wait_with_output().unwrap());
    assert_eq!(first["kill_switch"]["state"], "halted", "{first}");
    assert!(
        first["kill_switch"]["reason"]
            .as_str()
            .unwrap()
            .contains("e2e test")
    );
    assert!(
        first["trades"].as_u64().unwrap() > 0,
        "traded before the kill: {first}"
    );
    assert!(
        first["risk"]["refused_by_reason"]["kill_switch_halted"]
            .as_u64()
            .unwrap()
            > 0,
        "refused after: {first}"
    );

    // Restart: still halted, nothing trades.
    let fast = [
        "paper", "--json", "--data", &data, "--state", &state_s, "--param", "fast=2", "--param",
        "slow=4",
    ];
    let second = json_of(&defai(&fast));
    assert_eq!(second["kill_switch"]["state"], "halted");
    assert_eq!(second["trades"], 0, "{second}");

    // Resume: it trades again.
    let resume = defai(&["resume", "--state", &state_s, "--reason", "checked"]);
    assert!(resume.status.success());
    let third = json_of(&defai(&fast));
    assert_eq!(third["kill_switch"]["state"], "active", "{third}");
    assert!(third["trades"].as_u64().unwrap() > 0, "{third}");
}

#[test]
fn start_halted_config_trades_nothing_until_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "h.toml", "[kill_switch]\nstart_halted = true\n");
    let v = json_of(&defai(&[
        "backtest",
        "--json",
        "--config",
        cfg.to_str().unwrap(),
    ]));
    assert_eq!(v["trades"], 0);
    assert_eq!(v["kill_switch"]["state"], "halted");
}

#[test]
fn train_writes_a_loadable_model_and_ml_signal_backtests_on_its_heldout_tail_against_baselines() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    let out = defai(&[
        "train",
        "--out",
        model.to_str().unwrap(),
        "--max-epochs",
        "3",
        "--json",
    ]);
    let v = json_of(&out);
    assert_eq!(v["epochs"], 3);
    let acc = v["metrics"]["heldout_accuracy"].as_f64().unwrap();
    assert!((0.3..0.7).contains(&acc), "{v}");
    assert!(model.join("price_direction.safetensors").is_file());
    let hash = v["model_hash"].as_str().unwrap().to_string();
    assert_eq!(hash.len(), 64);

    let outdir = dir.path().join("out");
    let param = format!("model={}", model.display());
    let out = defai(&[
        "backtest",
        "--strategy",
        "ml_signal",
        "--param",
        &param,
        "--heldout",
        "--baseline",
        "ema_cross",
        "--json",
        "--out",
        outdir.to_str().unwrap(),
    ]);
    let v = json_of(&out);
    assert_eq!(v["strategy"], "ml_signal");
    // The held-out tail (15 % of samples) plus the warm-up: about 5,000 of 33,158 bars.
    let bars = v["bars"].as_u64().unwrap();
    assert!((4_500..6_000).contains(&bars), "{bars}");
    assert!(v["data"].as_str().unwrap().contains("held-out tail"));
    let base = &v["baselines"]["ema_cross"];
    assert!(
        base["return_pct"].is_number() && base["trades"].as_u64().unwrap() > 0,
        "{v}"
    );
    let csv = std::fs::read_to_string(outdir.join("equity.csv")).unwrap();
    assert!(csv.lines().next().unwrap().ends_with(",ema_cross_equity"));
    assert!(outdir.join("equity.png").is_file());
}

#[test]
fn the_journal_is_hash_chained_and_changing_one_byte_is_caught_by_audit_verify() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    json_of(&defai(&[
        "backtest",
        "--state",
        state.to_str().unwrap(),
        "--json",
    ]));
    let ok = defai(&["audit", "verify", "--state", state.to_str().unwrap()]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("chain intact"));

    // One byte of one fill (a compact journal's first `trade` record), changed in the database
    // from outside (the raw file also
    // holds stale copies of cells in its free space, where a change proves nothing).
    let db = rusqlite::Connection::open(state.join("journal.sqlite")).unwrap();
    let changed = db
        .execute(
            "UPDATE records SET body = replace(body, 'amount_in', 'Amount_in')
             WHERE seq = (SELECT min(seq) FROM records WHERE kind IN ('fill', 'trade'))",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1, "a fill was journaled");
    drop(db);
    let bad = defai(&["audit", "verify", "--state", state.to_str().unwrap()]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("was altered") && err.contains("record "),
        "{err}"
    );
}

#[test]
fn a_run_that_fails_with_json_still_prints_one_json_object_naming_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[risk]\nmax_slippage_bps = 20000\n").unwrap();
    let out = defai(&["backtest", "--config", cfg.to_str().unwrap(), "--json"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    let err = v["error"].as_str().unwrap();
    assert!(
        err.contains("bad.toml line 2") && err.contains("max_slippage_bps"),
        "{err}"
    );
}

/// `examples/custom_cli.rs`: a user's binary registers its own strategy (`momentum`) and reuses
/// the `defai` command line. `backtest` runs it by name with its parameters, with a state folder
/// whose journal `audit verify` (of the same binary) passes; a parameter it does not take is an
/// error naming it; the built-ins still run; a name registered by no one is refused, listing
/// the known ones.
#[test]
fn a_users_binary_runs_its_registered_strategy_through_the_defai_commands() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state_s = state.to_str().unwrap();
    let user = |args: &[&str]| {
        Command::new(common::example_bin("custom_cli"))
            .env("DEFAI_STATE_ROOT", dir.path())
            .env_remove("RUST_LOG")
            .args(args)
            .output()
            .expect("run the user's binary")
    };
    let v = json_of(&user(&[
        "backtest",
        "--strategy",
        "momentum",
        "--param",
        "lookback=12",
        "--state",
        state_s,
        "--json",
    ]));
    assert_eq!(v["strategy"], "momentum", "{v}");
    assert!(v["trades"].as_u64().unwrap() > 0, "{v}");
    let verify = user(&["audit", "verify", "--state", state_s]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );

    let bad = user(&[
        "backtest",
        "--strategy",
        "momentum",
        "--param",
        "lookbak=12",
        "--json",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stdout).contains("lookbak"));

    let builtin = json_of(&user(&["backtest", "--strategy", "ema_cross", "--json"]));
    assert_eq!(builtin["strategy"], "ema_cross");

    let unknown = user(&["backtest", "--strategy", "nobody", "--json"]);
    assert!(!unknown.status.success());
    let err = String::from_utf8_lossy(&unknown.stdout);
    assert!(err.contains("nobody") && err.contains("momentum"), "{err}");
}

/// `defai rebalance --model shipped` tilts the backtest's targets by the shipped candle model:
/// the report names the model's hash and holds one decision per asset per bar after the
/// warm-up; `--tilt` without `--model`, a tilt above 0.5 and a model folder that is not there
/// are refused, naming the flag.
#[test]
fn the_rebalance_backtest_tilts_its_targets_by_the_model_given() {
    let v = json_of(&defai(&[
        "rebalance",
        "--model",
        "shipped",
        "--tilt",
        "0.1",
        "--json",
    ]));
    let hash = defai::models::PriceDirection::shipped()
        .unwrap()
        .hash()
        .to_string();
    assert_eq!(v["model"], hash.as_str(), "{v}");
    let bars = v["bars"].as_u64().unwrap();
    assert_eq!(v["model_decisions"].as_u64(), Some(2 * (bars - 72)), "{v}");
    let plain = json_of(&defai(&["rebalance", "--json"]));
    assert!(
        plain["model"].is_null() && plain["model_decisions"] == 0,
        "{plain}"
    );
    assert_ne!(plain["trades"], v["trades"], "the tilt changes the trades");
    for (args, needle) in [
        (&["rebalance", "--tilt", "0.2"][..], "--model"),
        (
            &["rebalance", "--model", "shipped", "--tilt", "0.7"][..],
            "--tilt",
        ),
        (
            &["rebalance", "--model", "/no/such/model"][..],
            "/no/such/model",
        ),
    ] {
        let out = defai(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(needle),
            "{args:?}: {err}"
        );
    }
}
