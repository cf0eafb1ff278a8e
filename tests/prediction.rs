//! Prediction markets on the devnet: Gnosis ConditionalTokens + FixedProductMarketMaker from the
//! pinned npm artifacts. Each test starts its own anvil (from `npm ci`) and drops it at the end.

mod common;

use std::time::Instant;

use defai::connectors::evm::alloy::eips::BlockId;
use defai::connectors::evm::alloy::primitives::{U256, keccak256};
use defai::connectors::evm::bindings::IERC20;
use defai::connectors::evm::devnet::{
    MARKET_FEE, MARKET_FUNDING_USD, MARKET_ODDS, ORACLE_INDEX, USD_DECIMALS,
};
use defai::connectors::evm::{
    Devnet, DevnetConfig, DevnetInfo, EvmError, Market, MarketSpec, PredictionMarkets, TxStep,
};
use defai::connectors::fpmm;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn usd(whole: u64) -> U256 {
    U256::from(whole) * U256::from(10u64).pow(U256::from(USD_DECIMALS))
}

async fn start() -> (Devnet, f64) {
    let t0 = Instant::now();
    let devnet = Devnet::start(DevnetConfig::at_price(1338.12))
        .await
        .unwrap();
    (devnet, t0.elapsed().as_secs_f64())
}

async fn market(pm: &PredictionMarkets, info: &DevnetInfo, i: usize) -> Market {
    let m = &info.markets[i];
    pm.market(m.address, m.question_id, info.oracle)
        .await
        .unwrap()
}

/// Gas actually used by each mined transaction in `pm`'s event log, by label.
async fn gas_by_label(pm: &mut PredictionMarkets) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for e in pm.drain_events() {
        if let TxStep::Mined { hash, .. } = e.step {
            let r = pm.chain().receipt(hash).await.unwrap().unwrap();
            out.push((e.label, r.gas_used));
        }
    }
    out
}

#[test]
fn paper_fpmm_math_equals_on_chain_calc_buy_amount() {
    rt().block_on(async {
        let (devnet, boot) = start().await;
        let info = devnet.info().clone();
        let mut pm = devnet.prediction_markets(0).unwrap();
        let me = pm.address();
        let mut rng = fastrand::Rng::with_seed(42);
        let t0 = Instant::now();
        let (mut checks, mut buys, mut sells, mut sell_checks) = (0, 0, 0, 0);
        // The 30/70 market first, then the 70/30 one: skewed pools exercise both ceildivs.
        for idx in [1usize, 2] {
            let m = market(&pm, &info, idx).await;
            for i in 0..60u32 {
                let outcome = rng.usize(0..2);
                // Log-uniform from one unit (1e-6 dUSD) to 3,000 dUSD, plus the edges.
                let investment = match i {
                    0 => U256::from(1),
                    1 => U256::ZERO,
                    _ => U256::from(10f64.powf(rng.f64() * 9.5).max(1.0) as u64),
                };
                let pool = pm.pool_balances(&m).await.unwrap();
                let paper = fpmm::calc_buy_amount(investment, outcome, &pool, m.fee).unwrap();
                let chain = pm.calc_buy_amount(&m, investment, outcome).await.unwrap();
                assert_eq!(
                    paper, chain,
                    "market {idx} step {i}: buy {investment} of outcome {outcome} on {pool:?}"
                );
                checks += 1;
                // Every third check is executed, so the pool moves between checks.
                if i % 3 == 2 && !investment.is_zero() {
                    let (expected, next_pool) =
                        fpmm::pool_after_buy(investment, outcome, &pool, m.fee).unwrap();
                    let trade = pm.buy(&m, outcome, investment, paper).await.unwrap();
                    assert_eq!(trade.tokens, expected, "tokens received by buy");
                    assert_eq!(trade.collateral, investment, "collateral spent");
                    assert_eq!(pm.pool_balances(&m).await.unwrap(), next_pool);
                    buys += 1;
                }
                // Sells: the contract's calcSellAmount, and now and then an executed sell.
                if i % 5 == 4 {
                    let held = pm.outcome_balances(&m, me).await.unwrap();
                    let pool = pm.pool_balances(&m).await.unwrap();
                    let ret = U256::from(rng.u64(1..200_000_000));
                    let paper = fpmm::calc_sell_amount(ret, outcome, &pool, m.fee).unwrap();
                    let chain = pm.calc_sell_amount(&m, ret, outcome).await.unwrap();
                    assert_eq!(paper, chain, "sell {ret} of outcome {outcome} on {pool:?}");
                    sell_checks += 1;
                    if held[outcome] >= paper && i % 10 == 9 {
                        let trade = pm.sell(&m, outcome, ret, paper).await.unwrap();
                        assert_eq!(trade.tokens, paper, "tokens given by sell");
                        assert_eq!(trade.collateral, ret, "collateral received");
                        sells += 1;
                    }
                }
            }
        }
        assert!(checks >= 100 && buys >= 30 && sells >= 2, "{checks} {buys} {sells}");
        // The temporary ERC-1155 operator approval was revoked after every sell.
        let gas = gas_by_label(&mut pm).await;
        let revokes = gas.iter().filter(|(l, _)| l == "revoke approval").count();
        assert_eq!(revokes, sells);
        let avg = |label: &str| {
            let g: Vec<u64> = gas
                .iter()
                .filter(|(l, _)| l == label)
                .map(|(_, g)| *g)
                .collect();
            g.iter().sum::<u64>() / g.len().max(1) as u64
        };
        eprintln!(
            "devnet up in {boot:.2}s; {checks} buy checks, {sell_checks} sell checks, {buys} buys, {sells} sells in {:.2}s; gas: buy {}, approve {}, sell {}, setApprovalForAll {}, revoke {}",
            t0.elapsed().as_secs_f64(),
            avg("fpmm buy"),
            avg("approve"),
            avg("fpmm sell"),
            avg("setApprovalForAll"),
            avg("revoke approval"),
        );
    });
}

#[test]
fn a_bet_on_a_mispriced_market_pays_out_exactly_after_resolution() {
    rt().block_on(async {
        let (devnet, boot) = start().await;
        let t0 = Instant::now();
        let info = devnet.info().clone();
        let mut winner = devnet.prediction_markets(0).unwrap();
        let mut loser = devnet.prediction_markets(1).unwrap();
        let mut oracle = devnet.prediction_markets(ORACLE_INDEX).unwrap();
        // Outcome 0 opens at 30 % but is going to happen.
        let m = market(&winner, &info, 1).await;
        let p = winner.prices(&m).await.unwrap();
        assert!((p[0] - 0.3).abs() < 1e-9, "{p:?}");

        let investment = usd(1_000);
        let before = winner.collateral_balance(&m, winner.address()).await.unwrap();
        let quoted = winner.calc_buy_amount(&m, investment, 0).await.unwrap();
        let bet = winner.buy(&m, 0, investment, quoted).await.unwrap();
        assert_eq!(bet.tokens, quoted);
        // Bought at ~30–38 % (the bet moves the price): well above 2.5 tokens per dUSD.
        assert!(
            bet.tokens * U256::from(2) > investment * U256::from(5),
            "{}",
            bet.tokens
        );

        let loser_before = loser.collateral_balance(&m, loser.address()).await.unwrap();
        let lost = loser.buy(&m, 1, usd(500), U256::ZERO).await.unwrap();
        assert!(lost.tokens > U256::ZERO);

        // Nothing redeems before resolution, and only the oracle can resolve.
        assert!(!winner.is_resolved(&m).await.unwrap());
        assert!(winner.payouts(&m).await.unwrap().is_none());
        assert!(matches!(
            winner.redeem(&m).await,
            Err(EvmError::Contract { .. })
        ));
        let not_oracle = winner.resolve(&m, &[U256::from(1), U256::ZERO]).await;
        assert!(
            matches!(&not_oracle, Err(EvmError::Contract { detail, .. }) if detail.contains("only the oracle")),
            "{not_oracle:?}"
        );
        oracle
            .resolve(&m, &[U256::from(1), U256::ZERO])
            .await
            .unwrap();
        assert!(winner.is_resolved(&m).await.unwrap());
        assert_eq!(
            winner.payouts(&m).await.unwrap(),
            Some((vec![U256::from(1), U256::ZERO], U256::from(1)))
        );
        // Reporting twice is refused by simulation: nothing is sent.
        assert!(matches!(
            oracle.resolve(&m, &[U256::ZERO, U256::from(1)]).await,
            Err(EvmError::SimulationReverted { .. })
        ));

        let held = winner.outcome_balances(&m, winner.address()).await.unwrap();
        assert_eq!(held, vec![bet.tokens, U256::ZERO]);
        let paid = winner.redeem(&m).await.unwrap();
        assert_eq!(paid.collateral, bet.tokens, "one collateral unit per winning token");
        assert_eq!(paid.tokens, held);
        let after = winner.collateral_balance(&m, winner.address()).await.unwrap();
        assert_eq!(after, before - investment + bet.tokens);
        assert_eq!(
            winner.outcome_balances(&m, winner.address()).await.unwrap(),
            vec![U256::ZERO, U256::ZERO]
        );

        // The losing side redeems nothing; its tokens are burned all the same.
        let none = loser.redeem(&m).await.unwrap();
        assert_eq!(none.collateral, U256::ZERO);
        assert_eq!(none.tokens, vec![U256::ZERO, lost.tokens]);
        assert_eq!(
            loser.collateral_balance(&m, loser.address()).await.unwrap(),
            loser_before - usd(500)
        );
        let gas = gas_by_label(&mut winner).await;
        eprintln!(
            "devnet up in {boot:.2}s; bet → resolve → redeem in {:.2}s; bet {} dUSD → {} tokens; winner gas {gas:?}",
            t0.elapsed().as_secs_f64(),
            investment,
            bet.tokens
        );
    });
}

#[test]
fn creating_and_reading_markets() {
    rt().block_on(async {
        let (devnet, boot) = start().await;
        let info = devnet.info().clone();
        assert_eq!(info.markets.len(), 3);
        assert_eq!(info.oracle, devnet.wallet(ORACLE_INDEX).unwrap().address());
        assert!(!info.conditional_tokens.is_zero() && !info.fpmm_factory.is_zero());
        let mut pm = devnet.prediction_markets(0).unwrap();
        let funding = usd(MARKET_FUNDING_USD);
        for (i, mi) in info.markets.iter().enumerate() {
            let m = market(&pm, &info, i).await;
            assert_eq!(m.address, mi.address);
            assert_eq!(m.condition_id, mi.condition_id);
            assert_eq!(mi.collateral, info.usd);
            assert_eq!(m.collateral, info.usd);
            assert_eq!(m.fee, U256::from(MARKET_FEE));
            assert_eq!(m.outcomes(), 2);
            assert!(!pm.is_resolved(&m).await.unwrap());
            let pool = pm.pool_balances(&m).await.unwrap();
            assert_eq!(pool.iter().max().copied(), Some(funding), "{pool:?}");
            let odds = MARKET_ODDS[i];
            let prices = pm.prices(&m).await.unwrap();
            for (k, p) in prices.iter().enumerate() {
                let want = odds[k] as f64 / 100.0;
                assert!(
                    (p - want).abs() < 1e-9,
                    "market {i}: {prices:?} vs {odds:?}"
                );
            }
            // The hint's remainder went back to the funder as outcome tokens.
            let back = pm.outcome_balances(&m, info.deployer).await.unwrap();
            for k in 0..2 {
                assert_eq!(back[k], funding - pool[k]);
            }
            // The wrong oracle does not load.
            assert!(
                pm.market(m.address, m.question_id, info.deployer)
                    .await
                    .is_err()
            );
        }

        // A new market, created by a trader (account 0) with 20/80 odds.
        let t0 = Instant::now();
        let spec = MarketSpec::binary(
            keccak256("will the test pass?"),
            info.oracle,
            info.usd,
            U256::from(MARKET_FEE),
            usd(2_500),
        )
        .with_odds(&[20, 80]);
        let before = devnet
            .chain()
            .view(
                info.usd,
                IERC20::balanceOfCall {
                    owner: pm.address(),
                },
                BlockId::latest(),
            )
            .await
            .unwrap();
        let m = pm.create_market(&spec).await.unwrap();
        let created_in = t0.elapsed().as_secs_f64();
        let prices = pm.prices(&m).await.unwrap();
        assert!((prices[0] - 0.2).abs() < 1e-9, "{prices:?}");
        assert_eq!(
            pm.collateral_balance(&m, pm.address()).await.unwrap(),
            before - usd(2_500)
        );
        // Creating the same market again prepares nothing new but makes a second FPMM.
        let gas = gas_by_label(&mut pm).await;
        let labels: Vec<&str> = gas.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            labels,
            [
                "prepareCondition",
                "createFixedProductMarketMaker",
                "approve",
                "addFunding"
            ]
        );
        let again = pm.create_market(&spec).await.unwrap();
        assert_ne!(again.address, m.address);
        assert_eq!(again.condition_id, m.condition_id);
        let labels2: Vec<String> = gas_by_label(&mut pm)
            .await
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        assert_eq!(labels2[0], "createFixedProductMarketMaker");

        // devnet.json round-trips, and one written before prediction markets still reads.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("devnet.json");
        info.write(&path).unwrap();
        assert_eq!(DevnetInfo::read(&path).unwrap(), info);
        let mut old: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for k in ["conditional_tokens", "fpmm_factory", "oracle", "markets"] {
            old.as_object_mut().unwrap().remove(k).unwrap();
        }
        std::fs::write(&path, old.to_string()).unwrap();
        let read = DevnetInfo::read(&path).unwrap();
        assert!(read.markets.is_empty() && read.oracle.is_zero());
        assert_eq!(read.weth_usd_pair, info.weth_usd_pair);
        eprintln!(
            "devnet (3 markets) up in {boot:.2}s; create_market in {created_in:.2}s; gas {gas:?}"
        );
    });
}

#[test]
fn kelly_bettor_live_bets_on_the_mispriced_market_and_redeems_the_payout_exactly() {
    use defai::connectors::evm::alloy::primitives::U256 as AU256;
    let rt = rt();
    let (devnet, _) = rt.block_on(start());
    let info = devnet.info().clone();
    let dir = tempfile::tempdir().unwrap();
    let devnet_json = dir.path().join("devnet.json");
    info.write(&devnet_json).unwrap();
    // Forecasts: market 0 (priced 0.5) is worth 0.8; no opinion on the others.
    std::fs::write(
        dir.path().join("forecasts.json"),
        format!("{{\"{}\": 0.8}}", info.markets[0].address),
    )
    .unwrap();
    let config = dir.path().join("prediction.toml");
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/configs/prediction-devnet.toml"
    ))
    .unwrap()
    .replace("forecasts-devnet.json", "forecasts.json");
    std::fs::write(&config, text).unwrap();
    let key = devnet.test_key_hex(2).unwrap();
    let run = |cycles: &str, extra: &[&str]| {
        let mut args = vec![
            "run",
            "--config",
            config.to_str().unwrap(),
            "--devnet",
            devnet_json.to_str().unwrap(),
            "--max-cycles",
            cycles,
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_defai"))
            .env("DEFAI_STATE_ROOT", common::state_root())
            .args(&args)
            .env("DEFAI_PRIVATE_KEY", &key)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };

    // 1. One cycle: one bet, on outcome 0 of market 0, capped by max_bet.
    let v = run("1", &[]);
    assert_eq!(v["bets"], 1, "{v}");
    let bet = &v["bet_fills"][0];
    assert_eq!(bet["outcome"], 0);
    assert!(
        bet["market"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case(&info.markets[0].address.to_string())
    );
    let invested: f64 = bet["investment"].as_str().unwrap().parse().unwrap();
    assert!(invested > 1.0 && invested <= 500.0, "{invested}");
    assert_eq!(v["redeemed"], "0");
    assert!(
        v["tx_hashes"].as_array().unwrap().len() >= 2,
        "approve + buy"
    );

    // 2. The oracle resolves market 0 for outcome 0.
    let me = info.accounts[2];
    let (tokens, before) = rt.block_on(async {
        let pm = devnet.prediction_markets(8).unwrap();
        let m = market(&pm, &info, 0).await;
        let tokens = pm.outcome_balances(&m, me).await.unwrap()[0];
        let mut oracle = devnet.prediction_markets(8).unwrap();
        oracle
            .resolve(&m, &[AU256::from(1), AU256::ZERO])
            .await
            .unwrap();
        (tokens, pm.collateral_balance(&m, me).await.unwrap())
    });
    assert!(tokens > AU256::ZERO);

    // 3. Next cycle redeems first: collateral grows by exactly the winning tokens held. The
    //    redemption is an action of its own in the journal: its intent, its verdict, its
    //    redeemPositions transaction and a fill with the collateral received.
    let state = dir.path().join("state-redeem");
    let v = run("1", &["--state", state.to_str().unwrap()]);
    assert_eq!(v["redeemed"], tokens.to_string(), "{v}");
    let records = defai::connectors::journal::Journal::open(&state.join("journal.sqlite"))
        .unwrap()
        .records()
        .unwrap();
    let fill = records
        .iter()
        .find(|r| r.kind == "redeem_fill")
        .expect("a redemption fill on record");
    let id = fill.intent_id.clone().unwrap();
    let body: serde_json::Value = serde_json::from_str(&fill.body).unwrap();
    assert_eq!(body["collateral"]["units"], tokens.to_string(), "{body}");
    assert_eq!(body["collateral"]["symbol"], "dUSD", "{body}");
    assert!(
        records.iter().any(|r| r.kind == "intent"
            && r.intent_id.as_deref() == Some(&id)
            && r.body.contains(r#""type":"redeem""#)),
        "its own intent"
    );
    assert!(
        records
            .iter()
            .any(|r| r.kind == "verdict" && r.intent_id.as_deref() == Some(&id))
    );
    let redeem_steps: Vec<_> = records
        .iter()
        .filter(|r| r.kind == "tx" && r.body.contains("redeemPositions"))
        .collect();
    assert!(!redeem_steps.is_empty());
    assert!(
        redeem_steps
            .iter()
            .all(|r| r.intent_id.as_deref() == Some(&id)),
        "every redeemPositions step is journaled under the redemption's intent"
    );
    assert_eq!(
        v["bets"], 0,
        "the resolved market takes no bets; the others have no forecast"
    );
    let after = rt.block_on(async {
        let pm = devnet.prediction_markets(8).unwrap();
        let m = market(&pm, &info, 0).await;
        pm.collateral_balance(&m, me).await.unwrap()
    });
    assert_eq!(after, before + tokens);

    // 4. A gate max_bet below what the strategy wants refuses the bet; nothing is sent.
    std::fs::write(
        dir.path().join("forecasts.json"),
        format!("{{\"{}\": 0.9}}", info.markets[1].address),
    )
    .unwrap();
    let tight = std::fs::read_to_string(&config).unwrap().replace(
        "max_bet = 500.0                   # the gate",
        "max_bet = 2.0                   # the gate",
    );
    std::fs::write(&config, tight).unwrap();
    let v = run("1", &[]);
    assert_eq!(v["bets"], 0, "{v}");
    assert_eq!(v["risk"]["refused_by_reason"]["max_bet"], 1, "{v}");
    assert_eq!(v["tx_hashes"].as_array().unwrap().len(), 0);
}

/// Issue 12 (idle chains): an automine devnet makes no block while nobody sends; the bettor has no
/// forecast, so it sends nothing. Its cycles come from the `[chain] cycle_interval_s` timer, so
/// `--max-cycles 30` ends, and the agent says why it waits.
#[test]
fn the_bettor_on_an_idle_automine_devnet_cycles_on_the_timer_and_says_why_it_waits() {
    let rt = rt();
    let (devnet, _) = rt.block_on(start());
    let info = devnet.info().clone();
    let dir = tempfile::tempdir().unwrap();
    let devnet_json = dir.path().join("devnet.json");
    info.write(&devnet_json).unwrap();
    std::fs::write(dir.path().join("forecasts.json"), "{}").unwrap();
    let config = dir.path().join("prediction.toml");
    let text = common::example_config("prediction-devnet.toml")
        .replace("forecasts-devnet.json", "forecasts.json")
        .replace(
            "poll_interval_ms = 20",
            "poll_interval_ms = 5\ncycle_interval_s = 0.05",
        );
    std::fs::write(&config, text).unwrap();
    let block_before = rt.block_on(devnet.chain().block_number()).unwrap();
    let key = devnet.test_key_hex(2).unwrap();
    let out = common::defai(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--devnet",
            devnet_json.to_str().unwrap(),
            "--max-cycles",
            "30",
            "--json",
        ],
        &[("DEFAI_PRIVATE_KEY", &key)],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cycles"], 30, "{v}");
    assert_eq!(v["bets"], 0, "{v}");
    assert_eq!(
        rt.block_on(devnet.chain().block_number()).unwrap(),
        block_before,
        "no block was made: every cycle after the first came from the timer"
    );
    assert!(
        stderr.contains("no new block: waiting for one, cycling on the timer"),
        "{stderr}"
    );
}

/// Issue 12 (markets from the chain): without `devnet.json` the bettor finds its markets from the
/// FPMM factory's creation events, filtered by collateral and oracle; a market whose condition
/// another oracle prepared is not traded. `min_time_to_close_s` cannot apply to FPMM markets on
/// chain (no closing time) and is refused, naming the key.
#[test]
fn without_devnet_json_the_bettor_discovers_markets_from_the_factory_by_collateral_and_oracle() {
    let rt = rt();
    let (devnet, _) = rt.block_on(start());
    let info = devnet.info().clone();
    // A fourth market on the same collateral, its condition prepared by another oracle.
    let other_oracle = info.accounts[7];
    let foreign = rt.block_on(async {
        let mut pm = devnet.prediction_markets(0).unwrap();
        let spec = MarketSpec::binary(
            keccak256(b"someone else's question"),
            other_oracle,
            info.usd,
            U256::from(MARKET_FEE),
            usd(1_000),
        );
        pm.create_market(&spec).await.unwrap().address
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("forecasts.json"),
        format!(
            "{{\"{}\": 0.8, \"{foreign}\": 0.95}}",
            info.markets[0].address
        ),
    )
    .unwrap();
    let base = common::example_config("prediction-devnet.toml")
        .replace("forecasts-devnet.json", "forecasts.json")
        .replace(
            "[chain]\n",
            &format!(
                "[chain]\nrpc_url = \"{}\"\nchain_id = {}\n",
                info.rpc_url, info.chain_id
            ),
        );
    let markets = format!(
        "\n[markets]\nconditional_tokens = \"{}\"\nfpmm_factory = \"{}\"\noracle = \"{}\"\ncollateral = \"{}\"\nfrom_block = 0\n",
        info.conditional_tokens, info.fpmm_factory, info.oracle, info.usd
    );
    let key = devnet.test_key_hex(2).unwrap();
    let run = |text: String| {
        let config = dir.path().join("prediction.toml");
        std::fs::write(&config, text).unwrap();
        common::defai(
            &[
                "run",
                "--config",
                config.to_str().unwrap(),
                "--max-cycles",
                "1",
                "--json",
            ],
            &[("DEFAI_PRIVATE_KEY", &key)],
        )
    };
    let out = run(format!("{base}{markets}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["markets_seen"], 3,
        "the devnet's three, not the foreign one: {v}"
    );
    assert_eq!(v["bets"], 1, "{v}");
    assert!(
        v["bet_fills"][0]["market"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case(&info.markets[0].address.to_string()),
        "{v}"
    );
    assert!(
        stderr.contains("prediction markets found on chain"),
        "{stderr}"
    );

    // The foreign market listed explicitly is refused, named: its oracle is not ours.
    let listed = format!("{base}{markets}list = [\"{foreign}\"]\n");
    let out = run(listed);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&foreign.to_string()) && stderr.contains("was not prepared by oracle"),
        "{stderr}"
    );

    // A closing-time filter that cannot apply is an error naming the key and its line.
    let timed = format!("{base}{markets}").replace(
        "[strategy.params]\n",
        "[strategy.params]\nmin_time_to_close_s = 3600\n",
    );
    let out = run(timed);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("strategy.params.min_time_to_close_s")
            && stderr.contains("line")
            && stderr.contains("unsupported"),
        "{stderr}"
    );
}
