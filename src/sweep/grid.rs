//! The parameter grid of a sweep: `--param` specs, their cartesian product in a fixed order,
//! and seeded sampling of distinct combinations.

use std::collections::BTreeSet;

use super::SweepError;

/// The most values one `--param` may expand to.
pub const MAX_VALUES_PER_PARAM: usize = 10_000;

/// The most trials (combinations run) a sweep accepts.
pub const MAX_TRIALS: usize = 100_000;

/// One `--param`: a strategy parameter's name and the values the sweep tries, as the
/// `key=value` text a strategy override takes (integers as integers, floats with the decimals
/// the spec was written with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    /// The strategy parameter (`fast`).
    pub name: String,
    /// Its values in order (one for a fixed parameter).
    pub values: Vec<String>,
}

impl ParamSpec {
    /// Parses one `--param`:
    /// - `name=a..b:step`: every value from `a` to `b` inclusive in steps of `step` (default 1);
    ///   integers when all three are integers, floats otherwise;
    /// - `name=v1,v2,v3`: those values, in that order;
    /// - `name=v`: one fixed value.
    ///
    /// A value whose text before `..` is not a number (e.g. a path `../m`) is a literal value.
    ///
    /// # Errors
    /// [`SweepError::Param`] naming `spec`: no `=`, an empty or malformed name, a bound or step
    /// that is not a number, a step that is not positive, an empty range (`b < a`), an empty or
    /// repeated list item, or more than [`MAX_VALUES_PER_PARAM`] values.
    pub fn parse(spec: &str) -> Result<Self, SweepError> {
        let bad = |reason: String| SweepError::Param {
            spec: spec.to_string(),
            reason,
        };
        let (name, rhs) = spec
            .split_once('=')
            .ok_or_else(|| bad("expected `name=a..b:step`, `name=v1,v2` or `name=v`".into()))?;
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(bad(format!(
                "`{name}` is not a parameter name (letters, digits, `_`, `-`)"
            )));
        }
        let rhs = rhs.trim();
        let values = match rhs.split_once("..") {
            Some((a, rest)) if a.trim().parse::<f64>().is_ok() => {
                range(a.trim(), rest).map_err(bad)?
            }
            _ => list(rhs).map_err(bad)?,
        };
        if values.len() > MAX_VALUES_PER_PARAM {
            return Err(bad(format!(
                "{} values; at most {MAX_VALUES_PER_PARAM} per parameter",
                values.len()
            )));
        }
        Ok(Self {
            name: name.to_string(),
            values,
        })
    }
}

/// `v1,v2,…` or one value: trimmed, none empty, none repeated.
fn list(rhs: &str) -> Result<Vec<String>, String> {
    let mut values: Vec<String> = Vec::new();
    for item in rhs.split(',').map(str::trim) {
        if item.is_empty() {
            return Err("an empty value".into());
        }
        if values.iter().any(|v| v == item) {
            return Err(format!("the value `{item}` is listed twice"));
        }
        values.push(item.to_string());
    }
    Ok(values)
}

/// `a..b` or `a..b:step` (the text after `..` is `rest`).
fn range(a: &str, rest: &str) -> Result<Vec<String>, String> {
    let (b, step) = match rest.split_once(':') {
        Some((b, s)) => (b.trim(), s.trim()),
        None => (rest.trim(), "1"),
    };
    if let (Ok(a), Ok(b), Ok(step)) = (a.parse::<i64>(), b.parse::<i64>(), step.parse::<i64>()) {
        if step <= 0 {
            return Err(format!("the step must be positive, got {step}"));
        }
        if b < a {
            return Err(format!(
                "the range {a}..{b} is empty (its end is below its start)"
            ));
        }
        let count = (b - a) / step + 1;
        if count > MAX_VALUES_PER_PARAM as i64 {
            return Err(format!(
                "{count} values; at most {MAX_VALUES_PER_PARAM} per parameter"
            ));
        }
        return Ok((0..count).map(|i| (a + i * step).to_string()).collect());
    }
    let num = |s: &str, what: &str| {
        s.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("the {what} `{s}` is not a number"))
    };
    let (af, bf, sf) = (num(a, "start")?, num(b, "end")?, num(step, "step")?);
    if sf <= 0.0 {
        return Err(format!("the step must be positive, got {step}"));
    }
    if bf < af {
        return Err(format!(
            "the range {a}..{b} is empty (its end is below its start)"
        ));
    }
    // Tolerate rounding at the end: 0.1..0.3:0.1 has three values.
    let count = ((bf - af) / sf + 1e-9).floor() + 1.0;
    if count > MAX_VALUES_PER_PARAM as f64 {
        return Err(format!(
            "{count} values; at most {MAX_VALUES_PER_PARAM} per parameter"
        ));
    }
    // Exponent notation anywhere: the shortest text of each value instead.
    let decimals = [a, b, step]
        .into_iter()
        .map(decimals_of)
        .collect::<Option<Vec<usize>>>()
        .and_then(|d| d.into_iter().max());
    Ok((0..count as i64)
        .map(|i| {
            let v = af + i as f64 * sf;
            match decimals {
                // At least one decimal: the value stays a float for the strategy.
                Some(d) => format!("{v:.prec$}", prec = d.max(1)),
                // Rounded to 13 significant digits: 1e-3 + 2 × 1e-3 is 0.003.
                None => format!("{:?}", format!("{v:.12e}").parse::<f64>().unwrap_or(v)),
            }
        })
        .collect())
}

/// Digits after the point of a number as written (`None` in exponent notation).
fn decimals_of(s: &str) -> Option<usize> {
    if s.contains(['e', 'E']) {
        return None;
    }
    Some(s.split_once('.').map_or(0, |(_, f)| f.len()))
}

/// The cartesian product of the `--param` specs in a fixed order: the first parameter varies
/// slowest, the last fastest (as nested loops written in the order given). Combination `i`
/// is read off `i` in mixed radix, so a grid is never materialised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grid {
    /// The parameters, in the order of the command line.
    pub params: Vec<ParamSpec>,
}

impl Grid {
    /// The grid of `params`.
    ///
    /// # Errors
    /// [`SweepError::Param`] when a parameter is given twice (named).
    pub fn new(params: Vec<ParamSpec>) -> Result<Self, SweepError> {
        for (i, p) in params.iter().enumerate() {
            if params[..i].iter().any(|q| q.name == p.name) {
                return Err(SweepError::Param {
                    spec: p.name.clone(),
                    reason: "the parameter is given twice".into(),
                });
            }
        }
        Ok(Self { params })
    }

    /// Combinations in the grid; `None` when the count overflows `usize`.
    pub fn size(&self) -> Option<usize> {
        self.params
            .iter()
            .try_fold(1usize, |n, p| n.checked_mul(p.values.len()))
    }

    /// The parameters with more than one value, in order.
    pub fn varying(&self) -> Vec<&ParamSpec> {
        self.params.iter().filter(|p| p.values.len() > 1).collect()
    }

    /// The value index of each parameter in combination `index` (below [`Grid::size`]).
    pub fn digits(&self, index: usize) -> Vec<usize> {
        let mut rest = index;
        let mut digits = vec![0; self.params.len()];
        for (d, p) in digits.iter_mut().zip(&self.params).rev() {
            *d = rest % p.values.len();
            rest /= p.values.len();
        }
        digits
    }

    /// Combination `index` (below [`Grid::size`]) as `(name, value)` pairs in parameter order.
    pub fn combo(&self, index: usize) -> Vec<(String, String)> {
        self.digits(index)
            .into_iter()
            .zip(&self.params)
            .map(|(d, p)| (p.name.clone(), p.values[d].clone()))
            .collect()
    }
}

/// The trials of a sweep: every combination of `grid` in order, or with `random = Some(n)`
/// `n` distinct combinations drawn with a `fastrand` generator seeded by `seed` (Floyd's
/// sampling), in grid order. Asking for at least as many as the grid has runs the whole grid.
///
/// # Errors
/// [`SweepError::TooMany`] when more than [`MAX_TRIALS`] trials would run (the whole grid, or
/// `n`), or the grid's size overflows; [`SweepError::Param`] for `--random 0`.
pub fn trials(grid: &Grid, random: Option<usize>, seed: u64) -> Result<Vec<usize>, SweepError> {
    let size = grid.size();
    let wanted = match (random, size) {
        (Some(0), _) => {
            return Err(SweepError::Param {
                spec: "--random 0".into(),
                reason: "draw at least one combination".into(),
            });
        }
        (Some(n), Some(s)) if n >= s => s,
        (Some(n), _) => n,
        (None, Some(s)) => s,
        (None, None) => usize::MAX,
    };
    if wanted > MAX_TRIALS {
        return Err(SweepError::TooMany(format!(
            "{} combinations to run; at most {MAX_TRIALS}: narrow the ranges or draw a sample with --random N",
            size.map_or("more than 2^64".to_string(), |s| s.min(wanted).to_string())
        )));
    }
    let size = size.unwrap_or(usize::MAX);
    if wanted == size {
        return Ok((0..size).collect());
    }
    // Floyd: for j in size-n..size, draw t in [0, j]; take t, or j when t was taken. Each
    // n-subset is equally likely, in n draws.
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut chosen = BTreeSet::new();
    for j in size - wanted..size {
        let t = rng.usize(0..=j);
        if !chosen.insert(t) {
            chosen.insert(j);
        }
    }
    Ok(chosen.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(spec: &str) -> Vec<String> {
        ParamSpec::parse(spec).unwrap().values
    }

    fn error(spec: &str) -> String {
        ParamSpec::parse(spec).unwrap_err().to_string()
    }

    #[test]
    fn ranges_lists_and_fixed_values_parse_as_written() {
        assert_eq!(values("fast=5..20:5"), ["5", "10", "15", "20"]);
        assert_eq!(values("fast=5..7"), ["5", "6", "7"]);
        assert_eq!(values("fast=5..19:5"), ["5", "10", "15"]);
        assert_eq!(values("x=-2..2:2"), ["-2", "0", "2"]);
        assert_eq!(values("size=0.1..0.3:0.1"), ["0.1", "0.2", "0.3"]);
        assert_eq!(values("size=0.5..1:0.25"), ["0.50", "0.75", "1.00"]);
        assert_eq!(values("size=1..2:0.5"), ["1.0", "1.5", "2.0"]);
        assert_eq!(values("lr=1e-3..3e-3:1e-3"), ["0.001", "0.002", "0.003"]);
        assert_eq!(values("slow=20, 30,50"), ["20", "30", "50"]);
        assert_eq!(values("size=0.9"), ["0.9"]);
        assert_eq!(values("model=../models/m"), ["../models/m"]);
        let p = ParamSpec::parse(" fast = 1..2 ").unwrap();
        assert_eq!((p.name.as_str(), p.values.len()), ("fast", 2));
    }

    #[test]
    fn malformed_params_are_errors_naming_the_flag_and_the_fault() {
        for (spec, fault) in [
            ("fast", "expected"),
            ("=5", "not a parameter name"),
            ("fa st=5", "not a parameter name"),
            ("fast=5..x", "`x` is not a number"),
            ("fast=5..10:0", "step must be positive"),
            ("fast=5..10:-1", "step must be positive"),
            ("fast=10..5", "empty"),
            ("size=0.5..0.1:0.1", "empty"),
            ("fast=5,,6", "empty value"),
            ("fast=5,6,5", "listed twice"),
            ("fast=", "empty value"),
            ("fast=1..100000", "at most"),
        ] {
            let e = error(spec);
            assert!(e.contains(spec) && e.contains(fault), "{spec}: {e}");
        }
        let twice = Grid::new(vec![
            ParamSpec::parse("fast=1").unwrap(),
            ParamSpec::parse("fast=2").unwrap(),
        ]);
        assert!(twice.unwrap_err().to_string().contains("fast"));
    }

    fn grid(specs: &[&str]) -> Grid {
        Grid::new(specs.iter().map(|s| ParamSpec::parse(s).unwrap()).collect()).unwrap()
    }

    #[test]
    fn the_grid_is_the_cartesian_product_with_the_first_parameter_slowest() {
        let g = grid(&["a=1,2", "b=x,y,z", "c=9"]);
        assert_eq!(g.size(), Some(6));
        let combos: Vec<String> = (0..6)
            .map(|i| {
                g.combo(i)
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        assert_eq!(
            combos,
            [
                "a=1 b=x c=9",
                "a=1 b=y c=9",
                "a=1 b=z c=9",
                "a=2 b=x c=9",
                "a=2 b=y c=9",
                "a=2 b=z c=9"
            ]
        );
        let names: Vec<&str> = g.varying().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(g.digits(4), [1, 1, 0]);
    }

    #[test]
    fn random_draws_are_distinct_sorted_and_the_same_for_a_seed() {
        let g = grid(&["a=1..100", "b=1..100"]);
        let a = trials(&g, Some(50), 7).unwrap();
        assert_eq!(a, trials(&g, Some(50), 7).unwrap());
        assert_eq!(a.len(), 50);
        assert!(a.windows(2).all(|w| w[0] < w[1]), "sorted and distinct");
        assert!(a.iter().all(|&i| i < 10_000));
        assert_ne!(
            a,
            trials(&g, Some(50), 8).unwrap(),
            "another seed, another draw"
        );
        // As many as the grid has or more: the whole grid, in order.
        let small = grid(&["a=1..3"]);
        assert_eq!(trials(&small, Some(10), 1).unwrap(), [0, 1, 2]);
        assert_eq!(trials(&small, None, 1).unwrap(), [0, 1, 2]);
    }

    #[test]
    fn more_trials_than_the_cap_are_refused_unless_sampled() {
        let g = grid(&["a=1..1000", "b=1..1000"]);
        let e = trials(&g, None, 0).unwrap_err().to_string();
        assert!(e.contains("1000000") && e.contains("--random"), "{e}");
        assert_eq!(trials(&g, Some(1000), 0).unwrap().len(), 1000);
        assert!(trials(&g, Some(0), 0).is_err());
        assert!(trials(&g, Some(MAX_TRIALS + 1), 0).is_err());
        let huge = grid(&[
            "a=1..9999",
            "b=1..9999",
            "c=1..9999",
            "d=1..9999",
            "e=1..9999",
        ]);
        assert_eq!(huge.size(), None);
        assert_eq!(trials(&huge, Some(3), 0).unwrap().len(), 3);
    }
}
