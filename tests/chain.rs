//! On-chain end-to-end tests: each starts its own anvil (from `npm ci`) with the real Uniswap V2
//! contracts and drops it at the end.

use std::time::Duration;

use defai::connectors::PaperVenue;
use defai::connectors::evm::alloy::eips::BlockId;
use defai::connectors::evm::alloy::primitives::U256;
use defai::connectors::evm::devnet::USD_DECIMALS;
use defai::connectors::evm::{
    Chain, ChainSource, CycleClock, Devnet, DevnetConfig, NonceManager, PoolRef, TxPolicy,
    TxSender, UniswapV2Config, UniswapV2Venue,
};
use defai::core::{IntentId, MarketEvent, MarketSource, Order, Pair, Swap, Token, Venue};
use std::sync::Arc;

use common::{defai, devnet_rt as rt, devnet_with_mover, example_config};

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

/// Issue 12 (a second DEX for cross-DEX arbitrage): the devnet deploys a second Uniswap V2
/// factory and router from the same artifacts, with its own WETH/dUSD pool at the start price;
/// the market mover moves only the first pool, so the two drift apart.
#[test]
fn a_second_dex_has_its_own_pool_and_the_market_mover_moves_only_the_first() {
    use defai::connectors::evm::bindings::IUniswapV2Factory;
    rt().block_on(async {
        let closes = vec![1338.12, 1400.0, 1450.5];
        let (devnet, _stop, mover) = devnet_with_mover(closes, 1).await;
        let info = devnet.info().clone();
        assert!(!info.dex2_router.is_zero() && info.dex2_router != info.router);
        let listed = devnet
            .chain()
            .view(
                info.dex2_factory,
                IUniswapV2Factory::getPairCall {
                    tokenA: info.weth,
                    tokenB: info.usd,
                },
                BlockId::latest(),
            )
            .await
            .unwrap();
        assert_eq!(listed, info.dex2_weth_usd_pair);
        assert_ne!(listed, info.weth_usd_pair);
        assert_eq!(
            mover.await.unwrap().unwrap(),
            3,
            "the mover replayed every close"
        );
        let price_of = |pair| {
            let chain = devnet.chain().clone();
            let (weth, usd) = (info.weth, info.usd);
            async move {
                let pool = PoolRef::resolve(&chain, self::pair(), pair, weth, usd)
                    .await
                    .unwrap();
                let (rb, rq) = pool.reserves(&chain, BlockId::latest()).await.unwrap();
                pool.price_f64(rb, rq)
            }
        };
        let first = price_of(info.weth_usd_pair).await;
        let second = price_of(info.dex2_weth_usd_pair).await;
        assert!(
            (first / 1450.5 - 1.0).abs() < 1e-3,
            "the mover moved the first: {first}"
        );
        assert!(
            (second / 1338.12 - 1.0).abs() < 1e-9,
            "the second stays: {second}"
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
            CycleClock::new(
                devnet.chain().clone(),
                Duration::from_millis(5),
                Duration::from_secs(10),
            ),
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
                    venue: None,
                }
            } else {
                buys += 1;
                // 1 .. 2,500 dUSD
                let amount = U256::from(rng.u64(1_000_000..2_500_000_000));
                Swap {
                    sell: pair.quote.clone(),
                    buy: pair.base.clone(),
                    amount_in: amount,
                    venue: None,
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

use defai::connectors::journal::Journal;

/// The market mover races the agent: a swap whose price moved between the quote and the
/// transaction is refused by the slippage checks before it is sent, and — since the mover
/// advances chain time by an hour every few milliseconds, which no real chain does — a swap held
/// up behind the mover's blocks can outlive its deadline (`UniswapV2Router: EXPIRED`). Those are
/// the only failures a live run against the mover may have, and only a few of them.
fn only_race_failures(stderr: &str, v: &serde_json::Value) {
    let failures: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("execution failed"))
        .collect();
    assert_eq!(
        failures.len() as u64,
        v["execution_failures"].as_u64().unwrap()
    );
    for f in &failures {
        assert!(
            f.contains("INSUFFICIENT_OUTPUT_AMOUNT")
                || f.contains("below amountOutMin")
                || f.contains("UniswapV2Router: EXPIRED"),
            "not a slippage refusal or an expired deadline: {f}"
        );
    }
    assert!(failures.len() <= 5, "{failures:?}");
}

/// The devnet trading config with the longest deadline the config accepts (a day of chain time,
/// 24 of the mover's steps), written into `dir`: the mover moves chain time an hour a step.
fn racing_config(dir: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/configs/trading-devnet.toml"
    ))
    .unwrap();
    assert!(
        text.contains("deadline_s = 7200"),
        "the example's deadline moved"
    );
    let path = dir.join("trading-racing.toml");
    std::fs::write(
        &path,
        text.replace("deadline_s = 7200", "deadline_s = 86400"),
    )
    .unwrap();
    path
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
            racing_config(dir.path()).to_str().unwrap(),
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
    only_race_failures(&stderr, &v);
    // Every fill and its gas were booked exactly as the chain saw them.
    assert_eq!(v["reconciliations"], 0, "{v}");

    // The key appears nowhere: not in stdout, stderr (debug logs) or any file written.
    let bare = key.trim_start_matches("0x").to_ascii_lowercase();
    assert!(!stdout.to_ascii_lowercase().contains(&bare));
    assert!(!stderr.to_ascii_lowercase().contains(&bare));
    assert!(files_contain(dir.path(), &bare).is_empty());

    rt.block_on(async {
        mover.await.unwrap().unwrap();
        let chain = devnet.chain();
        let hashes = v["tx_hashes"].as_array().unwrap();
        assert!(hashes.len() as u64 >= trades);
        // A swap that lost a race with the market mover after its simulation is mined as a
        // revert (amountOutMin held): each such one is a slippage failure of the run, already
        // checked above; anything else mined must have succeeded.
        let mut reverted = 0;
        for h in hashes {
            let hash = h.as_str().unwrap().parse().unwrap();
            let receipt = chain.receipt(hash).await.unwrap().expect("mined");
            if !receipt.status() {
                reverted += 1;
            }
        }
        assert!(
            reverted <= v["execution_failures"].as_u64().unwrap(),
            "{reverted} reverted transactions, more than the slippage failures: {v}"
        );
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

/// (mined, pending) nonces of `who`.
async fn nonces(
    chain: &Chain,
    who: defai::connectors::evm::alloy::primitives::Address,
) -> (u64, u64) {
    (
        chain.nonce(who, false).await.unwrap(),
        chain.nonce(who, true).await.unwrap(),
    )
}

fn weth_to_usd(pair: &Pair, amount: u64) -> Swap {
    Swap {
        sell: pair.base.clone(),
        buy: pair.quote.clone(),
        amount_in: U256::from(amount),
        venue: None,
    }
}

#[test]
fn a_swap_whose_minimum_cannot_be_met_is_caught_by_simulation_and_nothing_is_sent() {
    rt().block_on(async {
        let devnet = Devnet::start(DevnetConfig::at_price(1338.12))
            .await
            .unwrap();
        let pair = pair();
        let me = devnet.info().accounts[0];
        let mut live = venue(&devnet, 0).await;
        let swap = weth_to_usd(&pair, 1_000_000_000_000_000_000);
        let quote = live.quote(&swap).await.unwrap();
        let before = nonces(devnet.chain(), me).await;
        let order = Order {
            id: IntentId::new("t", 1, 0),
            swap: swap.clone(),
            min_amount_out: quote.amount_out + U256::from(1),
        };
        let err = live.execute(&order, 1).await.unwrap_err();
        assert!(err.to_string().contains("below amountOutMin"), "{err}");
        assert_eq!(
            nonces(devnet.chain(), me).await,
            before,
            "nothing may be sent"
        );

        // The router's own check, reached through eth_call on the swap itself: approve exactly,
        // then ask for one unit more than the pool gives. The revert reason is decoded.
        use defai::connectors::evm::alloy::sol_types::SolCall;
        use defai::connectors::evm::bindings::{IERC20, IUniswapV2Router02};
        use defai::connectors::evm::{EvmError, TxRequest};
        let sender = live.sender().clone();
        let info = devnet.info();
        let approve = IERC20::approveCall {
            spender: info.router,
            value: swap.amount_in,
        };
        sender
            .send(
                &TxRequest::call("approve", info.weth, approve.abi_encode()),
                &mut Vec::new(),
            )
            .await
            .unwrap();
        let before = nonces(devnet.chain(), me).await;
        let call = IUniswapV2Router02::swapExactTokensForTokensCall {
            amountIn: swap.amount_in,
            amountOutMin: quote.amount_out + U256::from(1),
            path: vec![info.weth, info.usd],
            to: me,
            deadline: U256::from(u64::MAX),
        };
        let mut log = Vec::new();
        let err = sender
            .send(
                &TxRequest::call("swap", info.router, call.abi_encode()),
                &mut log,
            )
            .await
            .unwrap_err();
        match &err {
            EvmError::SimulationReverted { reason, .. } => {
                assert!(reason.contains("INSUFFICIENT_OUTPUT_AMOUNT"), "{reason}")
            }
            other => panic!("expected a simulation revert, got {other}"),
        }
        assert!(log.is_empty(), "no step past simulation: {log:?}");
        assert_eq!(
            nonces(devnet.chain(), me).await,
            before,
            "nothing may be sent"
        );
        // The nonce manager did not burn a nonce: the next transaction mines at once.
        let out = sender
            .send(
                &TxRequest::call("approve", info.weth, approve.abi_encode()),
                &mut Vec::new(),
            )
            .await
            .unwrap();
        assert_eq!(out.nonce, before.0);
    });
}

/// A devnet whose clock was moved (`evm_increaseTime`, as the market mover does every bar)
/// simulates and mines the next transaction an hour past the latest block: the swap's deadline
/// counts from that next block, so the swap lands instead of reverting with the router's
/// `EXPIRED` (the CI failure of the model rebalancer example, whose kill switch tripped on three).
#[test]
fn a_swap_lands_when_the_chains_clock_moved_past_the_latest_block() {
    rt().block_on(async {
        let devnet = Devnet::start(DevnetConfig::at_price(1338.12))
            .await
            .unwrap();
        let chain = devnet.chain();
        let mut live = venue(&devnet, 0).await;
        let swap = weth_to_usd(&pair(), 1_000_000_000_000_000_000);
        let quote = live.quote(&swap).await.unwrap();
        // Approved beforehand, so that no approval mines a block between the clock's move and
        // the swap (the window the mover leaves between its move and its own swap).
        use defai::connectors::evm::TxRequest;
        use defai::connectors::evm::alloy::sol_types::SolCall;
        use defai::connectors::evm::bindings::IERC20;
        let approve = IERC20::approveCall {
            spender: devnet.info().router,
            value: swap.amount_in,
        };
        let approve = TxRequest::call("approve", devnet.info().weth, approve.abi_encode());
        live.sender().send(&approve, &mut Vec::new()).await.unwrap();
        let latest = chain.block(None).await.unwrap().timestamp;
        let _: serde_json::Value = chain.dev_call("evm_increaseTime", (3600,)).await.unwrap();
        assert!(
            chain.next_block_timestamp().await.unwrap() >= latest + 3600,
            "the pending block carries the moved clock"
        );
        assert_eq!(chain.block(None).await.unwrap().timestamp, latest);
        let order = Order {
            id: IntentId::new("t", 1, 0),
            swap,
            min_amount_out: quote.amount_out,
        };
        let fill = live.execute(&order, 1).await.unwrap();
        assert_eq!(fill.amount_out, quote.amount_out, "filled at the quote");
        assert!(chain.block(None).await.unwrap().timestamp >= latest + 3600);
    });
}

#[test]
fn a_gas_price_above_the_cap_refuses_the_intent_and_sends_nothing() {
    use defai::core::{
        Agent, BarReplay, Context, Intent, LimitGate, Portfolio, RiskLimits, Strategy,
        StrategyError,
    };
    /// Buys 1,000 dUSD of WETH on every event.
    struct AlwaysBuy;
    impl Strategy for AlwaysBuy {
        fn name(&self) -> &str {
            "always_buy"
        }
        fn on_event(
            &mut self,
            _: &MarketEvent,
            ctx: &Context<'_>,
        ) -> Result<Vec<Intent>, StrategyError> {
            Ok(vec![Intent::swap(
                &ctx.pair.quote,
                &ctx.pair.base,
                U256::from(1_000_000_000u64),
            )])
        }
    }
    rt().block_on(async {
        let devnet = Devnet::start(DevnetConfig::at_price(1338.12))
            .await
            .unwrap();
        let me = devnet.info().accounts[0];
        let before = nonces(devnet.chain(), me).await;
        let mut source = ChainSource::new(
            devnet.chain().clone(),
            pool(&devnet).await,
            CycleClock::new(
                devnet.chain().clone(),
                Duration::from_millis(5),
                Duration::from_secs(5),
            ),
        );
        let mut events = Vec::new();
        for _ in 0..3 {
            events.push(
                *source
                    .next_event()
                    .await
                    .unwrap()
                    .unwrap()
                    .as_bar()
                    .unwrap(),
            );
            let _: serde_json::Value = devnet
                .chain()
                .dev_call("evm_increaseTime", (60u64,))
                .await
                .unwrap();
            let _: serde_json::Value = devnet.chain().dev_call("evm_mine", ()).await.unwrap();
        }
        let limits = RiskLimits {
            max_gas_price_wei: Some(U256::from(1u64)),
            ..RiskLimits::default()
        };
        let agent = Agent::new(
            pair(),
            BarReplay::new(events),
            venue(&devnet, 0).await,
            Box::new(AlwaysBuy),
            Portfolio::new(),
        )
        .with_gate(Box::new(LimitGate::new(limits)));
        let report = agent.run().await.unwrap();
        assert_eq!(report.intents, 3);
        assert_eq!(report.fills, 0);
        assert_eq!(
            report.risk.refused_by_reason.get("gas_price"),
            Some(&3),
            "{:?}",
            report.risk
        );
        assert_eq!(
            nonces(devnet.chain(), me).await,
            before,
            "nothing may be sent"
        );

        // The sender enforces the same cap on its own.
        let mut v = venue(&devnet, 0).await;
        let mut tx = v.sender().clone();
        tx.policy_mut().gas_cap_wei = Some(1);
        let err = tx.fees().await.unwrap_err();
        assert!(err.to_string().contains("above the cap"), "{err}");
        let _ = v.drain_events();
    });
}

#[test]
fn a_sender_with_allowed_contracts_refuses_any_other_target_before_signing() {
    use defai::connectors::evm::alloy::sol_types::SolCall;
    use defai::connectors::evm::bindings::IERC20;
    use defai::connectors::evm::{EvmError, TxRequest};
    rt().block_on(async {
        let devnet = Devnet::start(DevnetConfig::at_price(1338.12))
            .await
            .unwrap();
        let chain = devnet.chain().clone();
        let info = devnet.info().clone();
        let me = info.accounts[5];
        // Only dUSD may be called: what `[risk] allowed_contracts` gives every sender the
        // wiring builds (`AgentBuilder::sender` for venues of one's own included).
        let policy = TxPolicy {
            allowed_to: Some(vec![info.usd]),
            ..TxPolicy::default()
        };
        let tx = TxSender::new(
            chain.clone(),
            devnet.wallet(5).unwrap(),
            info.chain_id,
            Arc::new(NonceManager::new(me)),
            policy,
        )
        .unwrap();
        let approve = |token| {
            let call = IERC20::approveCall {
                spender: info.router,
                value: U256::from(1u8),
            };
            TxRequest::call("approve", token, call.abi_encode())
        };
        let before = nonces(&chain, me).await;
        let mut log = Vec::new();
        for req in [approve(info.dvt), TxRequest::deploy("deploy", vec![0u8])] {
            let err = tx.send(&req, &mut log).await.unwrap_err();
            assert!(matches!(err, EvmError::ChainGuard(_)), "{err}");
            assert!(err.to_string().contains("allowed_contracts"), "{err}");
        }
        assert!(log.is_empty(), "not even simulated: {log:?}");
        assert_eq!(nonces(&chain, me).await, before, "nothing signed or sent");
        // The listed contract is reached as usual.
        tx.send(&approve(info.usd), &mut log).await.unwrap();
        assert_eq!(nonces(&chain, me).await.0, before.0 + 1);
    });
}

#[test]
fn with_mining_paused_the_receipt_times_out_and_a_fee_bumped_replacement_mines_at_the_same_nonce() {
    use defai::connectors::evm::alloy::sol_types::SolCall;
    use defai::connectors::evm::bindings::IERC20;
    use defai::connectors::evm::{EvmError, TxRequest, TxStep};
    rt().block_on(async {
        let devnet = Devnet::start(DevnetConfig::at_price(1338.12))
            .await
            .unwrap();
        let chain = devnet.chain().clone();
        let info = devnet.info().clone();
        let me = info.accounts[3];
        let wallet = devnet.wallet(3).unwrap();
        let policy = TxPolicy {
            receipt_timeout: Duration::from_millis(300),
            max_replacements: 2,
            ..TxPolicy::default()
        };
        let tx = TxSender::new(
            chain.clone(),
            wallet,
            info.chain_id,
            Arc::new(NonceManager::new(me)),
            policy,
        )
        .unwrap();
        let (dvt, to) = (info.dvt, info.accounts[4]);
        let transfer = move |v: u64| {
            TxRequest::call(
                "transfer",
                dvt,
                IERC20::transferCall {
                    to,
                    value: U256::from(v),
                }
                .abi_encode(),
            )
        };
        let (start, _) = nonces(&chain, me).await;

        // 1. Mining stays off: every replacement times out too; the sender gives up, bounded.
        let _: serde_json::Value = chain.dev_call("evm_setAutomine", (false,)).await.unwrap();
        let mut log = Vec::new();
        let err = tx.send(&transfer(1), &mut log).await.unwrap_err();
        let EvmError::NotMined {
            nonce,
            replacements,
            hashes,
            ..
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!((*nonce, *replacements, hashes.len()), (start, 2, 3));
        let replaced: Vec<_> = log
            .iter()
            .filter(|e| matches!(e.step, TxStep::Replaced { .. }))
            .collect();
        assert_eq!(replaced.len(), 2);
        assert!(
            replaced.iter().all(|e| e.nonce() == Some(start)),
            "same nonce every time"
        );
        // Fees went up with each replacement.
        let fees: Vec<u128> = log
            .iter()
            .filter_map(|e| match e.step {
                TxStep::Signed { max_fee_wei, .. } | TxStep::Replaced { max_fee_wei, .. } => {
                    Some(max_fee_wei)
                }
                _ => None,
            })
            .collect();
        assert!(fees.windows(2).all(|w| w[1] > w[0]), "{fees:?}");

        // 2. Mining resumes while a second transaction is waiting: it goes out at the next nonce
        //    (no reuse), gets replaced once, and one version of each mines.
        let tx2 = tx.clone();
        let req2 = transfer(2);
        let waiting = tokio::spawn(async move {
            let mut log = Vec::new();
            let out = tx2.send(&req2, &mut log).await;
            (out, log)
        });
        // The handshake: the node's pool holds the second transaction, then a replacement of it
        // (its fee cap rises) — only then does mining resume.
        let pending_fee = async || -> Option<u128> {
            let pool: serde_json::Value = chain.dev_call("txpool_content", ()).await.unwrap();
            let (_, by_nonce) = pool["pending"]
                .as_object()?
                .iter()
                .find(|(a, _)| a.eq_ignore_ascii_case(&me.to_string()))?;
            let fee = by_nonce[(start + 1).to_string()]["maxFeePerGas"].as_str()?;
            u128::from_str_radix(fee.trim_start_matches("0x"), 16).ok()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut first = None;
        loop {
            assert!(
                std::time::Instant::now() < deadline,
                "no replacement within 30 s"
            );
            match (first, pending_fee().await) {
                (None, Some(fee)) => first = Some(fee),
                (Some(f), Some(fee)) if fee > f => break,
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _: serde_json::Value = chain.dev_call("evm_setAutomine", (true,)).await.unwrap();
        let _: serde_json::Value = chain.dev_call("evm_mine", ()).await.unwrap();
        let (out, log) = waiting.await.unwrap();
        let out = out.unwrap();
        assert_eq!(out.nonce, start + 1);
        assert!(out.replacements >= 1, "{log:?}");
        // Exactly two transactions from this account were mined: nonce start and start + 1.
        assert_eq!(nonces(&chain, me).await, (start + 2, start + 2));
        let got = chain
            .view(
                info.dvt,
                IERC20::balanceOfCall {
                    owner: info.accounts[4],
                },
                BlockId::latest(),
            )
            .await
            .unwrap();
        assert_eq!(
            got,
            U256::from(50_000u64) * U256::from(10u64).pow(U256::from(18)) + U256::from(3u64)
        );
    });
}

fn trading_config(dir: &std::path::Path, edit: &[(&str, &str)]) -> std::path::PathBuf {
    let mut text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/configs/trading-devnet.toml"
    ))
    .unwrap();
    for (from, to) in edit {
        assert!(text.contains(from), "{from}");
        text = text.replace(from, to);
    }
    let path = dir.join("trading.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_wrong_chain_id_stops_the_agent_at_start_and_halts_it_when_the_rpc_changes_chain() {
    let closes: Vec<f64> = common::bundled_bars()[20_000..22_000]
        .iter()
        .map(|b| b.close)
        .collect();
    let rt = rt();
    let (devnet, stop, mover) = rt.block_on(devnet_with_mover(closes, 15));
    let dir = tempfile::tempdir().unwrap();
    let key = devnet.test_key_hex(0).unwrap();
    let me = devnet.info().accounts[0];

    // At start: devnet.json says another chain than the RPC reports.
    let mut wrong = devnet.info().clone();
    wrong.chain_id = 999;
    let wrong_json = dir.path().join("wrong.json");
    wrong.write(&wrong_json).unwrap();
    let config = trading_config(
        dir.path(),
        &[("chain_check_every = 10", "chain_check_every = 1")],
    );
    let before = rt.block_on(nonces(devnet.chain(), me));
    let out = defai(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--devnet",
            wrong_json.to_str().unwrap(),
            "--max-cycles",
            "5",
            "--json",
        ],
        &[("DEFAI_PRIVATE_KEY", &key)],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("chain id 31337") && stderr.contains("999"),
        "{stderr}"
    );
    assert_eq!(rt.block_on(nonces(devnet.chain(), me)), before);

    // Mid-run: the RPC switches chain id; the next check halts the agent.
    let good_json = dir.path().join("devnet.json");
    devnet.info().write(&good_json).unwrap();
    let chain = devnet.chain().clone();
    let flag = stop.clone();
    let start_nonce = before.0;
    let switcher = rt.spawn(async move {
        // Once the agent is trading (its first transaction is mined), not after a guess of
        // how long it takes to start on a loaded machine.
        let mut trading = false;
        for _ in 0..6_000 {
            if chain.nonce(me, false).await.unwrap() > start_nonce {
                trading = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(trading, "the agent sent no transaction within 30 s");
        let _: serde_json::Value = chain.dev_call("anvil_setChainId", (999u64,)).await.unwrap();
        // The mover's signer is now on the wrong chain too: keep blocks coming without it.
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            let _: serde_json::Value = chain
                .dev_call("evm_increaseTime", (3600u64,))
                .await
                .unwrap();
            let _: serde_json::Value = chain.dev_call("evm_mine", ()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let out = defai(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--devnet",
            good_json.to_str().unwrap(),
            "--max-cycles",
            "300",
            "--json",
        ],
        &[("DEFAI_PRIVATE_KEY", &key)],
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    rt.block_on(async {
        switcher.await.unwrap();
        // The mover stops on the chain switch (its own transactions are now refused).
        let _ = mover.await.unwrap();
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kill_switch"]["state"], "halted", "{v}");
    let reason = v["kill_switch"]["reason"].as_str().unwrap();
    assert!(reason.contains("chain id changed"), "{reason}");
    assert!(v["bars"].as_u64().unwrap() > 1);
}

#[test]
fn mainnet_chain_ids_are_refused_without_allow_mainnet_and_keys_never_leak_into_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = trading_config(
        dir.path(),
        &[
            (
                "[chain]\n",
                "[chain]\nrpc_url = \"http://127.0.0.1:9\"\nchain_id = 1\n",
            ),
            (
                "kind = \"uniswap_v2\"\n",
                "kind = \"uniswap_v2\"\nrouter = \"0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D\"\npool = \"0xB4e16d0168e52d35CaCD2c6185b44281Ec28C9Dc\"\nbase_token = \"0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\"\nquote_token = \"0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48\"\n",
            ),
        ],
    );
    let out = defai(
        &["run", "--config", config.to_str().unwrap()],
        &[("DEFAI_PRIVATE_KEY", "0x1")],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Ethereum mainnet") && stderr.contains("--allow-mainnet"),
        "{stderr}"
    );

    // A malformed key is refused without echoing it.
    let secret = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee";
    let config = trading_config(
        dir.path(),
        &[
            (
                "[chain]\n",
                "[chain]\nrpc_url = \"http://127.0.0.1:9\"\nchain_id = 11155111\n",
            ),
            (
                "kind = \"uniswap_v2\"\n",
                "kind = \"uniswap_v2\"\nrouter = \"0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D\"\npool = \"0xB4e16d0168e52d35CaCD2c6185b44281Ec28C9Dc\"\nbase_token = \"0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\"\nquote_token = \"0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48\"\n",
            ),
        ],
    );
    let out = defai(
        &["run", "--config", config.to_str().unwrap()],
        &[("DEFAI_PRIVATE_KEY", secret), ("RUST_LOG", "trace")],
    );
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(secret), "{all}");

    // A key in the config file is refused, and not echoed either.
    let config = trading_config(
        dir.path(),
        &[(
            "[strategy]\n",
            &format!("[wallet]\nprivate_key = \"{secret}\"\n\n[strategy]\n"),
        )],
    );
    let out = defai(&["run", "--config", config.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("private keys never go in a config file"),
        "{stderr}"
    );
    assert!(!stderr.contains(secret));

    // Nor in `key_env`, which names the variable that holds the key.
    let config = trading_config(
        dir.path(),
        &[(
            "[strategy]\n",
            &format!("[wallet]\nkey_env = \"{secret}\"\n\n[strategy]\n"),
        )],
    );
    let out = defai(&["run", "--config", config.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("wallet.key_env") && stderr.contains("not a key"),
        "{stderr}"
    );
    assert!(!stderr.contains(secret));
}

#[test]
fn paper_mode_reads_the_real_pool_every_block_and_never_loads_a_key() {
    let closes: Vec<f64> = common::bundled_bars()[20_000..21_000]
        .iter()
        .map(|b| b.close)
        .collect();
    let rt = rt();
    let (devnet, stop, mover) = rt.block_on(devnet_with_mover(closes, 15));
    let dir = tempfile::tempdir().unwrap();
    let devnet_json = dir.path().join("devnet.json");
    devnet.info().write(&devnet_json).unwrap();
    let before: Vec<(u64, u64)> = devnet
        .info()
        .accounts
        .iter()
        .map(|a| rt.block_on(nonces(devnet.chain(), *a)))
        .collect();
    // No DEFAI_PRIVATE_KEY in the environment (the helper removes it).
    let out = defai(
        &[
            "paper",
            "--config",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/examples/configs/trading-devnet.toml"
            ),
            "--devnet",
            devnet_json.to_str().unwrap(),
            "--max-cycles",
            "120",
            "--json",
        ],
        &[],
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    rt.block_on(async { mover.await.unwrap().unwrap() });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mode"], "paper");
    assert_eq!(v["chain_id"], 31337);
    assert_eq!(v["bars"], 120);
    assert!(v["trades"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(v["tx_hashes"].as_array().unwrap().len(), 0);
    assert_eq!(
        v["balances"]["ETH"],
        serde_json::Value::Null,
        "a paper portfolio holds no chain gas token"
    );
    // Nothing was sent from any test account.
    let after: Vec<(u64, u64)> = devnet
        .info()
        .accounts
        .iter()
        .map(|a| rt.block_on(nonces(devnet.chain(), *a)))
        .collect();
    assert_eq!(before, after);
}

#[test]
fn defai_devnet_writes_devnet_json_and_stops_anvil_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, info) = common::spawn_devnet(dir.path(), &["--price", "2000"]);
    let rt = rt();
    rt.block_on(async {
        let chain = Chain::connect(&info.rpc_url).unwrap();
        assert_eq!(chain.chain_id().await.unwrap(), info.chain_id);
        let pool = PoolRef::resolve(&chain, pair(), info.weth_usd_pair, info.weth, info.usd)
            .await
            .unwrap();
        let (rb, rq) = pool.reserves(&chain, BlockId::latest()).await.unwrap();
        assert!((pool.price_f64(rb, rq) / 2000.0 - 1.0).abs() < 1e-9);
    });
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    // anvil went with it.
    assert!(
        !common::listening(&common::port_of(&info)),
        "anvil still listening"
    );
}

/// The README's devnet command: the whole bundled file, whose first close (≈ 84 dUSD) needs a
/// deeper WETH side than anvil's 10,000 ETH per account holds.
#[test]
fn defai_devnet_replays_the_bundled_data_from_its_first_close_and_moves_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("devnet.json");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_defai"))
        .env("DEFAI_STATE_ROOT", common::state_root())
        .args([
            "devnet",
            "--port",
            "0",
            "--replay",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/data/Binance_ETHUSDC_1h.csv.gz"
            ),
            "--bar-seconds",
            "0.05",
            "--out",
            json.to_str().unwrap(),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !json.exists() {
        if let Ok(Some(exit)) = child.try_wait() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("defai devnet --replay exited {exit:?}: {err}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "devnet.json never appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let info = defai::connectors::evm::DevnetInfo::read(&json).unwrap();
    let first = common::bundled_bars()[0].close;
    rt().block_on(async {
        let chain = Chain::connect(&info.rpc_url).unwrap();
        let pool = PoolRef::resolve(&chain, pair(), info.weth_usd_pair, info.weth, info.usd)
            .await
            .unwrap();
        let block = chain.block_number().await.unwrap();
        // The mover is running: blocks keep coming and the price leaves its start.
        let mut moved = false;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let (rb, rq) = pool.reserves(&chain, BlockId::latest()).await.unwrap();
            if chain.block_number().await.unwrap() > block + 5
                && (pool.price_f64(rb, rq) / first - 1.0).abs() > 1e-6
            {
                moved = true;
                break;
            }
        }
        assert!(moved, "the replay never moved the pool from {first}");
    });
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn weth_wraps_and_unwraps_and_contracts_outside_the_allow_list_are_refused() {
    let rt = rt();
    let devnet = rt
        .block_on(Devnet::start(DevnetConfig::at_price(1338.12)))
        .unwrap();
    rt.block_on(async {
        let mut v = venue(&devnet, 5).await;
        let one = U256::from(10u64).pow(U256::from(18));
        let (weth0, _, eth0) = v.read_balances().await.unwrap();
        let wrap = v.wrap(one).await.unwrap();
        let (weth1, _, eth1) = v.read_balances().await.unwrap();
        assert_eq!(weth1, weth0 + one);
        assert_eq!(eth1, eth0 - one - wrap.fee_wei);
        let unwrap = v.unwrap(one).await.unwrap();
        let (weth2, _, eth2) = v.read_balances().await.unwrap();
        assert_eq!(weth2, weth0);
        assert_eq!(eth2, eth1 + one - unwrap.fee_wei);
        let steps: Vec<_> = v.drain_events().iter().map(|e| e.step).collect();
        assert_eq!(
            steps,
            [
                "simulated",
                "signed",
                "sent",
                "mined",
                "simulated",
                "signed",
                "sent",
                "mined"
            ]
        );
    });
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("devnet.json");
    devnet.info().write(&json).unwrap();
    let listed = format!(
        "[risk]\nallowed_contracts = [\"{}\", \"{}\", \"{}\"]\n",
        devnet.info().router,
        devnet.info().weth,
        devnet.info().usd
    );
    let config = trading_config(dir.path(), &[("[risk]\n", &listed)]);
    let key = devnet.test_key_hex(0).unwrap();
    let out = defai(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--devnet",
            json.to_str().unwrap(),
            "--max-cycles",
            "3",
        ],
        &[("DEFAI_PRIVATE_KEY", &key)],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pool") && stderr.contains("allowed_contracts"),
        "{stderr}"
    );
}

#[test]
fn ml_signal_runs_unchanged_live_on_the_devnet_with_decisions_from_the_shipped_model() {
    let closes: Vec<f64> = common::bundled_bars()[25_000..26_000]
        .iter()
        .map(|b| b.close)
        .collect();
    let rt = rt();
    let (devnet, stop, mover) = rt.block_on(devnet_with_mover(closes, 10));
    let dir = tempfile::tempdir().unwrap();
    let devnet_json = dir.path().join("devnet.json");
    devnet.info().write(&devnet_json).unwrap();
    let key = devnet.test_key_hex(6).unwrap();
    let out = defai(
        &[
            "run",
            "--config",
            racing_config(dir.path()).to_str().unwrap(),
            "--strategy",
            "ml_signal",
            "--devnet",
            devnet_json.to_str().unwrap(),
            "--max-cycles",
            "150",
            "--json",
        ],
        &[
            ("DEFAI_PRIVATE_KEY", &key),
            ("RUST_LOG", "defai::audit=debug"),
        ],
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    rt.block_on(async { mover.await.unwrap().unwrap() });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["mode"].as_str(), v["strategy"].as_str()),
        (Some("live"), Some("ml_signal"))
    );
    assert_eq!(v["bars"], 150);
    only_race_failures(&String::from_utf8_lossy(&out.stderr), &v);
    assert_eq!(v["reconciliations"], 0, "{v}");
    assert_eq!(v["strategy_faults"], 0, "{v}");
    // Decisions after the 73-bar warm-up, each naming the shipped model.
    let hash = defai::models::PriceDirection::shipped()
        .unwrap()
        .hash()
        .to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let decisions = stderr
        .lines()
        .filter(|l| l.contains("decision") && l.contains(&hash))
        .count();
    assert_eq!(decisions, 150 - 72, "{}", &stderr[..stderr.len().min(2000)]);
}

#[test]
fn the_rebalancer_restores_its_weights_after_a_price_shock_and_stands_still_when_gas_would_eat_the_trade()
 {
    let rt = rt();
    let devnet = rt
        .block_on(Devnet::start(DevnetConfig::at_price(1338.12)))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("devnet.json");
    devnet.info().write(&json).unwrap();
    let key = devnet.test_key_hex(7).unwrap();
    let config = dir.path().join("rebalance.toml");
    let base = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/configs/rebalance-devnet.toml"
    ))
    .unwrap();
    // One state folder across its runs, as a live agent keeps.
    let state = dir.path().join("state");
    let run = |text: &str| {
        std::fs::write(&config, text).unwrap();
        let out = defai(
            &[
                "run",
                "--config",
                config.to_str().unwrap(),
                "--devnet",
                json.to_str().unwrap(),
                "--max-cycles",
                "1",
                "--json",
                "--state",
                state.to_str().unwrap(),
                "--no-api",
            ],
            &[("DEFAI_PRIVATE_KEY", &key)],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    // Funded 50 WETH (~67k dUSD), 50,000 DVT (100k) and 100,000 dUSD: ~25/37/37 against 40/30/30.
    let v = run(&base);
    assert_eq!(
        (v["rebalances"].as_u64(), v["execution_failures"].as_u64()),
        (Some(1), Some(0)),
        "{v}"
    );
    assert!(v["trades"].as_u64().unwrap() >= 2, "{v}");
    assert!(v["tracking_error_pct"].as_f64().unwrap() < 5.0, "{v}");
    let receipts = |v: &serde_json::Value| {
        let hashes: Vec<String> = v["tx_hashes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().to_string())
            .collect();
        rt.block_on(async {
            for h in &hashes {
                let r = devnet
                    .chain()
                    .receipt(h.parse().unwrap())
                    .await
                    .unwrap()
                    .unwrap();
                assert!(r.status());
            }
        });
        hashes.len()
    };
    assert!(receipts(&v) >= 4, "approve + swap per leg");
    let mut sent: Vec<serde_json::Value> = v["tx_hashes"].as_array().unwrap().clone();

    // A price shock: WETH +60 %. The next cycle brings the weights back inside the band.
    rt.block_on(async {
        let mover = defai::connectors::evm::MarketMover::new(
            devnet.info(),
            devnet.deployer().clone(),
            3600,
        )
        .await
        .unwrap();
        mover.step(1338.12 * 1.6).await.unwrap();
    });
    let before = v["tracking_error_pct"].as_f64().unwrap();
    let v = run(&base);
    assert_eq!(v["rebalances"], 1, "{v}");
    assert!(
        v["tracking_error_pct"].as_f64().unwrap() < 5.0 && receipts(&v) >= 2,
        "{v} (was {before})"
    );
    let weth_w = v["weights"]["WETH"].as_f64().unwrap();
    assert!((weth_w - 0.4).abs() <= 0.05, "{v}");
    sent.extend(v["tx_hashes"].as_array().unwrap().iter().cloned());

    // Another shock, but gas may take only a billionth of a trade: nothing is sent.
    rt.block_on(async {
        let mover = defai::connectors::evm::MarketMover::new(
            devnet.info(),
            devnet.deployer().clone(),
            3600,
        )
        .await
        .unwrap();
        mover.step(1338.12 * 0.8).await.unwrap();
    });
    let v = run(&base.replace("max_gas_share = 0.01", "max_gas_share = 0.000000001"));
    assert_eq!(
        (v["trades"].as_u64(), v["skipped_cycles"].as_u64()),
        (Some(0), Some(1)),
        "{v}"
    );
    assert_eq!(v["tx_hashes"].as_array().unwrap().len(), 0);
    assert!(
        v["tracking_error_pct"].as_f64().unwrap() > 5.0,
        "drifted and left alone: {v}"
    );

    // Halted by the operator while stopped: the next drift is refused leg by leg, nothing sent.
    let kill = defai(
        &[
            "kill",
            "--state",
            state.to_str().unwrap(),
            "--reason",
            "e2e",
        ],
        &[],
    );
    assert!(
        kill.status.success(),
        "{}",
        String::from_utf8_lossy(&kill.stderr)
    );
    let v = run(&base);
    assert_eq!(v["kill_switch"]["state"], "halted", "{v}");
    assert_eq!(v["trades"], 0, "{v}");
    assert!(v["refused"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(v["tx_hashes"].as_array().unwrap().len(), 0);

    // The journal holds every transaction it sent, with its intent, and the refusals.
    let journal = Journal::open(&state.join("journal.sqlite")).unwrap();
    journal.verify().unwrap();
    for h in &sent {
        let records = journal.explain_tx(h.as_str().unwrap()).unwrap();
        let kinds: Vec<&str> = records.iter().map(|r| r.kind.as_str()).collect();
        assert!(
            kinds.contains(&"intent") && kinds.contains(&"verdict") && kinds.contains(&"fill"),
            "{h}: {kinds:?}"
        );
    }
    assert!(
        journal
            .records()
            .unwrap()
            .iter()
            .any(|r| r.kind == "verdict" && r.body.contains("kill_switch_halted"))
    );
}

#[test]
fn one_process_runs_a_rebalancer_and_a_bettor_on_one_wallet_without_nonce_gaps_or_reuse() {
    let rt = rt();
    let devnet = rt
        .block_on(Devnet::start(DevnetConfig::at_price(1338.12)))
        .unwrap();
    let info = devnet.info().clone();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("devnet.json");
    info.write(&json).unwrap();
    std::fs::write(
        dir.path().join("forecasts.json"),
        format!("{{\"{}\": 0.8}}", info.markets[0].address),
    )
    .unwrap();
    let repo = |f: &str| {
        std::fs::read_to_string(format!(
            "{}/examples/configs/{f}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let rebalance = dir.path().join("rebalance.toml");
    std::fs::write(&rebalance, repo("rebalance-devnet.toml")).unwrap();
    let predict = dir.path().join("prediction.toml");
    std::fs::write(
        &predict,
        repo("prediction-devnet.toml").replace("forecasts-devnet.json", "forecasts.json"),
    )
    .unwrap();
    let key = devnet.test_key_hex(5).unwrap();
    let me = info.accounts[5];
    let start = rt.block_on(nonces(devnet.chain(), me));
    let out = defai(
        &[
            "run",
            "--config",
            rebalance.to_str().unwrap(),
            "--also",
            predict.to_str().unwrap(),
            "--devnet",
            json.to_str().unwrap(),
            "--max-cycles",
            "2",
            "--json",
        ],
        &[("DEFAI_PRIVATE_KEY", &key)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let agents = v["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 2);
    let (r, p) = (&agents[0]["summary"], &agents[1]["summary"]);
    assert_eq!(
        (r["strategy"].as_str(), p["strategy"].as_str()),
        (Some("rebalancer"), Some("kelly_bettor"))
    );
    assert!(
        r["trades"].as_u64().unwrap() >= 2 && p["bets"].as_u64().unwrap() >= 1,
        "{v}"
    );
    assert_eq!(
        (
            r["execution_failures"].as_u64(),
            p["execution_failures"].as_u64()
        ),
        (Some(0), Some(0)),
        "{v}"
    );
    // Every transaction of both agents mined, from one wallet: the nonce advanced by exactly their
    // number, with nothing pending (no gap, no reuse).
    let sent = r["tx_hashes"].as_array().unwrap().len() + p["tx_hashes"].as_array().unwrap().len();
    let end = rt.block_on(nonces(devnet.chain(), me));
    assert_eq!(end, (start.0 + sent as u64, start.0 + sent as u64), "{v}");
}

/// Issue 12 (the rebalancer without hard-coded devnet tokens): `[rebalance]` lists the tokens,
/// their targets and their pools; here only WETH and dUSD at 50/50, on a chain named in
/// `[chain]` (no devnet.json). DVT, which the wallet also holds, is not traded.
#[test]
fn the_rebalancer_holds_the_tokens_its_config_lists_on_the_pools_it_names() {
    let rt = rt();
    let devnet = rt
        .block_on(Devnet::start(DevnetConfig::at_price(1338.12)))
        .unwrap();
    let info = devnet.info().clone();
    let dir = tempfile::tempdir().unwrap();
    let key = devnet.test_key_hex(6).unwrap();
    let base = example_config("rebalance-devnet.toml")
    .replace(
        "weth = 0.4                        # target weights, summing to 1\ndvt = 0.3\nusd = 0.3\n",
        "",
    )
    .replace(
        "[chain]\n",
        &format!(
            "[chain]\nrpc_url = \"{}\"\nchain_id = {}\n",
            info.rpc_url, info.chain_id
        ),
    )
    .replace(
        "[venue]\n",
        &format!("[venue]\nrouter = \"{}\"\n", info.router),
    );
    let listed = format!(
        "{base}\n[rebalance]\nquote = {{ symbol = \"dUSD\", decimals = 6, address = \"{}\", target = 0.5 }}\n\n[[rebalance.assets]]\nsymbol = \"WETH\"\ndecimals = 18\naddress = \"{}\"\npool = \"{}\"\ntarget = 0.5\n",
        info.usd, info.weth, info.weth_usd_pair
    );
    let run = |text: &str| {
        let config = dir.path().join("rebalance.toml");
        std::fs::write(&config, text).unwrap();
        defai(
            &[
                "run",
                "--config",
                config.to_str().unwrap(),
                "--max-cycles",
                "1",
                "--json",
                "--no-api",
            ],
            &[("DEFAI_PRIVATE_KEY", &key)],
        )
    };
    let out = run(&listed);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Funded 50 WETH (~67k dUSD) and 100,000 dUSD: ~40/60 against 50/50.
    assert_eq!(v["rebalances"], 1, "{v}");
    let weights = v["weights"].as_object().unwrap();
    assert_eq!(
        weights.keys().collect::<Vec<_>>(),
        ["WETH", "dUSD"],
        "only the listed tokens: {v}"
    );
    let w = weights["WETH"].as_f64().unwrap();
    assert!((w - 0.5).abs() < 0.05, "{v}");
    let dvt = rt
        .block_on(devnet.chain().view(
            info.dvt,
            defai::connectors::evm::bindings::IERC20::balanceOfCall {
                owner: info.accounts[6],
            },
            BlockId::latest(),
        ))
        .unwrap();
    assert_eq!(
        dvt,
        U256::from(50_000u64) * U256::from(10u64).pow(U256::from(18)),
        "DVT is not the rebalancer's"
    );

    // A pool the router does not swap on (the second DEX's, with the first DEX's router) is
    // refused before anything is sent: prices and swaps would be on different pools.
    let out = run(&listed.replace(
        &info.weth_usd_pair.to_string(),
        &info.dex2_weth_usd_pair.to_string(),
    ));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not what router"), "{stderr}");
    // A token listed twice is refused, naming it.
    let twice = format!(
        "{listed}\n[[rebalance.assets]]\nsymbol = \"WETH\"\ndecimals = 18\naddress = \"{}\"\npool = \"{}\"\ntarget = 0.0\n",
        info.weth, info.weth_usd_pair
    );
    let out = run(&twice);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rebalance.assets") && stderr.contains("listed twice"),
        "{stderr}"
    );

    // Targets that do not sum to 1 are refused, naming the key and its line.
    let out = run(&listed.replace("target = 0.5\n", "target = 0.6\n"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rebalance.target") && stderr.contains("line") && stderr.contains("sum"),
        "{stderr}"
    );
}
