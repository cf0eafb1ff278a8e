//! Streaming performance metrics over the equity curve (floats: these are reports, not money).

/// Tracks drawdown and per-bar return statistics in O(1) memory.
#[derive(Debug, Clone, Default)]
pub struct PerformanceTracker {
    peak: f64,
    max_drawdown: f64,
    prev: Option<f64>,
    // Welford's running mean and variance of per-bar returns.
    n: u64,
    mean: f64,
    m2: f64,
    first_ts: Option<i64>,
    last_ts: i64,
    points: u64,
}

impl PerformanceTracker {
    /// Adds a point of the equity curve: `equity` (quote tokens, float) at `ts` (unix seconds).
    /// Points must come in time order; the return from the previous point counts only when
    /// that point's equity was positive.
    pub fn update(&mut self, ts: i64, equity: f64) {
        self.first_ts.get_or_insert(ts);
        self.last_ts = ts;
        self.points += 1;
        if equity > self.peak {
            self.peak = equity;
        }
        if self.peak > 0.0 {
            let dd = 1.0 - equity / self.peak;
            if dd > self.max_drawdown {
                self.max_drawdown = dd;
            }
        }
        if let Some(prev) = self.prev
            && prev > 0.0
        {
            let r = equity / prev - 1.0;
            self.n += 1;
            let d = r - self.mean;
            self.mean += d / self.n as f64;
            self.m2 += d * (r - self.mean);
        }
        self.prev = Some(equity);
    }

    /// Largest peak-to-trough fall of equity, in percent.
    pub fn max_drawdown_pct(&self) -> f64 {
        self.max_drawdown * 100.0
    }

    /// Annualised Sharpe ratio of per-bar returns (risk-free rate 0), using the average bar
    /// interval to annualise. 0 when undefined (fewer than two returns or no variance).
    pub fn sharpe(&self) -> f64 {
        if self.n < 2 || self.points < 2 {
            return 0.0;
        }
        let var = self.m2 / (self.n - 1) as f64;
        let span = (self.last_ts - self.first_ts.unwrap_or(self.last_ts)) as f64;
        if var <= 0.0 || span <= 0.0 {
            return 0.0;
        }
        let interval = span / (self.points - 1) as f64;
        let per_year = 365.25 * 86_400.0 / interval;
        self.mean / var.sqrt() * per_year.sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawdown_is_peak_to_trough() {
        let mut t = PerformanceTracker::default();
        for (i, e) in [100.0, 120.0, 90.0, 130.0, 117.0].into_iter().enumerate() {
            t.update(i as i64 * 3600, e);
        }
        assert!((t.max_drawdown_pct() - 25.0).abs() < 1e-9);
    }

    #[test]
    fn flat_equity_has_zero_sharpe_and_growth_positive() {
        let mut t = PerformanceTracker::default();
        for i in 0..10 {
            t.update(i * 3600, 100.0);
        }
        assert_eq!(t.sharpe(), 0.0);
        let mut g = PerformanceTracker::default();
        for i in 0..10 {
            g.update(
                i * 3600,
                100.0 * (1.0 + 0.001 * (i % 3) as f64) * 1.01f64.powi(i as i32),
            );
        }
        assert!(g.sharpe() > 0.0);
    }
}
