//! The HTTP control API and dashboard: [`ApiServer`], its router, middleware and handlers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use agent_core::{KillMode, SwitchAction};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use connectors::StateDir;
use serde::Deserialize;

use super::board::Board;
use super::error::ControlError;
use super::token::{ApiToken, ENDPOINT_FILE, Endpoint, TOKEN_FILE, read_endpoint, write_private};
use super::views::{DecisionView, decision_view};

/// `GET /decisions` without `limit`.
pub const DEFAULT_DECISIONS: usize = 50;
/// The largest `limit` `GET /decisions` accepts.
pub const MAX_DECISIONS: usize = 1000;

const DASHBOARD_HTML: &str = include_str!("dashboard.html");
const DASHBOARD_JS: &str = include_str!("dashboard.js");

struct Api {
    board: Arc<Board>,
    token: ApiToken,
}

type Shared = Arc<Api>;

/// A JSON error answer.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

fn unknown_agent(name: &str) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, format!("no agent named `{name}`"))
}

/// The HTTP control API and dashboard, served from its own thread (and runtime) so a busy agent
/// loop never delays it; it never keeps the process alive. Dropping it stops it and removes the
/// endpoint files it published.
pub struct ApiServer {
    addr: SocketAddr,
    token: ApiToken,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    published: Vec<PathBuf>,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl ApiServer {
    /// Binds `listen` (port 0: any free port) and serves `board`, every data and command
    /// endpoint behind `Authorization: Bearer <token>`.
    ///
    /// # Errors
    /// - [`ControlError::Bind`] when `listen` cannot be bound (the port is taken, the address
    ///   is not this host's): choose another address, or port 0;
    /// - [`ControlError::Thread`] when the server's thread cannot be started.
    pub fn start(
        board: Arc<Board>,
        listen: SocketAddr,
        token: ApiToken,
    ) -> Result<Self, ControlError> {
        let bind = |error| ControlError::Bind {
            addr: listen,
            error,
        };
        let listener = std::net::TcpListener::bind(listen).map_err(bind)?;
        listener.set_nonblocking(true).map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        let app = router(Arc::new(Api {
            board,
            token: token.clone(),
        }));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("defai-api".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(target: "defai::api", error = %e, "control API runtime");
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(target: "defai::api", error = %e, "control API listener");
                            return;
                        }
                    };
                    let served = axum::serve(listener, app).with_graceful_shutdown(async {
                        let _ = rx.await;
                    });
                    if let Err(e) = served.await {
                        tracing::error!(target: "defai::api", error = %e, "control API stopped");
                    }
                });
            })
            .map_err(ControlError::Thread)?;
        Ok(Self {
            addr,
            token,
            shutdown: Some(tx),
            published: Vec::new(),
        })
    }

    /// The address actually bound (with the port chosen when `listen` asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes the token (`api-token`, mode 0600) and the endpoint (`api.json`) into the state
    /// folder `dir`, for `defai status|kill|resume`. Removed again when the server stops.
    ///
    /// # Errors
    /// - [`ControlError::State`] when `dir` cannot be created or `api.json` cannot be written;
    /// - [`ControlError::File`] when `api-token` cannot be written;
    /// - [`ControlError::Corrupt`] when the endpoint cannot be encoded as JSON.
    pub fn publish(&mut self, dir: &Path) -> Result<(), ControlError> {
        let state = StateDir::open(dir)?;
        write_private(
            &state.path().join(TOKEN_FILE),
            self.token.secret().as_bytes(),
        )?;
        let endpoint = Endpoint {
            url: self.url(),
            pid: std::process::id(),
        };
        let json = serde_json::to_vec_pretty(&endpoint).map_err(|e| ControlError::Corrupt {
            path: ENDPOINT_FILE.into(),
            error: e.to_string(),
        })?;
        connectors::state::write_atomic(&state.path().join(ENDPOINT_FILE), &json)?;
        self.published.push(dir.to_path_buf());
        Ok(())
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for dir in &self.published {
            // Only what this process wrote: another agent may have the folder since.
            if let Ok(Some((e, _))) = read_endpoint(dir)
                && e.pid == std::process::id()
                && e.url == format!("http://{}", self.addr)
            {
                let _ = std::fs::remove_file(dir.join(ENDPOINT_FILE));
                let _ = std::fs::remove_file(dir.join(TOKEN_FILE));
            }
        }
    }
}

fn router(api: Shared) -> Router {
    let protected = Router::new()
        .route("/status", get(status))
        .route("/positions", get(positions))
        .route("/decisions", get(decisions))
        .route("/equity", get(equity))
        .route("/metrics", get(metrics))
        .route("/kill", post(kill))
        .route("/resume", post(resume))
        .route_layer(middleware::from_fn_with_state(api.clone(), auth));
    Router::new()
        .route("/", get(dashboard))
        .route("/dashboard.js", get(dashboard_js))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .merge(protected)
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .layer(middleware::from_fn(common_headers))
        .with_state(api)
}

async fn common_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

async fn auth(State(api): State<Shared>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .map(|t| t.trim_ascii());
    match presented {
        Some(t) if api.token.matches(t) => next.run(req).await,
        _ => {
            let mut res = ApiError(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token (see the api-token file in the agent's state folder)"
                    .into(),
            )
            .into_response();
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            res
        }
    }
}

async fn dashboard() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        DASHBOARD_HTML,
    )
        .into_response()
}

async fn dashboard_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        DASHBOARD_JS,
    )
        .into_response()
}

type Params = Query<HashMap<String, String>>;

fn agent_filter(q: &HashMap<String, String>) -> Option<&str> {
    q.get("agent").map(String::as_str).filter(|s| !s.is_empty())
}

async fn status(State(api): State<Shared>, Query(q): Params) -> Result<Response, ApiError> {
    let filter = agent_filter(&q);
    let agents = api
        .board
        .status(filter)
        .ok_or_else(|| unknown_agent(filter.unwrap_or_default()))?;
    Ok(
        axum::Json(serde_json::json!({ "pid": std::process::id(), "agents": agents }))
            .into_response(),
    )
}

async fn positions(State(api): State<Shared>, Query(q): Params) -> Result<Response, ApiError> {
    let filter = agent_filter(&q);
    let agents = api
        .board
        .select(filter)
        .ok_or_else(|| unknown_agent(filter.unwrap_or_default()))?;
    let out: Vec<serde_json::Value> = agents
        .iter()
        .filter_map(|(name, s)| {
            let s = s.read().ok()?;
            Some(serde_json::json!({
                "agent": name, "ts": s.positions_ts, "positions": s.positions,
            }))
        })
        .collect();
    Ok(axum::Json(serde_json::json!({ "agents": out })).into_response())
}

async fn equity(State(api): State<Shared>, Query(q): Params) -> Result<Response, ApiError> {
    let filter = agent_filter(&q);
    let agents = api
        .board
        .select(filter)
        .ok_or_else(|| unknown_agent(filter.unwrap_or_default()))?;
    let out: Vec<serde_json::Value> = agents
        .iter()
        .filter_map(|(name, s)| {
            let s = s.read().ok()?;
            Some(serde_json::json!({
                "agent": name, "marks": s.curve.marks(), "points": s.curve.points(),
            }))
        })
        .collect();
    Ok(axum::Json(serde_json::json!({ "agents": out })).into_response())
}

/// `limit`: absent → the default; otherwise an integer in 1..=MAX_DECISIONS.
fn parse_limit(q: &HashMap<String, String>) -> Result<usize, ApiError> {
    let Some(raw) = q.get("limit") else {
        return Ok(DEFAULT_DECISIONS);
    };
    match raw.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_DECISIONS).contains(&n) => Ok(n),
        _ => Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("limit must be an integer from 1 to {MAX_DECISIONS}, got `{raw}`"),
        )),
    }
}

async fn decisions(State(api): State<Shared>, Query(q): Params) -> Result<Response, ApiError> {
    let limit = parse_limit(&q)?;
    let filter = agent_filter(&q);
    let agents = api
        .board
        .select(filter)
        .ok_or_else(|| unknown_agent(filter.unwrap_or_default()))?;
    let mut out: Vec<DecisionView> = Vec::new();
    for (name, s) in &agents {
        if let Ok(s) = s.read() {
            out.extend(
                s.decisions
                    .iter()
                    .rev()
                    .take(limit)
                    .map(|r| decision_view(name, r)),
            );
        }
    }
    // Newest first across agents.
    out.sort_by_key(|d| std::cmp::Reverse(d.ts));
    out.truncate(limit);
    Ok(axum::Json(serde_json::json!({ "decisions": out })).into_response())
}

async fn metrics(State(api): State<Shared>, Query(q): Params) -> Result<Response, ApiError> {
    let filter = agent_filter(&q);
    let text = api
        .board
        .metrics(filter)
        .ok_or_else(|| unknown_agent(filter.unwrap_or_default()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    reason: Option<String>,
    agent: Option<String>,
    /// `halt` (default), `reduce_only`, `flatten` or `flatten_now`; kill only.
    mode: Option<String>,
}

async fn kill(
    State(api): State<Shared>,
    Query(q): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    command(&api, &q, &headers, &body, true)
}

async fn resume(
    State(api): State<Shared>,
    Query(q): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    command(&api, &q, &headers, &body, false)
}

/// POST /kill and /resume: writes the operator command into each selected agent's state folder,
/// where its kill switch's watcher picks it up (within ~100 ms; applied at the next cycle).
fn command(
    api: &Api,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
    kill: bool,
) -> Result<Response, ApiError> {
    let bad = |m: String| ApiError(StatusCode::BAD_REQUEST, m);
    if let Some(ct) = headers.get(header::CONTENT_TYPE)
        && !ct.as_bytes().starts_with(b"application/json")
    {
        return Err(ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be JSON (Content-Type: application/json)".into(),
        ));
    }
    let body: CommandBody = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "the body must be a JSON object {{\"reason\": \"...\", \"agent\": optional name{}}}: {e}",
            if kill { ", \"mode\": optional halt|reduce_only|flatten|flatten_now" } else { "" }
        ))
    })?;
    let reason = body
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| bad("`reason` is required: say why".into()))?;
    let action = if kill {
        let mode = match body.mode.as_deref() {
            None => KillMode::Halt,
            Some(m) => m.parse::<KillMode>().map_err(bad)?,
        };
        SwitchAction::Kill(mode)
    } else {
        if body.mode.is_some() {
            return Err(bad("`mode` applies to /kill only".into()));
        }
        SwitchAction::Resume
    };
    let filter = match (body.agent.as_deref(), agent_filter(q)) {
        (Some(a), Some(b)) if a != b => {
            return Err(bad(format!(
                "the body names agent `{a}` and the query `{b}`"
            )));
        }
        (Some(a), _) => Some(a),
        (None, b) => b,
    };
    let agents = api
        .board
        .select(filter)
        .ok_or_else(|| unknown_agent(filter.unwrap_or_default()))?;
    let mut results = Vec::new();
    let mut failed = false;
    for (name, s) in &agents {
        let dir = s.read().ok().and_then(|s| s.state_dir.clone());
        let sent = match &dir {
            None => Err("the agent has no state folder".to_string()),
            Some(d) => StateDir::open(d)
                .and_then(|sd| sd.send_command(action, reason))
                .map_err(|e| e.to_string()),
        };
        match sent {
            Ok(cmd) => {
                tracing::warn!(target: "defai::api", agent = %name, ?action, reason, command = cmd.id, "operator command via the control API");
                results.push(serde_json::json!({"agent": name, "command": cmd.id}));
            }
            Err(e) => {
                failed = true;
                tracing::error!(target: "defai::api", agent = %name, error = %e, "operator command not written");
                results.push(serde_json::json!({"agent": name, "error": e}));
            }
        }
    }
    let status = if failed {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::ACCEPTED
    };
    Ok((
        status,
        axum::Json(serde_json::json!({
            "action": action,
            "reason": reason,
            "agents": results,
            "note": "a running agent applies the command at its next cycle",
        })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_validated() {
        let q = |v: &str| HashMap::from([("limit".to_string(), v.to_string())]);
        assert_eq!(parse_limit(&HashMap::new()).ok(), Some(DEFAULT_DECISIONS));
        assert_eq!(parse_limit(&q("5")).ok(), Some(5));
        for bad in ["abc", "0", "-1", "1001", ""] {
            let e = parse_limit(&q(bad)).err().unwrap();
            assert_eq!(e.0, StatusCode::BAD_REQUEST);
            assert!(e.1.contains("limit"), "{}", e.1);
        }
    }
}
