//! `defai devnet`: a local anvil chain with the tokens, the real Uniswap V2 contracts and pools,
//! optionally moved along a replayed price series, until a signal stops it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::Config;
use crate::connectors::evm::{Devnet, DevnetConfig, EvmError, MarketMover};
use crate::core::Bar;
use crate::engine;
use anyhow::{Context as _, Result, bail};

/// The market mover's task: replayed bars, or its first error.
type Replay = tokio::task::JoinHandle<Result<usize, EvmError>>;

/// Starts the devnet, writes its addresses to `out`, replays `replay`'s closes (one per
/// `bar_seconds`) and runs until SIGINT, SIGTERM or SIGHUP, or until anvil dies (an error).
pub(super) async fn devnet(
    port: u16,
    block_time: Option<f64>,
    out: &Path,
    price: Option<f64>,
    depth_usd: u64,
    replay: Option<PathBuf>,
    bar_seconds: f64,
) -> Result<()> {
    if !(bar_seconds.is_finite() && bar_seconds >= 0.0) {
        bail!("--bar-seconds must be a non-negative number");
    }
    let bars = match &replay {
        Some(path) => crate::connectors::load_csv_file(path, Default::default())?.bars,
        None => Vec::new(),
    };
    let price = start_price(price, &bars)?;
    let mut cfg = DevnetConfig::at_price(price);
    cfg.port = port;
    cfg.block_time = block_time;
    cfg.depth_usd = depth_usd;
    let devnet = Devnet::start(cfg).await?;
    devnet.info().write(out)?;
    eprintln!(
        "devnet ready: {} (chain id {}), WETH/dUSD pool {} at {price}; wrote {}; Ctrl-C (or SIGTERM, SIGHUP) stops it",
        devnet.rpc_url(),
        devnet.info().chain_id,
        devnet.info().weth_usd_pair,
        out.display()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let mut devnet = devnet;
    let replay = spawn_replay(&devnet, &bars, bar_seconds, &stop).await?;
    let ended = until_stopped(&mut devnet, &stop).await?;
    stop.store(true, Ordering::Relaxed);
    if let Some(task) = replay {
        match task.await {
            Ok(Err(e)) => eprintln!("market mover: {e}"),
            Err(e) => eprintln!("market mover: {e}"),
            Ok(Ok(_)) => {}
        }
    }
    eprintln!("{ended}: stopping anvil");
    drop(devnet);
    Ok(())
}

/// `--price`, else the first close of the replayed bars, else the bundled data's last close.
fn start_price(price: Option<f64>, bars: &[Bar]) -> Result<f64> {
    Ok(match (price, bars.first()) {
        (Some(p), _) => p,
        (None, Some(first)) => first.close,
        (None, None) => engine::load_data(&Config::default(), None, false)?
            .bars
            .last()
            .map(|b| b.close)
            .context("bundled data is empty")?,
    })
}

/// Moves the WETH/dUSD pool to each of `bars`' closes in turn, one every `bar_seconds`, until
/// `stop` is set; `None` without bars.
async fn spawn_replay(
    devnet: &Devnet,
    bars: &[Bar],
    bar_seconds: f64,
    stop: &Arc<AtomicBool>,
) -> Result<Option<Replay>> {
    if bars.is_empty() {
        return Ok(None);
    }
    // Chain time advances by the data's own bar spacing per replayed bar.
    let spacing = bars
        .windows(2)
        .map(|w| w[1].ts - w[0].ts)
        .filter(|d| *d > 0)
        .min()
        .unwrap_or(3600) as u64;
    let mover = MarketMover::new(devnet.info(), devnet.deployer().clone(), spacing).await?;
    let closes: Vec<f64> = bars.iter().map(|b| b.close).collect();
    let flag = stop.clone();
    Ok(Some(tokio::spawn(async move {
        let done = mover
            .replay(
                &closes,
                std::time::Duration::from_secs_f64(bar_seconds),
                &flag,
            )
            .await;
        if let Ok(n) = &done {
            eprintln!("replayed {n} bars");
        }
        done
    })))
}

/// Waits for SIGINT, SIGTERM or SIGHUP (which stop anvil with us: dropping the devnet kills it)
/// and names it; anvil dying ends us with an error (and sets `stop`).
async fn until_stopped(devnet: &mut Devnet, stop: &AtomicBool) -> Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
    Ok(loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break "SIGINT",
            _ = term.recv() => break "SIGTERM",
            _ = hup.recv() => break "SIGHUP",
            _ = tick.tick() => {
                if let Some(status) = devnet.anvil_exited() {
                    stop.store(true, Ordering::Relaxed);
                    bail!("anvil exited ({status}): the devnet is gone");
                }
            }
        }
    })
}
