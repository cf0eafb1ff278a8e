//! Tokens and integer token amounts.
//!
//! Money is never a float here: a balance is a [`U256`] count of a token's smallest unit, and the
//! token carries its decimals. Floats appear only when a value is *shown* (reports) or turned into
//! a signal, through [`to_f64`].

use std::fmt;
use std::sync::Arc;

pub use alloy_primitives::U256;

/// A fungible token: a symbol and how many decimals its smallest unit has.
#[derive(Clone, Eq, PartialOrd, Ord)]
pub struct Token {
    symbol: Arc<str>,
    decimals: u8,
}

/// Equal when both symbol and decimals match, as derived; but the decimals are compared first
/// and a shared symbol by pointer, so the per-bar balance lookups (a book holds a pair's two
/// tokens, one clone of each) rarely compare symbol text.
impl PartialEq for Token {
    fn eq(&self, other: &Self) -> bool {
        self.decimals == other.decimals
            && (Arc::ptr_eq(&self.symbol, &other.symbol) || self.symbol == other.symbol)
    }
}

/// The symbol then the decimals, as derived: tokens equal by [`PartialEq`] hash alike.
impl std::hash::Hash for Token {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.symbol.hash(state);
        self.decimals.hash(state);
    }
}

impl Token {
    /// A token with ticker `symbol` (e.g. `"USDC"`) whose smallest unit is `10^-decimals` of a
    /// whole token (6 for USDC, 18 for WETH). Two tokens are equal when both symbol and decimals
    /// match.
    pub fn new(symbol: &str, decimals: u8) -> Self {
        Self {
            symbol: Arc::from(symbol),
            decimals,
        }
    }
    /// The ticker, as given to [`Token::new`]; also what `Display` prints.
    pub fn symbol(&self) -> &str {
        &self.symbol
    }
    /// How many decimal places the smallest unit has: one whole token is `10^decimals` units.
    #[inline]
    pub fn decimals(&self) -> u8 {
        self.decimals
    }
    /// `10^decimals`: the number of units in one whole token.
    pub fn one(&self) -> U256 {
        pow10(self.decimals)
    }
    /// Parses a decimal string ("1234.5") into this token's units, exactly.
    ///
    /// # Errors
    ///
    /// The [`AmountError`]s of [`parse_units`]: not a plain decimal, negative, more fractional
    /// digits than the token's decimals, or too large for 256 bits.
    pub fn parse(&self, s: &str) -> Result<U256, AmountError> {
        parse_units(s, self.decimals)
    }
    /// Formats units as a decimal string with all of the token's decimals, exactly.
    pub fn format(&self, units: U256) -> String {
        format_units(units, self.decimals)
    }
    /// Units as an approximate float, for reports and signals only.
    #[inline]
    pub fn to_f64(&self, units: U256) -> f64 {
        to_f64(units, self.decimals)
    }

    /// Whether `other` is this very token: a clone of it (the symbol shared, not just equal
    /// text) with the same decimals. Implies `==`; a cheap test for caches keyed by a token.
    #[inline]
    pub fn is(&self, other: &Token) -> bool {
        self.decimals == other.decimals && Arc::ptr_eq(&self.symbol, &other.symbol)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.symbol, self.decimals)
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.symbol)
    }
}

/// Why a decimal string or a float could not be turned into exact token units. Each variant
/// carries the offending `input` as text, so the message names what the user wrote.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AmountError {
    /// The input is not a plain decimal such as `"12"`, `"12.5"` or `".5"`: it is empty or just
    /// `"."`, or has a character other than ASCII digits and one `.` (a `+`, an exponent, a
    /// thousands separator).
    #[error("`{input}` is not a decimal amount")]
    NotANumber {
        /// The input, trimmed of surrounding whitespace.
        input: String,
    },
    /// The input has more significant fractional digits than the token has decimals; it is
    /// refused rather than silently rounded.
    #[error("`{input}` has more than {decimals} decimals")]
    TooPrecise {
        /// The input, trimmed of surrounding whitespace.
        input: String,
        /// The token's decimals, the most fractional digits allowed.
        decimals: u8,
    },
    /// The input starts with `-`: token amounts are unsigned.
    #[error("`{input}` is negative")]
    Negative {
        /// The input, trimmed of surrounding whitespace.
        input: String,
    },
    /// A float input is NaN or infinite.
    #[error("`{input}` is not finite")]
    NotFinite {
        /// The float as `f64::to_string` prints it (`"NaN"`, `"inf"`).
        input: String,
    },
    /// The amount in units does not fit in a `U256`.
    #[error("`{input}` overflows 256 bits")]
    Overflow {
        /// The input, as text.
        input: String,
    },
}

const POW10_U128: [u128; 39] = {
    let mut t = [1u128; 39];
    let mut i = 1;
    while i < 39 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// `10^n` as a U256 (n ≤ 77). A table lookup for the usual decimals: this sits on hot paths.
pub fn pow10(n: u8) -> U256 {
    match POW10_U128.get(n as usize) {
        Some(v) => U256::from(*v),
        None => U256::from(10u8).pow(U256::from(n)),
    }
}

/// `POW10_U128` as floats (each the nearest double to its power of ten), so the per-bar price
/// and balance conversions read a constant instead of converting a `u128`.
const POW10_F64: [f64; 39] = {
    let mut t = [1f64; 39];
    let mut i = 1;
    while i < 39 {
        t[i] = POW10_U128[i] as f64;
        i += 1;
    }
    t
};

/// `10^n` as a float, exact for the decimals tokens use.
pub(crate) fn pow10_f64(n: u8) -> f64 {
    match POW10_F64.get(n as usize) {
        Some(v) => *v,
        None => 10f64.powi(n as i32),
    }
}

/// Parses a non-negative decimal string into integer units with `decimals` places, exactly.
/// More fractional digits than `decimals` is an error rather than a silent rounding; trailing
/// zeros do not count (`"1.500"` parses at 1 decimal).
///
/// # Errors
///
/// - [`AmountError::Negative`] if the trimmed input starts with `-`;
/// - [`AmountError::NotANumber`] if it is empty, just `"."`, or has anything but ASCII digits
///   around a single `.` (so no `+`, exponent or thousands separator);
/// - [`AmountError::TooPrecise`] if it has more significant fractional digits than `decimals`;
/// - [`AmountError::Overflow`] if the units do not fit in 256 bits.
pub fn parse_units(s: &str, decimals: u8) -> Result<U256, AmountError> {
    let input = s.trim();
    let err = || AmountError::NotANumber {
        input: input.to_string(),
    };
    if input.starts_with('-') {
        return Err(AmountError::Negative {
            input: input.to_string(),
        });
    }
    let (int, frac) = match input.split_once('.') {
        Some((i, f)) => (i, f),
        None => (input, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return Err(err());
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > decimals as usize {
        return Err(AmountError::TooPrecise {
            input: input.to_string(),
            decimals,
        });
    }
    let overflow = || AmountError::Overflow {
        input: input.to_string(),
    };
    let mut digits = String::with_capacity(int.len() + decimals as usize);
    digits.push_str(if int.is_empty() { "0" } else { int });
    digits.push_str(frac);
    for _ in frac.len()..decimals as usize {
        digits.push('0');
    }
    U256::from_str_radix(&digits, 10).map_err(|_| overflow())
}

/// Converts a float given by a user (a config value such as `starting_quote = 10000.0`) into
/// units. It goes through the float's shortest exact decimal form, so `0.1` becomes exactly
/// `100000` units at 6 decimals rather than `99999.99…`.
///
/// # Errors
///
/// [`AmountError::NotFinite`] for NaN or ±infinity; otherwise the errors of [`parse_units`] on
/// the float's decimal form: [`AmountError::Negative`] for a negative value,
/// [`AmountError::TooPrecise`] if it has more fractional digits than `decimals`, and
/// [`AmountError::Overflow`] if it does not fit in 256 bits.
pub fn units_from_f64(value: f64, decimals: u8) -> Result<U256, AmountError> {
    if !value.is_finite() {
        return Err(AmountError::NotFinite {
            input: value.to_string(),
        });
    }
    // `{}` prints the shortest representation that round-trips, never exponent notation.
    parse_units(&format!("{value}"), decimals)
}

/// Which way a configured limit rounds when it has more decimals than its token: a maximum rounds
/// down and a minimum or floor rounds up, so the limit only ever gets stricter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// Toward zero (a maximum).
    Down,
    /// Away from zero (a minimum, a floor).
    Up,
}

/// Converts a configured limit (a float of whole tokens) into units, rounding digits beyond
/// `decimals` as `rounding` says instead of refusing them. Errors on a negative, non-finite or
/// too-large value: a limit that cannot be represented is refused, never dropped.
///
/// # Errors
///
/// - [`AmountError::NotFinite`] for NaN or ±infinity;
/// - [`AmountError::Negative`] for a value below zero;
/// - [`AmountError::Overflow`] if the units (after rounding up, for [`Rounding::Up`]) do not fit
///   in 256 bits.
pub fn limit_units_from_f64(
    value: f64,
    decimals: u8,
    rounding: Rounding,
) -> Result<U256, AmountError> {
    if !value.is_finite() {
        return Err(AmountError::NotFinite {
            input: value.to_string(),
        });
    }
    let text = format!("{value}");
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let d = decimals as usize;
    if frac.len() <= d {
        return parse_units(&text, decimals);
    }
    let (kept, dropped) = frac.split_at(d);
    let down = parse_units(&format!("{int}.{kept}"), decimals)?;
    match rounding {
        Rounding::Down => Ok(down),
        Rounding::Up if dropped.bytes().any(|b| b != b'0') => down
            .checked_add(U256::from(1u8))
            .ok_or(AmountError::Overflow { input: text }),
        Rounding::Up => Ok(down),
    }
}

/// Formats units as a decimal string, e.g. `1234500000` at 6 decimals → `"1234.5"`.
pub fn format_units(units: U256, decimals: u8) -> String {
    let s = units.to_string();
    let d = decimals as usize;
    if d == 0 {
        return s;
    }
    let (int, frac) = if s.len() > d {
        let (i, f) = s.split_at(s.len() - d);
        (i.to_string(), f.to_string())
    } else {
        ("0".to_string(), format!("{s:0>d$}"))
    };
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        int
    } else {
        format!("{int}.{frac}")
    }
}

/// Units as an approximate float; for reports and signals only, never for accounting.
#[inline]
pub fn to_f64(units: U256, decimals: u8) -> f64 {
    let v: f64 = units.into();
    v / pow10_f64(decimals)
}

/// A price as an integer: units of the quote token per one whole base token.
///
/// Market data arrives as floats; this is where a price becomes an integer, once, so every
/// amount computed from it afterwards is exact.
#[inline]
pub fn price_to_units(price: f64, quote_decimals: u8) -> Option<U256> {
    scaled_price(price, quote_decimals).map(|scaled| U256::from(scaled as u128))
}

/// Whether [`price_to_units`] gives a price for `price` (the same checks, without building the
/// integer): a bar's close is checked on every bar, its units needed on few.
#[inline]
pub fn price_representable(price: f64, quote_decimals: u8) -> bool {
    if !price.is_finite() || price <= 0.0 {
        return false;
    }
    // `scaled.round()` is in [1, 1e38) exactly when `scaled` is in [0.5, 1e38) (ties round
    // away from zero; near 1e38 every float is a whole number): no rounding call per bar.
    let scaled = price * pow10_f64(quote_decimals);
    (0.5..1e38).contains(&scaled)
}

/// `price` in quote units as a whole float, when positive, finite and at least one unit and
/// below 10^38 (so it fits a `u128`).
#[inline]
fn scaled_price(price: f64, quote_decimals: u8) -> Option<f64> {
    if !price.is_finite() || price <= 0.0 {
        return None;
    }
    let scaled = (price * pow10_f64(quote_decimals)).round();
    (scaled.is_finite() && (1.0..1e38).contains(&scaled)).then_some(scaled)
}

/// Value of `amount` of a base token (with `base_decimals`) at `price_units` quote units per whole
/// base token, in quote units, rounded down.
pub fn base_to_quote(amount: U256, base_decimals: u8, price_units: U256) -> U256 {
    mul_div(amount, price_units, base_decimals)
        .unwrap_or_else(|| amount.saturating_mul(price_units) / pow10(base_decimals))
}

/// `a * b / 10^decimals` in native 128-bit arithmetic when the operands, the product and the
/// divisor fit in a `u128` (every amount and price of a real book does), else `None`. Exactly
/// what the `U256` arithmetic gives there, without its general multiplication and division.
#[inline]
fn mul_div(a: U256, b: U256, decimals: u8) -> Option<U256> {
    let product = u128::try_from(a)
        .ok()?
        .checked_mul(u128::try_from(b).ok()?)?;
    Some(U256::from(product / POW10_U128.get(decimals as usize)?))
}

/// How much base an amount of quote buys at `price_units`, rounded down.
pub fn quote_to_base(amount: U256, base_decimals: u8, price_units: U256) -> U256 {
    if price_units.is_zero() {
        return U256::ZERO;
    }
    amount.saturating_mul(pow10(base_decimals)) / price_units
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_price_is_representable_exactly_when_it_converts_to_units() {
        let mut prices = vec![
            0.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            f64::MIN_POSITIVE,
            1e-300,
            1e300,
            2000.0,
        ];
        for d in [0u8, 2, 6, 8, 18] {
            let unit = 1.0 / pow10_f64(d);
            for edge in [0.5 * unit, 1e38 * unit, unit] {
                let (mut below, mut above) = (edge, edge);
                for _ in 0..4 {
                    below = below.next_down();
                    above = above.next_up();
                    prices.extend([below, above]);
                }
                prices.push(edge);
            }
            for (i, p) in prices.iter().enumerate() {
                assert_eq!(
                    price_representable(*p, d),
                    price_to_units(*p, d).is_some(),
                    "price #{i} {p:e} at {d} decimals"
                );
            }
        }
    }

    use super::*;

    #[test]
    fn parse_and_format_round_trip_exactly() {
        assert_eq!(
            parse_units("10000", 6).unwrap(),
            U256::from(10_000_000_000u64)
        );
        assert_eq!(parse_units("0.000001", 6).unwrap(), U256::from(1u8));
        assert_eq!(
            parse_units("1.5", 18).unwrap(),
            U256::from(1_500_000_000_000_000_000u128)
        );
        assert_eq!(format_units(U256::from(1_234_500_000u64), 6), "1234.5");
        assert_eq!(format_units(U256::from(5u8), 6), "0.000005");
        assert_eq!(format_units(U256::ZERO, 6), "0");
    }

    #[test]
    fn parse_refuses_what_it_cannot_represent() {
        assert!(matches!(
            parse_units("0.0000001", 6),
            Err(AmountError::TooPrecise { .. })
        ));
        assert!(matches!(
            parse_units("-1", 6),
            Err(AmountError::Negative { .. })
        ));
        assert!(matches!(
            parse_units("1e5", 6),
            Err(AmountError::NotANumber { .. })
        ));
        assert!(matches!(
            parse_units(".", 6),
            Err(AmountError::NotANumber { .. })
        ));
        assert!(matches!(
            units_from_f64(f64::NAN, 6),
            Err(AmountError::NotFinite { .. })
        ));
    }

    #[test]
    fn floats_from_config_convert_through_their_decimal_form() {
        assert_eq!(units_from_f64(0.1, 6).unwrap(), U256::from(100_000u64));
        assert_eq!(
            units_from_f64(10000.0, 6).unwrap(),
            U256::from(10_000_000_000u64)
        );
    }

    #[test]
    fn limits_round_toward_the_strict_side() {
        // 7 decimals for a 6-decimal token: a maximum rounds down, a floor up.
        assert_eq!(
            limit_units_from_f64(100.1234567, 6, Rounding::Down).unwrap(),
            U256::from(100_123_456u64)
        );
        assert_eq!(
            limit_units_from_f64(100.1234561, 6, Rounding::Up).unwrap(),
            U256::from(100_123_457u64)
        );
        assert_eq!(
            limit_units_from_f64(0.0000001, 6, Rounding::Down).unwrap(),
            U256::ZERO
        );
        assert_eq!(
            limit_units_from_f64(0.0000001, 6, Rounding::Up).unwrap(),
            U256::from(1u8)
        );
        assert_eq!(
            limit_units_from_f64(2.5, 6, Rounding::Up).unwrap(),
            U256::from(2_500_000u64),
            "exact values do not move"
        );
        assert!(limit_units_from_f64(-1.0, 6, Rounding::Down).is_err());
        assert!(limit_units_from_f64(f64::INFINITY, 6, Rounding::Down).is_err());
        assert!(limit_units_from_f64(1e300, 18, Rounding::Down).is_err());
    }

    #[test]
    fn price_conversion_and_valuation() {
        let p = price_to_units(1338.12, 6).unwrap();
        assert_eq!(p, U256::from(1_338_120_000u64));
        let two_eth = parse_units("2", 18).unwrap();
        assert_eq!(base_to_quote(two_eth, 18, p), U256::from(2_676_240_000u64));
        assert_eq!(quote_to_base(U256::from(2_676_240_000u64), 18, p), two_eth);
        assert!(price_to_units(f64::NAN, 6).is_none());
        assert!(price_to_units(0.0, 6).is_none());
    }

    #[test]
    fn pow10_table_agrees_with_pow() {
        for n in 0..=77u8 {
            assert_eq!(pow10(n), U256::from(10u8).pow(U256::from(n)), "10^{n}");
        }
    }
}
