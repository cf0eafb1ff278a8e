//! What can go wrong in the operator surfaces.

use std::net::SocketAddr;

use connectors::StateError;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control API: cannot listen on {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("control API: cannot start its thread: {0}")]
    Thread(std::io::Error),
    #[error("{path}: {error}")]
    File { path: String, error: std::io::Error },
    #[error("{path}: corrupt: {error}")]
    Corrupt { path: String, error: String },
    #[error(transparent)]
    State(#[from] StateError),
    #[error("no secure random source for the API token: {0}")]
    Random(String),
    #[error("control API at {url} did not answer: {error}")]
    Unreachable { url: String, error: String },
    #[error("control API at {url}: HTTP {status}: {message}")]
    Http {
        url: String,
        status: u16,
        message: String,
    },
}
