//! The transaction lifecycle when the mempool misbehaves (issue 15), each case on its own anvil:
//! dropped transactions, refused replacements.

mod common;

use std::sync::Arc;
use std::time::Duration;

use defai::connectors::evm::alloy::primitives::{Address, U256};
use defai::connectors::evm::alloy::sol_types::SolCall;
use defai::connectors::evm::bindings::IERC20;
use defai::connectors::evm::{
    Chain, Devnet, DevnetConfig, EvmError, NonceManager, TxPolicy, TxRequest, TxSender, TxStep,
};

use common::devnet_rt as rt;

async fn nonces(chain: &Chain, who: Address) -> (u64, u64) {
    (
        chain.nonce(who, false).await.unwrap(),
        chain.nonce(who, true).await.unwrap(),
    )
}

/// A sender from devnet account `i` with a short receipt timeout and `replacements` tries.
fn sender(devnet: &Devnet, i: usize, replacements: u32) -> TxSender {
    let info = devnet.info();
    TxSender::new(
        devnet.chain().clone(),
        devnet.wallet(i).unwrap(),
        info.chain_id,
        Arc::new(NonceManager::new(info.accounts[i])),
        TxPolicy {
            receipt_timeout: Duration::from_millis(400),
            max_replacements: replacements,
            ..TxPolicy::default()
        },
    )
    .unwrap()
}

fn transfer(devnet: &Devnet, units: u64) -> TxRequest {
    let info = devnet.info();
    TxRequest::call(
        "transfer",
        info.dvt,
        IERC20::transferCall {
            to: info.accounts[8],
            value: U256::from(units),
        }
        .abi_encode(),
    )
}

/// Waits (bounded, 20 s: a loaded CI machine is slow) until the node's pending count for
/// `who` reaches `n`.
async fn until_pending(chain: &Chain, who: Address, n: u64) {
    for _ in 0..4_000 {
        if chain.nonce(who, true).await.unwrap() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("pending count never reached {n}");
}

#[test]
fn a_dropped_transaction_frees_its_nonce_and_the_next_one_reuses_it_without_a_gap() {
    rt().block_on(async {
        let devnet = Devnet::start(DevnetConfig::at_price(1338.12))
            .await
            .unwrap();
        let chain = devnet.chain().clone();
        let me = devnet.info().accounts[5];
        let tx = sender(&devnet, 5, 0);
        let (start, _) = nonces(&chain, me).await;

        // Mining off; the node drops the transaction from its pool while the sender waits.
        let _: serde_json::Value = chain.dev_call("evm_setAutomine", (false,)).await.unwrap();
        let dropper = {
            let chain = chain.clone();
            tokio::spawn(async move {
                until_pending(&chain, me, start + 1).await;
                let _: serde_json::Value = chain
                    .dev_call("anvil_dropAllTransactions", ())
                    .await
                    .unwrap();
            })
        };
        let mut log = Vec::new();
        let err = tx.send(&transfer(&devnet, 1), &mut log).await.unwrap_err();
        dropper.await.unwrap();
        assert!(
            matches!(err, EvmError::NotMined { nonce, .. } if nonce == start),
            "{err}"
        );
        let gave_up = log
            .iter()
            .find_map(|e| match e.step {
                TxStep::GaveUp { freed, nonce, .. } => Some((freed, nonce)),
                _ => None,
            })
            .expect("the give-up is on record");
        assert_eq!(
            gave_up,
            (true, start),
            "nothing at the nonce can be mined: freed"
        );

        // Mining back on: the next transaction takes the same nonce and is mined. On a sender
        // that kept counting it would sit behind a gap forever.
        let _: serde_json::Value = chain.dev_call("evm_setAutomine", (true,)).await.unwrap();
        let mut log = Vec::new();
        let out = tx.send(&transfer(&devnet, 2), &mut log).await.unwrap();
        assert_eq!(out.nonce, start, "the freed nonce is reused");
        assert_eq!(nonces(&chain, me).await, (start + 1, start + 1), "no gap");
    });
}

#[test]
fn a_transaction_still_held_by_the_node_keeps_its_nonce_after_a_give_up() {
    rt().block_on(async {
        let devnet = Devnet::start(DevnetConfig::at_price(1338.12))
            .await
            .unwrap();
        let chain = devnet.chain().clone();
        let me = devnet.info().accounts[6];
        let tx = sender(&devnet, 6, 0);
        let (start, _) = nonces(&chain, me).await;
        let _: serde_json::Value = chain.dev_call("evm_setAutomine", (false,)).await.unwrap();
        let mut log = Vec::new();
        tx.send(&transfer(&devnet, 1), &mut log).await.unwrap_err();
        assert!(
            log.iter()
                .any(|e| matches!(e.step, TxStep::GaveUp { freed: false, .. })),
            "{log:?}"
        );
        // The held one is mined with the next block; the next transaction follows it.
        let _: serde_json::Value = chain.dev_call("evm_setAutomine", (true,)).await.unwrap();
        let _: serde_json::Value = chain.dev_call("evm_mine", ()).await.unwrap();
        let out = tx
            .send(&transfer(&devnet, 2), &mut Vec::new())
            .await
            .unwrap();
        assert_eq!(out.nonce, start + 1, "never the held transaction's nonce");
        assert_eq!(nonces(&chain, me).await, (start + 2, start + 2));
    });
}

/// Signs a plain transfer of `value` wei from devnet account `i` at `nonce` with `max_fee` and
/// the same tip: the wallet's owner sending from elsewhere.
async fn owner_tx(devnet: &Devnet, i: usize, nonce: u64, max_fee: u128, value: U256) -> Vec<u8> {
    use defai::connectors::evm::alloy::eips::Encodable2718;
    use defai::connectors::evm::alloy::network::{
        EthereumWallet, NetworkTransactionBuilder, TransactionBuilder,
    };
    use defai::connectors::evm::alloy::rpc::types::TransactionRequest;
    use defai::connectors::evm::alloy::signers::local::PrivateKeySigner;
    let key: PrivateKeySigner = devnet.test_key_hex(i).unwrap().parse().unwrap();
    let info = devnet.info();
    let tx = TransactionRequest::default()
        .with_from(info.accounts[i])
        .with_to(info.accounts[8])
        .with_value(value)
        .with_nonce(nonce)
        .with_chain_id(info.chain_id)
        .with_gas_limit(21_000)
        .with_max_fee_per_gas(max_fee)
        .with_max_priority_fee_per_gas(max_fee);
    NetworkTransactionBuilder::build(tx, &EthereumWallet::from(key))
        .await
        .unwrap()
        .encoded_2718()
}

#[test]
fn a_refused_replacement_is_recorded_as_refused_and_the_next_try_pays_more() {
    use defai::connectors::evm::alloy::providers::Provider;
    rt().block_on(async {
        let devnet = Devnet::start(DevnetConfig::at_price(1338.12))
            .await
            .unwrap();
        let chain = devnet.chain().clone();
        let me = devnet.info().accounts[7];
        let tx = sender(&devnet, 7, 3);
        let (start, _) = nonces(&chain, me).await;
        let _: serde_json::Value = chain.dev_call("evm_setAutomine", (false,)).await.unwrap();
        // Our transaction goes out; then the owner replaces it at the same nonce, paying far
        // more, so every fee bump of ours is refused as underpriced.
        let ours = {
            let tx = tx.clone();
            let req = transfer(&devnet, 1);
            tokio::spawn(async move {
                let mut log = Vec::new();
                let out = tx.send(&req, &mut log).await;
                (out, log)
            })
        };
        until_pending(&chain, me, start + 1).await;
        let raw = owner_tx(&devnet, 7, start, 1_000_000_000_000, U256::ZERO).await;
        let _pending = chain.provider().send_raw_transaction(&raw).await.unwrap();
        let (out, log) = ours.await.unwrap();
        assert!(matches!(out, Err(EvmError::NotMined { .. })), "{out:?}");
        let replaced: Vec<_> = log
            .iter()
            .filter_map(|e| match e.step {
                TxStep::Replaced {
                    old,
                    new,
                    max_fee_wei,
                    ..
                } => Some((old, new, max_fee_wei)),
                _ => None,
            })
            .collect();
        let refused = log
            .iter()
            .filter(|e| matches!(e.step, TxStep::ReplaceRefused { .. }))
            .count();
        assert_eq!(replaced.len(), 3, "{log:?}");
        assert_eq!(refused, 3, "each refusal is on record as one: {log:?}");
        for (old, new, _) in &replaced {
            assert_ne!(old, new, "a replacement names another transaction");
        }
        let mut hashes: Vec<_> = replaced.iter().map(|r| r.1).collect();
        hashes.dedup();
        assert_eq!(hashes.len(), 3, "never the same bytes twice");
        assert!(
            replaced.windows(2).all(|w| w[1].2 > w[0].2),
            "fees keep rising: {replaced:?}"
        );
        // The owner's transaction holds the nonce: ours is given up, not reused.
        assert!(
            log.iter()
                .any(|e| matches!(e.step, TxStep::GaveUp { freed: false, .. }))
        );
    });
}

#[test]
fn the_rebalancers_gas_is_the_sum_of_its_receipts_not_an_external_transfer_from_its_wallet() {
    use defai::connectors::evm::alloy::providers::Provider;
    let rt = rt();
    let devnet = rt
        .block_on(Devnet::start(DevnetConfig::at_price(1338.12)))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("devnet.json");
    devnet.info().write(&json).unwrap();
    let key = devnet.test_key_hex(7).unwrap();
    let me = devnet.info().accounts[7];
    let chain = devnet.chain().clone();
    let start = rt.block_on(chain.nonce(me, false)).unwrap();
    // Three cycles: the first rebalances (its legs mine new blocks), the second sees the last
    // of those blocks and stands still; while the agent waits for a block for its third, the
    // wallet's owner sends 1 ETH away from elsewhere, and that block is the third cycle's.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_defai"))
        .env("DEFAI_STATE_ROOT", common::state_root())
        .env("DEFAI_PRIVATE_KEY", &key)
        .args([
            "run",
            "--config",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/examples/configs/rebalance-devnet.toml"
            ),
            "--devnet",
            json.to_str().unwrap(),
            "--max-cycles",
            "3",
            "--json",
            "--no-api",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let owner_sent = rt.block_on(async {
        // The first cycle's legs: approve + swap each, at least 4 transactions.
        for _ in 0..2_000 {
            if chain.nonce(me, false).await.unwrap() >= start + 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let n = chain.nonce(me, true).await.unwrap();
        assert!(n >= start + 4, "the rebalancer did not trade");
        // The agent's trades are done once its nonce stands still.
        let mut n = n;
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = chain.nonce(me, true).await.unwrap();
            if now == n {
                break;
            }
            n = now;
        }
        let one_eth = U256::from(10u64).pow(U256::from(18u8));
        let raw = owner_tx(&devnet, 7, n, 50_000_000_000, one_eth).await;
        assert!(
            child.try_wait().unwrap().is_none(),
            "the agent must still be waiting for its third cycle"
        );
        let pending = chain.provider().send_raw_transaction(&raw).await.unwrap();
        *pending.tx_hash()
    });
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hashes: Vec<String> = v["tx_hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .collect();
    assert!(!hashes.contains(&owner_sent.to_string()));
    let receipts_gas = rt.block_on(async {
        let mut sum = U256::ZERO;
        for h in &hashes {
            let r = chain.receipt(h.parse().unwrap()).await.unwrap().unwrap();
            sum += U256::from(r.gas_used) * U256::from(r.effective_gas_price);
        }
        sum
    });
    assert_eq!(v["gas_paid_wei"], receipts_gas.to_string(), "{v}");
}

/// A child process of `parent`, from /proc (the 4th field of /proc/PID/stat is the parent).
fn child_of(parent: u32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        // The command name (field 2) is in parentheses and may hold spaces.
        let after = &stat[stat.rfind(')')? + 2..];
        let ppid: u32 = after.split(' ').nth(1)?.parse().ok()?;
        (ppid == parent).then_some(pid)
    })
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

#[test]
fn defai_devnet_stops_anvil_on_sigterm_and_sighup_and_ends_with_an_error_when_anvil_dies() {
    for sig in ["TERM", "HUP"] {
        let dir = tempfile::tempdir().unwrap();
        let (mut child, info) = common::spawn_devnet(dir.path(), &[]);
        let port = common::port_of(&info);
        assert!(common::listening(&port));
        signal(child.id(), sig);
        let exit = child.wait().unwrap();
        assert!(exit.success(), "SIG{sig}: {exit:?}");
        assert!(
            !common::listening(&port),
            "SIG{sig}: anvil still holds port {port}"
        );
    }
    // anvil dies under it: defai devnet does not keep running.
    let dir = tempfile::tempdir().unwrap();
    let (child, info) = common::spawn_devnet(dir.path(), &[]);
    let port = common::port_of(&info);
    signal(
        child_of(child.id()).expect("anvil is a child of defai devnet"),
        "KILL",
    );
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("anvil exited"), "{stderr}");
    assert!(!common::listening(&port));
}

#[test]
fn a_transaction_the_owner_sent_from_the_agents_wallet_is_never_replaced_by_the_agent() {
    rt().block_on(async {
        let devnet = Devnet::start(DevnetConfig::at_price(1338.12))
            .await
            .unwrap();
        let chain = devnet.chain().clone();
        let me = devnet.info().accounts[4];
        let tx = sender(&devnet, 4, 0);
        let (start, _) = nonces(&chain, me).await;
        // The agent sends once: its count is now start + 1.
        let first = tx
            .send(&transfer(&devnet, 1), &mut Vec::new())
            .await
            .unwrap();
        assert_eq!(first.nonce, start);
        // Blocks stop; the wallet's owner sends from elsewhere at start + 1, a low fee.
        let _: serde_json::Value = chain.dev_call("evm_setAutomine", (false,)).await.unwrap();
        let raw = owner_tx(&devnet, 4, start + 1, 5_000_000_000, U256::from(1u8)).await;
        let owners = {
            use defai::connectors::evm::alloy::providers::Provider;
            *chain
                .provider()
                .send_raw_transaction(&raw)
                .await
                .unwrap()
                .tx_hash()
        };
        // The agent sends again: past the owner's pending transaction, and says so.
        let agent = {
            let tx = tx.clone();
            let req = transfer(&devnet, 2);
            tokio::spawn(async move {
                let mut log = Vec::new();
                let out = tx.send(&req, &mut log).await;
                (out, log)
            })
        };
        until_pending(&chain, me, start + 3).await;
        let _: serde_json::Value = chain.dev_call("evm_setAutomine", (true,)).await.unwrap();
        let _: serde_json::Value = chain.dev_call("evm_mine", ()).await.unwrap();
        let (out, log) = agent.await.unwrap();
        let out = out.unwrap();
        assert_eq!(out.nonce, start + 2, "never the owner's nonce");
        assert!(
            log.iter().any(|e| matches!(
                e.step,
                TxStep::NonceMoved { cached, nonce } if cached == start + 1 && nonce == start + 2
            )),
            "{log:?}"
        );
        let receipt = chain.receipt(owners).await.unwrap();
        assert!(
            receipt.is_some_and(|r| r.status()),
            "the owner's transaction was mined, not replaced"
        );
        assert_eq!(nonces(&chain, me).await, (start + 3, start + 3));
    });
}
