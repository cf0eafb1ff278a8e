//! The control API, `defai status|kill|resume` and the dashboard, end to end: a paced paper agent
//! runs in its own process and is read and halted through its API (and, in Chromium, through the
//! dashboard's Kill button).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use defai::connectors::StateDir;
use defai::control::{ApiServer, ApiToken, Board};

fn defai(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_defai"))
        .env("DEFAI_STATE_ROOT", common::state_root())
        .env_remove("RUST_LOG")
        .args(args)
        .output()
        .expect("run defai")
}

/// A zig-zag hourly series (a 2/4 EMA cross trades on it often).
fn zigzag_csv(dir: &Path, bars: usize) -> PathBuf {
    let mut text = String::from("timestamp,open,high,low,close,volume\n");
    for i in 0..bars {
        let px = 2000.0 + 200.0 * ((i as f64) / 6.0).sin();
        text.push_str(&format!(
            "{},{px},{px},{px},{px},1\n",
            1_600_000_000 + i * 3600
        ));
    }
    let path = dir.join("zigzag.csv");
    std::fs::write(&path, text).unwrap();
    path
}

/// A paper agent in its own process, killed if the test fails.
struct Agent {
    child: Option<Child>,
    stderr: PathBuf,
}

impl Agent {
    /// 3000 hourly bars at 36,000× real time: a bar every 0.1 s, for up to 5 minutes; the test
    /// ends it early with SIGINT (Ctrl-C), after which it prints its summary.
    fn spawn(dir: &Path, state: &Path) -> Self {
        let data = zigzag_csv(dir, 3000);
        let stderr = dir.join("agent.stderr");
        let child = Command::new(env!("CARGO_BIN_EXE_defai"))
            .env("DEFAI_STATE_ROOT", common::state_root())
            .env_remove("RUST_LOG")
            .args(["paper", "--json", "--data"])
            .arg(&data)
            .arg("--state")
            .arg(state)
            .args(["--param", "fast=2", "--param", "slow=4", "--speed", "36000"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn defai paper");
        Self {
            child: Some(child),
            stderr,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Ctrl-C, then the summary it prints.
    fn interrupt(self) -> serde_json::Value {
        let pid = self.child.as_ref().unwrap().id();
        let sent = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let out = self.finish(Duration::from_secs(20));
        let stdout = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }

    /// Waits (at most `limit`) for a successful exit.
    fn finish(mut self, limit: Duration) -> Output {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + limit;
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the agent did not stop in {limit:?}: {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "exit {:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            self.stderr()
        );
        out
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The API's address and token, once the agent has published them.
fn wait_for_api(state: &Path, agent: &Agent) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let (Ok(json), Ok(token)) = (
            std::fs::read_to_string(state.join("api.json")),
            std::fs::read_to_string(state.join("api-token")),
        ) && let Ok(v) = serde_json::from_str::<serde_json::Value>(&json)
        {
            let url = v["url"].as_str().unwrap().to_string();
            let addr = url.strip_prefix("http://").unwrap().to_string();
            return (addr, token.trim().to_string());
        }
        assert!(
            Instant::now() < deadline,
            "no api.json in {}: {}",
            state.display(),
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.1 exchange: (status, body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    let body = body.unwrap_or("");
    if method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, rest.to_string())
}

struct Client {
    addr: String,
    bearer: String,
    /// Every body received, to check none holds the token.
    bodies: Vec<String>,
}

impl Client {
    fn get(&mut self, path: &str) -> (u16, String) {
        let r = http(&self.addr, "GET", path, Some(&self.bearer), None);
        self.bodies.push(r.1.clone());
        r
    }
    fn json(&mut self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }
    fn post(&mut self, path: &str, body: &str) -> (u16, String) {
        let r = http(&self.addr, "POST", path, Some(&self.bearer), Some(body));
        self.bodies.push(r.1.clone());
        r
    }
    /// Polls `/status` until `pred` holds for the first agent.
    fn wait_status(
        &mut self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let v = self.json("/status");
            let a = &v["agents"][0];
            if pred(a) {
                return a.clone();
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {v}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn api_answers_only_with_the_token_and_kill_through_it_halts_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let agent = Agent::spawn(dir.path(), &state);
    let (addr, token) = wait_for_api(&state, &agent);
    assert_eq!(token.len(), 64, "32 random bytes, hex");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(state.join("api-token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the token file is the owner's only");
    }
    let endpoint = std::fs::read_to_string(state.join("api.json")).unwrap();
    assert!(!endpoint.contains(&token));

    // No token, a wrong one, another scheme: 401, and nothing of the data.
    for auth in [
        None,
        Some("Bearer 0000000000000000000000000000000000000000000000000000000000000000".to_string()),
        Some(format!("Bearer {}", &token[..63])),
        Some(format!("Basic {token}")),
        Some("Bearer".to_string()),
    ] {
        for (method, path) in [
            ("GET", "/status"),
            ("GET", "/metrics"),
            ("GET", "/decisions"),
            ("POST", "/kill"),
        ] {
            let body = (method == "POST").then_some("{\"reason\": \"x\"}");
            let (status, body) = http(&addr, method, path, auth.as_deref(), body);
            assert_eq!(status, 401, "{method} {path} with {auth:?}: {body}");
            assert!(
                !body.contains("ema_cross") && !body.contains(&token),
                "{body}"
            );
        }
    }
    // The dashboard page itself is public and holds no secret.
    let (status, page) = http(&addr, "GET", "/", None, None);
    assert_eq!(status, 200);
    assert!(page.contains("<title>defai dashboard</title>") && !page.contains(&token));

    let mut c = Client {
        addr: addr.clone(),
        bearer: format!("Bearer {token}"),
        bodies: Vec::new(),
    };
    let a = c.wait_status("bars and a trade", |a| {
        a["bars"].as_u64().unwrap_or(0) > 0 && a["counters"]["fills"].as_u64().unwrap_or(0) > 0
    });
    assert_eq!(a["name"], "ema_cross", "{a}");
    assert_eq!(a["mode"], "paper");
    assert_eq!(a["phase"], "running");
    assert_eq!(a["kill_switch"]["state"], "active", "{a}");
    assert!(a["equity"].as_f64().unwrap() > 0.0, "{a}");
    assert_eq!(
        PathBuf::from(a["state_dir"].as_str().unwrap()),
        std::fs::canonicalize(&state).unwrap()
    );

    // Prometheus text: HELP and TYPE before every metric, every sample `name{labels} value`.
    let (status, metrics) = c.get("/metrics");
    assert_eq!(status, 200);
    let mut typed = std::collections::HashSet::new();
    let mut bars = None;
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut p = rest.split(' ');
            let name = p.next().unwrap();
            assert!(matches!(p.next(), Some("counter" | "gauge")), "{line}");
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (name, rest) = line.split_once('{').unwrap_or_else(|| panic!("{line}"));
        assert!(typed.contains(name), "no TYPE before {line}");
        let (labels, value) = rest.rsplit_once("} ").unwrap();
        assert!(labels.starts_with("agent=\"ema_cross\""), "{line}");
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
        if name == "defai_bars_total" {
            bars = Some(v);
        }
    }
    assert!(bars.unwrap() > 0.0, "{metrics}");
    assert!(
        metrics.contains("defai_kill_switch_state{agent=\"ema_cross\"} 0\n"),
        "{metrics}"
    );

    // Decisions: bounded by limit, each with its verdict; a bad limit is a 400.
    let d = c.json("/decisions?limit=5");
    let list = d["decisions"].as_array().unwrap();
    assert!(!list.is_empty() && list.len() <= 5, "{d}");
    assert!(
        list.iter().all(|x| x["verdict"]["verdict"].is_string()),
        "{d}"
    );
    assert!(
        list.iter().any(|x| x["outcome"]["status"] == "filled"),
        "{d}"
    );
    let one = c.json("/decisions?limit=1");
    assert_eq!(one["decisions"].as_array().unwrap().len(), 1);
    for bad in ["abc", "0", "100000"] {
        let (status, body) = c.get(&format!("/decisions?limit={bad}"));
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("limit must be an integer"), "{body}");
    }
    let p = c.json("/positions?agent=ema_cross");
    assert!(
        p["agents"][0]["positions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["token"] == "USDC" && x["units"].as_str().unwrap().parse::<u128>().is_ok()),
        "{p}"
    );
    let e = c.json("/equity");
    assert!(
        !e["agents"][0]["points"].as_array().unwrap().is_empty(),
        "{e}"
    );
    assert_eq!(c.get("/status?agent=nobody").0, 404);
    let (status, body) = c.post("/kill", "{}");
    assert_eq!(status, 400, "a kill needs a reason: {body}");
    assert!(body.contains("reason"), "{body}");
    let (status, body) = c.post("/kill", "{\"reason\": \"x\", \"mode\": \"explode\"}");
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        c.post("/kill", "{\"reason\": \"x\", \"agent\": \"nobody\"}")
            .0,
        404
    );

    // `defai status` through the API.
    let out = defai(&["status", "--state", state.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["source"], "api", "{s}");
    assert!(s["agent"]["bars"].as_u64().unwrap() > 0, "{s}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&token));

    // `defai kill` goes through the API, and the agent halts.
    let out = defai(&[
        "kill",
        "--state",
        state.to_str().unwrap(),
        "--reason",
        "api e2e",
    ]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("through its control API"), "{said}");
    assert!(!said.contains(&token));
    let a = c.wait_status("the halt", |a| a["kill_switch"]["state"] == "halted");
    assert!(
        a["kill_switch"]["reason"]
            .as_str()
            .unwrap()
            .contains("api e2e"),
        "{a}"
    );
    let (_, metrics) = c.get("/metrics");
    assert!(
        metrics.contains("defai_kill_switch_state{agent=\"ema_cross\"} 2\n"),
        "{metrics}"
    );

    for b in &c.bodies {
        assert!(!b.contains(&token), "a response holds the token: {b}");
    }
    let log = agent.stderr();
    assert!(!log.contains(&token), "the log holds the token: {log}");
    assert!(
        log.contains("/#token=<the contents of"),
        "the dashboard URL is logged: {log}"
    );

    let summary = agent.interrupt();
    assert_eq!(summary["kill_switch"]["state"], "halted", "{summary}");
    assert!(
        summary["kill_switch"]["reason"]
            .as_str()
            .unwrap()
            .contains("api e2e")
    );

    // Gone: the endpoint is removed on a clean stop, and status reads the folder instead.
    assert!(!state.join("api.json").exists() && !state.join("api-token").exists());
    let out = defai(&["status", "--state", state.to_str().unwrap(), "--json"]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["source"], "state_folder", "{s}");
    assert_eq!(s["running"], false);
    assert_eq!(s["kill_switch"]["state"], "halted", "{s}");
}

#[test]
fn a_stale_endpoint_falls_back_to_the_state_folder() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    // A port nothing listens on any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        state.join("api.json"),
        format!("{{\"url\": \"http://127.0.0.1:{port}\", \"pid\": 1}}"),
    )
    .unwrap();
    std::fs::write(state.join("api-token"), "ab".repeat(32)).unwrap();
    let s = state.to_str().unwrap();

    let out = defai(&["status", "--state", s, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["source"], "state_folder", "{v}");
    assert_eq!(v["running"], false);
    assert!(
        v["api_error"].as_str().unwrap().contains("did not answer"),
        "{v}"
    );
    assert_eq!(v["kill_switch"]["state"], "active");

    let out = defai(&["kill", "--state", s, "--reason", "offline"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("through the state folder"), "{said}");
    let cmd = StateDir::open(&state)
        .unwrap()
        .load_command()
        .unwrap()
        .unwrap();
    assert_eq!(cmd.reason, "offline");

    let out = defai(&["status", "--state", s]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("not running"), "{text}");
}

#[test]
fn a_public_api_address_needs_api_public() {
    let dir = tempfile::tempdir().unwrap();
    let data = zigzag_csv(dir.path(), 50);
    let out = defai(&[
        "paper",
        "--api",
        "0.0.0.0:0",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a loopback address") && err.contains("--api-public"),
        "{err}"
    );
    // --no-api: nothing is published.
    let state = dir.path().join("quiet");
    let out = defai(&[
        "paper",
        "--json",
        "--no-api",
        "--data",
        data.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!state.join("api.json").exists());
}

/// One server for several agents: `POST /kill` without an agent writes the command into every
/// agent's state folder (the global kill); with one, into that one's only.
#[test]
fn kill_without_an_agent_reaches_every_agent_of_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let board = Board::new();
    let dirs: Vec<PathBuf> = ["a", "b"].iter().map(|n| dir.path().join(n)).collect();
    for (name, d) in ["a", "b"].iter().zip(&dirs) {
        std::fs::create_dir_all(d).unwrap();
        board
            .register(name, Some(d.clone()))
            .describe("live", "ema_cross");
    }
    let token = ApiToken::generate().unwrap();
    let mut server =
        ApiServer::start(board, "127.0.0.1:0".parse().unwrap(), token.clone()).unwrap();
    for d in &dirs {
        server.publish(d).unwrap();
    }
    let addr = server.addr().to_string();
    let bearer = format!("Bearer {}", token.secret());
    let command = |d: &Path| StateDir::open(d).unwrap().load_command().unwrap();

    let (status, body) = http(
        &addr,
        "POST",
        "/kill",
        Some(&bearer),
        Some("{\"reason\": \"one\", \"agent\": \"b\"}"),
    );
    assert_eq!(status, 202, "{body}");
    assert!(command(&dirs[0]).is_none());
    assert_eq!(command(&dirs[1]).unwrap().reason, "one");

    let (status, body) = http(
        &addr,
        "POST",
        "/kill",
        Some(&bearer),
        Some("{\"reason\": \"all\", \"mode\": \"flatten\"}"),
    );
    assert_eq!(status, 202, "{body}");
    for d in &dirs {
        let c = command(d).unwrap();
        assert_eq!(c.reason, "all");
        assert_eq!(
            c.action,
            defai::core::SwitchAction::Kill(defai::core::KillMode::Flatten)
        );
    }
    let (status, body) = http(
        &addr,
        "POST",
        "/resume",
        Some(&bearer),
        Some("{\"reason\": \"ok\"}"),
    );
    assert_eq!(status, 202, "{body}");
    assert!(
        dirs.iter()
            .all(|d| command(d).unwrap().action == defai::core::SwitchAction::Resume)
    );

    let (_, status_body) = http(&addr, "GET", "/status", Some(&bearer), None);
    let v: serde_json::Value = serde_json::from_str(&status_body).unwrap();
    let names: Vec<&str> = v["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(v["agents"][0]["phase"], "starting");

    // Stopping the server removes what it published.
    drop(server);
    for d in &dirs {
        assert!(!d.join("api.json").exists() && !d.join("api-token").exists());
    }
}

#[test]
fn dashboard_in_headless_chromium_shows_the_equity_and_its_kill_button_halts_the_agent() {
    let chromium = std::env::var("DEFAI_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        if std::env::var("DEFAI_SKIP_BROWSER").as_deref() == Ok("1") {
            eprintln!("DEFAI_SKIP_BROWSER=1: skipping the dashboard test ({chromium} is missing)");
            return;
        }
        panic!(
            "{chromium} is missing: `.ci/run` installs Debian's chromium (apt-get install -y \
             chromium); set DEFAI_SKIP_BROWSER=1 to skip this test"
        );
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("node_modules/playwright-core").is_dir(),
        "node_modules/playwright-core is missing: run `npm ci` (./scripts/test does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let agent = Agent::spawn(dir.path(), &state);
    let (addr, token) = wait_for_api(&state, &agent);
    let mut c = Client {
        addr: addr.clone(),
        bearer: format!("Bearer {token}"),
        bodies: Vec::new(),
    };
    c.wait_status("bars", |a| a["bars"].as_u64().unwrap_or(0) > 0);

    let mut node = Command::new("node")
        .current_dir(root)
        .arg("tests/dashboard.mjs")
        .arg(format!("http://{addr}"))
        .arg(&token)
        .arg("ema_cross")
        .env("DEFAI_CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node (Node.js 20+) runs tests/dashboard.mjs");
    let deadline = Instant::now() + Duration::from_secs(90);
    while node.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = node.kill();
            panic!("the dashboard test did not finish in 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = node.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let r: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{e}: {stdout}\n{}\nagent: {}",
            String::from_utf8_lossy(&out.stderr),
            agent.stderr()
        )
    });
    assert!(
        out.status.success() && r["ok"] == true,
        "{r}\nagent: {}",
        agent.stderr()
    );
    let equity = r["equity"].as_f64().unwrap();
    assert!(
        equity.is_finite() && equity > 0.0,
        "the page showed the equity: {r}"
    );
    assert!(
        r["equity_text"].as_str().unwrap().parse::<f64>().is_ok(),
        "{r}"
    );
    assert_eq!(r["state_before"], "active", "{r}");
    assert_eq!(r["state_after"], "halted", "{r}");
    assert!(r["curve_points"].as_u64().unwrap() >= 1, "{r}");
    let dialogs = r["dialogs"].as_array().unwrap();
    assert_eq!(dialogs.len(), 1, "one confirmation: {r}");
    assert_eq!(dialogs[0]["type"], "confirm");
    assert!(
        !r["url_after_load"].as_str().unwrap().contains(&token),
        "the token leaves the address bar: {r}"
    );
    assert!(r["console_errors"].as_array().unwrap().is_empty(), "{r}");

    // The agent is halted: through the API and in its state folder.
    let a = c.wait_status("the halt", |a| a["kill_switch"]["state"] == "halted");
    assert!(
        a["kill_switch"]["reason"]
            .as_str()
            .unwrap()
            .contains("dashboard"),
        "{a}"
    );
    let latched = StateDir::open(&state)
        .unwrap()
        .load_switch()
        .unwrap()
        .unwrap();
    assert_eq!(latched.state, defai::core::SwitchState::Halted);
    let summary = agent.interrupt();
    assert_eq!(summary["kill_switch"]["state"], "halted", "{summary}");
}

/// `defai run --config A --also B` on a devnet: one API for both agents (the same endpoint and
/// token in both state folders), and `POST /kill` without an agent halts both.
#[test]
fn a_fleet_has_one_api_and_kill_without_an_agent_halts_every_agent() {
    use std::sync::atomic::Ordering;

    let rt = common::devnet_rt();
    let closes: Vec<f64> = common::bundled_bars()[20_000..23_000]
        .iter()
        .map(|b| b.close)
        .collect();
    let (devnet, stop, mover) = rt.block_on(common::devnet_with_mover(closes, 30));
    let dir = tempfile::tempdir().unwrap();
    let devnet_json = dir.path().join("devnet.json");
    devnet.info().write(&devnet_json).unwrap();
    let config = |name: &str, key_env: &str| {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/configs/trading-devnet.toml"
        ))
        .unwrap()
        .replace(
            "[market]",
            &format!("[agent]\nname = \"{name}\"\n\n[wallet]\nkey_env = \"{key_env}\"\n\n[market]"),
        );
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    };
    let (a, b) = (
        config("alpha", "DEFAI_KEY_ALPHA"),
        config("beta", "DEFAI_KEY_BETA"),
    );
    let root = dir.path().join("state");
    let stderr = dir.path().join("fleet.stderr");
    let child = Command::new(env!("CARGO_BIN_EXE_defai"))
        .env_remove("DEFAI_PRIVATE_KEY")
        .env_remove("RUST_LOG")
        .env("DEFAI_STATE_ROOT", &root)
        .env("DEFAI_KEY_ALPHA", devnet.test_key_hex(1).unwrap())
        .env("DEFAI_KEY_BETA", devnet.test_key_hex(2).unwrap())
        .arg("run")
        .arg("--config")
        .arg(&a)
        .arg("--also")
        .arg(&b)
        .arg("--devnet")
        .arg(&devnet_json)
        .args(["--max-cycles", "400"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let agent = Agent {
        child: Some(child),
        stderr,
    };
    let (alpha, beta) = (root.join("alpha-live"), root.join("beta-live"));
    let (addr, token) = wait_for_api(&alpha, &agent);
    let (addr_b, token_b) = wait_for_api(&beta, &agent);
    assert_eq!(
        (&addr, &token),
        (&addr_b, &token_b),
        "one server, one token"
    );
    let mut c = Client {
        addr,
        bearer: format!("Bearer {token}"),
        bodies: Vec::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = c.json("/status");
        let agents = v["agents"].as_array().unwrap();
        let names: Vec<&str> = agents.iter().map(|a| a["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["alpha", "beta"], "{v}");
        if agents.iter().all(|a| a["bars"].as_u64().unwrap_or(0) > 0) {
            assert!(agents.iter().all(|a| a["mode"] == "live"), "{v}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no bars: {v}\n{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = c.post("/kill", "{\"reason\": \"global\"}");
    assert_eq!(status, 202, "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = c.json("/status");
        let agents = v["agents"].as_array().unwrap();
        if agents.iter().all(|a| a["kill_switch"]["state"] == "halted") {
            assert!(
                agents.iter().all(|a| a["kill_switch"]["reason"]
                    .as_str()
                    .unwrap()
                    .contains("global")),
                "{v}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all halted: {v}\n{}",
            agent.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log_path = agent.stderr.clone();
    let out = agent.finish(Duration::from_secs(120));
    let log = std::fs::read_to_string(log_path).unwrap();
    stop.store(true, Ordering::Relaxed);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    for s in v["agents"].as_array().unwrap() {
        assert_eq!(s["summary"]["kill_switch"]["state"], "halted", "{s}");
    }
    for dir in [&alpha, &beta] {
        let latched = StateDir::open(dir).unwrap().load_switch().unwrap().unwrap();
        assert_eq!(latched.state, defai::core::SwitchState::Halted);
        assert!(!dir.join("api.json").exists(), "removed on a clean stop");
    }
    assert!(!log.contains(&token), "{log}");
    rt.block_on(async {
        let _ = mover.await;
    });
}
