//! Every kind through the one agent loop on the devnet: the bettor and the rebalancer get the
//! kill switch's flatten, the loss limits on equity across everything they hold, the chain-id
//! re-check and the trip after consecutive failures, as the trading agent does.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::defai;
use defai::connectors::evm::alloy::primitives::U256;
use defai::connectors::evm::{Devnet, DevnetConfig, DevnetInfo, MarketMover};

const PRICE: f64 = 1338.12;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// An example config with `edits` (each `from` must be in the file), written into `dir`.
fn config(dir: &Path, example: &str, edits: &[(&str, &str)]) -> PathBuf {
    let mut text = common::example_config(example);
    for (from, to) in edits {
        assert!(text.contains(from), "{example} has no `{from}`");
        text = text.replacen(from, to, 1);
    }
    let path = dir.join(example);
    std::fs::write(&path, text).unwrap();
    path
}

/// `defai run` on the devnet with the state folder `state`; its JSON summary (the run must
/// succeed).
fn run(config: &Path, json: &Path, state: &Path, key: &str, cycles: u32) -> serde_json::Value {
    let out = defai(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--devnet",
            json.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
            "--max-cycles",
            &cycles.to_string(),
            "--json",
            "--no-api",
        ],
        &[("DEFAI_PRIVATE_KEY", key)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn kill(state: &Path, mode: &str) {
    let out = defai(
        &[
            "kill",
            "--state",
            state.to_str().unwrap(),
            "--mode",
            mode,
            "--reason",
            "operator test",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the agent as a child with `RUST_LOG=info`, calls `when` once a stderr line contains
/// `marker` (the agent's own log: no guess of how long it takes), and returns the summary.
fn run_and_act_on(
    config: &Path,
    json: &Path,
    key: &str,
    cycles: u32,
    marker: &str,
    when: impl FnOnce(),
) -> serde_json::Value {
    let mut child = Command::new(env!("CARGO_BIN_EXE_defai"))
        .env("DEFAI_STATE_ROOT", common::state_root())
        .env("DEFAI_PRIVATE_KEY", key)
        .env("RUST_LOG", "info")
        .args([
            "run",
            "--config",
            config.to_str().unwrap(),
            "--devnet",
            json.to_str().unwrap(),
            "--max-cycles",
            &cycles.to_string(),
            "--json",
            "--no-api",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines().map_while(Result::ok);
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = plain(&line);
        let hit = line.contains(marker);
        seen.push(line);
        if hit {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l.contains(marker)),
        "the agent never logged `{marker}`:\n{}",
        seen.join("\n")
    );
    when();
    seen.extend(lines);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", seen.join("\n"));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `line` without its terminal colour codes (`ESC [ … m`).
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

struct Bettor {
    devnet: Devnet,
    info: DevnetInfo,
    dir: tempfile::TempDir,
    json: PathBuf,
    key: String,
}

/// A devnet with its prediction markets, and forecasts making market 0 (priced 0.5) worth 0.8.
fn bettor(rt: &tokio::runtime::Runtime) -> Bettor {
    let devnet = rt
        .block_on(Devnet::start(DevnetConfig::at_price(PRICE)))
        .unwrap();
    let info = devnet.info().clone();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("devnet.json");
    info.write(&json).unwrap();
    forecast(dir.path(), &[(&info, 0, 0.8)]);
    let key = devnet.test_key_hex(2).unwrap();
    Bettor {
        devnet,
        info,
        dir,
        json,
        key,
    }
}

fn forecast(dir: &Path, markets: &[(&DevnetInfo, usize, f64)]) {
    let body: Vec<String> = markets
        .iter()
        .map(|(info, i, p)| format!("\"{}\": {p}", info.markets[*i].address))
        .collect();
    std::fs::write(
        dir.join("forecasts.json"),
        format!("{{{}}}", body.join(", ")),
    )
    .unwrap();
}

/// The bettor's config: forecasts.json, a 1 s cycle timer on the idle devnet, `edits`.
fn bettor_config(dir: &Path, edits: &[(&str, &str)]) -> PathBuf {
    let mut all = vec![
        (
            "forecasts = \"forecasts-devnet.json\"",
            "forecasts = \"forecasts.json\"",
        ),
        ("[chain]\n", "[chain]\ncycle_interval_s = 1.0\n"),
    ];
    all.extend_from_slice(edits);
    config(dir, "prediction-devnet.toml", &all)
}

/// The oracle resolves devnet market `i` for `outcome` (0 or 1).
fn resolve(rt: &tokio::runtime::Runtime, b: &Bettor, i: usize, outcome: usize) {
    rt.block_on(async {
        let mut oracle = b.devnet.prediction_markets(8).unwrap();
        let m = &b.info.markets[i];
        let market = oracle
            .market(m.address, m.question_id, b.info.oracle)
            .await
            .unwrap();
        let mut payouts = [U256::ZERO, U256::ZERO];
        payouts[outcome] = U256::from(1);
        oracle.resolve(&market, &payouts).await.unwrap();
    });
}

#[test]
fn a_killed_bettor_bets_no_more_holds_its_positions_to_redemption_then_halts() {
    let rt = rt();
    let b = bettor(&rt);
    let cfg = bettor_config(b.dir.path(), &[]);
    let state = b.dir.path().join("state");
    let v = run(&cfg, &b.json, &state, &b.key, 1);
    assert_eq!(v["bets"], 1, "{v}");

    // The operator flattens. Market 1 now looks mispriced too: no bet on it, and the position
    // in market 0 is held (it is not sold back), the switch stays in its flatten.
    kill(&state, "flatten");
    forecast(b.dir.path(), &[(&b.info, 0, 0.8), (&b.info, 1, 0.9)]);
    let v = run(&cfg, &b.json, &state, &b.key, 2);
    assert_eq!(v["bets"], 0, "{v}");
    assert!(
        v["risk"]["refused_by_reason"]["kill_switch_reduce_only"]
            .as_u64()
            .unwrap()
            >= 1,
        "{v}"
    );
    assert_eq!(v["kill_switch"]["state"], "reduce_only", "{v}");

    // Market 0 resolves for us: the redemption still goes through (it removes risk), and with
    // nothing held the flatten is done: halted.
    resolve(&rt, &b, 0, 0);
    let v = run(&cfg, &b.json, &state, &b.key, 1);
    assert_ne!(v["redeemed"], "0", "{v}");
    assert_eq!(v["kill_switch"]["state"], "halted", "{v}");
    let reason = v["kill_switch"]["reason"].as_str().unwrap();
    assert!(reason.contains("flattened"), "{reason}");
}

#[test]
fn the_bettors_drawdown_limit_trips_when_a_market_resolves_against_it() {
    let rt = rt();
    let b = bettor(&rt);
    // 100,000 dUSD of bankroll, bets of up to 500: a lost bet is a fall of up to 0.5 %.
    let cfg = bettor_config(
        b.dir.path(),
        &[("[risk]\n", "[risk]\nmax_drawdown_pct = 0.2\n")],
    );
    let state = b.dir.path().join("state");
    let v = run(&cfg, &b.json, &state, &b.key, 1);
    assert_eq!(v["bets"], 1, "{v}");
    assert_eq!(v["kill_switch"]["state"], "active", "{v}");
    let invested: f64 = v["bet_fills"][0]["investment"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        invested > 200.0,
        "a loss above 0.2 % of 100,000: {invested}"
    );

    // Market 0 resolves for outcome 1: the position is worth nothing. Equity is measured from
    // the peak the first run saved, so the restart sees the fall.
    resolve(&rt, &b, 0, 1);
    let v = run(&cfg, &b.json, &state, &b.key, 1);
    assert_eq!(v["kill_switch"]["state"], "halted", "{v}");
    let reason = v["kill_switch"]["reason"].as_str().unwrap();
    assert!(reason.contains("max_drawdown"), "{reason}");
    assert_eq!(v["bets"], 0, "{v}");
}

#[test]
fn the_bettor_halts_after_consecutive_failed_bets_and_sends_nothing() {
    let rt = rt();
    let b = bettor(&rt);
    // The sender refuses every transaction above a gas price far below the devnet's.
    let cfg = bettor_config(
        b.dir.path(),
        &[
            ("max_gas_price_gwei = 50.0", "max_gas_price_gwei = 0.001"),
            (
                "[risk]\n",
                "[kill_switch]\nmax_consecutive_failures = 2\n\n[risk]\n",
            ),
        ],
    );
    let me = b.info.accounts[2];
    let nonce =
        |rt: &tokio::runtime::Runtime| rt.block_on(b.devnet.chain().nonce(me, false)).unwrap();
    let before = nonce(&rt);
    let state = b.dir.path().join("state");
    let v = run(&cfg, &b.json, &state, &b.key, 4);
    assert_eq!(v["bets"], 0, "{v}");
    assert_eq!(v["execution_failures"], 2, "{v}");
    assert_eq!(v["kill_switch"]["state"], "halted", "{v}");
    let reason = v["kill_switch"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("2 consecutive execution failures"),
        "{reason}"
    );
    assert_eq!(nonce(&rt), before, "nothing was sent");
}

#[test]
fn the_bettor_halts_when_the_rpc_changes_chain_mid_run() {
    let rt = rt();
    let b = bettor(&rt);
    let cfg = bettor_config(
        b.dir.path(),
        &[("[chain]\n", "[chain]\nchain_check_every = 1\n")],
    );
    let chain = b.devnet.chain().clone();
    // Once its first bet is booked (its own log says so); each bet's blocks start a cycle.
    let v = run_and_act_on(
        &cfg,
        &b.json,
        &b.key,
        8,
        "defai::audit: bet market=",
        || {
            rt.block_on(async {
                let _: serde_json::Value =
                    chain.dev_call("anvil_setChainId", (999u64,)).await.unwrap();
            })
        },
    );
    assert!(v["bets"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(v["kill_switch"]["state"], "halted", "{v}");
    let reason = v["kill_switch"]["reason"].as_str().unwrap();
    assert!(reason.contains("chain id changed"), "{reason}");
}

struct Rebalancer {
    devnet: Devnet,
    dir: tempfile::TempDir,
    json: PathBuf,
    key: String,
}

fn rebalancer(rt: &tokio::runtime::Runtime) -> Rebalancer {
    let devnet = rt
        .block_on(Devnet::start(DevnetConfig::at_price(PRICE)))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("devnet.json");
    devnet.info().write(&json).unwrap();
    let key = devnet.test_key_hex(7).unwrap();
    Rebalancer {
        devnet,
        dir,
        json,
        key,
    }
}

fn rebalance_config(dir: &Path, edits: &[(&str, &str)]) -> PathBuf {
    let mut all = vec![("[chain]\n", "[chain]\ncycle_interval_s = 1.0\n")];
    all.extend_from_slice(edits);
    config(dir, "rebalance-devnet.toml", &all)
}

fn held(v: &serde_json::Value, token: &str) -> f64 {
    v["balances"][token].as_str().unwrap().parse().unwrap()
}

#[test]
fn a_killed_rebalancer_sells_every_asset_into_the_quote_token_then_halts() {
    let rt = rt();
    let r = rebalancer(&rt);
    let cfg = rebalance_config(r.dir.path(), &[]);
    let state = r.dir.path().join("state");
    let v = run(&cfg, &r.json, &state, &r.key, 1);
    assert!(held(&v, "WETH") > 50.0 && held(&v, "DVT") > 1000.0, "{v}");

    // Flatten within the 100 bps price-impact limit: a slice per block until nothing is left.
    kill(&state, "flatten");
    let v = run(&cfg, &r.json, &state, &r.key, 12);
    assert_eq!(v["kill_switch"]["state"], "halted", "{v}");
    let reason = v["kill_switch"]["reason"].as_str().unwrap();
    assert!(reason.contains("flattened"), "{reason}");
    // What is left is worth less than a cent.
    assert!(held(&v, "WETH") * PRICE < 0.01, "{v}");
    assert!(held(&v, "DVT") * 2.0 < 0.01, "{v}");
    assert!(held(&v, "dUSD") > 200_000.0, "{v}");
    assert!(v["risk"]["partial_unwinds"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(v["reconciliations"], 0, "booked to the wei: {v}");
}

#[test]
fn the_rebalancers_drawdown_limit_trips_on_a_price_fall_across_its_assets() {
    let rt = rt();
    let r = rebalancer(&rt);
    let cfg = rebalance_config(
        r.dir.path(),
        &[("[risk]\n", "[risk]\nmax_drawdown_pct = 5.0\n")],
    );
    let state = r.dir.path().join("state");
    let v = run(&cfg, &r.json, &state, &r.key, 1);
    assert_eq!(v["kill_switch"]["state"], "active", "{v}");

    // WETH falls by a quarter: ~40 % of the book loses a quarter, a fall of ~10 % from the peak
    // (past the 5 % drawdown limit, short of the 20 % daily-loss limit).
    rt.block_on(async {
        let mover = MarketMover::new(r.devnet.info(), r.devnet.deployer().clone(), 3600)
            .await
            .unwrap();
        mover.step(PRICE * 0.75).await.unwrap();
    });
    let v = run(&cfg, &r.json, &state, &r.key, 12);
    assert_eq!(v["kill_switch"]["state"], "halted", "{v}");
    let reason = v["kill_switch"]["reason"].as_str().unwrap();
    assert!(reason.contains("max_drawdown"), "{reason}");
    assert!(held(&v, "WETH") * PRICE < 0.01, "{v}");
}

#[test]
fn the_rebalancer_halts_when_the_rpc_changes_chain_mid_run() {
    let rt = rt();
    let r = rebalancer(&rt);
    let cfg = rebalance_config(
        r.dir.path(),
        &[("[chain]\n", "[chain]\nchain_check_every = 1\n")],
    );
    let chain = r.devnet.chain().clone();
    // Once its first rebalance is done and the devnet is quiet (its own log says so).
    let v = run_and_act_on(&cfg, &r.json, &r.key, 6, "no new block", || {
        rt.block_on(async {
            let _: serde_json::Value = chain.dev_call("anvil_setChainId", (999u64,)).await.unwrap();
        })
    });
    assert_eq!(v["kill_switch"]["state"], "halted", "{v}");
    let reason = v["kill_switch"]["reason"].as_str().unwrap();
    assert!(reason.contains("chain id changed"), "{reason}");
}

#[test]
fn the_rebalancer_refuses_to_start_on_a_contract_outside_allowed_contracts() {
    let rt = rt();
    let r = rebalancer(&rt);
    let pools = format!(
        "[risk]\nallowed_contracts = [\"{}\", \"{}\", \"{}\", \"{}\", \"{}\"]\n",
        r.devnet.info().weth,
        r.devnet.info().dvt,
        r.devnet.info().usd,
        r.devnet.info().weth_usd_pair,
        r.devnet.info().dvt_usd_pair,
    );
    let cfg = rebalance_config(r.dir.path(), &[("[risk]\n", &pools)]);
    let me = r.devnet.info().accounts[7];
    let before = rt.block_on(r.devnet.chain().nonce(me, false)).unwrap();
    let out = defai(
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--devnet",
            r.json.to_str().unwrap(),
            "--max-cycles",
            "1",
            "--json",
        ],
        &[("DEFAI_PRIVATE_KEY", &r.key)],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("router") && stderr.contains("allowed_contracts"),
        "{stderr}"
    );
    let after = rt.block_on(r.devnet.chain().nonce(me, false)).unwrap();
    assert_eq!(after, before, "nothing was sent");
}

/// Issue 12's proof that the runtime is open: `examples/cross_dex_arbitrage.rs` (public API
/// only) runs live on the devnet's two Uniswap V2 deployments after the market mover moved the
/// first, through the gate, the kill switch and the journal, and leaves the pools closer.
#[test]
fn the_cross_dex_arbitrage_example_runs_live_and_leaves_the_two_pools_closer() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    // The mover moves only the first DEX: 2 % apart.
    let (devnet, json) = common::devnet_two_dexes_apart(&rt, PRICE, dir.path());
    let state = dir.path().join("state");
    let journal = state.join("journal.sqlite");
    let out = Command::new(common::example_bin("cross_dex_arbitrage"))
        .env("DEFAI_PRIVATE_KEY", devnet.test_key_hex(3).unwrap())
        .args([json.to_str().unwrap(), state.to_str().unwrap(), "6"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let gap = |prices: &serde_json::Value| {
        let p: Vec<f64> = prices
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        (p[0] / p[1] - 1.0).abs()
    };
    let (before, after) = (gap(&v["prices_before"]), gap(&v["prices_after"]));
    assert!(before > 0.015, "{v}");
    assert!(
        after < before / 2.0,
        "the pools closer: {before} → {after}: {v}"
    );
    assert!(v["fills"].as_u64().unwrap() >= 2, "{v}");
    assert_eq!(
        v["fills"].as_u64().unwrap() % 2,
        0,
        "legs come in pairs: {v}"
    );
    assert_eq!(v["execution_failures"], 0, "{v}");
    assert_eq!(v["reconciliations"], 0, "booked to the wei: {v}");
    assert_eq!(v["kill_switch"], "Active", "{v}");
    // The journal: the bundle's intent, each leg's verdict and transactions under the leg's
    // id, the bundle's own verdict.
    let records = defai::connectors::journal::Journal::open(&journal)
        .unwrap()
        .records()
        .unwrap();
    // A bundle that filled: its first leg's swap mined under the leg's id.
    let leg0 = records
        .iter()
        .filter(|r| r.kind == "tx" && r.body.contains(r#""step":"mined""#))
        .filter_map(|r| r.intent_id.clone())
        .find(|i| i.contains("#0:"))
        .expect("a mined transaction of a bundle's first leg");
    let id = leg0.replacen("#0:", ":", 1);
    assert!(
        records.iter().any(|r| r.kind == "intent"
            && r.intent_id.as_deref() == Some(&id)
            && r.body.contains(r#""type":"bundle""#)),
        "the bundle {id} is on record as one intent"
    );
    let (strategy, rest) = id.split_once(':').unwrap();
    for leg in 0..2 {
        let leg_id = format!("{strategy}#{leg}:{rest}");
        assert!(
            records
                .iter()
                .any(|r| r.kind == "verdict" && r.intent_id.as_deref() == Some(&leg_id)),
            "no verdict for {leg_id}"
        );
        assert!(
            records.iter().any(|r| r.kind == "tx"
                && r.intent_id.as_deref() == Some(&leg_id)
                && r.body.contains(r#""step":"mined""#)),
            "no mined transaction for {leg_id}"
        );
    }
    assert!(
        records
            .iter()
            .any(|r| r.kind == "verdict" && r.intent_id.as_deref() == Some(&id))
    );
}

/// The rebalancer's legs fail at execution (its router breaks: every swap's simulation
/// reverts, nothing is sent): after `max_consecutive_failures` in a row the kill switch halts.
#[test]
fn the_rebalancer_halts_after_consecutive_failed_legs() {
    use defai::connectors::evm::TxRequest;
    use defai::connectors::evm::alloy::sol_types::SolCall;
    let rt = rt();
    let r = rebalancer(&rt);
    let cfg = rebalance_config(
        r.dir.path(),
        &[(
            "[risk]\n",
            "[kill_switch]\nmax_consecutive_failures = 2\n\n[risk]\n",
        )],
    );
    let info = r.devnet.info().clone();
    let chain = r.devnet.chain().clone();
    let deployer = r.devnet.deployer().clone();
    // Once the first rebalance is done and the devnet is quiet: the router breaks, then WETH
    // jumps 60 % (dUSD minted into the pool and synced: no router needed), so the rebalancer
    // has legs to trade and every one of them fails.
    let v = run_and_act_on(&cfg, &r.json, &r.key, 8, "no new block", || {
        rt.block_on(async {
            let _: serde_json::Value = chain
                .dev_call("anvil_setCode", (info.router, "0xfe"))
                .await
                .unwrap();
            let (_, rq) = {
                let pool = defai::connectors::evm::PoolRef::resolve(
                    &chain,
                    defai::core::Pair::new(
                        defai::core::Token::new("WETH", 18),
                        defai::core::Token::new("dUSD", 6),
                    ),
                    info.weth_usd_pair,
                    info.weth,
                    info.usd,
                )
                .await
                .unwrap();
                pool.reserves(
                    &chain,
                    defai::connectors::evm::alloy::eips::BlockId::latest(),
                )
                .await
                .unwrap()
            };
            let mint = TxRequest::call(
                "mint",
                info.usd,
                defai::connectors::evm::bindings::DevToken::mintCall {
                    to: info.weth_usd_pair,
                    value: rq * U256::from(6u8) / U256::from(10u8),
                }
                .abi_encode(),
            );
            let sync = TxRequest::call("sync", info.weth_usd_pair, vec![0xff, 0xf6, 0xca, 0xe9]);
            let mut log = Vec::new();
            deployer.send(&mint, &mut log).await.unwrap();
            deployer.send(&sync, &mut log).await.unwrap();
        })
    });
    assert_eq!(v["kill_switch"]["state"], "halted", "{v}");
    let reason = v["kill_switch"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("2 consecutive execution failures"),
        "{reason}"
    );
    assert!(v["execution_failures"].as_u64().unwrap() >= 2, "{v}");
}

/// `model` and `tilt` in the rebalancer's `[strategy.params]`: the shipped candle model tilts
/// its targets (each asset's probability journaled as a decision naming the model's hash); a
/// model that cannot be loaded, or a tilt without a model, stops the run before anything is
/// sent, naming the parameter.
#[test]
fn the_rebalancers_targets_are_tilted_by_the_model_its_config_names() {
    let rt = rt();
    // A market mover makes the blocks (a bar per new block) and moves WETH's pool.
    let closes: Vec<f64> = common::bundled_bars()[20_000..21_000]
        .iter()
        .map(|b| b.close)
        .collect();
    let (devnet, stop, _mover) = rt.block_on(common::devnet_with_mover(closes, 15));
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("devnet.json");
    devnet.info().write(&json).unwrap();
    let r = Rebalancer {
        key: devnet.test_key_hex(7).unwrap(),
        devnet,
        dir,
        json,
    };
    let refused = |edit: &str, name: &str| {
        let cfg = config(
            r.dir.path(),
            "rebalance-devnet.toml",
            &[("band = 0.05", edit)],
        );
        let out = defai(
            &[
                "run",
                "--config",
                cfg.to_str().unwrap(),
                "--devnet",
                r.json.to_str().unwrap(),
                "--state",
                r.dir.path().join(name).to_str().unwrap(),
                "--max-cycles",
                "1",
                "--no-api",
            ],
            &[("DEFAI_PRIVATE_KEY", &r.key)],
        );
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let e = refused("band = 0.05\ntilt = 0.2", "a");
    assert!(e.contains("tilt") && e.contains("without a `model`"), "{e}");
    let e = refused("band = 0.05\nmodel = \"/no/such/model\"", "b");
    assert!(e.contains("model") && e.contains("/no/such/model"), "{e}");

    let cfg = rebalance_config(
        r.dir.path(),
        &[(
            "band = 0.05",
            "band = 0.05\nmodel = \"shipped\"\ntilt = 0.2",
        )],
    );
    let state = r.dir.path().join("state");
    let v = run(&cfg, &r.json, &state, &r.key, 80);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(v["cycles"], 80, "{v}");
    assert!(v["trades"].as_u64().unwrap() >= 2, "{v}");
    let hash = defai::models::PriceDirection::shipped()
        .unwrap()
        .hash()
        .to_string();
    let decisions = common::decisions_naming(&state, &hash);
    assert_eq!(decisions, 2 * (80 - 72), "WETH and DVT after the warm-up");
}
