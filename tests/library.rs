//! Issue 13's proof that defai is a library first: a crate outside the workspace, depending on
//! `defai` by path with default features off, writes its own strategy, runs it in paper mode
//! through [`defai::AgentBuilder`] with a state folder, and `defai audit verify` passes on that
//! folder; its dependency tree holds none of the command line's crates.
//!
//! The crate builds in `target/outside-crate` (kept between runs, so only the first run compiles
//! the dependencies), offline, against a copy of the workspace's `Cargo.lock`.

use std::path::{Path, PathBuf};
use std::process::Command;

const MAIN_RS: &str = r#"
use std::collections::VecDeque;

use defai::AgentBuilder;
use defai::config::Config;
use defai::core::{Context, Intent, MarketEvent, Strategy, StrategyError};

/// Long while the close breaks above the highest close of the last `window` bars, flat when
/// it falls below the lowest.
struct Breakout {
    window: usize,
    closes: VecDeque<f64>,
}

impl Strategy for Breakout {
    fn name(&self) -> &str {
        "breakout"
    }

    fn on_event(&mut self, event: &MarketEvent, ctx: &Context<'_>) -> Result<Vec<Intent>, StrategyError> {
        let Some(bar) = event.as_bar() else { return Ok(vec![]) };
        let full = self.closes.len() == self.window;
        let (lo, hi) = self.closes.iter().fold((f64::MAX, f64::MIN), |(l, h), c| (l.min(*c), h.max(*c)));
        self.closes.push_back(bar.close);
        if self.closes.len() > self.window {
            self.closes.pop_front();
        }
        let target = match () {
            _ if full && bar.close > hi => 0.9,
            _ if full && bar.close < lo => 0.0,
            _ => return Ok(vec![]),
        };
        Ok(ctx.target_exposure(target)?.into_iter().collect())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let config = Config::load(args[1].as_ref())?;
    let series = defai::engine::load_data(&config, None, false)?;
    let out = AgentBuilder::new(config)
        .strategy(Box::new(Breakout { window: 20, closes: VecDeque::new() }))
        .state_dir(&args[2])
        .paper(&series)
        .await?;
    println!("{}", serde_json::to_string(&out.summary)?);
    Ok(())
}
"#;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.env("CARGO_TARGET_DIR", workspace().join("target/outside-crate"))
        // The outer `cargo test`'s settings are not this build's.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS");
    c
}

/// Writes the outside crate into `dir`: a manifest depending on defai by path, default
/// features off, and the strategy and run above.
fn write_crate(dir: &Path) {
    let manifest = format!(
        r#"[package]
name = "outside"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
defai = {{ path = {ws:?}, default-features = false }}
tokio = {{ version = "1", features = ["rt", "macros"] }}
serde_json = "1"

[workspace]

# Built once per target folder; no debug info keeps the cold build short.
[profile.dev]
debug = false
"#,
        ws = workspace().display().to_string()
    );
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(dir.join("src/main.rs"), MAIN_RS).unwrap();
    // The workspace's resolution, so the build needs nothing from the network.
    std::fs::copy(workspace().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
}

/// A random walk of hourly bars, `timestamp,open,high,low,close,volume`.
fn write_bars(path: &Path, n: usize) {
    let mut rng = fastrand::Rng::with_seed(13);
    let mut csv = String::from("timestamp,open,high,low,close,volume\n");
    let mut close = 2000.0f64;
    for i in 0..n {
        let open = close;
        close = (close * (1.0 + (rng.f64() - 0.5) * 0.02)).max(100.0);
        let (hi, lo) = (open.max(close) * 1.002, open.min(close) * 0.998);
        csv.push_str(&format!(
            "{},{open:.2},{hi:.2},{lo:.2},{close:.2},100\n",
            1_700_000_000 + 3600 * i
        ));
    }
    std::fs::write(path, csv).unwrap();
}

#[test]
fn an_outside_crate_without_default_features_runs_its_strategy_in_paper_mode_and_the_journal_verifies()
 {
    let dir = tempfile::tempdir().unwrap();
    let krate = dir.path().join("outside");
    write_crate(&krate);
    let data = dir.path().join("bars.csv");
    write_bars(&data, 3000);
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[market]\ndata = {:?}\n\n[agent]\nname = \"outside\"\n",
            data.display().to_string()
        ),
    )
    .unwrap();

    let build = cargo()
        .current_dir(&krate)
        .args(["build", "--offline", "--quiet"])
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "the outside crate builds against defai without default features:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );

    // None of the command line's crates in its tree.
    let tree = cargo()
        .current_dir(&krate)
        .args(["tree", "--offline", "-e", "normal", "--prefix", "none"])
        .output()
        .unwrap();
    assert!(
        tree.status.success(),
        "{}",
        String::from_utf8_lossy(&tree.stderr)
    );
    let tree = String::from_utf8(tree.stdout).unwrap();
    assert!(tree.lines().any(|l| l.starts_with("defai v")), "{tree}");
    for cli_only in [
        "clap",
        "axum",
        "plotters",
        "indicatif",
        "dejavu",
        "tracing-subscriber",
    ] {
        assert!(
            !tree
                .lines()
                .any(|l| l.starts_with(&format!("{cli_only} v"))),
            "{cli_only} is in the library's tree:\n{tree}"
        );
    }

    let state = dir.path().join("state");
    let bin = workspace().join("target/outside-crate/debug/outside");
    let run = Command::new(&bin)
        .args([config.to_str().unwrap(), state.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(summary["mode"], "paper", "{summary}");
    assert_eq!(summary["strategy"], "breakout", "{summary}");
    assert_eq!(summary["bars"], 3000, "{summary}");
    assert!(summary["trades"].as_u64().unwrap() > 0, "{summary}");
    assert!(state.join("journal.sqlite").is_file());

    let verify = Command::new(env!("CARGO_BIN_EXE_defai"))
        .args(["audit", "verify", "--state", state.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "audit verify on the outside crate's state folder: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    // The journal holds the outside strategy's fills, under its own name (a replay's compact
    // journal keeps each swap approved and filled at its bar as one `trade` record).
    let records = defai::connectors::journal::Journal::open(&state.join("journal.sqlite"))
        .unwrap()
        .records()
        .unwrap();
    let fills = records
        .iter()
        .filter(|r| r.kind == "fill" || r.kind == "trade")
        .filter(|r| {
            r.intent_id
                .as_deref()
                .is_some_and(|i| i.starts_with("breakout:"))
        })
        .count() as u64;
    assert_eq!(fills, summary["trades"].as_u64().unwrap(), "{summary}");
}
