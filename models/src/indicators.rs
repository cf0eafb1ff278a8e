//! Incremental indicators.

/// Exponential moving average with `alpha = 2 / (period + 1)`, seeded with the first value.
#[derive(Debug, Clone)]
pub struct Ema {
    alpha: f64,
    value: Option<f64>,
    seen: usize,
    period: usize,
}

impl Ema {
    /// `period` must be at least 1.
    pub fn new(period: usize) -> Self {
        let period = period.max(1);
        Self {
            alpha: 2.0 / (period as f64 + 1.0),
            value: None,
            seen: 0,
            period,
        }
    }

    /// Adds one value and returns the updated average.
    #[inline]
    pub fn update(&mut self, x: f64) -> f64 {
        let v = match self.value {
            None => x,
            Some(prev) => prev + self.alpha * (x - prev),
        };
        self.value = Some(v);
        self.seen += 1;
        v
    }

    /// The average, once at least `period` values have been seen.
    #[inline]
    pub fn ready(&self) -> Option<f64> {
        self.value.filter(|_| self.seen >= self.period)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ema_matches_the_recurrence() {
        let mut e = Ema::new(3); // alpha = 0.5
        assert_eq!(e.update(10.0), 10.0);
        assert_eq!(e.ready(), None);
        assert_eq!(e.update(20.0), 15.0);
        assert_eq!(e.update(15.0), 15.0);
        assert_eq!(e.ready(), Some(15.0));
        assert_eq!(e.update(25.0), 20.0);
    }
}
