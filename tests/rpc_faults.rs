//! The transaction sender against a faulty RPC endpoint: a small JSON-RPC proxy in front of anvil
//! answers some requests with HTTP 429/503 without forwarding them, forwards some and then loses
//! the answer (502) or holds it past the client's timeout. Sends must all succeed, and every
//! signed transaction must reach the node exactly once: after an ambiguous broadcast the sender
//! asks the node about the hash before it resends anything. A second test runs four senders
//! sharing one nonce manager concurrently and checks the nonces for gaps and reuse.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use defai::connectors::evm::alloy::eips::BlockId;
use defai::connectors::evm::alloy::primitives::{Address, B256, U256, hex, keccak256};
use defai::connectors::evm::alloy::sol_types::SolCall;
use defai::connectors::evm::bindings::IERC20;
use defai::connectors::evm::{
    Chain, Devnet, DevnetConfig, EvmError, NonceManager, RetryPolicy, TxEvent, TxOutcome, TxPolicy,
    TxRequest, TxSender, TxStep,
};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// What the proxy does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Forwarded, answer passed back.
    None,
    /// HTTP 429, not forwarded.
    TooMany,
    /// HTTP 503, not forwarded.
    Unavailable,
    /// Forwarded, then HTTP 502: the node acted on it but the client sees an error.
    Lost,
    /// Forwarded, then the answer is held past the client's request timeout.
    Stall,
}

/// `eth_sendRawTransaction` requests, by their ordinal among those requests: one in five is
/// answered normally; the response is lost (502) or held past the timeout after forwarding for
/// two in five, and one in five is refused with 429 before it reaches the node.
fn raw_fault(k: u64) -> Fault {
    match k % 5 {
        0 | 3 => Fault::Lost,
        2 => Fault::Stall,
        4 => Fault::TooMany,
        _ => Fault::None,
    }
}

/// Every other request, by its ordinal among them. Runs of consecutive faults stay short, well
/// under the client's retry budget.
fn read_fault(n: u64) -> Fault {
    if n % 7 == 3 {
        Fault::TooMany
    } else if n % 11 == 5 {
        Fault::Unavailable
    } else if n % 13 == 7 {
        Fault::Lost
    } else if n % 29 == 10 {
        Fault::Stall
    } else {
        Fault::None
    }
}

#[derive(Debug, Default)]
struct Stats {
    requests: AtomicU64,
    raw_requests: AtomicU64,
    /// `eth_sendRawTransaction` requests that reached anvil.
    raw_forwarded: AtomicU64,
    too_many: AtomicU64,
    too_many_raw: AtomicU64,
    unavailable: AtomicU64,
    lost: AtomicU64,
    lost_raw: AtomicU64,
    stalled: AtomicU64,
    stalled_raw: AtomicU64,
    upstream_errors: AtomicU64,
    /// Hash of every signed transaction forwarded to anvil, in order (repeats included).
    raw_hashes: Mutex<Vec<B256>>,
    /// JSON-RPC errors anvil gave to forwarded `eth_sendRawTransaction` requests ("already
    /// known", "nonce too low", ...): a resend of bytes the node already held shows up here.
    raw_errors: Mutex<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    requests: u64,
    raw_requests: u64,
    raw_forwarded: u64,
    too_many: u64,
    too_many_raw: u64,
    unavailable: u64,
    lost: u64,
    lost_raw: u64,
    stalled: u64,
    stalled_raw: u64,
    upstream_errors: u64,
}

impl Stats {
    fn snapshot(&self) -> Snapshot {
        let g = |a: &AtomicU64| a.load(Ordering::SeqCst);
        Snapshot {
            requests: g(&self.requests),
            raw_requests: g(&self.raw_requests),
            raw_forwarded: g(&self.raw_forwarded),
            too_many: g(&self.too_many),
            too_many_raw: g(&self.too_many_raw),
            unavailable: g(&self.unavailable),
            lost: g(&self.lost),
            lost_raw: g(&self.lost_raw),
            stalled: g(&self.stalled),
            stalled_raw: g(&self.stalled_raw),
            upstream_errors: g(&self.upstream_errors),
        }
    }
}

struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    /// How long a stalled answer is held: longer than the client's request timeout.
    stall: Duration,
    read_seq: AtomicU64,
    stats: Stats,
}

/// A fault-injecting JSON-RPC proxy on 127.0.0.1; stops when dropped.
struct FaultProxy {
    url: String,
    state: Arc<ProxyState>,
    server: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    async fn start(upstream: &str, stall: Duration) -> Self {
        let state = Arc::new(ProxyState {
            upstream: upstream.to_string(),
            client: reqwest::Client::new(),
            stall,
            read_seq: AtomicU64::new(0),
            stats: Stats::default(),
        });
        let app = Router::new()
            .route("/", post(handle))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url: format!("http://{addr}/"),
            state,
            server,
        }
    }

    fn stats(&self) -> &Stats {
        &self.state.stats
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], text).into_response()
}

async fn handle(State(p): State<Arc<ProxyState>>, body: Bytes) -> Response {
    let stats = &p.stats;
    stats.requests.fetch_add(1, Ordering::SeqCst);
    let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let method = json
        .as_ref()
        .and_then(|v| v.get("method"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
        .to_string();
    let raw = method == "eth_sendRawTransaction";
    let fault = if raw {
        raw_fault(stats.raw_requests.fetch_add(1, Ordering::SeqCst))
    } else {
        read_fault(p.read_seq.fetch_add(1, Ordering::SeqCst))
    };
    match fault {
        Fault::TooMany => {
            stats.too_many.fetch_add(1, Ordering::SeqCst);
            if raw {
                stats.too_many_raw.fetch_add(1, Ordering::SeqCst);
            }
            return plain(StatusCode::TOO_MANY_REQUESTS, "rate limited");
        }
        Fault::Unavailable => {
            stats.unavailable.fetch_add(1, Ordering::SeqCst);
            return plain(StatusCode::SERVICE_UNAVAILABLE, "node overloaded");
        }
        _ => {}
    }

    if raw {
        // The signed bytes' keccak is the transaction hash (EIP-2718 envelope).
        let hash = json
            .as_ref()
            .and_then(|v| v.get("params"))
            .and_then(|ps| ps.get(0))
            .and_then(serde_json::Value::as_str)
            .and_then(|h| hex::decode(h).ok())
            .map(keccak256)
            .unwrap_or_default();
        stats.raw_hashes.lock().unwrap().push(hash);
        stats.raw_forwarded.fetch_add(1, Ordering::SeqCst);
    }
    let forwarded = p
        .client
        .post(&p.upstream)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    let (status, answer) = match forwarded {
        Ok(resp) => {
            let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
            match resp.bytes().await {
                Ok(b) => (status, b),
                Err(_) => {
                    stats.upstream_errors.fetch_add(1, Ordering::SeqCst);
                    return plain(StatusCode::BAD_GATEWAY, "upstream body lost");
                }
            }
        }
        Err(_) => {
            stats.upstream_errors.fetch_add(1, Ordering::SeqCst);
            return plain(StatusCode::BAD_GATEWAY, "upstream unreachable");
        }
    };
    if raw
        && let Some(err) = serde_json::from_slice::<serde_json::Value>(&answer)
            .ok()
            .and_then(|v| v.get("error").cloned())
    {
        stats.raw_errors.lock().unwrap().push(err.to_string());
    }
    match fault {
        Fault::Lost => {
            stats.lost.fetch_add(1, Ordering::SeqCst);
            if raw {
                stats.lost_raw.fetch_add(1, Ordering::SeqCst);
            }
            plain(StatusCode::BAD_GATEWAY, "bad gateway")
        }
        Fault::Stall => {
            stats.stalled.fetch_add(1, Ordering::SeqCst);
            if raw {
                stats.stalled_raw.fetch_add(1, Ordering::SeqCst);
            }
            tokio::time::sleep(p.stall).await;
            (status, [(header::CONTENT_TYPE, "application/json")], answer).into_response()
        }
        _ => (status, [(header::CONTENT_TYPE, "application/json")], answer).into_response(),
    }
}

fn one_wei_transfer(token: Address, to: Address) -> TxRequest {
    TxRequest::call(
        "transfer",
        token,
        IERC20::transferCall {
            to,
            value: U256::from(1u64),
        }
        .abi_encode(),
    )
}

async fn dvt_balance(devnet: &Devnet, owner: Address) -> U256 {
    devnet
        .chain()
        .view(
            devnet.info().dvt,
            IERC20::balanceOfCall { owner },
            BlockId::latest(),
        )
        .await
        .unwrap()
}

#[test]
fn sends_through_rpc_faults_without_double_sending() {
    rt().block_on(async {
        let devnet = Devnet::start(DevnetConfig::at_price(1338.12))
            .await
            .unwrap();
        let info = devnet.info().clone();
        let (from, to) = (info.accounts[0], info.accounts[1]);
        // Read straight from anvil, not through the proxy.
        let direct = devnet.chain();
        let start = direct.nonce(from, true).await.unwrap();
        assert_eq!(start, direct.nonce(from, false).await.unwrap());
        let balance_before = dvt_balance(&devnet, to).await;

        let request_timeout = Duration::from_millis(400);
        let proxy = FaultProxy::start(&info.rpc_url, request_timeout * 3).await;
        let mut chain = Chain::connect(&proxy.url).unwrap();
        chain.retry = RetryPolicy {
            attempts: 8,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(200),
            request_timeout,
        };
        let wallet = devnet.wallet(0).unwrap();
        assert_eq!(wallet.address(), from);
        let nonces = Arc::new(NonceManager::new(from));
        let sender =
            TxSender::new(chain, wallet, info.chain_id, nonces, TxPolicy::default()).unwrap();

        const N: u64 = 20;
        let started = Instant::now();
        let mut log: Vec<TxEvent> = Vec::new();
        let mut outcomes: Vec<TxOutcome> = Vec::new();
        for i in 0..N {
            let outcome = sender
                .send(&one_wei_transfer(info.dvt, to), &mut log)
                .await
                .unwrap_or_else(|e| panic!("transfer {i} failed through the faulty proxy: {e}"));
            outcomes.push(outcome);
        }
        let elapsed = started.elapsed();
        let stats = proxy.stats().snapshot();
        let raw_hashes = proxy.stats().raw_hashes.lock().unwrap().clone();
        let raw_errors = proxy.stats().raw_errors.lock().unwrap().clone();
        let retries: Vec<&TxEvent> = log
            .iter()
            .filter(|e| matches!(e.step, TxStep::BroadcastRetry { .. }))
            .collect();
        eprintln!(
            "{N} transfers through the fault proxy in {elapsed:?}; {} broadcast retries; {stats:#?}",
            retries.len()
        );

        // Nonces: start..start+N, in order, no gap, no reuse, and no replacement.
        let got: Vec<u64> = outcomes.iter().map(|o| o.nonce).collect();
        assert_eq!(got, (start..start + N).collect::<Vec<_>>());
        assert!(outcomes.iter().all(|o| o.replacements == 0));

        // The chain, read directly: exactly N transactions from `from`, N wei arrived.
        assert_eq!(direct.nonce(from, false).await.unwrap(), start + N);
        assert_eq!(direct.nonce(from, true).await.unwrap(), start + N);
        assert_eq!(
            dvt_balance(&devnet, to).await,
            balance_before + U256::from(N)
        );
        for o in &outcomes {
            let r = direct.receipt(o.hash).await.unwrap().expect("mined");
            assert!(r.status());
        }

        // Every fault kind was injected, and broadcasts hit the ambiguous ones.
        assert!(stats.too_many >= 1, "{stats:?}");
        assert!(stats.unavailable >= 1, "{stats:?}");
        assert!(stats.lost >= 1, "{stats:?}");
        assert!(stats.stalled >= 1, "{stats:?}");
        assert!(
            stats.lost_raw >= 3,
            "eth_sendRawTransaction should lose its answer several times: {stats:?}"
        );
        assert!(stats.stalled_raw >= 1, "{stats:?}");
        assert_eq!(stats.upstream_errors, 0, "{stats:?}");
        assert!(
            !retries.is_empty(),
            "no BroadcastRetry although broadcasts failed"
        );
        assert!(stats.too_many_raw >= 1, "{stats:?}");
        // One BroadcastRetry per faulted broadcast: each lost, stalled or rate-limited send.
        assert_eq!(
            retries.len() as u64,
            stats.lost_raw + stats.stalled_raw + stats.too_many_raw,
            "broadcast retries vs. faulted eth_sendRawTransaction requests: {stats:?}"
        );

        // No double send: each signed transaction reached the node exactly once (after a lost
        // or stalled answer the sender found the hash on the node instead of resending), and
        // the node never answered a broadcast with "already known" / "nonce too low".
        assert_eq!(stats.raw_forwarded, N, "{stats:?}; hashes {raw_hashes:?}");
        let distinct: BTreeSet<B256> = raw_hashes.iter().copied().collect();
        assert_eq!(distinct.len() as u64, N, "a signed transaction was resent");
        let mined: BTreeSet<B256> = outcomes.iter().map(|o| o.hash).collect();
        assert_eq!(distinct, mined, "the node got other transactions than mined");
        assert!(raw_errors.is_empty(), "node refused broadcasts: {raw_errors:?}");
        drop(proxy);
    });
}

#[test]
fn nonce_manager_has_no_gaps_or_reuse_under_concurrent_senders() {
    rt().block_on(async {
        let devnet = Devnet::start(DevnetConfig::at_price(1338.12))
            .await
            .unwrap();
        let info = devnet.info().clone();
        let wallet = devnet.wallet(2).unwrap();
        let (from, to) = (info.accounts[2], info.accounts[3]);
        assert_eq!(wallet.address(), from);
        let chain = devnet.chain().clone();
        let start = chain.nonce(from, true).await.unwrap();
        let balance_before = dvt_balance(&devnet, to).await;

        // Under a flood, anvil's automine now and then leaves a transaction pending; a block
        // every 200 ms mines any such straggler.
        let _: serde_json::Value = chain.dev_call("evm_mine", ()).await.unwrap();
        let mined_blocks = Arc::new(AtomicU64::new(0));
        let miner = {
            let chain = chain.clone();
            let mined_blocks = mined_blocks.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if chain
                        .dev_call::<_, serde_json::Value>("evm_mine", ())
                        .await
                        .is_ok()
                    {
                        mined_blocks.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        };

        const SENDERS: u64 = 4;
        const EACH: u64 = 25;
        let nonces = Arc::new(NonceManager::new(from));
        let started = Instant::now();
        let tasks: Vec<_> = (0..SENDERS)
            .map(|s| {
                let sender = TxSender::new(
                    chain.clone(),
                    wallet.clone(),
                    info.chain_id,
                    nonces.clone(),
                    TxPolicy::default(),
                )
                .unwrap();
                let token = info.dvt;
                tokio::spawn(async move {
                    let mut log = Vec::new();
                    let mut out: Vec<Result<TxOutcome, EvmError>> = Vec::new();
                    for _ in 0..EACH {
                        out.push(sender.send(&one_wei_transfer(token, to), &mut log).await);
                    }
                    (s, out)
                })
            })
            .collect();
        let mut outcomes: Vec<TxOutcome> = Vec::new();
        for task in tasks {
            let (s, out) = tokio::time::timeout(Duration::from_secs(180), task)
                .await
                .expect("senders hung")
                .unwrap();
            let mut own = Vec::new();
            for (i, r) in out.into_iter().enumerate() {
                let o = r.unwrap_or_else(|e| panic!("sender {s}, transfer {i}: {e}"));
                own.push(o.nonce);
                outcomes.push(o);
            }
            assert!(
                own.windows(2).all(|w| w[0] < w[1]),
                "sender {s} got nonces out of order: {own:?}"
            );
        }
        let elapsed = started.elapsed();
        miner.abort();
        eprintln!(
            "{} concurrent transfers from one wallet in {elapsed:?}; {} extra blocks mined",
            SENDERS * EACH,
            mined_blocks.load(Ordering::SeqCst)
        );

        let total = SENDERS * EACH;
        assert_eq!(outcomes.len() as u64, total);
        let mut got: Vec<u64> = outcomes.iter().map(|o| o.nonce).collect();
        got.sort_unstable();
        assert_eq!(
            got,
            (start..start + total).collect::<Vec<_>>(),
            "nonces have gaps or repeats"
        );
        let hashes: BTreeSet<B256> = outcomes.iter().map(|o| o.hash).collect();
        assert_eq!(hashes.len() as u64, total);
        assert!(outcomes.iter().all(|o| o.replacements == 0));

        assert_eq!(chain.nonce(from, false).await.unwrap(), start + total);
        assert_eq!(chain.nonce(from, true).await.unwrap(), start + total);
        assert_eq!(
            dvt_balance(&devnet, to).await,
            balance_before + U256::from(total)
        );
    });
}
