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
