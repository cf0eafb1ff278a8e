//! The client `defai status|kill|resume` use to talk to a running agent's API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::header;

use super::error::ControlError;
use super::token::{ApiToken, read_endpoint};

/// Talks to the API a state folder's `api.json` names.
pub struct ApiClient {
    url: String,
    token: ApiToken,
    http: reqwest::Client,
}

/// Shows the URL only: never the bearer token.
impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// The client for the API published in `dir`, or `None` when there is none (no
    /// `api.json`). Requests time out after 2 s connecting and 10 s in all.
    ///
    /// # Errors
    /// - as [`read_endpoint`]: [`ControlError::File`] when `api.json` or `api-token` cannot be
    ///   read, [`ControlError::Corrupt`] when `api.json` is not valid;
    /// - [`ControlError::Unreachable`] when the HTTP client cannot be built.
    pub fn for_state_dir(dir: &Path) -> Result<Option<Self>, ControlError> {
        let Some((endpoint, token)) = read_endpoint(dir)? else {
            return Ok(None);
        };
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ControlError::Unreachable {
                url: endpoint.url.clone(),
                error: e.to_string(),
            })?;
        Ok(Some(Self {
            url: endpoint.url.trim_end_matches('/').to_string(),
            token,
            http,
        }))
    }

    /// The API's base URL, `http://ADDR`, without a trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<serde_json::Value, ControlError> {
        let unreachable = |e: reqwest::Error| ControlError::Unreachable {
            url: self.url.clone(),
            error: e.to_string(),
        };
        let res = req
            .bearer_auth(self.token.secret())
            .send()
            .await
            .map_err(unreachable)?;
        let status = res.status();
        let bytes = res.bytes().await.map_err(unreachable)?;
        let value: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
        if !status.is_success() {
            let message = value
                .as_ref()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            return Err(ControlError::Http {
                url: self.url.clone(),
                status: status.as_u16(),
                message,
            });
        }
        value.ok_or_else(|| ControlError::Http {
            url: self.url.clone(),
            status: status.as_u16(),
            message: "the answer is not JSON".into(),
        })
    }

    /// `GET path` (e.g. `/status`), as JSON.
    ///
    /// # Errors
    /// - [`ControlError::Unreachable`] when the server does not answer (not running, a timeout);
    /// - [`ControlError::Http`] when it answers with an error status (its `error` message
    ///   quoted) or with a body that is not JSON.
    pub async fn get(&self, path: &str) -> Result<serde_json::Value, ControlError> {
        self.send(self.http.get(format!("{}{path}", self.url)))
            .await
    }

    /// `POST path` with a JSON body (e.g. `/kill` with `{"reason": "..."}`), the answer as JSON.
    ///
    /// # Errors
    /// As [`ApiClient::get`].
    pub async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ControlError> {
        let req = self
            .http
            .post(format!("{}{path}", self.url))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        self.send(req).await
    }

    /// The `/status` entry of the agent using state folder `dir`: `None` when the server that
    /// answers runs no agent there (a stale `api.json` whose port another process now has).
    ///
    /// # Errors
    /// As [`ApiClient::get`] of `/status`.
    pub async fn agent_for(&self, dir: &Path) -> Result<Option<serde_json::Value>, ControlError> {
        let status = self.get("/status").await?;
        let want = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        Ok(status["agents"].as_array().and_then(|agents| {
            agents
                .iter()
                .find(|a| {
                    a["state_dir"].as_str().is_some_and(|d| {
                        std::fs::canonicalize(d).unwrap_or_else(|_| PathBuf::from(d)) == want
                    })
                })
                .cloned()
        }))
    }
}
