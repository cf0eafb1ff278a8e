//! Probabilities: the [`ProbabilityModel`] interface (market features in, a probability out),
//! calibration (Platt scaling, temperature scaling) and the scores that judge it (Brier,
//! log-loss).

use crate::error::ModelError;
use crate::price_direction::{PriceDirection, sigmoid};

/// Clipping for log-loss: a confident wrong answer costs ln(1e6) ≈ 13.8, not infinity.
pub const EPS: f64 = 1e-6;

/// Something that turns features into the probability of an event.
///
/// ```
/// use models::calibration::{ProbabilityModel, brier};
/// struct CoinFlip;
/// impl ProbabilityModel for CoinFlip {
///     fn probability(&self, _: &[f64]) -> Result<f64, models::ModelError> { Ok(0.5) }
///     fn model_id(&self) -> &str { "coin-flip" }
/// }
/// assert_eq!(brier(CoinFlip.probability(&[]).unwrap(), true), 0.25);
/// ```
pub trait ProbabilityModel: Send + Sync {
    /// The probability of the event, in `[0, 1]` for a sound model (callers still guard
    /// against NaN and out-of-range values), from one feature vector.
    ///
    /// # Errors
    /// [`ModelError::Input`] when the features do not fit the model (wrong length, a
    /// non-finite value, a missing index); [`ModelError::Candle`] when inference fails.
    fn probability(&self, features: &[f64]) -> Result<f64, ModelError>;
    /// Identifies the model in decision records (a content hash where there are weights).
    fn model_id(&self) -> &str;
}

impl ProbabilityModel for PriceDirection {
    fn probability(&self, features: &[f64]) -> Result<f64, ModelError> {
        self.probability_up(features)
    }
    fn model_id(&self) -> &str {
        self.hash()
    }
}

/// A probability carried in the features themselves (an external forecaster's number), read
/// from position `index`: the simplest model, and what a prediction market's feed provides.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureProbability {
    /// Position of the probability in the feature vector.
    pub index: usize,
    id: String,
}

impl FeatureProbability {
    /// Reads the probability from `features[index]`; its model id is
    /// `feature-probability:{index}`.
    pub fn new(index: usize) -> Self {
        Self {
            index,
            id: format!("feature-probability:{index}"),
        }
    }
}

impl ProbabilityModel for FeatureProbability {
    fn probability(&self, features: &[f64]) -> Result<f64, ModelError> {
        features.get(self.index).copied().ok_or_else(|| {
            ModelError::Input(format!(
                "no feature {} (got {})",
                self.index,
                features.len()
            ))
        })
    }
    fn model_id(&self) -> &str {
        &self.id
    }
}

/// Log-loss (negative log-likelihood, natural log) of forecast `p` for an event that did or
/// did not happen; `p` is clipped to `[EPS, 1 − EPS]` first.
pub fn log_loss(p: f64, outcome: bool) -> f64 {
    let p = p.clamp(EPS, 1.0 - EPS);
    if outcome { -p.ln() } else { -(1.0 - p).ln() }
}

/// Brier score of forecast `p`: `(p − y)²` with `y` = 1 if the event happened, else 0.
pub fn brier(p: f64, outcome: bool) -> f64 {
    let y = if outcome { 1.0 } else { 0.0 };
    (p - y) * (p - y)
}

/// Mean log-loss and Brier score of `probs` against `outcomes`, as `(log_loss, brier)`. Pairs
/// past the shorter list are ignored, but the mean divides by `probs.len()` (1 if empty).
pub fn scores(probs: &[f64], outcomes: &[bool]) -> (f64, f64) {
    let n = probs.len().max(1) as f64;
    let ll = probs
        .iter()
        .zip(outcomes)
        .map(|(p, o)| log_loss(*p, *o))
        .sum::<f64>()
        / n;
    let b = probs
        .iter()
        .zip(outcomes)
        .map(|(p, o)| brier(*p, *o))
        .sum::<f64>()
        / n;
    (ll, b)
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(EPS, 1.0 - EPS);
    (p / (1.0 - p)).ln()
}

/// p' = σ(a · logit(p) + b), fitted by Newton's method on the log-loss (Platt, "Probabilistic
/// Outputs for Support Vector Machines", 1999, applied to the logit of the raw probability).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlattScaling {
    /// Slope on the logit: below 1 softens an overconfident model, above 1 sharpens it.
    pub a: f64,
    /// Intercept on the logit: shifts every probability toward one outcome.
    pub b: f64,
}

impl PlattScaling {
    /// `a = 1, b = 0`: [`PlattScaling::apply`] returns its input (up to the `EPS` clipping).
    pub const IDENTITY: Self = Self { a: 1.0, b: 0.0 };

    /// Fits `a` and `b` to minimise the mean log-loss of the scaled `probs` against
    /// `outcomes` (at most 100 Newton steps, with a tiny ridge on the Hessian).
    ///
    /// # Errors
    /// [`ModelError::Input`] if `probs` is empty or not as long as `outcomes`, or if the fit
    /// ends with a non-finite `a` or `b`.
    pub fn fit(probs: &[f64], outcomes: &[bool]) -> Result<Self, ModelError> {
        if probs.len() != outcomes.len() || probs.is_empty() {
            return Err(ModelError::Input(
                "calibration needs as many outcomes as probabilities (≥ 1)".into(),
            ));
        }
        let xs: Vec<f64> = probs.iter().map(|p| logit(*p)).collect();
        let (mut a, mut b) = (1.0, 0.0);
        for _ in 0..100 {
            // Gradient and Hessian of the mean log-loss in (a, b), with a small ridge.
            let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-9, 0.0, 1e-9);
            for (x, o) in xs.iter().zip(outcomes) {
                let p = sigmoid(a * x + b);
                let y = if *o { 1.0 } else { 0.0 };
                let w = p * (1.0 - p);
                ga += (p - y) * x;
                gb += p - y;
                haa += w * x * x;
                hab += w * x;
                hbb += w;
            }
            let det = haa * hbb - hab * hab;
            if det.abs() < 1e-18 {
                break;
            }
            let da = (hbb * ga - hab * gb) / det;
            let db = (haa * gb - hab * ga) / det;
            a -= da;
            b -= db;
            if da.abs() + db.abs() < 1e-10 {
                break;
            }
        }
        if !(a.is_finite() && b.is_finite()) {
            return Err(ModelError::Input("Platt scaling did not converge".into()));
        }
        Ok(Self { a, b })
    }

    /// The calibrated probability for raw probability `p`.
    pub fn apply(&self, p: f64) -> f64 {
        sigmoid(self.a * logit(p) + self.b)
    }
}

/// p' = σ(logit(p) / T), T fitted by golden-section search on the log-loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TemperatureScaling {
    /// The temperature T, in `[0.05, 20]`: above 1 softens the probabilities toward 0.5,
    /// below 1 sharpens them.
    pub temperature: f64,
}

impl TemperatureScaling {
    /// Fits T in `[0.05, 20]` to minimise the total log-loss of the scaled `probs` against
    /// `outcomes` (100 golden-section steps).
    ///
    /// # Errors
    /// [`ModelError::Input`] if `probs` is empty or not as long as `outcomes`.
    pub fn fit(probs: &[f64], outcomes: &[bool]) -> Result<Self, ModelError> {
        if probs.len() != outcomes.len() || probs.is_empty() {
            return Err(ModelError::Input(
                "calibration needs as many outcomes as probabilities (≥ 1)".into(),
            ));
        }
        let loss = |t: f64| {
            probs
                .iter()
                .zip(outcomes)
                .map(|(p, o)| log_loss(sigmoid(logit(*p) / t), *o))
                .sum::<f64>()
        };
        let (mut lo, mut hi) = (0.05f64, 20.0f64);
        let g = (5f64.sqrt() - 1.0) / 2.0;
        for _ in 0..100 {
            let m1 = hi - g * (hi - lo);
            let m2 = lo + g * (hi - lo);
            if loss(m1) < loss(m2) {
                hi = m2;
            } else {
                lo = m1;
            }
        }
        Ok(Self {
            temperature: (lo + hi) / 2.0,
        })
    }

    /// The calibrated probability for raw probability `p`.
    pub fn apply(&self, p: f64) -> f64 {
        sigmoid(logit(p) / self.temperature)
    }
}

/// A model with Platt scaling on top.
#[derive(Debug)]
pub struct Calibrated<M> {
    /// The raw model; its id is the calibrated model's id.
    pub inner: M,
    /// The scaling applied to every probability `inner` gives.
    pub platt: PlattScaling,
}

impl<M: ProbabilityModel> ProbabilityModel for Calibrated<M> {
    fn probability(&self, features: &[f64]) -> Result<f64, ModelError> {
        Ok(self.platt.apply(self.inner.probability(features)?))
    }
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outcomes drawn with true probability q, reported as an overconfident 2q-ish score.
    fn overconfident(n: usize) -> (Vec<f64>, Vec<bool>) {
        let mut rng = fastrand::Rng::with_seed(3);
        let mut probs = Vec::new();
        let mut outs = Vec::new();
        for _ in 0..n {
            let q = 0.2 + 0.6 * rng.f64();
            let reported = sigmoid(3.0 * logit(q));
            probs.push(reported);
            outs.push(rng.f64() < q);
        }
        (probs, outs)
    }

    #[test]
    fn platt_and_temperature_fix_an_overconfident_model() {
        let (p, o) = overconfident(20_000);
        let (ll_raw, b_raw) = scores(&p, &o);
        let platt = PlattScaling::fit(&p, &o).unwrap();
        assert!((platt.a - 1.0 / 3.0).abs() < 0.05, "{platt:?}");
        let fixed: Vec<f64> = p.iter().map(|x| platt.apply(*x)).collect();
        let (ll, b) = scores(&fixed, &o);
        assert!(ll < ll_raw && b < b_raw, "{ll} {ll_raw} {b} {b_raw}");
        let t = TemperatureScaling::fit(&p, &o).unwrap();
        assert!((t.temperature - 3.0).abs() < 0.3, "{t:?}");
    }

    #[test]
    fn scores_of_known_cases() {
        assert_eq!(brier(1.0, true), 0.0);
        assert_eq!(brier(0.0, true), 1.0);
        assert!((log_loss(0.5, false) - 2f64.ln()).abs() < 1e-12);
        assert!(log_loss(0.0, true) < 14.0, "clipped");
    }
}
