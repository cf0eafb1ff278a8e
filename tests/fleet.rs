//! Several live agents in one process, each with its own wallet (`[wallet] key_env`), state
//! folder, journal and kill switch.

mod common;

use std::process::Command;
use std::sync::atomic::Ordering;

use defai::connectors::evm::alloy::eips::BlockId;
use defai::connectors::evm::bindings::IERC20;
use defai::connectors::journal::Journal;
use defai::core::Token;

fn config(dir: &std::path::Path, name: &str, key_env: &str, fast: u32, slow: u32) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/configs/trading-devnet.toml"
    ))
    .unwrap()
    .replace(
        "[market]",
        &format!("[agent]\nname = \"{name}\"\n\n[wallet]\nkey_env = \"{key_env}\"\n\n[market]"),
    )
    .replace("fast = 5", &format!("fast = {fast}"))
    .replace("slow = 15", &format!("slow = {slow}"));
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn two_agents_in_one_process_trade_from_their_own_wallets_into_their_own_journals() {
    let rt = common::devnet_rt();
    let closes: Vec<f64> = common::bundled_bars()[20_000..22_000]
        .iter()
        .map(|b| b.close)
        .collect();
    let (devnet, stop, mover) = rt.block_on(common::devnet_with_mover(closes, 30));
    let dir = tempfile::tempdir().unwrap();
    let devnet_json = dir.path().join("devnet.json");
    devnet.info().write(&devnet_json).unwrap();
    let a = config(dir.path(), "alpha", "DEFAI_KEY_ALPHA", 2, 4);
    let b = config(dir.path(), "beta", "DEFAI_KEY_BETA", 3, 6);
    let root = dir.path().join("state");
    let out = Command::new(env!("CARGO_BIN_EXE_defai"))
        .env_remove("DEFAI_PRIVATE_KEY")
        .env("DEFAI_STATE_ROOT", &root)
        .env("DEFAI_KEY_ALPHA", devnet.test_key_hex(1).unwrap())
        .env("DEFAI_KEY_BETA", devnet.test_key_hex(2).unwrap())
        .args([
            "run",
            "--config",
            &a,
            "--also",
            &b,
            "--devnet",
            devnet_json.to_str().unwrap(),
            "--max-cycles",
            "60",
            "--no-api",
        ])
        .output()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let agents = v["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 2, "{v}");

    rt.block_on(async {
        mover.await.unwrap().unwrap();
        let chain = devnet.chain();
        for (i, (name, account)) in [("alpha", 1usize), ("beta", 2)].into_iter().enumerate() {
            let s = &agents[i]["summary"];
            let me = devnet.info().accounts[account];
            // Its own state folder, with a journal that verifies and holds exactly the
            // transactions its wallet sent.
            let state = root.join(format!("{name}-live"));
            let journal = Journal::open(&state.join("journal.sqlite")).unwrap();
            journal.verify().unwrap();
            let hashes: Vec<String> = s["tx_hashes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h.as_str().unwrap().to_string())
                .collect();
            assert!(!hashes.is_empty(), "{name} traded: {s}");
            assert_eq!(
                hashes.len() as u64,
                chain.nonce(me, false).await.unwrap(),
                "{name}: every transaction of its wallet is its own"
            );
            for h in &hashes {
                assert!(
                    !journal.explain_tx(h).unwrap().is_empty(),
                    "{name}: {h} is in its journal"
                );
            }
            let bal = |t| async move {
                chain
                    .view(t, IERC20::balanceOfCall { owner: me }, BlockId::latest())
                    .await
                    .unwrap()
            };
            assert_eq!(
                s["balances"]["WETH"],
                Token::new("WETH", 18).format(bal(devnet.info().weth).await)
            );
            assert_eq!(
                s["balances"]["dUSD"],
                Token::new("dUSD", 6).format(bal(devnet.info().usd).await)
            );
        }
        // The other agent's transactions are not in this one's journal.
        let alpha = Journal::open(&root.join("alpha-live/journal.sqlite")).unwrap();
        for h in agents[1]["summary"]["tx_hashes"].as_array().unwrap() {
            assert!(alpha.explain_tx(h.as_str().unwrap()).unwrap().is_empty());
        }
    });
}
