//! The library examples, each run as a user would run it: a strategy of one's own through
//! [`defai::AgentBuilder`], backtested and live on the devnet, its journal verified.

mod common;

use std::process::Command;

use common::{devnet_rt as rt, devnet_with_mover};

fn summary(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs `example DEVNET_JSON STATE CYCLES` against a devnet whose market mover replays 1,000
/// bundled closes (a block every 15 ms or so); its JSON summary and the folder holding
/// `devnet.json` and `state/`.
fn live_on_a_moving_devnet(example: &str, cycles: u32) -> (serde_json::Value, tempfile::TempDir) {
    let closes: Vec<f64> = common::bundled_bars()[20_000..21_000]
        .iter()
        .map(|b| b.close)
        .collect();
    let rt = rt();
    let (devnet, stop, _mover) = rt.block_on(devnet_with_mover(closes, 15));
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("devnet.json");
    devnet.info().write(&json).unwrap();
    let state = dir.path().join("state");
    let out = Command::new(common::example_bin(example))
        .env("DEFAI_PRIVATE_KEY", devnet.test_key_hex(0).unwrap())
        .args([
            json.to_str().unwrap(),
            state.to_str().unwrap(),
            &cycles.to_string(),
        ])
        .output()
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    (summary(&out), dir)
}

/// `defai audit verify --state state` passes.
fn assert_journal_verifies(state: &std::path::Path) {
    let verify = common::defai(
        &["audit", "verify", "--state", state.to_str().unwrap()],
        &[],
    );
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

#[test]
fn the_custom_strategy_example_backtests_through_the_builder() {
    let v = summary(
        &Command::new(common::example_bin("custom_strategy"))
            .output()
            .unwrap(),
    );
    assert_eq!(v["mode"], "backtest", "{v}");
    assert_eq!(v["strategy"], "mean_reversion", "{v}");
    assert!(v["bars"].as_u64().unwrap() > 30_000, "{v}");
    assert!(v["trades"].as_u64().unwrap() > 0, "{v}");
}

#[test]
fn the_custom_strategy_example_trades_live_on_the_devnet_through_the_builder_and_its_journal_verifies()
 {
    let (v, dir) = live_on_a_moving_devnet("custom_strategy", 150);
    let state = dir.path().join("state");
    assert_eq!(v["mode"], "live", "{v}");
    assert_eq!(v["chain_id"], 31337, "{v}");
    assert_eq!(v["strategy"], "mean_reversion", "{v}");
    assert!(v["trades"].as_u64().unwrap() >= 1, "{v}");
    assert!(
        v["tx_hashes"].as_array().unwrap().len() as u64 >= v["trades"].as_u64().unwrap(),
        "{v}"
    );
    assert_eq!(v["reconciliations"], 0, "booked to the wei: {v}");
    assert_journal_verifies(&state);
}

#[test]
fn the_model_rebalancer_example_backtests_its_candle_models_tilt() {
    let v = summary(
        &Command::new(common::example_bin("model_rebalancer"))
            .output()
            .unwrap(),
    );
    let bars = v["bars"].as_u64().unwrap();
    assert!(bars > 30_000, "{v}");
    assert_eq!(v["model"], "trend-logistic-v1", "{v}");
    // One probability per asset (WETH, DVT) per bar after the 72-bar warm-up.
    assert_eq!(v["model_decisions"].as_u64(), Some(2 * (bars - 72)), "{v}");
    assert!(v["trades"].as_u64().unwrap() > 10, "{v}");
    assert_eq!(v["kill_switch"]["state"], "active", "{v}");
}

#[test]
fn the_model_rebalancer_example_rebalances_live_on_the_devnet_and_journals_its_models_decisions() {
    let (v, dir) = live_on_a_moving_devnet("model_rebalancer", 100);
    let state = dir.path().join("state");
    assert_eq!(
        (v["mode"].as_str(), v["cycles"].as_u64()),
        (Some("live"), Some(100)),
        "{v}"
    );
    assert_eq!(v["strategy"], "rebalancer", "{v}");
    assert!(v["rebalances"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["trades"].as_u64().unwrap() >= 2, "{v}");
    assert_eq!(v["reconciliations"], 0, "booked to the wei: {v}");
    let decisions = common::decisions_naming(&state, "trend-logistic-v1");
    // WETH and DVT, on each of the 100 − 72 cycles after the warm-up.
    assert_eq!(decisions, 2 * (100 - 72));
    assert_journal_verifies(&state);
}

/// The examples are what the library's API looks like to a user: each one file of under 100
/// lines of code (blank lines and comments not counted).
#[test]
fn every_example_is_one_file_under_100_lines_of_code() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("//"))
                .count();
            assert!(code < 100, "{}: {code} lines of code", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 5, "{seen} examples");
}

/// The devnet's markets price outcome 0 at 50 %, 30 % and 70 %: the longshot rule stakes 0.05 %
/// of its bankroll on outcome 0 of the second and outcome 1 of the third, once each, in
/// integer math (the second stake is 0.05 % of what the first left).
#[test]
fn the_custom_bettor_example_bets_its_own_sizing_rule_on_the_devnets_markets() {
    let rt = rt();
    let devnet = rt
        .block_on(defai::connectors::evm::Devnet::start(
            defai::connectors::evm::DevnetConfig::at_price(1338.12),
        ))
        .unwrap();
    let info = devnet.info().clone();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("devnet.json");
    info.write(&json).unwrap();
    let state = dir.path().join("state");
    let out = Command::new(common::example_bin("custom_bettor"))
        .env("DEFAI_PRIVATE_KEY", devnet.test_key_hex(3).unwrap())
        .args([json.to_str().unwrap(), state.to_str().unwrap(), "3"])
        .output()
        .unwrap();
    let v = summary(&out);
    assert_eq!(
        (v["mode"].as_str(), v["strategy"].as_str()),
        (Some("live"), Some("longshot")),
        "{v}"
    );
    assert_eq!(v["bets"], 2, "once per market: {v}");
    let units = |s: &serde_json::Value| -> u128 {
        let (whole, frac) = s
            .as_str()
            .unwrap()
            .split_once('.')
            .unwrap_or((s.as_str().unwrap(), ""));
        whole.parse::<u128>().unwrap() * 1_000_000 + format!("{frac:0<6}").parse::<u128>().unwrap()
    };
    let start = units(&v["start_collateral"]);
    let fills = v["bet_fills"].as_array().unwrap();
    assert_eq!(fills.len(), 2, "{v}");
    let first = start * 5 / 10_000;
    let second = (start - first) * 5 / 10_000;
    let expected = [
        (info.markets[1].address.to_string(), 0, first),
        (info.markets[2].address.to_string(), 1, second),
    ];
    for (fill, (market, outcome, stake)) in fills.iter().zip(expected) {
        assert!(
            fill["market"]
                .as_str()
                .unwrap()
                .eq_ignore_ascii_case(&market),
            "{v}"
        );
        assert_eq!(fill["outcome"], outcome, "{v}");
        assert_eq!(units(&fill["investment"]), stake, "{v}");
    }
    assert_eq!(v["risk"]["refused"], 0, "{v}");
    assert_journal_verifies(&state);
}
