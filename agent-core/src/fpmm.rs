//! Gnosis FixedProductMarketMaker integer math, exactly as the contract computes it
//! (`calcBuyAmount`, `calcSellAmount`, rounding included), plus marginal prices. The paper
//! prediction venue fills with these, so a paper bet gets what the chain would give.

use crate::amount::U256;

/// The contract's fixed-point one (fees are fractions of it).
pub fn one() -> U256 {
    U256::from(1_000_000_000_000_000_000u64)
}

/// Why an FPMM amount or price could not be computed; each is a case where the Gnosis contract
/// reverts (or, for [`FpmmError::BadFee`], where its math would be meaningless).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FpmmError {
    /// The outcome index is not below the number of pool balances (`"invalid outcome index"`).
    #[error("invalid outcome index {0}")]
    InvalidOutcome(usize),
    /// A pool balance is zero, or the computed ending balance of the traded outcome is
    /// (`"must have non-zero balances"`).
    #[error("must have non-zero balances")]
    ZeroBalances,
    /// A step overflows 256 bits, goes below zero or divides by zero; the contract's SafeMath
    /// would revert. Selling more than a pool balance can return lands here.
    #[error("arithmetic overflow or underflow (SafeMath would revert)")]
    Arithmetic,
    /// The fee (a fraction of [`one()`], 1e18 = 100 %) is 100 % or more.
    #[error("fee {0} is not below 1e18")]
    BadFee(U256),
}

fn ceildiv(x: U256, y: U256) -> U256 {
    if x > U256::ZERO {
        (x - U256::from(1)) / y + U256::from(1)
    } else {
        x / y
    }
}

fn mul(a: U256, b: U256) -> Result<U256, FpmmError> {
    a.checked_mul(b).ok_or(FpmmError::Arithmetic)
}
fn add(a: U256, b: U256) -> Result<U256, FpmmError> {
    a.checked_add(b).ok_or(FpmmError::Arithmetic)
}
fn sub(a: U256, b: U256) -> Result<U256, FpmmError> {
    a.checked_sub(b).ok_or(FpmmError::Arithmetic)
}

/// Outcome tokens received for `investment` collateral on `outcome`, given the market's pool
/// balances of each outcome token and its `fee` (1e18 = 100 %).
///
/// This is `FixedProductMarketMaker.calcBuyAmount` of Gnosis' conditional-tokens market makers,
/// with its `ceildiv` rounding, so the result is exactly what the contract's `buy` pays out.
/// `investment` is in collateral units; `pool` holds one balance per outcome, in outcome-token
/// units (which share the collateral's decimals).
///
/// # Errors
///
/// - [`FpmmError::InvalidOutcome`] if `outcome` is not an index of `pool`;
/// - [`FpmmError::BadFee`] if `fee` is 1e18 or more;
/// - [`FpmmError::ZeroBalances`] if the bought outcome's ending balance rounds to zero (a pool
///   balance is zero);
/// - [`FpmmError::Arithmetic`] on overflow, underflow or a zero divisor, where SafeMath reverts.
pub fn calc_buy_amount(
    investment: U256,
    outcome: usize,
    pool: &[U256],
    fee: U256,
) -> Result<U256, FpmmError> {
    if outcome >= pool.len() {
        return Err(FpmmError::InvalidOutcome(outcome));
    }
    if fee >= one() {
        return Err(FpmmError::BadFee(fee));
    }
    let net = sub(investment, mul(investment, fee)? / one())?;
    let buy_balance = pool[outcome];
    let mut ending = mul(buy_balance, one())?;
    for (i, b) in pool.iter().enumerate() {
        if i != outcome {
            let d = add(*b, net)?;
            if d.is_zero() {
                return Err(FpmmError::Arithmetic);
            }
            ending = ceildiv(mul(ending, *b)?, d);
        }
    }
    if ending.is_zero() {
        return Err(FpmmError::ZeroBalances);
    }
    sub(add(buy_balance, net)?, ceildiv(ending, one()))
}

/// Outcome tokens that must be sold to receive exactly `return_amount` collateral.
///
/// This is `FixedProductMarketMaker.calcSellAmount` of Gnosis' conditional-tokens market makers,
/// rounding included: the fee is added on top of `return_amount` (`return · 1e18 / (1e18 − fee)`)
/// and the other outcomes' balances must cover that amount. Units as in [`calc_buy_amount`].
///
/// # Errors
///
/// - [`FpmmError::InvalidOutcome`] if `outcome` is not an index of `pool`;
/// - [`FpmmError::BadFee`] if `fee` is 1e18 or more;
/// - [`FpmmError::ZeroBalances`] if the sold outcome's ending balance rounds to zero;
/// - [`FpmmError::Arithmetic`] if the return plus fees is not below every other outcome's
///   balance, or on overflow, where SafeMath reverts.
pub fn calc_sell_amount(
    return_amount: U256,
    outcome: usize,
    pool: &[U256],
    fee: U256,
) -> Result<U256, FpmmError> {
    if outcome >= pool.len() {
        return Err(FpmmError::InvalidOutcome(outcome));
    }
    if fee >= one() {
        return Err(FpmmError::BadFee(fee));
    }
    let plus_fees = mul(return_amount, one())? / sub(one(), fee)?;
    let sell_balance = pool[outcome];
    let mut ending = mul(sell_balance, one())?;
    for (i, b) in pool.iter().enumerate() {
        if i != outcome {
            let d = sub(*b, plus_fees)?;
            if d.is_zero() {
                return Err(FpmmError::Arithmetic);
            }
            ending = ceildiv(mul(ending, *b)?, d);
        }
    }
    if ending.is_zero() {
        return Err(FpmmError::ZeroBalances);
    }
    sub(add(plus_fees, ceildiv(ending, one()))?, sell_balance)
}

/// Pool balances after buying: every balance gains the net investment, the bought outcome then
/// loses what the buyer receives (the contract splits the collateral into a full set).
///
/// Returns the outcome tokens bought (as [`calc_buy_amount`]) and the new balances, one per
/// outcome. The fee stays out of the pool, as in the contract (it goes to the fee pool).
///
/// # Errors
///
/// Those of [`calc_buy_amount`]; [`FpmmError::Arithmetic`] also if adding the net investment to
/// a balance overflows.
pub fn pool_after_buy(
    investment: U256,
    outcome: usize,
    pool: &[U256],
    fee: U256,
) -> Result<(U256, Vec<U256>), FpmmError> {
    let out = calc_buy_amount(investment, outcome, pool, fee)?;
    let net = sub(investment, mul(investment, fee)? / one())?;
    let mut next = pool.to_vec();
    for b in next.iter_mut() {
        *b = add(*b, net)?;
    }
    next[outcome] = sub(next[outcome], out)?;
    Ok((out, next))
}

/// The exact marginal price of `outcome` before a trade, as a fraction `(num, den)` of collateral
/// per outcome token: `∏_{j≠i} b_j / Σ_k ∏_{j≠k} b_j` (the FPMM's invariant `∏ b_j = k`; for two
/// outcomes `b_other / (b_0 + b_1)`).
///
/// # Errors
///
/// [`FpmmError::InvalidOutcome`] if `outcome` is not an index of `pool`,
/// [`FpmmError::ZeroBalances`] if any balance is zero, and [`FpmmError::Arithmetic`] if a product
/// of balances or their sum exceeds 256 bits.
pub fn marginal_price(outcome: usize, pool: &[U256]) -> Result<(U256, U256), FpmmError> {
    if outcome >= pool.len() {
        return Err(FpmmError::InvalidOutcome(outcome));
    }
    if pool.iter().any(|b| b.is_zero()) {
        return Err(FpmmError::ZeroBalances);
    }
    let others = |i: usize| -> Result<U256, FpmmError> {
        pool.iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .try_fold(U256::from(1u8), |acc, (_, b)| mul(acc, *b))
    };
    let mut den = U256::ZERO;
    for i in 0..pool.len() {
        den = add(den, others(i)?)?;
    }
    Ok((others(outcome)?, den))
}

/// Marginal prices (probabilities) of each outcome: price_i ∝ ∏_{j≠i} balance_j. Floats: for
/// signals only.
pub fn prices(pool: &[U256]) -> Vec<f64> {
    let b: Vec<f64> = pool.iter().map(|x| f64::from(*x)).collect();
    let prods: Vec<f64> = (0..b.len())
        .map(|i| {
            b.iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, v)| *v)
                .product()
        })
        .collect();
    let total: f64 = prods.iter().sum();
    prods
        .iter()
        .map(|p| if total > 0.0 { p / total } else { f64::NAN })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(x: u64) -> U256 {
        U256::from(x)
    }

    #[test]
    fn an_even_market_prices_one_half_and_buying_moves_the_price_up() {
        let pool = [u(1_000_000), u(1_000_000)];
        assert_eq!(prices(&pool), vec![0.5, 0.5]);
        // 2 % fee.
        let fee = one() / u(50);
        let (got, after) = pool_after_buy(u(100_000), 0, &pool, fee).unwrap();
        // Net 98,000: ending = ceil(1e6 * 1e6 / 1,098,000) = 910,747; out = 1,098,000 - 910,747.
        assert_eq!(got, u(1_098_000 - 910_747));
        assert_eq!(after, vec![u(910_747), u(1_098_000)]);
        assert!(prices(&after)[0] > 0.5);
    }

    #[test]
    fn the_exact_marginal_price_is_the_other_balance_over_the_sum() {
        let pool = [u(3_000), u(1_000)];
        assert_eq!(marginal_price(0, &pool), Ok((u(1_000), u(4_000))));
        assert_eq!(marginal_price(1, &pool), Ok((u(3_000), u(4_000))));
        assert_eq!(marginal_price(2, &pool), Err(FpmmError::InvalidOutcome(2)));
        assert_eq!(
            marginal_price(0, &[u(0), u(1)]),
            Err(FpmmError::ZeroBalances)
        );
    }

    #[test]
    fn selling_back_what_was_bought_needs_more_tokens_because_of_fees() {
        let pool = [u(5_000_000_000), u(3_000_000_000)];
        let fee = one() / u(100);
        let bought = calc_buy_amount(u(10_000_000), 1, &pool, fee).unwrap();
        let (_, after) = pool_after_buy(u(10_000_000), 1, &pool, fee).unwrap();
        let needed = calc_sell_amount(u(10_000_000), 1, &after, fee).unwrap();
        assert!(needed > bought);
        assert_eq!(
            calc_buy_amount(u(1), 2, &pool, fee),
            Err(FpmmError::InvalidOutcome(2))
        );
        assert_eq!(
            calc_buy_amount(u(1), 0, &pool, one()),
            Err(FpmmError::BadFee(one()))
        );
    }
}
