//! The agent's state folder: the kill switch's latched state and the operator's control file.
//!
//! `kill_switch.json` is written only by the agent; `control.json` only by `defai kill|resume`.
//! Both are replaced atomically (write a temporary file, fsync, rename, fsync the folder), so a
//! crash leaves either the old or the new file, never half of one.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use agent_core::{
    BaselineStore, RiskBaselines, SwitchAction, SwitchCommand, SwitchRecord, SwitchStore,
};

const SWITCH_FILE: &str = "kill_switch.json";
const CONTROL_FILE: &str = "control.json";
const BASELINES_FILE: &str = "risk_baselines.json";

/// What went wrong with a state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A file or the folder could not be created, read, written, renamed or locked (also:
    /// the folder is locked by another agent, or the control thread could not start).
    #[error("{path}: {error}")]
    Io {
        /// The file or folder.
        path: String,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// A state file exists but is not valid JSON for what it holds. Never read as "no state".
    #[error("{path}: corrupt: {error}")]
    Corrupt {
        /// The file.
        path: String,
        /// serde_json's message.
        error: String,
    },
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> StateError + '_ {
    move |error| StateError::Io {
        path: path.display().to_string(),
        error,
    }
}

/// Replaces `path` with `bytes` atomically and durably: a temporary file beside it is
/// written and fsynced, renamed over `path`, and the folder fsynced (best effort).
///
/// # Errors
/// [`StateError::Io`] when the temporary file cannot be created, written or synced, or the
/// rename fails; `path` is then unchanged.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state"),
        std::process::id()
    ));
    {
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io_err(path))?;
    // The rename is durable once the folder is synced.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StateError::Corrupt {
                path: path.display().to_string(),
                error: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Held while an agent owns its state folder (see [`StateDir::lock`]).
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

/// An agent's state folder.
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// Opens (creating if needed) the folder.
    ///
    /// # Errors
    /// [`StateError::Io`] when the folder cannot be created.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        fs::create_dir_all(path).map_err(io_err(path))?;
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the folder for one agent: a second process (or task) on the same folder would
    /// send the same intents twice, so it is refused while the returned guard lives. The OS
    /// releases the lock when the process dies, however it dies.
    ///
    /// # Errors
    /// [`StateError::Io`] when `agent.lock` cannot be opened or locked, or another holder has
    /// it (the message names the holder's pid).
    pub fn lock(&self) -> Result<StateLock, StateError> {
        let path = self.path.join("agent.lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .read(true)
            .open(&path)
            .map_err(io_err(&path))?;
        match file.try_lock() {
            Ok(()) => {
                let _ = file.set_len(0);
                let _ = (&file).write_all(format!("{}\n", std::process::id()).as_bytes());
                Ok(StateLock { _file: file })
            }
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path).unwrap_or_default();
                Err(StateError::Io {
                    path: self.path.display().to_string(),
                    error: std::io::Error::other(format!(
                        "state folder is in use by another agent (pid {})",
                        holder.trim()
                    )),
                })
            }
            Err(fs::TryLockError::Error(e)) => Err(io_err(&path)(e)),
        }
    }

    /// Starts a replay's state afresh: its journal (and, with `switch`, its latched kill switch
    /// and pending command) belong to the previous run of a reproducible replay. Live state is
    /// never reset this way.
    ///
    /// # Errors
    /// [`StateError::Io`] when a file that exists cannot be removed.
    pub fn reset_replay(&self, switch: bool) -> Result<(), StateError> {
        let journal = ["journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm"];
        let switch_files: &[&str] = if switch {
            &[SWITCH_FILE, CONTROL_FILE, BASELINES_FILE]
        } else {
            &[]
        };
        for name in journal.iter().chain(switch_files) {
            let p = self.path.join(name);
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&p)(e)),
            }
        }
        Ok(())
    }

    /// The latched kill switch, if one was saved. A corrupt file is an error, never "active".
    ///
    /// # Errors
    /// [`StateError::Corrupt`] for a file that does not parse; [`StateError::Io`] when it
    /// exists but cannot be read.
    pub fn load_switch(&self) -> Result<Option<SwitchRecord>, StateError> {
        read_json(&self.path.join(SWITCH_FILE))
    }

    /// The risk gate's loss and rate baselines, if a run saved them. A corrupt file is an
    /// error, never "no baseline".
    ///
    /// # Errors
    /// As [`StateDir::load_switch`].
    pub fn load_baselines(&self) -> Result<Option<RiskBaselines>, StateError> {
        read_json(&self.path.join(BASELINES_FILE))
    }

    /// A store that saves the baselines here, as durably as the kill switch (write, fsync,
    /// rename, fsync the folder).
    pub fn baseline_store(&self) -> FileBaselineStore {
        FileBaselineStore {
            path: self.path.join(BASELINES_FILE),
        }
    }

    /// The last operator command written, if any.
    ///
    /// # Errors
    /// As [`StateDir::load_switch`].
    pub fn load_command(&self) -> Result<Option<SwitchCommand>, StateError> {
        read_json(&self.path.join(CONTROL_FILE))
    }

    /// Writes an operator command for the agent using this folder (running or not: a stopped
    /// agent applies it when it starts). Ids increase, so each command is applied once: the
    /// id is the wall clock in nanoseconds, raised past the last command's and the last
    /// applied one's.
    ///
    /// # Errors
    /// As [`write_atomic`] for `control.json`.
    pub fn send_command(
        &self,
        action: SwitchAction,
        reason: &str,
    ) -> Result<SwitchCommand, StateError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let prev = self
            .load_command()
            .ok()
            .flatten()
            .map(|c| c.id)
            .unwrap_or(0);
        let applied = self
            .load_switch()
            .ok()
            .flatten()
            .map(|r| r.last_command)
            .unwrap_or(0);
        let cmd = SwitchCommand {
            id: now.max(prev + 1).max(applied + 1),
            action,
            reason: reason.to_string(),
        };
        let control = self.path.join(CONTROL_FILE);
        // Plain fields only: serialising cannot fail, but an error would still name the file.
        let json = serde_json::to_vec_pretty(&cmd).map_err(|e| io_err(&control)(e.into()))?;
        write_atomic(&control, &json)?;
        Ok(cmd)
    }

    /// A store that saves the switch here and watches the control file from a background thread
    /// (polling it every 100 ms), so the agent's per-cycle check is one atomic load.
    ///
    /// # Errors
    /// As [`StateDir::load_command`] for the first read; [`StateError::Io`] when the watcher
    /// thread cannot be spawned.
    pub fn switch_store(&self) -> Result<FileSwitchStore, StateError> {
        let shared = Arc::new(Watch {
            ready: AtomicBool::new(false),
            pending: Mutex::new(None),
            stop: AtomicBool::new(false),
        });
        // Read once now, so a command written while the agent was down applies on its first cycle.
        if let Some(cmd) = self.load_command()? {
            shared.offer(cmd);
        }
        let control = self.path.join(CONTROL_FILE);
        let watch = shared.clone();
        let thread = std::thread::Builder::new()
            .name("defai-control".into())
            .spawn(move || {
                while !watch.stop.load(Ordering::Relaxed) {
                    match read_json::<SwitchCommand>(&control) {
                        Ok(Some(cmd)) => watch.offer(cmd),
                        Ok(None) => {}
                        Err(e) => tracing::warn!(error = %e, "control file unreadable"),
                    }
                    // Parked, not slept: dropping the store unparks it, so an agent that ends
                    // never waits out a poll interval (in a fleet, on the shared runtime).
                    std::thread::park_timeout(Duration::from_millis(100));
                }
            })
            .map_err(io_err(&self.path))?;
        Ok(FileSwitchStore {
            path: self.path.join(SWITCH_FILE),
            shared,
            thread: Some(thread),
        })
    }
}

#[derive(Debug)]
struct Watch {
    ready: AtomicBool,
    pending: Mutex<Option<SwitchCommand>>,
    stop: AtomicBool,
}

impl Watch {
    fn offer(&self, cmd: SwitchCommand) {
        if let Ok(mut p) = self.pending.lock()
            && p.as_ref().is_none_or(|old| old.id < cmd.id)
        {
            *p = Some(cmd);
            self.ready.store(true, Ordering::Release);
        }
    }
}

/// [`BaselineStore`] over a [`StateDir`]: `risk_baselines.json`.
#[derive(Debug)]
pub struct FileBaselineStore {
    path: PathBuf,
}

impl BaselineStore for FileBaselineStore {
    fn save(&mut self, baselines: &RiskBaselines) -> Result<(), String> {
        let json = serde_json::to_vec_pretty(baselines).map_err(|e| e.to_string())?;
        write_atomic(&self.path, &json).map_err(|e| e.to_string())
    }
}

/// [`SwitchStore`] over a [`StateDir`].
#[derive(Debug)]
pub struct FileSwitchStore {
    path: PathBuf,
    shared: Arc<Watch>,
    thread: Option<JoinHandle<()>>,
}

impl SwitchStore for FileSwitchStore {
    fn save(&mut self, record: &SwitchRecord) -> Result<(), String> {
        let json = serde_json::to_vec_pretty(record).map_err(|e| e.to_string())?;
        write_atomic(&self.path, &json).map_err(|e| e.to_string())
    }

    fn poll(&mut self) -> Option<SwitchCommand> {
        // Polled once per event: a plain load first, the locked swap only when it is raised.
        if !self.shared.ready.load(Ordering::Relaxed)
            || !self.shared.ready.swap(false, Ordering::Acquire)
        {
            return None;
        }
        // `ready` is raised only for a newer id than the last one offered, so the watcher
        // re-reading the same file every 100 ms hands each command over once.
        self.shared.pending.lock().ok()?.clone()
    }
}

impl Drop for FileSwitchStore {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_core::{KillMode, KillSwitch, SwitchState};

    #[test]
    fn switch_state_survives_a_restart_and_commands_apply_once() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        assert_eq!(state.load_switch().unwrap(), None);
        state
            .send_command(SwitchAction::Kill(KillMode::Halt), "maintenance")
            .unwrap();
        {
            let mut k = KillSwitch::restore(
                SwitchRecord::default(),
                Some(Box::new(state.switch_store().unwrap())),
            );
            assert!(
                k.poll(1).is_some(),
                "a command written while stopped applies on the first cycle"
            );
            assert_eq!(k.state(), SwitchState::Halted);
        }
        // "Restart": the saved record is halted and the old command is not applied again.
        let rec = state.load_switch().unwrap().unwrap();
        assert_eq!(rec.state, SwitchState::Halted);
        assert_eq!(rec.reason.as_deref(), Some("operator: maintenance"));
        let mut k = KillSwitch::restore(rec, Some(Box::new(state.switch_store().unwrap())));
        assert!(k.poll(2).is_none());
        state.send_command(SwitchAction::Resume, "done").unwrap();
        let mut applied = None;
        for _ in 0..50 {
            applied = k.poll(3);
            if applied.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            applied.is_some(),
            "the watcher delivers a command sent while running"
        );
        assert_eq!(
            state.load_switch().unwrap().unwrap().state,
            SwitchState::Active
        );
    }

    #[test]
    fn baselines_survive_a_restart_exactly_and_a_corrupt_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        assert_eq!(state.load_baselines().unwrap(), None);
        let b = RiskBaselines {
            peak_equity: 12_345.678_901_234,
            day: Some(20_000),
            day_start_equity: 0.1 + 0.2,
            daily_breached: false,
            drawdown_breached: true,
            recent_trades: vec![1, 2, 3],
            last_trade: Some(3),
            gas_day: Some(20_000),
            gas_today_wei: "123456789012345678901".into(),
        };
        state.baseline_store().save(&b).unwrap();
        assert_eq!(
            state.load_baselines().unwrap(),
            Some(b),
            "floats round-trip exactly"
        );
        fs::write(dir.path().join(BASELINES_FILE), b"{\"peak_equity\": 1").unwrap();
        let err = state.load_baselines().unwrap_err().to_string();
        assert!(
            err.contains(BASELINES_FILE) && err.contains("corrupt"),
            "{err}"
        );
    }

    #[test]
    fn corrupt_state_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(SWITCH_FILE), b"{\"state\": \"hal").unwrap();
        let err = StateDir::open(dir.path())
            .unwrap()
            .load_switch()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("kill_switch.json") && err.contains("corrupt"),
            "{err}"
        );
    }
}
