//! `defai audit`: checks a state folder's journal, exports it, or shows the records behind a
//! transaction.

use std::path::{Path, PathBuf};

use std::io::Write as _;

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;

#[derive(Subcommand)]
pub(super) enum AuditCmd {
    /// Recompute the journal's hash chain; exit non-zero naming the first altered or missing
    /// record.
    Verify {
        #[arg(long, default_value = "state")]
        state: PathBuf,
    },
    /// Write every journal record, in order, as JSON lines or CSV (fields documented in
    /// docs/journal.md), to stdout or --out.
    Export {
        #[arg(long, default_value = "state")]
        state: PathBuf,
        /// jsonl (one object per record, body as JSON) or csv (body as stored text).
        #[arg(long, default_value = "jsonl")]
        format: crate::connectors::journal::ExportFormat,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
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

/// `defai audit verify|export|show`.
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
            if v.legacy > 0 {
                println!(
                    "{} records in the legacy format (schema 1, before structured bodies)",
                    v.legacy
                );
            }
        }
        AuditCmd::Export { state, format, out } => {
            let j = open(&state)?;
            match out {
                Some(path) => {
                    let mut file = std::io::BufWriter::new(
                        std::fs::File::create(&path)
                            .with_context(|| format!("--out {}", path.display()))?,
                    );
                    let n = j.export(format, &mut file)?;
                    file.flush()
                        .with_context(|| format!("--out {}", path.display()))?;
                    eprintln!("{n} records written to {}", path.display());
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut lock = stdout.lock();
                    j.export(format, &mut lock)?;
                    lock.flush()?;
                }
            }
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
