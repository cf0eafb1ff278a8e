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

/// Waits (bounded) until the node's pending count for `who` reaches `n`.
async fn until_pending(chain: &Chain, who: Address, n: u64) {
    for _ in 0..500 {
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

/// Signs a plain transfer of nothing from devnet account `i` at `nonce` with `max_fee` and the
/// same tip: the wallet's owner sending from elsewhere.
async fn owner_tx(devnet: &Devnet, i: usize, nonce: u64, max_fee: u128) -> Vec<u8> {
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
        .with_value(U256::ZERO)
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
        let raw = owner_tx(&devnet, 7, start, 1_000_000_000_000).await;
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
