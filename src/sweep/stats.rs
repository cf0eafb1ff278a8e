//! Performance metrics of an equity curve and the probabilistic and deflated Sharpe ratios
//! (floats: these are reports, not money).

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

/// The Euler–Mascheroni constant γ.
const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// What a sweep ranks and reports about one equity curve.
///
/// Annualisation: `periods_per_year` = 365.25 days divided by the data's bar spacing (the
/// loader's median interval), so hourly bars give 8,766 periods a year.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metrics {
    /// Last equity against the first, percent.
    pub return_pct: f64,
    /// [`Metrics::return_pct`] compounded to a year over the curve's span, percent.
    pub annual_return_pct: f64,
    /// Sharpe ratio of per-bar returns (risk-free rate 0) times √periods_per_year.
    pub sharpe: f64,
    /// The same, per bar (not annualised): what the deflated Sharpe ratio takes.
    pub sharpe_per_bar: f64,
    /// Largest fall of equity from a peak, percent.
    pub max_drawdown_pct: f64,
    /// Calmar ratio: annual return / max drawdown (both percent); 0 when equity never fell.
    pub calmar: f64,
    /// Skewness of the per-bar returns (population, third standardised moment).
    pub skew: f64,
    /// Kurtosis of the per-bar returns (population, fourth standardised moment; normal = 3).
    pub kurtosis: f64,
    /// Per-bar returns measured (points of the curve − 1).
    pub returns: usize,
    /// Fills in the measured span.
    pub trades: u64,
}

/// Mean, sample standard deviation, skewness and kurtosis of `xs` (0 for what is undefined:
/// fewer than two values, no variance).
fn moments(xs: &[f64]) -> (f64, f64, f64, f64) {
    let n = xs.len() as f64;
    if xs.len() < 2 {
        return (xs.first().copied().unwrap_or(0.0), 0.0, 0.0, 0.0);
    }
    let mean = xs.iter().sum::<f64>() / n;
    let (mut m2, mut m3, mut m4) = (0.0, 0.0, 0.0);
    for x in xs {
        let d = x - mean;
        m2 += d * d;
        m3 += d * d * d;
        m4 += d * d * d * d;
    }
    let sd = (m2 / (n - 1.0)).sqrt();
    let (m2, m3, m4) = (m2 / n, m3 / n, m4 / n);
    if m2 <= 0.0 {
        return (mean, 0.0, 0.0, 0.0);
    }
    (mean, sd, m3 / m2.powf(1.5), m4 / (m2 * m2))
}

impl Metrics {
    /// The metrics of `equity` (whole quote tokens per bar, the first point the base), with
    /// `trades` fills and `periods_per_year` bars a year.
    pub fn of(equity: &[f64], trades: u64, periods_per_year: f64) -> Self {
        let returns: Vec<f64> = equity
            .windows(2)
            .map(|w| if w[0] > 0.0 { w[1] / w[0] - 1.0 } else { 0.0 })
            .collect();
        let (mean, sd, skew, kurtosis) = moments(&returns);
        let sharpe_per_bar = if sd > 0.0 { mean / sd } else { 0.0 };
        let (first, last) = (
            equity.first().copied().unwrap_or(0.0),
            equity.last().copied().unwrap_or(0.0),
        );
        let growth = if first > 0.0 { last / first } else { 1.0 };
        let mut peak = f64::MIN;
        let mut dd = 0.0f64;
        for &e in equity {
            peak = peak.max(e);
            if peak > 0.0 {
                dd = dd.max(1.0 - e / peak);
            }
        }
        let years = returns.len() as f64 / periods_per_year;
        let annual = if years > 0.0 && growth > 0.0 {
            growth.powf(1.0 / years) - 1.0
        } else {
            0.0
        };
        Self {
            return_pct: (growth - 1.0) * 100.0,
            annual_return_pct: annual * 100.0,
            sharpe: sharpe_per_bar * periods_per_year.sqrt(),
            sharpe_per_bar,
            max_drawdown_pct: dd * 100.0,
            calmar: if dd > 0.0 { annual / dd } else { 0.0 },
            skew,
            kurtosis,
            returns: returns.len(),
            trades,
        }
    }
}

/// Φ, the standard normal CDF.
fn phi(x: f64) -> f64 {
    Normal::standard().cdf(x)
}

/// Φ⁻¹, the standard normal quantile.
fn phi_inv(p: f64) -> f64 {
    Normal::standard().inverse_cdf(p)
}

/// The probabilistic Sharpe ratio: the probability that the true per-bar Sharpe ratio exceeds
/// `benchmark`, given an observed per-bar Sharpe `sr` over `t` returns with skewness `skew` and
/// kurtosis `kurtosis` (normal = 3):
///
/// PSR = Φ( (SR − SR*) √(T − 1) / √(1 − γ₃ SR + (γ₄ − 1)/4 SR²) )
///
/// Source: Bailey & López de Prado (2012), "The Sharpe Ratio Efficient Frontier", Journal of
/// Risk 15(2), eq. 11; restated as eq. 2 of Bailey & López de Prado (2014) "The Deflated Sharpe
/// Ratio". `None` for fewer than two returns or a non-positive variance term.
pub fn probabilistic_sharpe(
    sr: f64,
    benchmark: f64,
    t: usize,
    skew: f64,
    kurtosis: f64,
) -> Option<f64> {
    let var = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr;
    if t < 2 || var <= 0.0 || !sr.is_finite() {
        return None;
    }
    Some(phi((sr - benchmark) * ((t - 1) as f64).sqrt() / var.sqrt()))
}

/// The expected maximum of `n` per-bar Sharpe ratios of skill-less trials whose Sharpe ratios
/// have variance `var_sr`:
///
/// SR₀ = √V\[SR\] · ((1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e))), γ the Euler–Mascheroni constant.
///
/// Source: Bailey & López de Prado (2014), "The Deflated Sharpe Ratio: Correcting for Selection
/// Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio Management 40(5), eq. 2
/// (the false strategy theorem). 0 for one trial (no selection).
pub fn expected_max_sharpe(n: usize, var_sr: f64) -> f64 {
    if n < 2 || var_sr <= 0.0 {
        return 0.0;
    }
    let n = n as f64;
    var_sr.sqrt()
        * ((1.0 - EULER_GAMMA) * phi_inv(1.0 - 1.0 / n)
            + EULER_GAMMA * phi_inv(1.0 - 1.0 / (n * std::f64::consts::E)))
}

/// The deflated Sharpe ratio of the best of a sweep's trials.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DeflatedSharpe {
    /// Valid trials the best was selected from (N).
    pub trials: usize,
    /// Variance of the trials' per-bar Sharpe ratios (V\[SR\], sample variance).
    pub sharpe_variance: f64,
    /// The selected trial's per-bar Sharpe ratio (SR).
    pub sharpe_per_bar: f64,
    /// The Sharpe a best-of-N pick of skill-less trials reaches on average ([`expected_max_sharpe`]).
    pub expected_max_sharpe_per_bar: f64,
    /// Returns behind the selected Sharpe (T).
    pub returns: usize,
    /// The probability that the selected strategy's true Sharpe is above zero, corrected for
    /// having picked it out of N trials: PSR with SR₀ as the benchmark; `None` when undefined.
    /// Below 0.95 the in-sample best is not distinguishable from luck at 5 %.
    pub dsr: Option<f64>,
    /// The same without the selection correction (benchmark 0).
    pub psr: Option<f64>,
}

/// The deflated Sharpe ratio of `best` among trials whose per-bar Sharpe ratios are `sharpes`
/// (the valid ones; `best` is one of them): DSR = PSR(SR₀) with SR₀ = [`expected_max_sharpe`]
/// of N = `sharpes.len()` and their sample variance, with `best`'s skewness, kurtosis and
/// number of returns. Source: Bailey & López de Prado (2014), "The Deflated Sharpe Ratio:
/// Correcting for Selection Bias, Backtest Overfitting and Non-Normality", eq. 2 and 3.
pub fn deflated_sharpe(best: &Metrics, sharpes: &[f64]) -> DeflatedSharpe {
    let n = sharpes.len();
    let var = if n >= 2 {
        let mean = sharpes.iter().sum::<f64>() / n as f64;
        sharpes.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1) as f64
    } else {
        0.0
    };
    let sr0 = expected_max_sharpe(n, var);
    let sr = best.sharpe_per_bar;
    DeflatedSharpe {
        trials: n,
        sharpe_variance: var,
        sharpe_per_bar: sr,
        expected_max_sharpe_per_bar: sr0,
        returns: best.returns,
        dsr: probabilistic_sharpe(sr, sr0, best.returns, best.skew, best.kurtosis),
        psr: probabilistic_sharpe(sr, 0.0, best.returns, best.skew, best.kurtosis),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The numerical example of Bailey & López de Prado (2014), section 5: N = 100 trials whose
    /// annualised Sharpe ratios have variance 1/2, a best annualised Sharpe of 2.5 over five
    /// years of daily returns (T = 1250, 250 a year), skewness −3 and kurtosis 10 give
    /// SR₀ ≈ 0.1132 per day and DSR ≈ 0.9004.
    #[test]
    fn deflated_sharpe_reproduces_the_papers_numerical_example() {
        let sr0 = expected_max_sharpe(100, 0.5 / 250.0);
        assert!((sr0 - 0.1132).abs() < 5e-4, "SR0 {sr0}");
        let sr = 2.5 / 250f64.sqrt();
        let dsr = probabilistic_sharpe(sr, sr0, 1250, -3.0, 10.0).unwrap();
        assert!((dsr - 0.9004).abs() < 2e-3, "DSR {dsr}");
    }

    /// PSR against a benchmark equal to the observed Sharpe is one half, whatever the moments.
    #[test]
    fn probabilistic_sharpe_is_one_half_at_the_benchmark() {
        let p = probabilistic_sharpe(0.05, 0.05, 500, -1.0, 6.0).unwrap();
        assert!((p - 0.5).abs() < 1e-12);
        assert_eq!(probabilistic_sharpe(0.05, 0.0, 1, 0.0, 3.0), None);
    }

    /// More trials raise the bar: the expected maximum grows with N, and is 0 for one trial.
    #[test]
    fn expected_max_sharpe_grows_with_the_number_of_trials() {
        assert_eq!(expected_max_sharpe(1, 1.0), 0.0);
        let a = expected_max_sharpe(10, 1.0);
        let b = expected_max_sharpe(1000, 1.0);
        assert!(a > 0.0 && b > a, "{a} {b}");
    }

    /// Hand-computed: equity 100 → 110 → 99 → 108.9 has returns +10 %, −10 %, +10 %.
    #[test]
    fn metrics_of_a_small_curve_match_a_hand_computation() {
        let m = Metrics::of(&[100.0, 110.0, 99.0, 108.9], 2, 4.0);
        assert!((m.return_pct - 8.9).abs() < 1e-9);
        assert!((m.max_drawdown_pct - 10.0).abs() < 1e-9);
        // mean 1/30, sample sd √(((2/30)²·2 + (4/30)²)/2) = √(0.0133…)
        let mean: f64 = 0.1 / 3.0;
        let sd = ((2.0 * (0.1 - mean).powi(2) + (-0.1 - mean).powi(2)) / 2.0).sqrt();
        assert!((m.sharpe_per_bar - mean / sd).abs() < 1e-12);
        assert!((m.sharpe - 2.0 * mean / sd).abs() < 1e-12);
        // three returns at four a year: 0.75 years; annual growth 1.089^(4/3).
        let annual = 1.089f64.powf(4.0 / 3.0) - 1.0;
        assert!((m.annual_return_pct - annual * 100.0).abs() < 1e-9);
        assert!((m.calmar - annual / 0.1).abs() < 1e-9);
        assert_eq!((m.returns, m.trades), (3, 2));
    }
}
