//! `defai kill`, `defai resume` and `defai status`: through the control API of the agent using
//! a state folder when one answers, else through the folder itself.

use std::path::Path;

use crate::connectors::StateDir;
use crate::control::ApiClient;
use crate::core::SwitchAction;
use anyhow::{Result, bail};

/// `defai kill|resume`: through the control API of the agent using `state` when one answers,
/// else by writing the command into the folder (which a running agent's watcher picks up as
/// well; a stopped one applies it when it starts).
pub(super) async fn control(state: &Path, action: SwitchAction, reason: &str) -> Result<()> {
    if reason.trim().is_empty() {
        bail!("--reason must say why");
    }
    let why_not = match control_via_api(state, action, reason).await {
        Ok(done) => {
            println!("{done}");
            return Ok(());
        }
        Err(why) => why,
    };
    let dir = StateDir::open(state)?;
    let cmd = dir.send_command(action, reason)?;
    let current = dir.load_switch()?.map(|r| r.state).unwrap_or_default();
    println!(
        "sent {:?} (command {}) through the state folder {} ({why_not}); switch was {:?}; a \
         running agent applies it within one cycle",
        cmd.action,
        cmd.id,
        state.display(),
        current
    );
    Ok(())
}

/// Sends the command through the API; `Err` says why the API path was not taken.
async fn control_via_api(
    state: &Path,
    action: SwitchAction,
    reason: &str,
) -> std::result::Result<String, String> {
    let client = match ApiClient::for_state_dir(state) {
        Ok(Some(c)) => c,
        Ok(None) => return Err("no control API published there".into()),
        Err(e) => return Err(e.to_string()),
    };
    let agent = match client.agent_for(state).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            return Err(format!(
                "the server at {} runs no agent on this folder",
                client.url()
            ));
        }
        Err(e) => return Err(e.to_string()),
    };
    let name = agent["name"].as_str().unwrap_or_default().to_string();
    let (path, mut body) = match action {
        SwitchAction::Kill(mode) => (
            "/kill",
            serde_json::json!({ "mode": serde_json::to_value(mode).map_err(|e| e.to_string())? }),
        ),
        SwitchAction::Resume => ("/resume", serde_json::json!({})),
    };
    body["agent"] = name.clone().into();
    body["reason"] = reason.into();
    let answer = client.post(path, &body).await.map_err(|e| e.to_string())?;
    let command = answer["agents"][0]["command"].as_u64().unwrap_or_default();
    Ok(format!(
        "sent {action:?} (command {command}) to agent `{name}` through its control API at {}; \
         switch was {}; the agent applies it within one cycle",
        client.url(),
        agent["kill_switch"]["state"].as_str().unwrap_or("unknown")
    ))
}

/// `defai status`: the running agent's status from its API, else what its folder latched.
pub(super) async fn status(state: &Path, json: bool) -> Result<()> {
    let why_not = match status_via_api(state, json).await {
        Ok(()) => return Ok(()),
        Err(why) => why,
    };
    if !state.is_dir() {
        bail!("{}: no such state folder", state.display());
    }
    let record = StateDir::open(state)?.load_switch()?.unwrap_or_default();
    if json {
        println!(
            "{}",
            serde_json::json!({"source": "state_folder", "running": false, "state_dir": state,
                "api_error": why_not, "kill_switch": record})
        );
    } else {
        println!(
            "no control API answers for {} ({why_not}): the agent is not running (or runs with \
             --no-api)",
            state.display()
        );
        println!(
            "  latched kill switch: {:?}{}",
            record.state,
            record
                .reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// Prints the status the control API of the agent using `state` reports; `Err` says why none
/// answered.
async fn status_via_api(state: &Path, json: bool) -> std::result::Result<(), String> {
    let client = match ApiClient::for_state_dir(state) {
        Ok(None) => return Err("no control API published there".to_string()),
        Err(e) => return Err(e.to_string()),
        Ok(Some(client)) => client,
    };
    match client.agent_for(state).await {
        Ok(Some(agent)) => {
            print_agent(&client, &agent, json);
            Ok(())
        }
        Ok(None) => Err(format!(
            "the server at {} runs no agent on this folder",
            client.url()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// An agent's status as its control API reported it (`json`: as one JSON object).
fn print_agent(client: &ApiClient, agent: &serde_json::Value, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::json!({"source": "api", "running": true, "url": client.url(), "agent": agent})
        );
        return;
    }
    let k = &agent["kill_switch"];
    let c = &agent["counters"];
    println!(
        "agent `{}` ({} {}, {}) through {}: kill switch {}{}",
        agent["name"].as_str().unwrap_or_default(),
        agent["mode"].as_str().unwrap_or_default(),
        agent["strategy"].as_str().unwrap_or_default(),
        agent["phase"].as_str().unwrap_or_default(),
        client.url(),
        k["state"].as_str().unwrap_or("unknown"),
        k["reason"]
            .as_str()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    let equity = agent["equity"]
        .as_f64()
        .map(|e| format!("{e:.2}"))
        .unwrap_or_else(|| "-".into());
    let ret = agent["return_pct"]
        .as_f64()
        .map(|r| format!(" ({r:+.2} %)"))
        .unwrap_or_default();
    println!(
        "  {} bars, equity {equity}{ret}; {} intents: {} approved, {} resized, {} refused; {} fills, {} execution failures",
        agent["bars"],
        c["intents"],
        c["approved"],
        c["resized"],
        c["refused"],
        c["fills"],
        c["execution_failures"]
    );
}
