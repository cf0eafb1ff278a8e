//! `defai run --also`: several agents in one process, each built with the library's
//! [`AgentBuilder`] from its own config, sharing one nonce manager per wallet and one control
//! API.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::run::{ApiFlags, default_state_dir, start_api};
use crate::AgentBuilder;
use crate::chain::ChainArgs;
use crate::config::Config;
use crate::control::AgentHandle;
use crate::engine::Mode;
use crate::runtime::ApiAgent;
use anyhow::{Result, bail};

/// One agent of a fleet: where it stands on the command line, its config file, its config and
/// its state folder.
struct Member {
    i: usize,
    path: PathBuf,
    config: Config,
    state: PathBuf,
}

/// What every agent of a fleet shares besides the control API: the stop flag, the `--param`
/// overrides, `--max-cycles` and the chain arguments (their nonce managers included).
struct Shared {
    stop: Arc<AtomicBool>,
    params: Vec<String>,
    max_cycles: Option<u64>,
    chain: ChainArgs,
}

/// Several agents in one process, each from its own config, run concurrently; one nonce
/// manager per wallet across all of them. One control API serves them all; its `POST /kill`
/// without an agent halts every one.
pub(super) async fn run_fleet(
    configs: Vec<PathBuf>,
    args: ChainArgs,
    max_cycles: Option<u64>,
    params: Vec<String>,
    api: &ApiFlags,
) -> Result<()> {
    let shared = Shared {
        stop: Arc::new(AtomicBool::new(false)),
        params,
        max_cycles,
        chain: args,
    };
    let mut set = tokio::task::JoinSet::new();
    let members = members(configs)?;
    let agents: Vec<ApiAgent> = members
        .iter()
        .map(|m| ApiAgent {
            name: m.config.agent_name(),
            state: m.state.clone(),
            mode: Mode::Live,
            strategy: m.config.strategy.name.clone(),
        })
        .collect();
    // Held until every agent is done: dropping it stops the server.
    let api = start_api(api, &agents)?;
    let mut handles = api.as_ref().map(|(h, _)| h.clone()).unwrap_or_default();
    handles.reverse();
    for m in members {
        let board = handles.pop();
        let (i, path) = (m.i, m.path.clone());
        let strategy = m.config.strategy.name.clone();
        let agent = builder(m, &shared, board.as_ref());
        set.spawn(async move {
            let result = run_one(agent, &strategy).await;
            if let Some(b) = &board {
                b.finish(result.as_ref().map(|_| ()).map_err(|e| format!("{e:#}")));
            }
            anyhow::Ok((i, path, result?))
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = set.join_next().await {
        let (i, path, value) = joined.map_err(|e| anyhow::anyhow!("agent task: {e}"))??;
        results.push((i, serde_json::json!({"config": path, "summary": value})));
    }
    results.sort_by_key(|r| r.0);
    let agents: Vec<serde_json::Value> = results.into_iter().map(|r| r.1).collect();
    println!("{}", serde_json::json!({ "agents": agents }));
    Ok(())
}

/// Loads each config; refuses two agents that would share a state folder.
fn members(configs: Vec<PathBuf>) -> Result<Vec<Member>> {
    let mut names = std::collections::BTreeSet::new();
    let mut members = Vec::new();
    for (i, path) in configs.into_iter().enumerate() {
        let config = Config::load(&path)?;
        let state = default_state_dir(&config, Mode::Live);
        if !names.insert(state.clone()) {
            bail!(
                "{}: two agents named `{}` would share the state folder {}; give one an [agent] name",
                path.display(),
                config.agent_name(),
                state.display()
            );
        }
        members.push(Member {
            i,
            path,
            config,
            state,
        });
    }
    Ok(members)
}

/// The builder of one agent of the fleet, reporting to `board` (its control API handle).
fn builder(m: Member, shared: &Shared, board: Option<&AgentHandle>) -> AgentBuilder {
    let mut agent = AgentBuilder::new(m.config)
        .params(shared.params.clone())
        .stop_flag(shared.stop.clone())
        .state_dir(m.state)
        .nonces(shared.chain.nonces.clone());
    if let Some(cycles) = shared.max_cycles {
        agent = agent.max_cycles(cycles);
    }
    if let Some(devnet) = &shared.chain.devnet {
        agent = agent.devnet(devnet.clone());
    }
    if let Some(keystore) = &shared.chain.keystore {
        agent = agent.keystore(keystore.clone());
    }
    if shared.chain.allow_mainnet {
        agent = agent.allow_mainnet();
    }
    if let Some(board) = board {
        agent = agent.observer(board.observer());
    }
    agent
}

/// One agent of a fleet (its config's `strategy`), live, to its summary.
async fn run_one(agent: AgentBuilder, strategy: &str) -> Result<serde_json::Value> {
    match strategy {
        "kelly_bettor" => serde_json::to_value(agent.live_bets().await?),
        "rebalancer" => serde_json::to_value(agent.live_rebalance().await?),
        _ => serde_json::to_value(agent.live().await?.summary),
    }
    .map_err(|e| anyhow::anyhow!("summary: {e}"))
}
