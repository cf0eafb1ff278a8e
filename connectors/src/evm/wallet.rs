//! Where the signing key comes from: the `DEFAI_PRIVATE_KEY` environment variable or an
//! encrypted JSON keystore. The key is never printed: `Debug` shows the address only, and error
//! messages describe the problem without echoing what was read.

use std::path::{Path, PathBuf};

use alloy::network::EthereumWallet;
use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;

use super::error::EvmError;

/// Environment variable holding a hex private key.
pub const PRIVATE_KEY_ENV: &str = "DEFAI_PRIVATE_KEY";
/// Environment variable holding the keystore password (otherwise it is prompted for).
pub const KEYSTORE_PASSWORD_ENV: &str = "DEFAI_KEYSTORE_PASSWORD";

/// Where the key is loaded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalletSource {
    /// A hex key in [`PRIVATE_KEY_ENV`] (`DEFAI_PRIVATE_KEY`).
    Env,
    /// A key in the named environment variable (one per agent of a fleet).
    EnvVar(String),
    /// An encrypted JSON keystore file (geth/foundry format); its password comes from
    /// [`KEYSTORE_PASSWORD_ENV`] or a prompt.
    Keystore(PathBuf),
}

/// A loaded signing key.
#[derive(Clone)]
pub struct Wallet {
    signer: PrivateKeySigner,
    source: WalletSource,
}

impl std::fmt::Debug for Wallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallet")
            .field("address", &self.signer.address())
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Wallet {
    /// Loads from `source`; a keystore's password comes from `DEFAI_KEYSTORE_PASSWORD` or a
    /// terminal prompt.
    ///
    /// # Errors
    /// [`EvmError::Wallet`] when the variable is unset or holds no valid key, the password
    /// cannot be read, or the keystore is missing or cannot be decrypted (see
    /// [`Wallet::from_hex`] and [`Wallet::from_keystore`]). No message contains the key.
    pub fn load(source: &WalletSource) -> Result<Self, EvmError> {
        match source {
            WalletSource::Env => {
                let raw = std::env::var(PRIVATE_KEY_ENV).map_err(|_| {
                    EvmError::Wallet(format!(
                        "no key: set {PRIVATE_KEY_ENV} or pass --keystore FILE"
                    ))
                })?;
                Self::from_hex(&raw)
            }
            WalletSource::EnvVar(name) => {
                let raw = std::env::var(name).map_err(|_| {
                    EvmError::Wallet(format!("no key: set {name} (named by [wallet] key_env)"))
                })?;
                // Named after the variable it really came from.
                Self::from_hex_named(&raw, name)
            }
            WalletSource::Keystore(path) => {
                let password = match std::env::var(KEYSTORE_PASSWORD_ENV) {
                    Ok(p) => p,
                    Err(_) => rpassword::prompt_password(format!(
                        "password for keystore {}: ",
                        path.display()
                    ))
                    .map_err(|e| {
                        EvmError::Wallet(format!(
                            "keystore {}: cannot read a password ({e}); set {KEYSTORE_PASSWORD_ENV}",
                            path.display()
                        ))
                    })?,
                };
                Self::from_keystore(path, &password)
            }
        }
    }

    /// Parses a hex key (with or without `0x`), as from `DEFAI_PRIVATE_KEY`. The error never
    /// contains the input.
    ///
    /// # Errors
    /// [`EvmError::Wallet`] when `raw` is not 32 bytes of hex, or is but is no secp256k1 key
    /// (zero, or not below the curve order).
    pub fn from_hex(raw: &str) -> Result<Self, EvmError> {
        Self::from_hex_named(raw, PRIVATE_KEY_ENV)
    }

    /// [`Wallet::from_hex`] for a key read from the variable `name`: errors name it, and tell
    /// "not 32 bytes of hex" from "32 bytes of hex that are no secp256k1 key" (zero, or not
    /// below the curve order).
    fn from_hex_named(raw: &str, name: &str) -> Result<Self, EvmError> {
        let body = raw.trim().trim_start_matches("0x");
        let hex32 = body.len() == 64 && body.bytes().all(|b| b.is_ascii_hexdigit());
        let signer: PrivateKeySigner = raw.trim().parse().map_err(|_| {
            EvmError::Wallet(if hex32 {
                format!(
                    "{name} holds 32 bytes of hex that are not a valid secp256k1 private key (zero, or not below the curve order)"
                )
            } else {
                format!("{name} is not a valid private key (expected 32 bytes of hex)")
            })
        })?;
        Ok(Self {
            signer,
            source: WalletSource::Env,
        })
    }

    /// A key given as raw bytes (anvil's test accounts).
    ///
    /// # Errors
    /// [`EvmError::Wallet`] when the bytes are no secp256k1 key (zero, or not below the curve
    /// order).
    pub fn from_key_bytes(bytes: &alloy::primitives::B256) -> Result<Self, EvmError> {
        let signer = PrivateKeySigner::from_bytes(bytes)
            .map_err(|_| EvmError::Wallet("not a valid secp256k1 private key".into()))?;
        Ok(Self {
            signer,
            source: WalletSource::Env,
        })
    }

    /// Decrypts the JSON keystore at `path` with `password`.
    ///
    /// # Errors
    /// [`EvmError::Wallet`] naming the file when it does not exist, or cannot be decrypted
    /// (wrong password, MAC mismatch, malformed JSON); the message gives only the kind of
    /// problem, never what was read.
    pub fn from_keystore(path: &Path, password: &str) -> Result<Self, EvmError> {
        if !path.is_file() {
            return Err(EvmError::Wallet(format!(
                "keystore {} does not exist",
                path.display()
            )));
        }
        let signer = PrivateKeySigner::decrypt_keystore(path, password).map_err(|e| {
            EvmError::Wallet(format!(
                "keystore {}: cannot decrypt ({}); wrong password or not a keystore",
                path.display(),
                keystore_problem(&e.to_string())
            ))
        })?;
        Ok(Self {
            signer,
            source: WalletSource::Keystore(path.to_path_buf()),
        })
    }

    /// Encrypts this key into a JSON keystore `dir/name` (scrypt, as geth and foundry do) and
    /// returns its path.
    ///
    /// # Errors
    /// [`EvmError::Wallet`] for an empty password, when `dir/name` exists already (never
    /// overwritten), or when the file cannot be written.
    pub fn write_keystore(
        &self,
        dir: &Path,
        name: &str,
        password: &str,
    ) -> Result<PathBuf, EvmError> {
        if password.is_empty() {
            return Err(EvmError::Wallet(
                "refusing an empty keystore password".into(),
            ));
        }
        let path = dir.join(name);
        if path.exists() {
            return Err(EvmError::Wallet(format!(
                "{} already exists",
                path.display()
            )));
        }
        PrivateKeySigner::encrypt_keystore(
            dir,
            &mut rand::thread_rng(),
            self.signer.to_bytes(),
            password,
            Some(name),
        )
        .map_err(|e| EvmError::Wallet(format!("cannot write keystore {}: {e}", path.display())))?;
        Ok(path)
    }

    /// The key's account address.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// The signer as an alloy network wallet, for building signed transactions.
    pub(crate) fn network_wallet(&self) -> EthereumWallet {
        EthereumWallet::from(self.signer.clone())
    }
}

/// Keeps only the kind of a keystore error (the decryption library never echoes the key, but
/// we do not rely on that).
fn keystore_problem(msg: &str) -> &'static str {
    let m = msg.to_ascii_lowercase();
    if m.contains("mac") {
        "MAC mismatch"
    } else if m.contains("json") || m.contains("serde") {
        "malformed JSON"
    } else if m.contains("io") || m.contains("no such file") {
        "cannot read the file"
    } else {
        "invalid keystore"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Anvil's first well-known test key (public; never funded on a real chain).
    const KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    #[test]
    fn debug_and_errors_never_show_the_key() {
        let w = Wallet::from_hex(KEY).unwrap();
        let dbg = format!("{w:?}");
        assert!(dbg.to_lowercase().contains("0xf39fd6e5"), "{dbg}");
        assert!(!dbg.to_lowercase().contains(KEY));
        let bad = format!("{KEY}zz");
        let err = Wallet::from_hex(&bad).unwrap_err().to_string();
        assert!(
            !err.contains(KEY) && err.contains("DEFAI_PRIVATE_KEY"),
            "{err}"
        );
    }

    #[test]
    fn thirty_two_zero_bytes_are_named_as_no_valid_secp256k1_key() {
        let zero = "0".repeat(64);
        let err = Wallet::from_hex(&zero).unwrap_err().to_string();
        assert!(
            err.contains("not a valid secp256k1 private key") && err.contains("DEFAI_PRIVATE_KEY"),
            "{err}"
        );
        // Past the curve order: also 32 bytes of hex, also not a key.
        let err = Wallet::from_hex(&"f".repeat(64)).unwrap_err().to_string();
        assert!(err.contains("secp256k1"), "{err}");
        let err = Wallet::from_hex("12ab").unwrap_err().to_string();
        assert!(err.contains("expected 32 bytes of hex"), "{err}");
    }

    #[test]
    fn keystore_round_trips_and_a_wrong_password_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let w = Wallet::from_hex(KEY).unwrap();
        let path = w
            .write_keystore(dir.path(), "agent.json", "correct horse")
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(KEY), "the keystore holds the key encrypted");
        let back = Wallet::from_keystore(&path, "correct horse").unwrap();
        assert_eq!(back.address(), w.address());
        let err = Wallet::from_keystore(&path, "wrong")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("agent.json") && err.contains("wrong password"),
            "{err}"
        );
        let err = Wallet::from_keystore(&dir.path().join("none.json"), "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
        assert!(
            w.write_keystore(dir.path(), "agent.json", "x").is_err(),
            "never overwrites"
        );
    }
}
