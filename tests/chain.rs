//! On-chain end-to-end tests: each starts its own anvil (from `npm ci`) with the real Uniswap V2
//! contracts and drops it at the end.

use std::time::Duration;

use defai::connectors::PaperVenue;
use defai::connectors::evm::alloy::eips::BlockId;
use defai::connectors::evm::alloy::primitives::U256;
use defai::connectors::evm::devnet::USD_DECIMALS;
use defai::connectors::evm::{
    Chain, ChainSource, Devnet, DevnetConfig, NonceManager, PoolRef, TxPolicy, TxSender,
    UniswapV2Config, UniswapV2Venue,
};
use defai::core::{IntentId, MarketEvent, MarketSource, Order, Pair, Swap, Token, Venue};
use std::sync::Arc;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn pair() -> Pair {
    Pair::new(Token::new("WETH", 18), Token::new("dUSD", USD_DECIMALS))
}

async fn pool(devnet: &Devnet) -> PoolRef {
    let info = devnet.info();
    PoolRef::resolve(
        devnet.chain(),
        pair(),
        info.weth_usd_pair,
        info.weth,
        info.usd,
    )
    .await
    .unwrap()
}

async fn venue(devnet: &Devnet, account: usize) -> UniswapV2Venue {
    let wallet = devnet.wallet(account).unwrap();
    let nonces = Arc::new(NonceManager::new(wallet.address()));
    let chain = Chain::connect(devnet.rpc_url()).unwrap();
    let tx = TxSender::new(
        chain,
        wallet,
        devnet.info().chain_id,
        nonces,
        TxPolicy::default(),
    )
    .unwrap();
    let cfg = UniswapV2Config {
        router: devnet.info().router,
        deadline_s: 300,
        gas_per_swap: 150_000,
        chain_id: devnet.info().chain_id,
        chain_check_every: 1,
    };
    UniswapV2Venue::new(pool(devnet).await, tx, Token::new("ETH", 18), cfg)
}

#[test]
fn devnet_comes_up_with_the_pool_at_the_intended_price() {
    rt().block_on(async {
        let devnet = Devnet::start(DevnetConfig::at_price(1338.12))
            .await
            .unwrap();
        let info = devnet.info();
        assert_eq!(info.chain_id, 31337);
        assert_eq!(info.accounts.len(), 9);
        let pool = pool(&devnet).await;
        let (rb, rq) = pool
            .reserves(devnet.chain(), BlockId::latest())
            .await
            .unwrap();
        let price = pool.price_f64(rb, rq);
        assert!((price / 1338.12 - 1.0).abs() < 1e-9, "pool price {price}");
        assert_eq!(rq, U256::from(5_000_000u64) * U256::from(1_000_000u64));
        // Account 0 is funded with both tokens.
        let v = venue(&devnet, 0).await;
        let (weth, usd, eth) = v.read_balances().await.unwrap();
        assert_eq!(
            weth,
            U256::from(50u64) * U256::from(10u64).pow(U256::from(18))
        );
        assert_eq!(usd, U256::from(100_000u64) * U256::from(1_000_000u64));
        assert!(eth > U256::ZERO);
        // devnet.json round-trips.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("devnet.json");
        info.write(&path).unwrap();
        assert_eq!(
            &defai::connectors::evm::DevnetInfo::read(&path).unwrap(),
            info
        );
    });
}

#[test]
fn paper_fills_equal_on_chain_swaps_wei_for_wei() {
    rt().block_on(async {
        let devnet = Devnet::start(DevnetConfig::at_price(1338.12))
            .await
            .unwrap();
        let pair = pair();
        let mut live = venue(&devnet, 0).await;
        let mut source = ChainSource::new(
            devnet.chain().clone(),
            pool(&devnet).await,
            Duration::from_millis(5),
            Duration::from_secs(10),
        );
        let mut paper = PaperVenue::new(
            pair.clone(),
            defai::connectors::PaperAmmConfig::default_for(&pair),
        );
        let mut rng = fastrand::Rng::with_seed(7);
        let (mut buys, mut sells) = (0, 0);
        for i in 0..120u32 {
            // The block after the previous swap: what a paper agent reading the chain sees.
            let event = source.next_event().await.unwrap().unwrap();
            assert!(matches!(event, MarketEvent::Pool { .. }));
            paper.observe(&event);
            let sell_base = i % 2 == 1;
            let swap = if sell_base {
                sells += 1;
                // 0.001 .. 2 WETH
                let amount = U256::from(rng.u64(1_000_000_000_000_000..2_000_000_000_000_000_000));
                Swap {
                    sell: pair.base.clone(),
                    buy: pair.quote.clone(),
                    amount_in: amount,
                }
            } else {
                buys += 1;
                // 1 .. 2,500 dUSD
                let amount = U256::from(rng.u64(1_000_000..2_500_000_000));
                Swap {
                    sell: pair.quote.clone(),
                    buy: pair.base.clone(),
                    amount_in: amount,
                }
            };
            let expected = paper.quote(&swap).await.unwrap().amount_out;
            let order = Order {
                id: IntentId::new("parity", i as i64, 0),
                swap,
                min_amount_out: expected,
            };
            let fill = live.execute(&order, i as i64).await.unwrap();
            assert_eq!(
                fill.amount_out, expected,
                "swap {i}: chain gave {} , paper {expected}",
                fill.amount_out
            );
            assert_eq!(fill.amount_in, order.swap.amount_in);
            // Each swap lands in its own block with a later timestamp for the source to see.
            let _: serde_json::Value = devnet
                .chain()
                .dev_call("evm_increaseTime", (1u64,))
                .await
                .unwrap();
            let _: serde_json::Value = devnet.chain().dev_call("evm_mine", ()).await.unwrap();
        }
        assert!(buys >= 50 && sells >= 50);
    });
}

mod common;

/// Starts a devnet at the first of `closes` and a market mover replaying them in the
/// background; returns the devnet, the stop flag and the mover's task.
async fn devnet_with_mover(
    closes: Vec<f64>,
    pause_ms: u64,
) -> (
    Devnet,
    Arc<std::sync::atomic::AtomicBool>,
    tokio::task::JoinHandle<usize>,
) {
    let devnet = Devnet::start(DevnetConfig::at_price(closes[0]))
        .await
        .unwrap();
    let mover =
        defai::connectors::evm::MarketMover::new(devnet.info(), devnet.deployer().clone(), 3600)
            .await
            .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let task = tokio::spawn(async move {
        mover
            .replay(&closes, Duration::from_millis(pause_ms), &flag)
            .await
            .unwrap()
    });
    (devnet, stop, task)
}

fn defai(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_defai"));
    cmd.args(args).env_remove("DEFAI_PRIVATE_KEY");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn files_contain(dir: &std::path::Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            hits.extend(files_contain(&p, needle));
        } else if std::fs::read(&p)
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .to_ascii_lowercase()
                    .contains(needle)
            })
            .unwrap_or(false)
        {
            hits.push(p);
        }
    }
    hits
}

#[test]
fn ema_cross_trades_live_against_the_market_mover_and_books_exactly_what_the_chain_holds() {
    let closes: Vec<f64> = common::bundled_bars()[20_000..21_500]
        .iter()
        .map(|b| b.close)
        .collect();
    let rt = rt();
    let (devnet, stop, mover) = rt.block_on(devnet_with_mover(closes, 15));
    let dir = tempfile::tempdir().unwrap();
    let devnet_json = dir.path().join("devnet.json");
    devnet.info().write(&devnet_json).unwrap();
    let key = devnet.test_key_hex(0).unwrap();
    let state = dir.path().join("state");
    let out = defai(
        &[
            "run",
            "--config",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/examples/configs/trading-devnet.toml"
            ),
            "--devnet",
            devnet_json.to_str().unwrap(),
            "--max-cycles",
            "200",
            "--state",
            state.to_str().unwrap(),
            "--json",
        ],
        &[("DEFAI_PRIVATE_KEY", &key), ("RUST_LOG", "debug")],
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "defai run failed: {stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["mode"], "live");
    assert_eq!(v["chain_id"], 31337);
    assert!(v["bars"].as_u64().unwrap() >= 200, "bars {}", v["bars"]);
    let trades = v["trades"].as_u64().unwrap();
    assert!(trades >= 2, "ema_cross should trade over 200 bars: {v}");
    assert_eq!(v["execution_failures"], 0, "{v}");
    // Every fill and its gas were booked exactly as the chain saw them.
    assert_eq!(v["reconciliations"], 0, "{v}");

    // The key appears nowhere: not in stdout, stderr (debug logs) or any file written.
    let bare = key.trim_start_matches("0x").to_ascii_lowercase();
    assert!(!stdout.to_ascii_lowercase().contains(&bare));
    assert!(!stderr.to_ascii_lowercase().contains(&bare));
    assert!(files_contain(dir.path(), &bare).is_empty());

    rt.block_on(async {
        mover.await.unwrap();
        let chain = devnet.chain();
        let hashes = v["tx_hashes"].as_array().unwrap();
        assert!(hashes.len() as u64 >= trades);
        for h in hashes {
            let hash = h.as_str().unwrap().parse().unwrap();
            let receipt = chain.receipt(hash).await.unwrap().expect("mined");
            assert!(receipt.status(), "{h} reverted");
        }
        // The agent's portfolio equals the chain's balances exactly.
        let me = devnet.info().accounts[0];
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
