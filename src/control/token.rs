//! The API's bearer token and the files that publish the API in a state folder.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::error::ControlError;

/// The bearer token's file in each state folder (mode 0600).
pub const TOKEN_FILE: &str = "api-token";
/// The API's address in each state folder: `{"url": ..., "pid": ...}`.
pub const ENDPOINT_FILE: &str = "api.json";

fn file_err(path: &Path) -> impl Fn(std::io::Error) -> ControlError + '_ {
    move |error| ControlError::File {
        path: path.display().to_string(),
        error,
    }
}

/// The API's bearer token. Never printed: `Debug` redacts it.
#[derive(Clone)]
pub struct ApiToken(Arc<str>);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

impl ApiToken {
    /// 32 bytes from the operating system's secure random source, as 64 hex digits.
    ///
    /// # Errors
    /// [`ControlError::Random`] when the operating system's random source fails; there is then
    /// no safe token, and the API must not start.
    pub fn generate() -> Result<Self, ControlError> {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).map_err(|e| ControlError::Random(e.to_string()))?;
        let mut s = String::with_capacity(64);
        for byte in b {
            let _ = write!(s, "{byte:02x}");
        }
        Ok(Self(s.into()))
    }

    /// A token read from a token file (surrounding whitespace ignored).
    pub fn from_secret(secret: &str) -> Self {
        Self(secret.trim().into())
    }

    /// The secret itself: for the `Authorization` header and the token file only.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// Compares in time independent of where `presented` differs.
    pub(super) fn matches(&self, presented: &[u8]) -> bool {
        let ours = self.0.as_bytes();
        if ours.is_empty() || presented.len() != ours.len() {
            return false;
        }
        ours.iter()
            .zip(presented)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// `<state>/api.json`: where the API of the agent using this folder listens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The API's base URL, `http://ADDR` (e.g. `http://127.0.0.1:40123`).
    pub url: String,
    /// The id of the process serving it; a server removes only the files with its own pid.
    pub pid: u32,
}

/// Replaces `path` with `bytes`, readable by the owner only (mode 0600 from creation on).
pub(super) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ControlError> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{TOKEN_FILE}.tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    {
        let mut f = opts.open(&tmp).map_err(file_err(&tmp))?;
        f.write_all(bytes).map_err(file_err(&tmp))?;
        f.sync_all().map_err(file_err(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(file_err(path))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The endpoint and token published in `dir`, if an API was started on it: `Ok(None)` when
/// `dir` has no `api.json`.
///
/// # Errors
/// - [`ControlError::File`] when `api.json` exists but cannot be read, or `api-token` is
///   missing or unreadable (it is mode 0600: run as the agent's user);
/// - [`ControlError::Corrupt`] when `api.json` is not `{"url", "pid"}` JSON.
pub fn read_endpoint(dir: &Path) -> Result<Option<(Endpoint, ApiToken)>, ControlError> {
    let path = dir.join(ENDPOINT_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(file_err(&path)(e)),
    };
    let endpoint: Endpoint = serde_json::from_slice(&bytes).map_err(|e| ControlError::Corrupt {
        path: path.display().to_string(),
        error: e.to_string(),
    })?;
    let tpath = dir.join(TOKEN_FILE);
    let token = std::fs::read_to_string(&tpath).map_err(file_err(&tpath))?;
    Ok(Some((endpoint, ApiToken::from_secret(&token))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_64_hex_digits_and_compares_exactly() {
        let a = ApiToken::generate().unwrap();
        let b = ApiToken::generate().unwrap();
        assert_eq!(a.secret().len(), 64);
        assert!(a.secret().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.secret(), b.secret());
        assert!(a.matches(a.secret().as_bytes()));
        assert!(!a.matches(b.secret().as_bytes()));
        assert!(!a.matches(&a.secret().as_bytes()[..63]));
        assert!(!a.matches(b""));
        assert!(!format!("{a:?}").contains(a.secret()));
    }
}
