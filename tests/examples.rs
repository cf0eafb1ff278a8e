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
    let out = Command::new(common::example_bin("custom_strategy"))
        .env("DEFAI_PRIVATE_KEY", devnet.test_key_hex(0).unwrap())
        .args([json.to_str().unwrap(), state.to_str().unwrap(), "150"])
        .output()
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let v = summary(&out);
    assert_eq!(v["mode"], "live", "{v}");
    assert_eq!(v["chain_id"], 31337, "{v}");
    assert_eq!(v["strategy"], "mean_reversion", "{v}");
    assert!(v["trades"].as_u64().unwrap() >= 1, "{v}");
    assert!(
        v["tx_hashes"].as_array().unwrap().len() as u64 >= v["trades"].as_u64().unwrap(),
        "{v}"
    );
    assert_eq!(v["reconciliations"], 0, "booked to the wei: {v}");
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
