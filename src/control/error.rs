//! What can go wrong in the operator surfaces.

use std::net::SocketAddr;

use connectors::StateError;

/// An error of the control API: starting or publishing the server, or reaching it from a client.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The server could not listen on `addr`.
    #[error("control API: cannot listen on {addr}: {error}")]
    Bind {
        /// The address asked for (`--api`).
        addr: SocketAddr,
        /// Why: usually the port is taken or the address is not one of this host's; pick
        /// another, or port 0 for any free port.
        error: std::io::Error,
    },
    /// The operating system refused to start the server's thread (resource limits).
    #[error("control API: cannot start its thread: {0}")]
    Thread(std::io::Error),
    /// A file of the state folder (`api.json`, `api-token`) could not be read or written:
    /// check the folder exists and its permissions.
    #[error("{path}: {error}")]
    File {
        /// The file's path.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// `api.json` is not the `{"url", "pid"}` JSON a server writes (or the endpoint could not
    /// be encoded): delete it, the next server start writes it again.
    #[error("{path}: corrupt: {error}")]
    Corrupt {
        /// The file's path.
        path: String,
        /// What the JSON parser or encoder said.
        error: String,
    },
    /// The state folder could not be opened (created) or a file in it written atomically.
    #[error(transparent)]
    State(#[from] StateError),
    /// The operating system's secure random source failed, so no API token could be made; the
    /// API cannot start (run without it, `--no-api`).
    #[error("no secure random source for the API token: {0}")]
    Random(String),
    /// The server named in `api.json` did not answer (not running any more, a timeout: 2 s to
    /// connect, 10 s in all), or the HTTP client could not be built.
    #[error("control API at {url} did not answer: {error}")]
    Unreachable {
        /// The server's base URL, `http://ADDR`.
        url: String,
        /// What the HTTP client said.
        error: String,
    },
    /// The server answered with an error status, or with a body that is not JSON. A 401 means
    /// the token in `api-token` is not this server's (files left by an agent since restarted,
    /// whose port another process now has); a 400 or 404 names the bad request or agent.
    #[error("control API at {url}: HTTP {status}: {message}")]
    Http {
        /// The server's base URL, `http://ADDR`.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The `error` field of the server's JSON answer, else its body as text.
        message: String,
    },
}
