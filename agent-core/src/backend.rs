//! [`JournalBackend`]: where the runtime journals, as a trait, so that the SQLite journal of a
//! state folder (`connectors::journal`) and a shared one (e.g. PostgreSQL for several machines)
//! plug in the same way.

use std::sync::Arc;

use crate::agent::{AuditError, Observer, Resume};
use crate::venue::StepRecorder;

/// A journal the runtime writes to: an [`Observer`] that must make every audit event durable
/// before [`Observer::on_audit`] returns (a failed write is returned as an [`AuditError`], which
/// halts the agent: nothing is sent that is not on record), the [`StepRecorder`] a sending venue
/// writes each transaction's steps through (a signed transaction before its broadcast), and what
/// a restart resumes from.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use agent_core::{AuditError, AuditEvent, JournalBackend, Observer, Resume, StepRecorder, VenueEvent};
///
/// /// Keeps the events in memory (a test double; a real backend writes durably).
/// #[derive(Debug, Default)]
/// struct Kinds(Arc<Mutex<Vec<String>>>);
///
/// impl Observer for Kinds {
///     fn on_audit(&mut self, event: &AuditEvent<'_>) -> Result<(), AuditError> {
///         let line = format!("{event:?}");
///         self.0.lock().map_err(|_| AuditError("poisoned".into()))?.push(line);
///         Ok(())
///     }
/// }
/// impl StepRecorder for Kinds {
///     fn record(&self, event: &VenueEvent) -> Result<(), String> {
///         self.0.lock().map_err(|_| "poisoned".to_string())?.push(event.step.to_string());
///         Ok(())
///     }
/// }
/// impl JournalBackend for Kinds {
///     fn recorder(&mut self) -> Arc<dyn StepRecorder> { Arc::new(Kinds(self.0.clone())) }
///     fn resume(&self) -> Result<Resume, AuditError> { Ok(Resume::default()) }
/// }
/// ```
pub trait JournalBackend: Observer {
    /// The recorder a venue that sends transactions writes its steps through; once handed out,
    /// the backend no longer writes the copies of those steps that reach the audit stream.
    fn recorder(&mut self) -> Arc<dyn StepRecorder>;

    /// What a restart resumes from: the last snapshot, open transactions, open bundles and the
    /// intents already sent (an empty [`Resume`] for a journal with no history).
    ///
    /// # Errors
    /// The journal cannot be read, or a record a restart needs does not parse (named).
    fn resume(&self) -> Result<Resume, AuditError>;
}
