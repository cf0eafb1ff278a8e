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
    /// The calendar month (UTC) of the latest point, its first second after the month
    /// (`i64::MIN` before the first point) and the equity it started from: the previous
    /// month's last point, or the first point.
    month: (i32, u32),
    month_end: i64,
    month_start_equity: f64,
    /// Months before the current one: year, month (1–12), return in percent.
    months: Vec<(i32, u32, f64)>,
}

/// The civil date (year, month 1–12) of day `days` since 1970-01-01, proleptic Gregorian.
/// Howard Hinnant's `civil_from_days` ("chrono-Compatible Low-Level Date Algorithms",
/// <https://howardhinnant.github.io/date_algorithms.html>).
fn year_month(days: i64) -> (i32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m as u32)
}

/// Days from 1970-01-01 to the first day of `month` (1–12) of `year`, proleptic Gregorian
/// (Hinnant's `days_from_civil`, same source as [`year_month`]).
fn days_from_month(year: i32, month: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The month (UTC) of unix time `ts` and the first second of the month after it.
fn month_of(ts: i64) -> ((i32, u32), i64) {
    let (y, m) = year_month(ts.div_euclid(86_400));
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    ((y, m), days_from_month(ny, nm) * 86_400)
}

impl PerformanceTracker {
    /// Adds a point of the equity curve: `equity` (quote tokens, float) at `ts` (unix seconds).
    /// Points must come in time order; the return from the previous point counts only when
    /// that point's equity was positive.
    #[inline]
    pub fn update(&mut self, ts: i64, equity: f64) {
        if self.points == 0 || ts >= self.month_end {
            self.roll_month(ts, equity);
        }
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

    /// A point in a month after the current one (or the first point): closes the current
    /// month's return and starts the next from the last equity seen.
    fn roll_month(&mut self, ts: i64, equity: f64) {
        let start = match self.prev {
            Some(last) => {
                let (y, m) = self.month;
                self.months
                    .push((y, m, pct_change(self.month_start_equity, last)));
                last
            }
            None => equity,
        };
        (self.month, self.month_end) = month_of(ts);
        self.month_start_equity = start;
    }

    /// The return of each calendar month (UTC) with a point, oldest first: `(year, month
    /// 1–12, percent)`, from the equity the month started at (the previous month's last point;
    /// the first point for the first month) to its last point. A month without points is not
    /// listed; a start at zero equity gives 0.
    pub fn monthly_returns(&self) -> Vec<(i32, u32, f64)> {
        let mut all = self.months.clone();
        if let Some(last) = self.prev {
            let (y, m) = self.month;
            all.push((y, m, pct_change(self.month_start_equity, last)));
        }
        all
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

/// `to / from - 1` in percent; 0 when `from` is not positive.
fn pct_change(from: f64, to: f64) -> f64 {
    if from > 0.0 {
        (to / from - 1.0) * 100.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_follow_the_calendar_across_leap_years_and_centuries() {
        // 2024-02-29 23:59:59 UTC, 2024-03-01 00:00:00, 1999-12-31, 2000-03-01, 1969-12-31.
        assert_eq!(month_of(1_709_251_199).0, (2024, 2));
        assert_eq!(month_of(1_709_251_200), ((2024, 3), 1_711_929_600));
        assert_eq!(month_of(946_684_799).0, (1999, 12));
        assert_eq!(month_of(946_684_799).1, 946_684_800);
        assert_eq!(month_of(951_868_800).0, (2000, 3));
        assert_eq!(month_of(-1).0, (1969, 12));
        for days in -1000..40_000 {
            let (y, m) = year_month(days);
            let first = days_from_month(y, m);
            assert!(first <= days && days - first < 31, "{days}");
        }
    }

    #[test]
    fn monthly_returns_chain_from_the_last_point_of_the_month_before() {
        let mut t = PerformanceTracker::default();
        let jan = 1_704_067_200; // 2024-01-01 00:00 UTC
        let feb = 1_706_745_600;
        let apr = 1_711_929_600;
        for (ts, e) in [
            (jan, 100.0),
            (jan + 86_400, 110.0),
            (feb, 99.0),
            (feb + 3600, 121.0),
            (apr, 60.5),
        ] {
            t.update(ts, e);
        }
        let m = t.monthly_returns();
        assert_eq!(m.len(), 3, "{m:?}: March has no point");
        assert_eq!((m[0].0, m[0].1), (2024, 1));
        assert!((m[0].2 - 10.0).abs() < 1e-9, "{m:?}");
        assert!((m[1].2 - 10.0).abs() < 1e-9, "110 → 121: {m:?}");
        assert_eq!((m[2].0, m[2].1), (2024, 4));
        assert!((m[2].2 + 50.0).abs() < 1e-9, "121 → 60.5: {m:?}");
        // The months compound to the whole run's return.
        let total: f64 = m.iter().map(|x| 1.0 + x.2 / 100.0).product();
        assert!((total - 0.605).abs() < 1e-12);
    }

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
