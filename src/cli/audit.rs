//! `defai audit`: checks a state folder's journal, or shows the records behind a transaction.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Subcommand;

#[derive(Subcommand)]
pub(super) enum AuditCmd {
    /// Recompute the journal's hash chain; exit non-zero naming the first altered or missing
    /// record.
    Verify {
        #[arg(long, default_value = "state")]
        state: PathBuf,
    },
    /// The journal records of the intent behind a transaction: intent, verdict, decision,
    /// transaction steps, fill.
    Show {
        #[arg(long, default_value = "state")]
        state: PathBuf,
        #[arg(long)]
        tx: String,
    },
}

/// `defai audit verify|show`.
pub(super) fn audit(what: AuditCmd) -> Result<()> {
    use crate::connectors::journal::Journal;
    let open = |state: &Path| -> Result<Journal> {
        let path = state.join("journal.sqlite");
        if !path.is_file() {
            bail!(
                "{}: no journal (run an agent with --state {})",
                path.display(),
                state.display()
            );
        }
        Ok(Journal::open(&path)?)
    };
    match what {
        AuditCmd::Verify { state } => {
            let j = open(&state)?;
            let v = j.verify()?;
            println!(
                "{}: {} records, chain intact, head {}",
                j.path().display(),
                v.records,
                v.head
            );
        }
        AuditCmd::Show { state, tx } => {
            let j = open(&state)?;
            let records = j.explain_tx(&tx)?;
            if records.is_empty() {
                bail!("no journal record mentions transaction {tx}");
            }
            for r in records {
                println!(
                    "#{} ts {} {} {} {}",
                    r.seq,
                    r.ts,
                    r.kind,
                    r.intent_id.unwrap_or_default(),
                    r.body
                );
            }
        }
    }
    Ok(())
}
