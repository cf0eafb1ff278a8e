//! The kill switch: `active`, `reduce_only` or `halted`, latched until an explicit resume.
//!
//! Its state survives restarts through a [`SwitchStore`] (a file in the agent's state folder in
//! the binary); operators send [`SwitchCommand`]s through the same store. A trip is applied in
//! memory even if it cannot be saved (failing closed); a resume that cannot be saved is refused.

use serde::{Deserialize, Serialize};

use crate::risk::Refusal;

/// How much the agent may still do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SwitchState {
    /// Everything the risk gate approves passes.
    #[default]
    Active,
    /// Only intents that shrink exposure pass.
    ReduceOnly,
    /// Nothing passes.
    Halted,
}

/// What a trip asks for. `Flatten` unwinds to the quote token through the reduce-only path and
/// then halts, selling at most the price-impact limit's slice per cycle; `FlattenNow` is the same
/// unwind ignoring the price-impact limit (the operator accepts any price to be out now).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KillMode {
    /// Stop everything: [`SwitchState::Halted`], nothing passes, positions are kept.
    Halt,
    /// [`SwitchState::ReduceOnly`]: only exposure-reducing intents pass; no unwind is forced.
    ReduceOnly,
    /// Sell everything into the quote token, the price-impact limit's slice per cycle, then
    /// halt.
    Flatten,
    /// Sell everything into the quote token ignoring the price-impact limit, then halt.
    FlattenNow,
}

/// Parses the config and command-line spelling: `halt`, `reduce_only`, `flatten` or
/// `flatten_now`.
impl std::str::FromStr for KillMode {
    type Err = String;
    /// # Errors
    ///
    /// A message listing the accepted names when `s` is none of them (matching is exact and
    /// case-sensitive).
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "halt" => Ok(KillMode::Halt),
            "reduce_only" => Ok(KillMode::ReduceOnly),
            "flatten" => Ok(KillMode::Flatten),
            "flatten_now" => Ok(KillMode::FlattenNow),
            _ => Err(format!(
                "`{s}` is not one of halt, reduce_only, flatten, flatten_now"
            )),
        }
    }
}

/// The persisted state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchRecord {
    /// How much the agent may do.
    pub state: SwitchState,
    /// A flatten is in progress: reduce-only until the position is gone, then halted.
    #[serde(default)]
    pub flattening: bool,
    /// The flatten in progress ignores the price-impact limit (`flatten_now`).
    #[serde(default)]
    pub flatten_now: bool,
    /// When the switch last tripped, unix seconds (the clock's now at the trip); `None` while
    /// active.
    pub tripped_at: Option<i64>,
    /// Why it tripped (a limit's refusal detail, `operator: …`); `None` while active.
    pub reason: Option<String>,
    /// Id of the last operator command applied, so a command is applied once.
    #[serde(default)]
    pub last_command: u64,
}

/// An operator's instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchCommand {
    /// Increasing; commands with an id already applied are ignored.
    pub id: u64,
    /// What to do.
    pub action: SwitchAction,
    /// Why, in the operator's words; recorded as `operator: {reason}`.
    pub reason: String,
}

/// What an operator's [`SwitchCommand`] does. Serialised as `{"kill": "flatten"}` or
/// `"resume"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SwitchAction {
    /// Trip the switch in this mode (never lowering the severity: see [`KillSwitch::trip`]).
    Kill(KillMode),
    /// Back to [`SwitchState::Active`], ending any flatten; refused if it cannot be saved.
    Resume,
}

/// Persists the switch and delivers operator commands.
///
/// # Example
///
/// A store that keeps the record in memory and hands out queued commands:
///
/// ```
/// use agent_core::{KillSwitch, SwitchCommand, SwitchRecord, SwitchStore};
///
/// #[derive(Default)]
/// struct Memory { saved: Option<SwitchRecord>, inbox: Vec<SwitchCommand> }
///
/// impl SwitchStore for Memory {
///     fn save(&mut self, record: &SwitchRecord) -> Result<(), String> {
///         self.saved = Some(record.clone());
///         Ok(())
///     }
///     fn poll(&mut self) -> Option<SwitchCommand> {
///         self.inbox.pop()
///     }
/// }
///
/// let switch = KillSwitch::restore(SwitchRecord::default(), Some(Box::new(Memory::default())));
/// # let _ = switch;
/// ```
pub trait SwitchStore: Send {
    /// Saves durably (the file store writes, fsyncs and renames).
    ///
    /// # Errors
    ///
    /// A message saying why the record is not on disk. A trip holds in memory regardless; a
    /// resume is undone.
    fn save(&mut self, record: &SwitchRecord) -> Result<(), String>;
    /// A command not yet seen, if one is waiting. Called every cycle: must be cheap.
    fn poll(&mut self) -> Option<SwitchCommand>;
}

/// A change of state, for the audit stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchChange {
    /// The state before.
    pub from: SwitchState,
    /// The state after.
    pub to: SwitchState,
    /// A flatten is in progress after the change.
    pub flattening: bool,
    /// The flatten ignores the price-impact limit (`flatten_now`).
    pub flatten_now: bool,
    /// Why: the trip's reason, or the resume's.
    pub reason: String,
}

/// The kill switch itself: a [`SwitchRecord`], saved to its [`SwitchStore`] on every change
/// and consulted on every intent ([`KillSwitch::allows`]). A trip is latched: only
/// [`KillSwitch::resume`] (an operator command) lowers it.
#[derive(Default)]
pub struct KillSwitch {
    rec: SwitchRecord,
    store: Option<Box<dyn SwitchStore>>,
}

impl std::fmt::Debug for KillSwitch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KillSwitch")
            .field("record", &self.rec)
            .finish()
    }
}

impl KillSwitch {
    /// An active switch that is not persisted (backtests).
    pub fn new() -> Self {
        Self::default()
    }

    /// Resumes from a saved record, persisting future changes to `store`.
    pub fn restore(record: SwitchRecord, store: Option<Box<dyn SwitchStore>>) -> Self {
        Self { rec: record, store }
    }

    /// The current state.
    pub fn state(&self) -> SwitchState {
        self.rec.state
    }
    /// A flatten is in progress: reduce-only until the position is sold, then halted.
    pub fn flattening(&self) -> bool {
        self.rec.flattening
    }
    /// The flatten in progress was asked as `flatten_now`: it ignores the price-impact limit.
    pub fn flatten_now(&self) -> bool {
        self.rec.flattening && self.rec.flatten_now
    }
    /// The record as it is saved.
    pub fn record(&self) -> &SwitchRecord {
        &self.rec
    }

    fn save(&mut self) -> Result<(), String> {
        match &mut self.store {
            Some(s) => s.save(&self.rec),
            None => Ok(()),
        }
    }

    /// Trips the switch. Never lowers severity: a halted switch stays halted whatever is asked.
    pub fn trip(&mut self, mode: KillMode, reason: &str, ts: i64) -> Option<SwitchChange> {
        let from = self.rec.state;
        let (to, flattening, now) = match mode {
            KillMode::Halt => (SwitchState::Halted, false, false),
            KillMode::ReduceOnly => (
                SwitchState::ReduceOnly,
                self.rec.flattening,
                self.rec.flatten_now,
            ),
            KillMode::Flatten => (SwitchState::ReduceOnly, true, self.rec.flatten_now),
            KillMode::FlattenNow => (SwitchState::ReduceOnly, true, true),
        };
        if from == SwitchState::Halted
            || (to == from && flattening == self.rec.flattening && now == self.rec.flatten_now)
        {
            return None;
        }
        self.rec.state = to.max(from);
        self.rec.flattening = flattening && self.rec.state == SwitchState::ReduceOnly;
        self.rec.flatten_now = now && self.rec.flattening;
        self.rec.tripped_at = Some(ts);
        self.rec.reason = Some(reason.to_string());
        if let Err(e) = self.save() {
            // The trip holds in memory regardless: failing closed beats failing to stop.
            tracing::error!(target: "defai::audit", error = %e, "kill switch state not saved");
        }
        tracing::warn!(target: "defai::audit", ?from, to = ?self.rec.state, reason, "kill switch tripped");
        Some(SwitchChange {
            from,
            to: self.rec.state,
            flattening: self.rec.flattening,
            flatten_now: self.rec.flatten_now,
            reason: reason.to_string(),
        })
    }

    /// The flatten is done: halt.
    pub fn finish_flatten(&mut self, ts: i64) -> Option<SwitchChange> {
        if !self.rec.flattening {
            return None;
        }
        let reason = format!("flattened; {}", self.rec.reason.clone().unwrap_or_default());
        self.rec.flattening = false;
        self.rec.flatten_now = false;
        self.trip(KillMode::Halt, &reason, ts)
    }

    /// Back to active, only if that can be saved: otherwise a restart would undo the resume's
    /// opposite and the operator would not know which state holds.
    ///
    /// Returns `Ok(None)` when the switch is already active with no flatten in progress.
    ///
    /// # Errors
    ///
    /// A message with the store's error when the resumed record cannot be saved; the switch
    /// then stays exactly as it was.
    pub fn resume(&mut self, reason: &str) -> Result<Option<SwitchChange>, String> {
        let before = self.rec.clone();
        if before.state == SwitchState::Active && !before.flattening {
            return Ok(None);
        }
        self.rec.state = SwitchState::Active;
        self.rec.flattening = false;
        self.rec.flatten_now = false;
        self.rec.tripped_at = None;
        self.rec.reason = None;
        if let Err(e) = self.save() {
            self.rec = before;
            return Err(format!(
                "resume not saved, switch stays {:?}: {e}",
                self.rec.state
            ));
        }
        tracing::warn!(target: "defai::audit", from = ?before.state, reason, "kill switch resumed");
        Ok(Some(SwitchChange {
            from: before.state,
            to: SwitchState::Active,
            flattening: false,
            flatten_now: false,
            reason: reason.to_string(),
        }))
    }

    /// Applies a waiting operator command, if any.
    #[inline]
    pub fn poll(&mut self, ts: i64) -> Option<SwitchChange> {
        let cmd = self.store.as_mut()?.poll()?;
        self.apply(cmd, ts)
    }

    /// [`KillSwitch::poll`]'s command, applied unless already seen.
    fn apply(&mut self, cmd: SwitchCommand, ts: i64) -> Option<SwitchChange> {
        if cmd.id <= self.rec.last_command {
            return None;
        }
        self.rec.last_command = cmd.id;
        let reason = format!("operator: {}", cmd.reason);
        match cmd.action {
            SwitchAction::Kill(mode) => {
                let change = self.trip(mode, &reason, ts);
                if change.is_none() {
                    let _ = self.save(); // remember the command id
                }
                change
            }
            SwitchAction::Resume => match self.resume(&reason) {
                Ok(Some(c)) => Some(c),
                Ok(None) => {
                    let _ = self.save();
                    None
                }
                Err(e) => {
                    tracing::error!(target: "defai::audit", error = %e, "resume refused");
                    None
                }
            },
        }
    }

    /// Whether an intent may pass: anything when active, only exposure-reducing ones when
    /// reduce-only, nothing when halted.
    ///
    /// # Errors
    ///
    /// A [`Refusal`] with code `kill_switch_reduce_only` for an exposure-increasing intent while
    /// reduce-only, or `kill_switch_halted` for any intent while halted; its detail is the trip's
    /// reason.
    pub fn allows(&self, reduces_exposure: bool) -> Result<(), Refusal> {
        match self.rec.state {
            SwitchState::Active => Ok(()),
            SwitchState::ReduceOnly if reduces_exposure => Ok(()),
            SwitchState::ReduceOnly => Err(Refusal::new("kill_switch_reduce_only", self.why())),
            SwitchState::Halted => Err(Refusal::new("kill_switch_halted", self.why())),
        }
    }

    fn why(&self) -> String {
        self.rec
            .reason
            .clone()
            .unwrap_or_else(|| "kill switch".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Mem {
        saved: Arc<Mutex<Vec<SwitchRecord>>>,
        inbox: Arc<Mutex<Vec<SwitchCommand>>>,
        fail: bool,
    }
    impl SwitchStore for Mem {
        fn save(&mut self, r: &SwitchRecord) -> Result<(), String> {
            if self.fail {
                return Err("disk full".into());
            }
            self.saved.lock().unwrap().push(r.clone());
            Ok(())
        }
        fn poll(&mut self) -> Option<SwitchCommand> {
            self.inbox.lock().unwrap().pop()
        }
    }

    #[test]
    fn trips_latch_and_never_lower_severity() {
        let mut k = KillSwitch::new();
        assert!(k.allows(false).is_ok());
        k.trip(KillMode::ReduceOnly, "dd", 1).unwrap();
        assert!(k.allows(true).is_ok());
        assert_eq!(k.allows(false).unwrap_err().code, "kill_switch_reduce_only");
        k.trip(KillMode::Halt, "faults", 2).unwrap();
        assert!(
            k.trip(KillMode::ReduceOnly, "x", 3).is_none(),
            "halted stays halted"
        );
        assert_eq!(k.allows(true).unwrap_err().code, "kill_switch_halted");
        k.resume("ok").unwrap();
        assert_eq!(k.state(), SwitchState::Active);
    }

    #[test]
    fn flatten_is_reduce_only_then_halts() {
        let mut k = KillSwitch::new();
        k.trip(KillMode::Flatten, "dd", 1).unwrap();
        assert_eq!(k.state(), SwitchState::ReduceOnly);
        assert!(k.flattening());
        k.finish_flatten(2).unwrap();
        assert_eq!(k.state(), SwitchState::Halted);
        assert!(!k.flattening());
    }

    #[test]
    fn flatten_now_is_a_flatten_that_ignores_the_impact_limit_and_upgrades_a_flatten() {
        let mut k = KillSwitch::new();
        k.trip(KillMode::Flatten, "dd", 1).unwrap();
        assert!(
            !k.flatten_now(),
            "a plain flatten respects the impact limit"
        );
        k.trip(KillMode::FlattenNow, "operator", 2).unwrap();
        assert!(k.flattening() && k.flatten_now());
        assert!(
            k.trip(KillMode::Flatten, "dd again", 3).is_none(),
            "a later plain flatten does not take flatten_now back"
        );
        assert!(k.flatten_now());
        k.finish_flatten(4).unwrap();
        assert_eq!(k.state(), SwitchState::Halted);
        assert!(!k.flatten_now());
        assert_eq!("flatten_now".parse::<KillMode>(), Ok(KillMode::FlattenNow));
    }

    #[test]
    fn commands_apply_once_and_every_change_is_saved() {
        let store = Mem::default();
        let mut k = KillSwitch::restore(SwitchRecord::default(), Some(Box::new(store.clone())));
        let kill = SwitchCommand {
            id: 7,
            action: SwitchAction::Kill(KillMode::Halt),
            reason: "manual".into(),
        };
        store.inbox.lock().unwrap().push(kill.clone());
        assert!(k.poll(10).is_some());
        assert_eq!(k.state(), SwitchState::Halted);
        store.inbox.lock().unwrap().push(SwitchCommand {
            action: SwitchAction::Resume,
            ..kill.clone()
        });
        assert!(k.poll(11).is_none(), "same id: ignored");
        assert_eq!(k.state(), SwitchState::Halted);
        store.inbox.lock().unwrap().push(SwitchCommand {
            id: 8,
            action: SwitchAction::Resume,
            reason: "ok".into(),
        });
        assert!(k.poll(12).is_some());
        assert_eq!(k.state(), SwitchState::Active);
        let saved = store.saved.lock().unwrap();
        assert_eq!(saved.last().unwrap().last_command, 8);
        assert_eq!(saved[0].state, SwitchState::Halted);
    }

    #[test]
    fn unsaved_trip_still_holds_but_unsaved_resume_is_refused() {
        let store = Mem {
            fail: true,
            ..Mem::default()
        };
        let mut k = KillSwitch::restore(SwitchRecord::default(), Some(Box::new(store)));
        k.trip(KillMode::Halt, "x", 1).unwrap();
        assert_eq!(k.state(), SwitchState::Halted);
        assert!(k.resume("y").is_err());
        assert_eq!(k.state(), SwitchState::Halted);
    }
}
