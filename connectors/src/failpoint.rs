//! Named points where a crash test stops the process: `DEFAI_PAUSE_AT=<point>:<n>` makes the
//! n-th hit of `<point>` print `DEFAI_PAUSED <point>` to stderr and block, so the test can
//! SIGKILL the agent exactly there (after a record is on disk, before the action it records).
//! Unset, a hit costs one atomic load.
//!
//! Only builds with the `failpoints` feature (the test suite's) read `DEFAI_PAUSE_AT`; in every
//! other build [`hit`] compiles to nothing, so no environment variable can stop a release agent.

#[cfg(feature = "failpoints")]
use std::io::Write;
#[cfg(feature = "failpoints")]
use std::sync::OnceLock;
#[cfg(feature = "failpoints")]
use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(feature = "failpoints")]
struct Armed {
    point: String,
    nth: u64,
    hits: AtomicU64,
}

#[cfg(feature = "failpoints")]
fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var("DEFAI_PAUSE_AT").ok()?;
            let (point, nth) = match spec.split_once(':') {
                Some((p, n)) => (p.to_string(), n.parse().ok()?),
                None => (spec, 1),
            };
            Some(Armed {
                point,
                nth,
                hits: AtomicU64::new(0),
            })
        })
        .as_ref()
}

/// Marks the point `name`; blocks forever if the crash test armed it for this hit (feature
/// `failpoints`; without it, nothing).
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) {}

/// Marks the point `name`; blocks forever if the crash test armed it for this hit (feature
/// `failpoints`; without it, nothing).
#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    let Some(a) = armed() else {
        return;
    };
    if a.point != name || a.hits.fetch_add(1, Ordering::SeqCst) + 1 != a.nth {
        return;
    }
    let mut err = std::io::stderr();
    let _ = writeln!(err, "DEFAI_PAUSED {name}");
    let _ = err.flush();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
