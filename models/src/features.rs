//! The one feature pipeline for training and inference.
//!
//! [`FeatureState`] is the live path: O(1) work per bar (ring buffers with running sums,
//! recursive averages). [`batch_features`] is the training path: whole-array passes with prefix
//! sums. Both compute the same definitions; a test holds them equal to 1e-9 on the real data, so
//! a model sees in live trading exactly what it was trained on.

use agent_core::Bar;

/// Feature names, in input order.
pub const FEATURES: [&str; 14] = [
    "ret_1",
    "ret_4",
    "ret_24",
    "ret_72",
    "vol_24",
    "vol_72",
    "rsi_14",
    "ema_12_26",
    "range",
    "volume_z_24",
    "hour_sin",
    "hour_cos",
    "dow_sin",
    "dow_cos",
];
/// Number of features.
pub const N_FEATURES: usize = FEATURES.len();
/// Bars before the first complete feature vector (the longest look-back plus one).
pub const WARMUP: usize = 73;

const RSI_PERIOD: f64 = 14.0;

/// One feature vector.
pub type Features = [f64; N_FEATURES];

/// Content hash of a feature vector (SHA-256 of its little-endian bytes, first 16 hex digits):
/// what a decision record names, so an audit can tell which inputs a model saw.
pub fn features_hash(f: &Features) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for x in f {
        h.update(x.to_le_bytes());
    }
    let d = h.finalize();
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn time_features(ts: i64) -> [f64; 4] {
    let hour = ts.rem_euclid(86_400) as f64 / 3600.0;
    // 1970-01-01 was a Thursday; 0 = Monday.
    let dow = ((ts.div_euclid(86_400) + 3).rem_euclid(7)) as f64;
    let h = hour / 24.0 * std::f64::consts::TAU;
    let d = dow / 7.0 * std::f64::consts::TAU;
    [h.sin(), h.cos(), d.sin(), d.cos()]
}

fn std_from_sums(sum: f64, sum_sq: f64, n: f64) -> f64 {
    let mean = sum / n;
    (sum_sq / n - mean * mean).max(0.0).sqrt()
}

/// A fixed-length window with running sums.
#[derive(Debug, Clone)]
struct Window {
    buf: Vec<f64>,
    pos: usize,
    len: usize,
    sum: f64,
    sum_sq: f64,
}

impl Window {
    fn new(n: usize) -> Self {
        Self {
            buf: vec![0.0; n],
            pos: 0,
            len: 0,
            sum: 0.0,
            sum_sq: 0.0,
        }
    }
    fn push(&mut self, x: f64) {
        let n = self.buf.len();
        if self.len == n {
            let old = self.buf[self.pos];
            self.sum -= old;
            self.sum_sq -= old * old;
        } else {
            self.len += 1;
        }
        self.buf[self.pos] = x;
        self.sum += x;
        self.sum_sq += x * x;
        self.pos = (self.pos + 1) % n;
    }
    fn full(&self) -> bool {
        self.len == self.buf.len()
    }
    fn std(&self) -> f64 {
        std_from_sums(self.sum, self.sum_sq, self.len as f64)
    }
    fn mean(&self) -> f64 {
        self.sum / self.len as f64
    }
}

/// Live feature computation: feed bars in order, get a vector once warmed up.
#[derive(Debug, Clone)]
pub struct FeatureState {
    closes: Vec<f64>,
    pos: usize,
    seen: usize,
    vol_24: Window,
    vol_72: Window,
    volume_24: Window,
    avg_gain: f64,
    avg_loss: f64,
    ema_12: f64,
    ema_26: f64,
}

impl Default for FeatureState {
    fn default() -> Self {
        Self::new()
    }
}

impl FeatureState {
    /// An empty state: [`FeatureState::update`] returns `None` until [`WARMUP`] bars are in.
    pub fn new() -> Self {
        Self {
            closes: vec![0.0; WARMUP],
            pos: 0,
            seen: 0,
            vol_24: Window::new(24),
            vol_72: Window::new(72),
            volume_24: Window::new(24),
            avg_gain: 0.0,
            avg_loss: 0.0,
            ema_12: 0.0,
            ema_26: 0.0,
        }
    }

    /// Close `k` bars before the latest (0 = latest).
    fn close_back(&self, k: usize) -> f64 {
        self.closes[(self.pos + WARMUP - 1 - k) % WARMUP]
    }

    /// Adds a bar (callers pass validated bars in time order); returns the features once
    /// `WARMUP` bars have been seen.
    pub fn update(&mut self, bar: &Bar) -> Option<Features> {
        let prev = (self.seen > 0).then(|| self.close_back(0));
        self.closes[self.pos] = bar.close;
        self.pos = (self.pos + 1) % WARMUP;
        self.seen += 1;
        self.volume_24.push(bar.volume);
        match prev {
            None => {
                self.ema_12 = bar.close;
                self.ema_26 = bar.close;
            }
            Some(p) => {
                let r = (bar.close / p).ln();
                self.vol_24.push(r);
                self.vol_72.push(r);
                let (gain, loss) = (r.max(0.0), (-r).max(0.0));
                self.avg_gain += (gain - self.avg_gain) / RSI_PERIOD;
                self.avg_loss += (loss - self.avg_loss) / RSI_PERIOD;
                self.ema_12 += (bar.close - self.ema_12) * (2.0 / 13.0);
                self.ema_26 += (bar.close - self.ema_26) * (2.0 / 27.0);
            }
        }
        if self.seen < WARMUP || !self.vol_72.full() {
            return None;
        }
        let c = bar.close;
        let ret = |k: usize| (c / self.close_back(k)).ln();
        let vz_std = self.volume_24.std();
        let t = time_features(bar.ts);
        Some([
            ret(1),
            ret(4),
            ret(24),
            ret(72),
            self.vol_24.std(),
            self.vol_72.std(),
            rsi(self.avg_gain, self.avg_loss),
            self.ema_12 / self.ema_26 - 1.0,
            (bar.high - bar.low) / c,
            if vz_std > 0.0 {
                (bar.volume - self.volume_24.mean()) / vz_std
            } else {
                0.0
            },
            t[0],
            t[1],
            t[2],
            t[3],
        ])
    }
}

/// RSI mapped to [-1, 1].
fn rsi(avg_gain: f64, avg_loss: f64) -> f64 {
    let total = avg_gain + avg_loss;
    if total > 0.0 {
        (avg_gain - avg_loss) / total
    } else {
        0.0
    }
}

/// Training path: the features of every bar (`None` during warm-up), computed over whole arrays.
pub fn batch_features(bars: &[Bar]) -> Vec<Option<Features>> {
    let n = bars.len();
    let close: Vec<f64> = bars.iter().map(|b| b.close).collect();
    // r[i] = log return into bar i (r[0] unused).
    let mut r = vec![0.0; n];
    for i in 1..n {
        r[i] = (close[i] / close[i - 1]).ln();
    }
    let prefix = |xs: &[f64]| {
        let mut s = vec![0.0; xs.len() + 1];
        let mut q = vec![0.0; xs.len() + 1];
        for (i, x) in xs.iter().enumerate() {
            s[i + 1] = s[i] + x;
            q[i + 1] = q[i] + x * x;
        }
        (s, q)
    };
    let (rs, rq) = prefix(&r);
    let volume: Vec<f64> = bars.iter().map(|b| b.volume).collect();
    let (vs, vq) = prefix(&volume);
    // Window of the last w values ending at i (inclusive): [i + 1 - w, i].
    let win = |s: &[f64], q: &[f64], i: usize, w: usize| {
        (s[i + 1] - s[i + 1 - w], q[i + 1] - q[i + 1 - w])
    };

    let mut out = vec![None; n];
    let (mut g, mut l) = (0.0f64, 0.0f64);
    let (mut e12, mut e26) = (0.0f64, 0.0f64);
    for i in 0..n {
        if i == 0 {
            e12 = close[0];
            e26 = close[0];
        } else {
            g += (r[i].max(0.0) - g) / RSI_PERIOD;
            l += ((-r[i]).max(0.0) - l) / RSI_PERIOD;
            e12 += (close[i] - e12) * (2.0 / 13.0);
            e26 += (close[i] - e26) * (2.0 / 27.0);
        }
        if i + 1 < WARMUP {
            continue;
        }
        let (s24, q24) = win(&rs, &rq, i, 24);
        let (s72, q72) = win(&rs, &rq, i, 72);
        let (vs24, vq24) = win(&vs, &vq, i, 24);
        let vstd = std_from_sums(vs24, vq24, 24.0);
        let b = &bars[i];
        let t = time_features(b.ts);
        out[i] = Some([
            (close[i] / close[i - 1]).ln(),
            (close[i] / close[i - 4]).ln(),
            (close[i] / close[i - 24]).ln(),
            (close[i] / close[i - 72]).ln(),
            std_from_sums(s24, q24, 24.0),
            std_from_sums(s72, q72, 72.0),
            rsi(g, l),
            e12 / e26 - 1.0,
            (b.high - b.low) / b.close,
            if vstd > 0.0 {
                (b.volume - vs24 / 24.0) / vstd
            } else {
                0.0
            },
            t[0],
            t[1],
            t[2],
            t[3],
        ]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(ts: i64, close: f64, volume: f64) -> Bar {
        Bar {
            ts,
            open: close,
            high: close * 1.01,
            low: close * 0.99,
            close,
            volume,
        }
    }

    #[test]
    fn live_and_batch_agree_on_a_synthetic_walk() {
        let mut x = 100.0;
        let bars: Vec<Bar> = (0..500)
            .map(|i| {
                x *= 1.0 + 0.01 * ((i as f64 * 0.7).sin());
                bar(i * 3600, x, 10.0 + (i % 7) as f64)
            })
            .collect();
        let batch = batch_features(&bars);
        let mut live = FeatureState::new();
        for (b, f) in bars.iter().zip(&batch) {
            let l = live.update(b);
            assert_eq!(l.is_some(), f.is_some());
            if let (Some(l), Some(f)) = (l, f) {
                for k in 0..N_FEATURES {
                    assert!(
                        (l[k] - f[k]).abs() < 1e-9,
                        "{} {} vs {}",
                        FEATURES[k],
                        l[k],
                        f[k]
                    );
                }
            }
        }
        assert_eq!(batch.iter().filter(|f| f.is_none()).count(), WARMUP - 1);
    }

    #[test]
    fn time_features_know_the_weekday() {
        // 2024-01-01 00:00 UTC was a Monday.
        let t = time_features(1_704_067_200);
        assert!((t[0]).abs() < 1e-12 && (t[1] - 1.0).abs() < 1e-12);
        assert!((t[2]).abs() < 1e-12 && (t[3] - 1.0).abs() < 1e-12);
    }
}
