//! An agent's equity curve, bounded in memory however long the run.

/// Points of the equity curve kept per agent; older points are decimated evenly when full.
pub const EQUITY_POINTS: usize = 1000;

/// An equity curve of bounded size: every mark until [`EQUITY_POINTS`] are kept, then every
/// second one of those (and every second mark from then on), and so on, so the curve always
/// spans the whole run at an even spacing.
#[derive(Debug, Clone)]
pub struct EquityCurve {
    points: Vec<(i64, f64)>,
    cap: usize,
    /// Keep one mark in `stride`.
    stride: u64,
    seen: u64,
    last: Option<(i64, f64)>,
}

impl Default for EquityCurve {
    fn default() -> Self {
        Self::with_capacity(EQUITY_POINTS)
    }
}

impl EquityCurve {
    /// A curve of at most `cap` stored points (at least 2).
    pub fn with_capacity(cap: usize) -> Self {
        let cap = cap.max(2);
        Self {
            points: Vec::with_capacity(cap),
            cap,
            stride: 1,
            seen: 0,
            last: None,
        }
    }

    /// Records the mark of one event: `ts` in unix seconds, `equity` in whole quote tokens.
    /// It is stored when it falls on the current stride; the latest mark is kept either way.
    pub fn push(&mut self, ts: i64, equity: f64) {
        self.last = Some((ts, equity));
        let n = self.seen;
        self.seen += 1;
        if !n.is_multiple_of(self.stride) {
            return;
        }
        if self.points.len() == self.cap {
            // Keep the points at even positions: those whose mark index is a multiple of twice
            // the stride. No allocation: the vector keeps its capacity.
            let mut i = 0usize;
            self.points.retain(|_| {
                let keep = i.is_multiple_of(2);
                i += 1;
                keep
            });
            self.stride *= 2;
            if !n.is_multiple_of(self.stride) {
                return;
            }
        }
        self.points.push((ts, equity));
    }

    /// The stored points, plus the latest mark when it fell between two of them.
    pub fn points(&self) -> Vec<(i64, f64)> {
        let mut v = Vec::with_capacity(self.points.len() + 1);
        v.extend_from_slice(&self.points);
        if let Some(last) = self.last
            && v.last().map(|p| p.0) != Some(last.0)
        {
            v.push(last);
        }
        v
    }

    /// Marks seen in total.
    pub fn marks(&self) -> u64 {
        self.seen
    }

    /// Points held in memory (never more than the capacity).
    pub fn stored(&self) -> usize {
        self.points.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equity_curve_stays_bounded_and_spans_the_whole_run() {
        let mut c = EquityCurve::with_capacity(100);
        for i in 0..100_000i64 {
            c.push(i, i as f64);
            assert!(c.stored() <= 100, "{} points after {i} marks", c.stored());
        }
        let p = c.points();
        assert!(p.len() >= 50 && p.len() <= 101, "{}", p.len());
        assert_eq!(p[0], (0, 0.0), "the first mark stays");
        assert_eq!(
            *p.last().unwrap(),
            (99_999, 99_999.0),
            "the latest mark is shown"
        );
        // Evenly spaced: every stored step is the same.
        let steps: Vec<i64> = p[..p.len() - 1]
            .windows(2)
            .map(|w| w[1].0 - w[0].0)
            .collect();
        assert!(steps.iter().all(|s| *s == steps[0]), "{steps:?}");
        assert_eq!(c.marks(), 100_000);
        // The default keeps at most EQUITY_POINTS.
        let mut d = EquityCurve::default();
        for i in 0..10_000 {
            d.push(i, 1.0);
        }
        assert!(d.stored() <= EQUITY_POINTS);
        assert!(d.stored() >= EQUITY_POINTS / 2);
    }
}
