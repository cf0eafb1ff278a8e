//! # connectors
//!
//! Everything that touches the outside world on the agent's behalf: market-data loaders
//! ([`market_data`]), the simulated Uniswap V2 venue ([`paper::PaperVenue`]) on the integer AMM
//! math of [`amm`] (re-exported from `agent-core`, where the risk gate's price-impact limit uses
//! the same math), the state folder ([`state`]) and its SQLite audit journal ([`journal`], the
//! runtime's [`JournalBackend`](agent_core::JournalBackend)).

pub use agent_core::amm;
pub mod evm;
pub mod failpoint;
pub use agent_core::fpmm;
pub mod journal;
pub mod market_data;
pub mod paper;
pub mod paper_fpmm;
pub mod state;

pub use market_data::{
    CsvFormat, DataError, InputIdentity, LoadOptions, LoadReport, Series, load_csv_bytes,
    load_csv_file,
};
pub use paper::{PaperAmmConfig, PaperVenue};
pub use state::{FileBaselineStore, FileSwitchStore, StateDir, StateError, StateLock};

/// Error texts can quote an RPC URL, whose path or user info often holds an API key: only the
/// scheme and host of a URL are kept in what the API serves and the journal keeps.
pub fn redact_urls(text: &str) -> String {
    if !text.contains("://") {
        return text.to_string();
    }
    let ends = |c: char| c.is_whitespace() || matches!(c, ')' | ']' | '"' | '\'' | ',' | '>');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        let after = &rest[i + 3..];
        let end = after
            .find(|c: char| matches!(c, '/' | '?' | '#') || ends(c))
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rsplit_once('@') {
            Some((_, host)) => {
                out.push_str("…@");
                out.push_str(host);
            }
            None => out.push_str(authority),
        }
        let tail = &after[end..];
        let cut = tail.find(ends).unwrap_or(tail.len());
        if cut > 0 {
            out.push_str("/…");
        }
        rest = &tail[cut..];
    }
    out.push_str(rest);
    out
}
