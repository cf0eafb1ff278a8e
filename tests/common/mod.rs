//! Shared by the library-level end-to-end tests: the bundled data, a paper venue, an agent with
//! 10,000 USDC and a recorder of the audit stream.
// Each test binary uses a different subset.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use defai::connectors::{LoadOptions, PaperAmmConfig, PaperVenue, load_csv_bytes};
use defai::core::{
    Agent, AgentReport, AuditEvent, Bar, BarReplay, Fill, Observer, Pair, Portfolio, Strategy,
    U256, Venue,
};
use defai::engine::{EMBEDDED_DATA, EMBEDDED_NAME};

/// The bundled ETH/USDC hourly bars the `defai` binary replays by default; panics if they do
/// not parse.
pub(crate) fn bundled_bars() -> Vec<Bar> {
    load_csv_bytes(EMBEDDED_NAME, EMBEDDED_DATA, LoadOptions::default())
        .unwrap()
        .bars
}

/// A paper Uniswap V2 venue for ETH/USDC with the pair's default pool (fee, depth, gas).
pub(crate) fn paper() -> PaperVenue {
    let pair = Pair::eth_usdc();
    PaperVenue::new(pair.clone(), PaperAmmConfig::default_for(&pair))
}

/// An ETH/USDC agent starting with 10,000 USDC, default gate and kill switch.
pub(crate) fn agent<V: Venue>(
    strategy: Box<dyn Strategy>,
    venue: V,
    bars: Vec<Bar>,
) -> Agent<BarReplay, V> {
    let pair = Pair::eth_usdc();
    let portfolio = Portfolio::with_balances([(pair.quote.clone(), U256::from(10_000_000_000u64))]);
    Agent::new(pair, BarReplay::new(bars), venue, strategy, portfolio)
}

/// Runs `agent` to the end of its bars on a fresh current-thread tokio runtime and returns its
/// report; panics if the runtime cannot be built or the run fails.
pub(crate) fn run_to_end<V: Venue>(agent: Agent<BarReplay, V>) -> AgentReport {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(agent.run()).unwrap()
}

/// What the run did, as the audit stream told it: an [`Observer`] to hand the agent, with a
/// shared handle to read afterwards (clones share one recording).
#[derive(Debug, Default, Clone)]
pub(crate) struct Tape(pub(crate) Arc<Mutex<Recorded>>);

/// (close, equity) per bar, and the fills.
pub(crate) type Recorded = (Vec<(f64, f64)>, Vec<Fill>);

impl Tape {
    /// The fills recorded so far, in order; panics if the recording's lock is poisoned.
    pub(crate) fn fills(&self) -> Vec<Fill> {
        self.0.lock().unwrap().1.clone()
    }
}

impl Observer for Tape {
    fn on_audit(&mut self, e: &AuditEvent<'_>) -> Result<(), defai::core::agent::AuditError> {
        let mut t = self.0.lock().unwrap();
        match e {
            AuditEvent::Mark { price, equity, .. } => t.0.push((*price, *equity)),
            AuditEvent::Fill(f) => t.1.push((*f).clone()),
            _ => {}
        }
        Ok(())
    }
}

/// A fresh `DEFAI_STATE_ROOT` for one `defai` invocation: default state folders of tests that
/// run at once must not meet (each agent locks its folder). Creates the folder and returns
/// its path; panics if it cannot be created.
pub(crate) fn state_root() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "defai-test-state-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The runtime of the devnet tests: two workers, so a market mover runs beside the test.
/// Panics if tokio cannot build it.
pub(crate) fn devnet_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Starts a devnet at the first of `closes` and a market mover replaying them in the
/// background, `pause_ms` apart; returns the devnet, the stop flag and the mover's task.
/// Panics if anvil or the mover cannot start (or `closes` is empty).
pub(crate) async fn devnet_with_mover(
    closes: Vec<f64>,
    pause_ms: u64,
) -> (
    defai::connectors::evm::Devnet,
    Arc<std::sync::atomic::AtomicBool>,
    tokio::task::JoinHandle<Result<usize, defai::connectors::evm::EvmError>>,
) {
    use defai::connectors::evm::{Devnet, DevnetConfig, MarketMover};
    let devnet = Devnet::start(DevnetConfig::at_price(closes[0]))
        .await
        .unwrap();
    let mover = MarketMover::new(devnet.info(), devnet.deployer().clone(), 3600)
        .await
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let task = tokio::spawn(async move {
        mover
            .replay(&closes, std::time::Duration::from_millis(pause_ms), &flag)
            .await
    });
    (devnet, stop, task)
}

/// Starts `defai devnet --port 0 [extra]`, writing `dir/devnet.json`; returns the child and
/// what it wrote, once it is written. Panics if the binary cannot be spawned, `devnet.json`
/// does not appear within 60 s, or it cannot be read.
pub(crate) fn spawn_devnet(
    dir: &std::path::Path,
    extra: &[&str],
) -> (std::process::Child, defai::connectors::evm::DevnetInfo) {
    let json = dir.join("devnet.json");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_defai"))
        .env("DEFAI_STATE_ROOT", state_root())
        .args(["devnet", "--port", "0", "--out", json.to_str().unwrap()])
        .args(extra)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !json.exists() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "devnet.json never appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    (
        child,
        defai::connectors::evm::DevnetInfo::read(&json).unwrap(),
    )
}

/// The port of a devnet's RPC URL.
pub(crate) fn port_of(info: &defai::connectors::evm::DevnetInfo) -> String {
    info.rpc_url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string()
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` right now.
pub(crate) fn listening(port: &str) -> bool {
    std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_ok()
}

/// Runs the `defai` binary with `args` in a fresh state root, without the caller's
/// `DEFAI_PRIVATE_KEY` or `RUST_LOG`, then with `envs`; waits for it and returns its status
/// and captured output. Panics if the binary cannot be run.
pub(crate) fn defai(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_defai"));
    cmd.env("DEFAI_STATE_ROOT", state_root());
    cmd.args(args)
        .env_remove("DEFAI_PRIVATE_KEY")
        .env_remove("RUST_LOG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// The text of `examples/configs/{name}`; panics if the file cannot be read.
pub(crate) fn example_config(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/examples/configs/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The example binary `name`, built by `cargo test` beside the test's own binary (a test
/// run alone needs `cargo build --release --example NAME` first). Returns the path without
/// checking it exists; panics if the test binary's path has no grandparent folder.
pub(crate) fn example_bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(std::path::Path::parent).unwrap();
    dir.join("examples").join(name)
}

/// A devnet at `price` whose market mover moved only the first DEX's WETH/dUSD pool 2 % up (the
/// second DEX's stays at `price`), with its `devnet.json` written into `dir`: the two pools the
/// cross-DEX arbitrage example trades, apart. Returns the devnet (anvil stops when it is
/// dropped) and the `devnet.json` path; panics if anvil, the file or the mover fails.
pub(crate) fn devnet_two_dexes_apart(
    rt: &tokio::runtime::Runtime,
    price: f64,
    dir: &std::path::Path,
) -> (defai::connectors::evm::Devnet, std::path::PathBuf) {
    use defai::connectors::evm::{Devnet, DevnetConfig, MarketMover};
    let devnet = rt
        .block_on(Devnet::start(DevnetConfig::at_price(price)))
        .unwrap();
    let json = dir.join("devnet.json");
    devnet.info().write(&json).unwrap();
    rt.block_on(async {
        let mover = MarketMover::new(devnet.info(), devnet.deployer().clone(), 3600)
            .await
            .unwrap();
        mover.step(price * 1.02).await.unwrap();
    });
    (devnet, json)
}

/// How many `decision` records of the journal in `state` name `model` (its id or hash).
/// Panics if the journal cannot be opened or read.
pub(crate) fn decisions_naming(state: &std::path::Path, model: &str) -> usize {
    defai::connectors::journal::Journal::open(&state.join("journal.sqlite"))
        .unwrap()
        .records()
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == "decision" && r.body.contains(model))
        .count()
}

/// The one JSON object a successful `--json` run printed; panics (with its output) otherwise.
pub(crate) fn json_of(out: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).expect("one JSON object")
}
