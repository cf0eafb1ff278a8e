//! Constant-product AMM arithmetic, integer-exact with Uniswap V2's `UniswapV2Library`.

use crate::amount::U256;

/// Why a constant-product amount could not be computed. The first three are the reverts of
/// `UniswapV2Library` (their messages are the contract's revert strings); the last two are this
/// crate's checks on its inputs and arithmetic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmmError {
    /// [`get_amount_out`] was asked about an input of zero
    /// (`UniswapV2Library: INSUFFICIENT_INPUT_AMOUNT`).
    #[error("INSUFFICIENT_INPUT_AMOUNT")]
    InsufficientInput,
    /// [`get_amount_in`] was asked about an output of zero
    /// (`UniswapV2Library: INSUFFICIENT_OUTPUT_AMOUNT`).
    #[error("INSUFFICIENT_OUTPUT_AMOUNT")]
    InsufficientOutput,
    /// A reserve is zero, or (for [`get_amount_in`]) the output asked for is not below the
    /// output reserve (`UniswapV2Library: INSUFFICIENT_LIQUIDITY`).
    #[error("INSUFFICIENT_LIQUIDITY")]
    InsufficientLiquidity,
    /// The LP fee, in basis points, is 10 000 (100 %) or more, which leaves nothing to trade.
    #[error("fee of {0} bps is not below 10000")]
    BadFee(u32),
    /// An intermediate product or sum exceeds 256 bits, where the contract's SafeMath reverts.
    #[error("arithmetic overflow")]
    Overflow,
}

const BPS: u64 = 10_000;

/// `UniswapV2Library.getAmountOut` with the fee in basis points:
///
/// ```text
/// amountInWithFee = amountIn * (10000 - fee_bps)
/// amountOut = amountInWithFee * reserveOut / (reserveIn * 10000 + amountInWithFee)
/// ```
///
/// At 30 bps this equals the contract's `997 / 1000` form exactly: numerator and denominator are
/// both that form's times ten, so the floor of the ratio is the same. Overflow is an error, as
/// SafeMath reverts.
///
/// All amounts are in token units: `amount_in` and `reserve_in` of the token sold, `reserve_out`
/// and the result of the token bought.
///
/// # Errors
///
/// - [`AmmError::InsufficientInput`] if `amount_in` is zero;
/// - [`AmmError::InsufficientLiquidity`] if either reserve is zero;
/// - [`AmmError::BadFee`] if `fee_bps` is 10 000 or more;
/// - [`AmmError::Overflow`] if `amount_in · (10000 − fee_bps) · reserve_out` or the denominator
///   exceeds 256 bits.
pub fn get_amount_out(
    amount_in: U256,
    reserve_in: U256,
    reserve_out: U256,
    fee_bps: u32,
) -> Result<U256, AmmError> {
    if amount_in.is_zero() {
        return Err(AmmError::InsufficientInput);
    }
    if reserve_in.is_zero() || reserve_out.is_zero() {
        return Err(AmmError::InsufficientLiquidity);
    }
    let keep = BPS
        .checked_sub(fee_bps as u64)
        .filter(|k| *k > 0)
        .ok_or(AmmError::BadFee(fee_bps))?;
    let with_fee = amount_in
        .checked_mul(U256::from(keep))
        .ok_or(AmmError::Overflow)?;
    let numerator = with_fee
        .checked_mul(reserve_out)
        .ok_or(AmmError::Overflow)?;
    let denominator = reserve_in
        .checked_mul(U256::from(BPS))
        .and_then(|d| d.checked_add(with_fee))
        .ok_or(AmmError::Overflow)?;
    Ok(numerator / denominator)
}

/// `UniswapV2Library.getAmountIn`: the input needed for `amount_out`, rounded up.
///
/// ```text
/// amountIn = reserveIn * amountOut * 10000 / ((reserveOut - amountOut) * (10000 - fee_bps)) + 1
/// ```
///
/// Like the contract it adds one unit after the floor, so `get_amount_out` of the result always
/// gives at least `amount_out` (sometimes one unit more input than strictly needed).
///
/// # Errors
///
/// - [`AmmError::InsufficientOutput`] if `amount_out` is zero;
/// - [`AmmError::InsufficientLiquidity`] if either reserve is zero or `amount_out` is not below
///   `reserve_out`;
/// - [`AmmError::BadFee`] if `fee_bps` is 10 000 or more;
/// - [`AmmError::Overflow`] if `reserve_in · amount_out · 10000` or the denominator exceeds 256
///   bits.
pub fn get_amount_in(
    amount_out: U256,
    reserve_in: U256,
    reserve_out: U256,
    fee_bps: u32,
) -> Result<U256, AmmError> {
    if amount_out.is_zero() {
        return Err(AmmError::InsufficientOutput);
    }
    if reserve_in.is_zero() || reserve_out.is_zero() || amount_out >= reserve_out {
        return Err(AmmError::InsufficientLiquidity);
    }
    let keep = BPS
        .checked_sub(fee_bps as u64)
        .filter(|k| *k > 0)
        .ok_or(AmmError::BadFee(fee_bps))?;
    let numerator = reserve_in
        .checked_mul(amount_out)
        .and_then(|n| n.checked_mul(U256::from(BPS)))
        .ok_or(AmmError::Overflow)?;
    let denominator = (reserve_out - amount_out)
        .checked_mul(U256::from(keep))
        .ok_or(AmmError::Overflow)?;
    Ok(numerator / denominator + U256::from(1u8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn u(v: u128) -> U256 {
        U256::from(v)
    }

    #[test]
    fn matches_hand_computed_values() {
        // 1 ETH into a 100 ETH / 200,000 USDC pool:
        // 1e18*997 = 997e18; *200_000e6 = 1.994e32; 100e18*1000 + 997e18 = 100_997e18
        // 1.994e32 / 1.00997e23 = 1_974_316_068.79… → 1_974_316_068 (1974.316068 USDC)
        let out = get_amount_out(
            u(10u128.pow(18)),
            u(100 * 10u128.pow(18)),
            u(200_000_000_000),
            30,
        )
        .unwrap();
        assert_eq!(out, u(1_974_316_068));
        // The other way: 1000 USDC into the same pool.
        // 1000e6*997 = 997e9 ; *100e18 = 9.97e31 ; 200_000e6*1000 + 997e9 = 200_997e9
        // 9.97e31 / 2.00997e14 = 496_027_303_890_107_812.55… → floor
        let out = get_amount_out(
            u(1_000_000_000),
            u(200_000_000_000),
            u(100 * 10u128.pow(18)),
            30,
        )
        .unwrap();
        assert_eq!(out, u(496_027_303_890_107_812));
        // Tiny trade rounds to zero output, like the contract.
        assert_eq!(
            get_amount_out(u(1), u(1_000_000), u(1_000_000), 30).unwrap(),
            U256::ZERO
        );
    }

    #[test]
    fn errors_mirror_the_contract() {
        assert_eq!(
            get_amount_out(U256::ZERO, u(1), u(1), 30),
            Err(AmmError::InsufficientInput)
        );
        assert_eq!(
            get_amount_out(u(1), U256::ZERO, u(1), 30),
            Err(AmmError::InsufficientLiquidity)
        );
        assert_eq!(
            get_amount_out(u(1), u(1), u(1), 10_000),
            Err(AmmError::BadFee(10_000))
        );
        assert_eq!(
            get_amount_out(U256::MAX, u(1), u(1), 30),
            Err(AmmError::Overflow)
        );
        assert_eq!(
            get_amount_in(u(5), u(10), u(5), 30),
            Err(AmmError::InsufficientLiquidity)
        );
    }

    proptest! {
        #[test]
        fn bps_form_equals_the_997_over_1000_form(
            a in 1u128..10u128.pow(30), ri in 1u128..10u128.pow(30), ro in 1u128..10u128.pow(30)
        ) {
            let (a, ri, ro) = (u(a), u(ri), u(ro));
            let with_fee = a * u(997);
            let reference = with_fee * ro / (ri * u(1000) + with_fee);
            prop_assert_eq!(get_amount_out(a, ri, ro, 30).unwrap(), reference);
        }

        #[test]
        fn amount_in_buys_at_least_amount_out(
            out in 1u128..10u128.pow(20), ri in 10u128.pow(6)..10u128.pow(30), extra in 1u128..10u128.pow(24)
        ) {
            let ro = out + extra;
            let need = get_amount_in(u(out), u(ri), u(ro), 30).unwrap();
            prop_assert!(get_amount_out(need, u(ri), u(ro), 30).unwrap() >= u(out));
        }

        #[test]
        fn constant_product_never_decreases(
            a in 1u128..10u128.pow(24), ri in 1u128..10u128.pow(27), ro in 1u128..10u128.pow(27)
        ) {
            let out = get_amount_out(u(a), u(ri), u(ro), 30).unwrap();
            prop_assert!((u(ri) + u(a)) * (u(ro) - out) >= u(ri) * u(ro));
        }
    }
}
