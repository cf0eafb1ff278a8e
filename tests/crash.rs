//! Crash safety of the live agent: SIGKILLed at named points (after a record is on disk, before
//! the action it records — including between a transaction's broadcast and its receipt) across
//! many cycles on a devnet with a market mover, and restarted on the same state folder each
//! time. No intent is sent twice, every transaction on chain is in the journal, the journal
//! verifies, and the books reconcile with the chain to the wei at every restart.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use defai::connectors::evm::alloy::eips::BlockId;
use defai::connectors::evm::alloy::network::TransactionResponse;
use defai::connectors::evm::alloy::providers::Provider;
use defai::connectors::journal::Journal;
use defai::core::Token;

const CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/configs/trading-devnet.toml"
);

fn agent_cmd(devnet_json: &Path, state: &Path, key: &str, max_cycles: u32) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_defai"));
    cmd.env("DEFAI_STATE_ROOT", common::state_root())
        .env_remove("DEFAI_PAUSE_AT")
        .env("DEFAI_PRIVATE_KEY", key)
        .env("RUST_LOG", "warn")
        .args([
            "run",
            "--config",
            CONFIG,
            "--devnet",
            devnet_json.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
            "--max-cycles",
            &max_cycles.to_string(),
            "--param",
            "fast=2",
            "--param",
            "slow=4",
            "--json",
            "--no-api",
        ]);
    cmd
}

/// Runs the agent until it reports the armed point, then SIGKILLs it there.
fn kill_at(devnet_json: &Path, state: &Path, key: &str, point: &str) {
    kill_cmd_at(agent_cmd(devnet_json, state, key, 100_000), point);
}

/// Runs `cmd` until the agent reports the armed point, then SIGKILLs it there.
fn kill_cmd_at(mut cmd: Command, point: &str) {
    let mut child = cmd
        .env("DEFAI_PAUSE_AT", point)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("DEFAI_PAUSED") {
                let _ = tx.send(line.clone());
            }
            seen.push(line);
        }
        seen
    });
    let paused = rx.recv_timeout(Duration::from_secs(120));
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    let log = reader.join().unwrap();
    let name = point.split(':').next().unwrap();
    assert_eq!(
        paused.as_deref().ok(),
        Some(format!("DEFAI_PAUSED {name}").as_str()),
        "the agent never reached {point} (exit {status:?}); its log:\n{}",
        log.join("\n")
    );
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "pauses the agent at a failpoint: run with --features failpoints (as .ci/run does)"
)]
fn sigkilled_at_every_step_the_live_agent_restarts_without_sending_anything_twice() {
    let rt = common::devnet_rt();
    // A choppy stretch of the bundled data: ema_cross(2, 4) crosses every few bars.
    let closes: Vec<f64> = common::bundled_bars()[20_000..24_000]
        .iter()
        .map(|b| b.close)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let devnet_json = dir.path().join("devnet.json");
    let state = dir.path().join("state");
    let (devnet, stop, mover) = rt.block_on(common::devnet_with_mover(closes, 40));
    devnet.info().write(&devnet_json).unwrap();
    let key = devnet.test_key_hex(0).unwrap();

    // Every step of an intent's life: journaled (intent, verdict), signed but not broadcast,
    // broadcast but no receipt read, mined but not booked, filled but not read back.
    let points = [
        "intent:2",
        "verdict:3",
        "signed:2",
        "sent:1",
        "mined:2",
        "fill:1",
        "signed:3",
        "sent:4",
    ];
    for point in points {
        kill_at(&devnet_json, &state, &key, point);
    }
    // A last clean run to the end.
    let out = agent_cmd(&devnet_json, &state, &key, 25)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "final run failed: {stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["kill_switch"]["state"], "active",
        "a restart found a mismatch: {v}"
    );
    assert_eq!(v["reconciliations"], 0, "{v}");

    // The journal verifies.
    let verify = Command::new(env!("CARGO_BIN_EXE_defai"))
        .args(["audit", "verify", "--state", state.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );

    let journal = Journal::open(&state.join("journal.sqlite")).unwrap();
    let records = journal.records().unwrap();
    let cycles = records.iter().filter(|r| r.kind == "market").count();
    assert!(
        cycles >= 50,
        "the agent saw {cycles} cycles across its lives"
    );
    // Every restart settled what was open and found the books equal to the chain.
    let restarts: Vec<serde_json::Value> = records
        .iter()
        .filter(|r| r.kind == "restart")
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(
        restarts.len(),
        points.len() + 1,
        "one per start after the first"
    );
    for r in &restarts {
        assert_eq!(r["problems"], serde_json::json!([]), "{r}");
    }
    eprintln!(
        "{cycles} cycles, {} starts, {} records",
        restarts.len(),
        records.len()
    );
    let settled: Vec<&serde_json::Value> = restarts
        .iter()
        .flat_map(|r| r["settled"].as_array().unwrap())
        .collect();
    assert!(
        settled.iter().any(|s| s["outcome"] == "mined"),
        "some kill left a mined transaction to settle: {settled:?}"
    );
    assert!(
        settled.iter().any(|s| s["outcome"] == "dropped"),
        "the kill between signing and broadcast left one that never reached the chain: {settled:?}"
    );

    // `audit show` explains a swap: the block's market snapshot, the intent, the verdict and
    // the transaction's steps.
    let swap = records
        .iter()
        .find(|r| {
            r.kind == "tx"
                && r.body.contains(r#""step":"mined""#)
                && r.body.contains(r#""label":"swap""#)
        })
        .and_then(|r| r.tx_hash.clone())
        .expect("a mined swap");
    let show = Command::new(env!("CARGO_BIN_EXE_defai"))
        .args([
            "audit",
            "show",
            "--state",
            state.to_str().unwrap(),
            "--tx",
            &swap,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.status.success(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    for kind in ["market", "intent", "verdict", "tx"] {
        assert!(kinds.contains(&kind), "no {kind} record in:\n{text}");
    }
    assert!(
        kinds.iter().position(|k| *k == "market") < kinds.iter().position(|k| *k == "intent"),
        "{text}"
    );
    assert!(
        text.contains("reserve_base") && text.contains(r#""step":"signed""#),
        "{text}"
    );

    // Which intent each journaled transaction served.
    let mut intent_of: BTreeMap<String, (String, String)> = BTreeMap::new();
    for r in records.iter().filter(|r| r.kind == "tx") {
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        if let (Some(h), Some(i)) = (&r.tx_hash, &r.intent_id)
            && matches!(body["step"].as_str(), Some("signed" | "replaced"))
        {
            intent_of.insert(
                h.to_lowercase(),
                (i.clone(), body["label"].as_str().unwrap().to_string()),
            );
        }
    }

    rt.block_on(async {
        mover.await.unwrap().unwrap();
        let chain = devnet.chain();
        let me = devnet.info().accounts[0];
        // Every transaction the wallet put on chain, from the blocks themselves.
        let head = chain.block_number().await.unwrap();
        let mut on_chain = Vec::new();
        for n in 0..=head {
            let block = chain
                .provider()
                .get_block_by_number(n.into())
                .full()
                .await
                .unwrap()
                .unwrap();
            for tx in block.transactions.txns() {
                if tx.from() == me {
                    on_chain.push(tx.tx_hash().to_string().to_lowercase());
                }
            }
        }
        eprintln!(
            "{} settled at restarts; {} transactions on chain",
            settled.len(),
            on_chain.len()
        );
        assert!(on_chain.len() >= 10, "the agent traded: {on_chain:?}");
        assert_eq!(
            on_chain.len() as u64,
            chain.nonce(me, false).await.unwrap(),
            "every nonce accounted for"
        );
        let mut served = BTreeSet::new();
        for h in &on_chain {
            let Some(key) = intent_of.get(h) else {
                panic!("transaction {h} is on chain but not in the journal");
            };
            assert!(
                served.insert(key.clone()),
                "intent {key:?} reached the chain twice"
            );
        }

        // The final book is the chain's, to the wei.
        let bal = |t| async move {
            chain
                .view(
                    t,
                    defai::connectors::evm::bindings::IERC20::balanceOfCall { owner: me },
                    BlockId::latest(),
                )
                .await
                .unwrap()
        };
        let weth = bal(devnet.info().weth).await;
        let usd = bal(devnet.info().usd).await;
        let eth = chain.balance(me).await.unwrap();
        assert_eq!(v["balances"]["WETH"], Token::new("WETH", 18).format(weth));
        assert_eq!(v["balances"]["dUSD"], Token::new("dUSD", 6).format(usd));
        assert_eq!(v["balances"]["ETH"], Token::new("ETH", 18).format(eth));
    });
}

/// Someone moved funds while the agent was down: the chain no longer equals the journal plus
/// its settled transactions, so the restarted agent stops adding exposure and says why.
#[test]
fn a_balance_changed_behind_the_agents_back_latches_reduce_only_with_the_reason() {
    let rt = common::devnet_rt();
    let closes: Vec<f64> = common::bundled_bars()[20_000..21_000]
        .iter()
        .map(|b| b.close)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let devnet_json = dir.path().join("devnet.json");
    let state = dir.path().join("state");
    let (devnet, stop, mover) = rt.block_on(common::devnet_with_mover(closes, 40));
    devnet.info().write(&devnet_json).unwrap();
    let key = devnet.test_key_hex(0).unwrap();
    let run = || {
        let out = agent_cmd(&devnet_json, &state, &key, 8).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let first = run();
    assert_eq!(first["kill_switch"]["state"], "active", "{first}");
    // One wei of ether appears in the wallet from outside.
    rt.block_on(async {
        let chain = devnet.chain();
        let me = devnet.info().accounts[0];
        let now = chain.balance(me).await.unwrap();
        let _: serde_json::Value = chain
            .dev_call(
                "anvil_setBalance",
                (me, now + defai::core::U256::from(1u64)),
            )
            .await
            .unwrap();
    });
    let second = run();
    stop.store(true, Ordering::Relaxed);
    rt.block_on(mover).unwrap().unwrap();
    assert_eq!(second["kill_switch"]["state"], "reduce_only", "{second}");
    let reason = second["kill_switch"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("restart reconciliation") && reason.contains("ETH"),
        "{reason}"
    );
    let journal = Journal::open(&state.join("journal.sqlite")).unwrap();
    let last_restart = journal
        .records()
        .unwrap()
        .into_iter()
        .rfind(|r| r.kind == "restart")
        .unwrap();
    assert!(
        last_restart.body.contains("the venue holds"),
        "{}",
        last_restart.body
    );
}

/// `defai run --config CONFIG` for any kind, on the devnet, with a state folder.
fn kind_cmd(config: &Path, devnet_json: &Path, state: &Path, key: &str, cycles: u32) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_defai"));
    cmd.env("DEFAI_STATE_ROOT", common::state_root())
        .env_remove("DEFAI_PAUSE_AT")
        .env("DEFAI_PRIVATE_KEY", key)
        .env("RUST_LOG", "warn")
        .args([
            "run",
            "--config",
            config.to_str().unwrap(),
            "--devnet",
            devnet_json.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
            "--max-cycles",
            &cycles.to_string(),
            "--json",
            "--no-api",
        ]);
    cmd
}

/// What every restart of a killed agent must show: each restart settled what was open and
/// found the book equal to the chain, the journal verifies, and every transaction the wallet
/// put on chain is in the journal, serving its intent once.
fn restarts_settled_and_nothing_sent_twice(
    rt: &tokio::runtime::Runtime,
    devnet: &defai::connectors::evm::Devnet,
    account: usize,
    state: &Path,
    starts: usize,
) {
    let verify = Command::new(env!("CARGO_BIN_EXE_defai"))
        .args(["audit", "verify", "--state", state.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let records = Journal::open(&state.join("journal.sqlite"))
        .unwrap()
        .records()
        .unwrap();
    let restarts: Vec<serde_json::Value> = records
        .iter()
        .filter(|r| r.kind == "restart")
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    assert_eq!(
        restarts.len(),
        starts,
        "one per start (the first resumes an empty journal)"
    );
    for r in &restarts {
        assert_eq!(r["problems"], serde_json::json!([]), "{r}");
    }
    let settled: Vec<&serde_json::Value> = restarts
        .iter()
        .flat_map(|r| r["settled"].as_array().unwrap())
        .collect();
    assert!(
        settled.iter().any(|s| s["outcome"] == "mined"),
        "a kill left a mined transaction to settle: {settled:?}"
    );
    let mut intent_of: BTreeMap<String, (String, String)> = BTreeMap::new();
    for r in records.iter().filter(|r| r.kind == "tx") {
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        if let (Some(h), Some(i)) = (&r.tx_hash, &r.intent_id)
            && matches!(body["step"].as_str(), Some("signed" | "replaced"))
        {
            intent_of.insert(
                h.to_lowercase(),
                (i.clone(), body["label"].as_str().unwrap().to_string()),
            );
        }
    }
    rt.block_on(async {
        let chain = devnet.chain();
        let me = devnet.info().accounts[account];
        let head = chain.block_number().await.unwrap();
        let mut on_chain = Vec::new();
        for n in 0..=head {
            let block = chain
                .provider()
                .get_block_by_number(n.into())
                .full()
                .await
                .unwrap()
                .unwrap();
            for tx in block.transactions.txns() {
                if tx.from() == me {
                    on_chain.push(tx.tx_hash().to_string().to_lowercase());
                }
            }
        }
        assert!(on_chain.len() >= 4, "the agent traded: {on_chain:?}");
        assert_eq!(
            on_chain.len() as u64,
            chain.nonce(me, false).await.unwrap(),
            "every nonce accounted for"
        );
        let mut served = BTreeSet::new();
        for h in &on_chain {
            let Some(key) = intent_of.get(h) else {
                panic!("transaction {h} is on chain but not in the journal");
            };
            assert!(
                served.insert(key.clone()),
                "intent {key:?} reached the chain twice"
            );
        }
    });
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "pauses the agent at a failpoint: run with --features failpoints (as .ci/run does)"
)]
fn sigkilled_mid_transaction_the_bettor_restarts_settled_reconciled_and_sends_nothing_twice() {
    let rt = common::devnet_rt();
    let devnet = rt
        .block_on(defai::connectors::evm::Devnet::start(
            defai::connectors::evm::DevnetConfig::at_price(1338.12),
        ))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let devnet_json = dir.path().join("devnet.json");
    devnet.info().write(&devnet_json).unwrap();
    let state = dir.path().join("state");
    // Market 0 (priced 0.5) is worth 0.8: a bet every cycle until its exposure cap.
    std::fs::write(
        dir.path().join("forecasts.json"),
        format!("{{\"{}\": 0.8}}", devnet.info().markets[0].address),
    )
    .unwrap();
    let config = dir.path().join("prediction.toml");
    let text = common::example_config("prediction-devnet.toml")
        .replace(
            "forecasts = \"forecasts-devnet.json\"",
            "forecasts = \"forecasts.json\"",
        )
        .replace("[chain]\n", "[chain]\ncycle_interval_s = 1.0\n");
    std::fs::write(&config, text).unwrap();
    let key = devnet.test_key_hex(2).unwrap();
    // A buy broadcast with no receipt read; a buy mined but not booked; an approval signed
    // and never broadcast.
    let points = ["sent:2", "mined:2", "signed:1"];
    for point in points {
        kill_cmd_at(
            kind_cmd(&config, &devnet_json, &state, &key, 100_000),
            point,
        );
    }
    let out = kind_cmd(&config, &devnet_json, &state, &key, 3)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kill_switch"]["state"], "active", "{v}");
    restarts_settled_and_nothing_sent_twice(&rt, &devnet, 2, &state, points.len() + 1);
    // Every bet that reached the chain counts against the market's 1,000 dUSD cap, across
    // every life: the outcome tokens held were bought with at most that.
    let journal = Journal::open(&state.join("journal.sqlite")).unwrap();
    let resume = journal.resume().unwrap();
    let cap = defai::core::U256::from(1_000_000_000u64);
    assert!(
        resume.bet_exposure.values().all(|v| *v <= cap),
        "{:?}",
        resume.bet_exposure
    );
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "pauses the agent at a failpoint: run with --features failpoints (as .ci/run does)"
)]
fn sigkilled_mid_transaction_the_rebalancer_restarts_settled_reconciled_and_sends_nothing_twice() {
    let rt = common::devnet_rt();
    let devnet = rt
        .block_on(defai::connectors::evm::Devnet::start(
            defai::connectors::evm::DevnetConfig::at_price(1338.12),
        ))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let devnet_json = dir.path().join("devnet.json");
    devnet.info().write(&devnet_json).unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("rebalance.toml");
    let text = common::example_config("rebalance-devnet.toml")
        .replace("[chain]\n", "[chain]\ncycle_interval_s = 1.0\n");
    std::fs::write(&config, text).unwrap();
    let key = devnet.test_key_hex(7).unwrap();
    // A swap broadcast with no receipt read; a leg mined but not booked; an approval signed and
    // never broadcast. Before each life WETH moves, so that every life has legs to trade.
    let points = ["sent:2", "mined:3", "signed:1"];
    let prices = [1.0, 1.6, 0.8];
    for (point, move_to) in points.iter().zip(prices) {
        rt.block_on(async {
            let mover = defai::connectors::evm::MarketMover::new(
                devnet.info(),
                devnet.deployer().clone(),
                3600,
            )
            .await
            .unwrap();
            mover.step(1338.12 * move_to).await.unwrap();
        });
        kill_cmd_at(
            kind_cmd(&config, &devnet_json, &state, &key, 100_000),
            point,
        );
    }
    let out = kind_cmd(&config, &devnet_json, &state, &key, 4)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kill_switch"]["state"], "active", "{v}");
    assert_eq!(v["reconciliations"], 0, "{v}");
    restarts_settled_and_nothing_sent_twice(&rt, &devnet, 7, &state, points.len() + 1);
    // The final book is the chain's, to the wei.
    rt.block_on(async {
        let chain = devnet.chain();
        let me = devnet.info().accounts[7];
        for (token, address, decimals) in [
            ("WETH", devnet.info().weth, 18),
            ("DVT", devnet.info().dvt, 18),
            ("dUSD", devnet.info().usd, 6),
        ] {
            let held = chain
                .view(
                    address,
                    defai::connectors::evm::bindings::IERC20::balanceOfCall { owner: me },
                    BlockId::latest(),
                )
                .await
                .unwrap();
            assert_eq!(
                v["balances"][token],
                Token::new(token, decimals).format(held)
            );
        }
    });
}

/// A bundle cut short: the cross-DEX arbitrage example (public API only) is SIGKILLed after
/// its first bundle's first leg filled and was journaled, before the second leg was sent. The
/// restart settles the first leg's transactions, finds the bundle open in the journal, sells
/// back on the first DEX exactly what the first leg bought (the wallet's WETH is where it
/// started), closes the bundle, and never sends the cut second leg.
#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "pauses the agent at a failpoint: run with --features failpoints (as .ci/run does)"
)]
fn sigkilled_between_a_bundles_legs_the_restart_sells_back_what_the_first_leg_bought() {
    let rt = common::devnet_rt();
    let dir = tempfile::tempdir().unwrap();
    let (devnet, json) = common::devnet_two_dexes_apart(&rt, 1338.12, dir.path());
    let me = devnet.info().accounts[3];
    let weth = || {
        rt.block_on(devnet.chain().view(
            devnet.info().weth,
            defai::connectors::evm::bindings::IERC20::balanceOfCall { owner: me },
            BlockId::latest(),
        ))
        .unwrap()
    };
    let start = weth();
    let state = dir.path().join("state");
    let journal = state.join("journal.sqlite");
    let cmd = |cycles: &str| {
        let mut cmd = Command::new(common::example_bin("cross_dex_arbitrage"));
        cmd.env("DEFAI_PRIVATE_KEY", devnet.test_key_hex(3).unwrap())
            .env("RUST_LOG", "warn")
            .env_remove("DEFAI_PAUSE_AT")
            .args([json.to_str().unwrap(), state.to_str().unwrap(), cycles]);
        cmd
    };
    kill_cmd_at(cmd("6"), "fill:1");
    assert!(weth() > start, "the first leg bought WETH before the kill");

    let out = cmd("2").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kill_switch"], "Active", "{v}");
    assert_eq!(v["reconciliations"], 0, "settled to the wei: {v}");
    assert_eq!(
        weth(),
        start,
        "what the cut bundle bought was sold back: {v}"
    );

    let j = Journal::open(&journal).unwrap();
    j.verify().unwrap();
    let records = j.records().unwrap();
    let first = records
        .iter()
        .find(|r| r.kind == "intent" && r.body.contains(r#""type":"bundle""#))
        .and_then(|r| r.intent_id.clone())
        .expect("the first bundle is on record");
    let id = defai::core::IntentId::parse(&first).unwrap();
    let of = |kind: &str, id: &str| {
        records
            .iter()
            .filter(|r| r.kind == kind && r.intent_id.as_deref() == Some(id))
            .collect::<Vec<_>>()
    };
    let unwind = id.unwind(0).to_string();
    assert_eq!(of("intent", &unwind).len(), 1, "one unwind of {first}");
    assert_eq!(of("fill", &unwind).len(), 1, "the unwind filled");
    assert!(
        of("intent", &unwind)[0].body.contains(r#""venue":"dex"#),
        "sold back on the venue that bought it: {}",
        of("intent", &unwind)[0].body
    );
    let closed = of("bundle_closed", &first);
    assert_eq!(closed.len(), 1, "the bundle closed once");
    assert!(
        closed[0].body.contains("unwound_late"),
        "{}",
        closed[0].body
    );
    // The cut second leg was never sent: no transaction step under its id.
    assert!(
        of("tx", &id.leg(1).to_string()).is_empty(),
        "the second leg of a bundle cut short is never sent"
    );
    assert_eq!(of("intent", &id.leg(1).to_string()).len(), 0);
}
