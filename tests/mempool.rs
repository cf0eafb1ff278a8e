//! The transaction lifecycle when the mempool misbehaves (issue 15), each case on its own anvil:
//! dropped transactions, refused replacements, transactions mined after the sender gave up,
//! swaps that revert on chain.

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

/// Buys `usd` whole dUSD worth of WETH on every event.
struct BuyEvery(u64);

impl defai::core::Strategy for BuyEvery {
    fn name(&self) -> &str {
        "buy_every"
    }
    fn on_event(
        &mut self,
        _: &defai::core::MarketEvent,
        ctx: &defai::core::Context<'_>,
    ) -> Result<Vec<defai::core::Intent>, defai::core::StrategyError> {
        let p = ctx.pair;
        let amount = U256::from(self.0) * p.quote.one();
        Ok(vec![defai::core::Intent::swap(&p.quote, &p.base, amount)])
    }
}

fn source_error(e: impl std::fmt::Display) -> defai::core::SourceError {
    defai::core::SourceError(e.to_string())
}

async fn dev(chain: &Chain, method: &'static str, automine: Option<bool>) {
    let _: serde_json::Value = match automine {
        Some(on) => chain.dev_call(method, (on,)).await.unwrap(),
        None => chain.dev_call(method, ()).await.unwrap(),
    };
}

/// `events` events at the WETH/dUSD pool's price, an hour apart; before event `n`, `before(n)`
/// acts on the chain.
struct Scripted<F> {
    chain: Chain,
    pool: defai::connectors::evm::PoolRef,
    step: i64,
    events: i64,
    before: F,
}

impl<F, Fut> defai::core::MarketSource for Scripted<F>
where
    F: FnMut(i64) -> Fut + Send,
    Fut: std::future::Future<Output = ()> + Send,
{
    async fn next_event(
        &mut self,
    ) -> Result<Option<defai::core::MarketEvent>, defai::core::SourceError> {
        use defai::connectors::evm::alloy::eips::BlockId;
        self.step += 1;
        if self.step > self.events {
            return Ok(None);
        }
        (self.before)(self.step).await;
        let (rb, rq) = self
            .pool
            .reserves(&self.chain, BlockId::latest())
            .await
            .map_err(source_error)?;
        let price = defai::core::amount::to_f64(rq, 6) / defai::core::amount::to_f64(rb, 18);
        Ok(Some(defai::core::MarketEvent::Bar(defai::core::Bar {
            ts: 1_700_000_000 + self.step * 3600,
            open: price,
            high: price,
            low: price,
            close: price,
            volume: 1.0,
        })))
    }
}

/// Verdict refusals as `id code`.
struct Refusals(Arc<std::sync::Mutex<Vec<String>>>);

impl defai::core::Observer for Refusals {
    fn on_audit(
        &mut self,
        e: &defai::core::AuditEvent<'_>,
    ) -> Result<(), defai::core::agent::AuditError> {
        if let defai::core::AuditEvent::Verdict { id, verdict, .. } = e
            && let defai::core::Verdict::Refuse(r) = verdict
        {
            self.0.lock().unwrap().push(format!("{id} {}", r.code));
        }
        Ok(())
    }
}

/// What a live run of [`BuyEvery`] left: its report, fills, refusals and journal.
struct LiveRun {
    report: defai::core::AgentReport,
    fills: Vec<defai::core::Fill>,
    refusals: Vec<String>,
    journal: defai::connectors::journal::Journal,
    _dir: tempfile::TempDir,
}

/// Devnet account `i` approves the router for its dUSD (so a buy sends one transaction), then
/// runs [`BuyEvery`]`(usd)` live on the Uniswap V2 venue over `source`, journaled, with
/// `receipt_timeout` and no replacements.
async fn run_live<S: defai::core::MarketSource>(
    devnet: &Devnet,
    i: usize,
    usd: u64,
    source: S,
    receipt_timeout: Duration,
) -> LiveRun {
    use defai::connectors::evm::{UniswapV2Config, UniswapV2Venue};
    use defai::connectors::journal::{Journal, JournalObserver};
    use defai::core::{Agent, Pair, Portfolio, Token, Venue};
    let chain = devnet.chain().clone();
    let info = devnet.info().clone();
    let policy = TxPolicy {
        receipt_timeout,
        max_replacements: 0,
        ..TxPolicy::default()
    };
    let sender = TxSender::new(
        chain.clone(),
        devnet.wallet(i).unwrap(),
        info.chain_id,
        Arc::new(NonceManager::new(info.accounts[i])),
        policy,
    )
    .unwrap();
    let approve = IERC20::approveCall {
        spender: info.router,
        value: U256::from(1_000_000_000_000u64),
    };
    sender
        .send(
            &TxRequest::call("approve", info.usd, approve.abi_encode()),
            &mut Vec::new(),
        )
        .await
        .unwrap();
    let pair = Pair::new(Token::new("WETH", 18), Token::new("dUSD", 6));
    let pool = weth_usd_pool(devnet).await;
    let cfg = UniswapV2Config {
        router: info.router,
        deadline_s: 3600,
        gas_per_swap: 150_000,
        chain_id: info.chain_id,
        chain_check_every: 1,
    };
    let mut venue = UniswapV2Venue::new(pool, sender, Token::new("ETH", 18), cfg);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let mut journal = JournalObserver::new(Journal::open(&path).unwrap());
    venue.set_recorder(journal.recorder());
    let tape = common::Tape::default();
    let refusals = Arc::new(std::sync::Mutex::new(Vec::new()));
    let report = Agent::new(
        pair,
        source,
        venue,
        Box::new(BuyEvery(usd)),
        Portfolio::new(),
    )
    .with_observer(Box::new(journal))
    .with_observer(Box::new(tape.clone()))
    .with_observer(Box::new(Refusals(refusals.clone())))
    .run()
    .await
    .unwrap();
    let refusals = refusals.lock().unwrap().clone();
    LiveRun {
        report,
        fills: tape.fills(),
        refusals,
        journal: Journal::open(&path).unwrap(),
        _dir: dir,
    }
}

async fn weth_usd_pool(devnet: &Devnet) -> defai::connectors::evm::PoolRef {
    use defai::core::{Pair, Token};
    let info = devnet.info();
    let pair = Pair::new(Token::new("WETH", 18), Token::new("dUSD", 6));
    defai::connectors::evm::PoolRef::resolve(
        devnet.chain(),
        pair,
        info.weth_usd_pair,
        info.weth,
        info.usd,
    )
    .await
    .unwrap()
}

/// The run's book equals account `i`'s balances on chain, to the wei.
async fn book_equals_chain(devnet: &Devnet, i: usize, run: &LiveRun) {
    use defai::connectors::evm::alloy::eips::BlockId;
    use defai::core::Token;
    let (chain, info) = (devnet.chain(), devnet.info());
    let me = info.accounts[i];
    let of = || IERC20::balanceOfCall { owner: me };
    let weth = chain
        .view(info.weth, of(), BlockId::latest())
        .await
        .unwrap();
    let usd = chain.view(info.usd, of(), BlockId::latest()).await.unwrap();
    let p = &run.report.portfolio;
    assert_eq!(p.balance(&Token::new("WETH", 18)), weth);
    assert_eq!(p.balance(&Token::new("dUSD", 6)), usd);
    assert_eq!(
        p.balance(&Token::new("ETH", 18)),
        chain.balance(me).await.unwrap()
    );
}

#[test]
fn a_swap_given_up_on_and_mined_later_becomes_the_fill_of_its_intent_and_nothing_is_reconciled() {
    rt().block_on(async {
        let devnet = Devnet::start(DevnetConfig::at_price(1338.12))
            .await
            .unwrap();
        let chain = devnet.chain().clone();
        // Before event 1 blocks stop: the swap is given up on, held by the node. Before event 3
        // one block is mined: the held swap lands.
        let source = Scripted {
            chain: chain.clone(),
            pool: weth_usd_pool(&devnet).await,
            step: 0,
            events: 4,
            before: |n| {
                let chain = chain.clone();
                async move {
                    match n {
                        1 => dev(&chain, "evm_setAutomine", Some(false)).await,
                        3 => {
                            dev(&chain, "evm_setAutomine", Some(true)).await;
                            dev(&chain, "evm_mine", None).await;
                        }
                        _ => {}
                    }
                }
            },
        };
        let run = run_live(&devnet, 2, 1_000, source, Duration::from_millis(400)).await;

        // Event 2: no new exposure while the first swap may still land. Event 3: it landed,
        // booked as the fill of event 1's intent, then event 3's buy; event 4 buys again.
        assert_eq!(run.report.execution_failures, 1);
        assert_eq!(run.refusals, ["buy_every:1700007200:0 open_transaction"]);
        let first = "buy_every:1700003600:0";
        let ids: Vec<String> = run.fills.iter().map(|f| f.id.to_string()).collect();
        assert_eq!(
            ids,
            [first, "buy_every:1700010800:0", "buy_every:1700014400:0"]
        );
        assert_eq!(run.report.fills, 3);
        assert!(
            run.fills
                .iter()
                .all(|f| f.amount_out > U256::ZERO && f.tx_hash.is_some())
        );
        // Every booking came from the venue's own figures: nothing needed correcting.
        assert_eq!(run.report.reconciliations, 0);
        book_equals_chain(&devnet, 2, &run).await;

        // The journal: the late swap's `mined` step and its fill are under the first intent,
        // and nothing is left open for a restart to settle.
        let records = run.journal.records().unwrap();
        let late = run.fills[0].tx_hash.clone().unwrap();
        let mined: Vec<_> = records
            .iter()
            .filter(|r| {
                r.kind == "tx"
                    && r.tx_hash.as_deref() == Some(late.as_str())
                    && r.body.contains("\"mined\"")
            })
            .collect();
        assert_eq!(mined.len(), 1);
        assert_eq!(mined[0].intent_id.as_deref(), Some(first));
        assert!(records.iter().any(|r| r.kind == "fill"
            && r.intent_id.as_deref() == Some(first)
            && r.tx_hash.as_deref() == Some(late.as_str())));
        assert!(run.journal.resume().unwrap().unsettled.is_empty());
    });
}

#[test]
fn a_swap_that_reverts_on_chain_books_its_gas_and_nothing_is_reconciled() {
    use defai::connectors::evm::alloy::eips::Encodable2718;
    use defai::connectors::evm::alloy::network::{
        EthereumWallet, NetworkTransactionBuilder, TransactionBuilder,
    };
    use defai::connectors::evm::alloy::providers::Provider;
    use defai::connectors::evm::alloy::rpc::types::TransactionRequest;
    use defai::connectors::evm::alloy::signers::local::PrivateKeySigner;
    use defai::connectors::evm::bindings::IUniswapV2Router02;
    rt().block_on(async {
        let devnet = Devnet::start(DevnetConfig::at_price(1338.12))
            .await
            .unwrap();
        let chain = devnet.chain().clone();
        let info = devnet.info().clone();
        // Account 3 will buy 80,000 dUSD of WETH ahead of the agent's buy (a higher tip), moving
        // the price past the agent's 1 % slippage guard: the agent's swap is mined and reverts.
        let front = info.accounts[3];
        let approve = IERC20::approveCall {
            spender: info.router,
            value: U256::MAX,
        };
        sender(&devnet, 3, 0)
            .send(
                &TxRequest::call("approve", info.usd, approve.abi_encode()),
                &mut Vec::new(),
            )
            .await
            .unwrap();
        let key: PrivateKeySigner = devnet.test_key_hex(3).unwrap().parse().unwrap();
        let front_nonce = chain.nonce(front, true).await.unwrap();
        let swap = IUniswapV2Router02::swapExactTokensForTokensCall {
            amountIn: U256::from(80_000_000_000u64),
            amountOutMin: U256::ZERO,
            path: vec![info.usd, info.weth],
            to: front,
            deadline: U256::from(u64::MAX),
        };
        let tx = TransactionRequest::default()
            .with_from(front)
            .with_to(info.router)
            .with_input(swap.abi_encode())
            .with_nonce(front_nonce)
            .with_chain_id(info.chain_id)
            .with_gas_limit(300_000)
            .with_max_fee_per_gas(100_000_000_000)
            .with_max_priority_fee_per_gas(50_000_000_000);
        let raw = NetworkTransactionBuilder::build(tx, &EthereumWallet::from(key))
            .await
            .unwrap()
            .encoded_2718();
        let me = info.accounts[2];
        let front_runner = Arc::new(tokio::sync::Mutex::new(None));
        let source = Scripted {
            chain: chain.clone(),
            pool: weth_usd_pool(&devnet).await,
            step: 0,
            events: 2,
            before: |n| {
                let (chain, raw, front_runner) = (chain.clone(), raw.clone(), front_runner.clone());
                async move {
                    match n {
                        1 => {
                            dev(&chain, "evm_setAutomine", Some(false)).await;
                            // Once the agent's swap is pending: the front-runner's, then one
                            // block with both (the higher tip first).
                            let start = chain.nonce(me, true).await.unwrap();
                            *front_runner.lock().await = Some(tokio::spawn(async move {
                                until_pending(&chain, me, start + 1).await;
                                let _sent =
                                    chain.provider().send_raw_transaction(&raw).await.unwrap();
                                dev(&chain, "evm_mine", None).await;
                                dev(&chain, "evm_setAutomine", Some(true)).await;
                            }));
                        }
                        _ => {
                            if let Some(task) = front_runner.lock().await.take() {
                                task.await.unwrap();
                            }
                        }
                    }
                }
            },
        };
        // The receipt comes well within the timeout: the sender sees the revert itself.
        let run = run_live(&devnet, 2, 1_000, source, Duration::from_secs(20)).await;

        assert!(run.refusals.is_empty(), "{:?}", run.refusals);
        assert_eq!(run.report.execution_failures, 1);
        let records = run.journal.records().unwrap();
        let reverted = records
            .iter()
            .find(|r| r.kind == "tx" && r.body.contains("status 0"))
            .expect("the agent's swap was mined and reverted");
        let gas = records
            .iter()
            .find(|r| r.kind == "gas")
            .expect("its gas is booked");
        assert_eq!(gas.intent_id.as_deref(), Some("buy_every:1700003600:0"));
        assert!(
            !records.iter().any(|r| r.body.contains("\"gave_up\"")),
            "the sender saw the revert itself (not a late settlement)"
        );
        assert_eq!(gas.tx_hash, reverted.tx_hash);
        // Event 2's buy fills; the book equals the chain without a correction.
        assert_eq!(run.report.fills, 1);
        assert_eq!(run.report.reconciliations, 0);
        book_equals_chain(&devnet, 2, &run).await;
    });
}
