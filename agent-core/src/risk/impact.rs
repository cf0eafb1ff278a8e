//! Price impact: how far a trade's average execution price is above the venue's marginal price
//! before it, the LP fee excluded, on exact integers.
//!
//! The price is what the trade pays per unit it buys, in units of what it sells. For a swap of
//! `amount_in` (of which `fee` goes to the LPs) that returns `amount_out`, with the marginal rate
//! `r = num / den` (units bought per unit sold) before the trade:
//!
//! ```text
//! average price  = (amount_in − fee) / amount_out
//! marginal price = 1 / r = den / num
//! impact         = average / marginal − 1 = (amount_in − fee) · num / (amount_out · den) − 1
//! ```
//!
//! The same measure serves a bet on a prediction market (collateral per outcome token against
//! the outcome's marginal price). Against Uniswap's SDK (`computePriceImpact`, the output's
//! shortfall `x`) it is `x / (1 − x)`: never smaller, so it errs on the cautious side when a
//! position is sold.
//!
//! On a constant-product pool without fee it is `net / R_in` (the price of what is bought rises
//! by the share of the reserve the net input adds); so the largest net input within `L` bps is
//! `R_in · L / 10000`, which [`max_amount_in`] starts from and then checks with the pool's own
//! integer math (outputs round down, so the closed form can be a few units too large).

use crate::amm::get_amount_out;
use crate::amount::U256;
use crate::fpmm::{self, FpmmError};
use crate::intent::{Depth, Quote, Swap};
use crate::market::Pair;
use crate::risk::{Refusal, Verdict, min_out_for_slippage};

const BPS: u32 = 10_000;

/// A marginal exchange rate as an exact fraction: `num` units of the token bought per `den` units
/// of the token sold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Units of the token bought (the numerator of the rate).
    pub num: U256,
    /// Units of the token sold (the denominator of the rate); non-zero in any rate
    /// [`marginal_rate`] returns.
    pub den: U256,
}

/// The marginal rate of `swap` before it: from the quote's depth when it has one (exact), else
/// from its `venue_price` (quote units per whole base token) and the pair's decimals. `None` when
/// the venue reports no price.
pub fn marginal_rate(swap: &Swap, quote: &Quote, pair: &Pair) -> Option<Rate> {
    let rate = match &quote.depth {
        Some(Depth::ConstantProduct {
            reserve_in,
            reserve_out,
            ..
        }) => Rate {
            num: *reserve_out,
            den: *reserve_in,
        },
        None if swap.sell == pair.base => Rate {
            num: quote.venue_price,
            den: pair.base.one(),
        },
        None => Rate {
            num: pair.base.one(),
            den: quote.venue_price,
        },
    };
    (!rate.num.is_zero() && !rate.den.is_zero()).then_some(rate)
}

/// Whether a trade of `amount_in` (LP fee `fee` of it) returning `amount_out` stays within
/// `max_bps` of price impact against `rate`. `None` when the arithmetic overflows (the caller
/// refuses: fail closed). A zero output is always over the limit.
pub fn within(
    amount_in: U256,
    fee: U256,
    amount_out: U256,
    rate: Rate,
    max_bps: u32,
) -> Option<bool> {
    let net = amount_in.checked_sub(fee)?;
    if net.is_zero() || amount_out.is_zero() {
        return Some(false);
    }
    // impact ≤ L/10000  ⇔  (net·num − out·den) · 10000 ≤ L · out·den
    let paid = net.checked_mul(rate.num)?;
    let at_marginal = amount_out.checked_mul(rate.den)?;
    if at_marginal >= paid {
        return Some(true);
    }
    let over = (paid - at_marginal).checked_mul(U256::from(BPS))?;
    Some(over <= at_marginal.checked_mul(U256::from(max_bps))?)
}

/// The impact in bps (rounded up), for messages and reports. `None` on overflow.
/// An output of zero is reported as `U256::MAX` bps.
pub fn impact_bps(amount_in: U256, fee: U256, amount_out: U256, rate: Rate) -> Option<U256> {
    let net = amount_in.checked_sub(fee)?;
    let paid = net.checked_mul(rate.num)?;
    let at_marginal = amount_out.checked_mul(rate.den)?;
    if at_marginal.is_zero() {
        return Some(U256::MAX);
    }
    let over = paid
        .saturating_sub(at_marginal)
        .checked_mul(U256::from(BPS))?;
    Some(over.div_ceil(at_marginal))
}

/// The LP fee the pool takes of `amount_in`, as venues report it (rounded down).
pub fn lp_fee(amount_in: U256, fee_bps: u32) -> U256 {
    amount_in.saturating_mul(U256::from(fee_bps)) / U256::from(BPS)
}

/// The exact output and LP fee of `amount_in` on `depth`, as the venue computes them.
pub fn quote_on(depth: &Depth, amount_in: U256) -> Option<(U256, U256)> {
    match depth {
        Depth::ConstantProduct {
            reserve_in,
            reserve_out,
            fee_bps,
        } => {
            let out = get_amount_out(amount_in, *reserve_in, *reserve_out, *fee_bps).ok()?;
            Some((out, lp_fee(amount_in, *fee_bps)))
        }
    }
}

/// The largest input, at most `cap`, whose trade on `depth` stays within `max_bps` of price
/// impact, checked with the venue's own integer math; zero when no size does. `None` on
/// overflow.
pub fn max_amount_in(depth: &Depth, cap: U256, max_bps: u32) -> Option<U256> {
    let Depth::ConstantProduct {
        reserve_in,
        reserve_out,
        fee_bps,
    } = depth;
    let rate = Rate {
        num: *reserve_out,
        den: *reserve_in,
    };
    let ok = |a: U256| -> Option<bool> {
        if a.is_zero() {
            return Some(true);
        }
        let (out, fee) = quote_on(depth, a)?;
        within(a, fee, out, rate, max_bps)
    };
    // Closed form on the fee-free pool: net ≤ R_in · L / 10000; the input is net grossed up by
    // the fee.
    let net = reserve_in.checked_mul(U256::from(max_bps))? / U256::from(BPS);
    let keep = BPS.checked_sub(*fee_bps).filter(|k| *k > 0)?;
    let guess = net.checked_mul(U256::from(BPS))?.div_ceil(U256::from(keep));
    let mut hi = guess.saturating_add(U256::from(1u8)).min(cap);
    if ok(hi)? {
        return Some(hi);
    }
    // Rounding made the guess a little too large: step down in doubling steps to a passing
    // size (a few units, usually), then bisect between it and the last failing one.
    let mut step = U256::from(1u8);
    let mut lo = hi.saturating_sub(step);
    while !ok(lo)? {
        if lo.is_zero() {
            return Some(U256::ZERO);
        }
        hi = lo;
        step = step.saturating_mul(U256::from(2u8));
        lo = lo.saturating_sub(step);
    }
    while hi - lo > U256::from(1u8) {
        let mid = lo + (hi - lo) / U256::from(2u8);
        if ok(mid)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(lo)
}

/// The price-impact check of the risk gate on a swap, sized `amount` (the intent's size or
/// what other limits cut it to), given the venue's `quote` for the intent's full size:
/// `Ok(None)` when within `max_bps`; `Ok(Some((smaller, reason)))` when the largest size within
/// it is smaller (reason code `price_impact`, "partial unwind" when the swap `reduces` exposure);
/// `Err` with code `price_impact` when no size is within it, or the venue cannot say which
/// (no depth), and `overflow` / `no_venue_price` when it cannot be computed (fail closed).
///
/// # Errors
///
/// A [`Refusal`] for the gate to pass on:
/// - `no_venue_price` when [`marginal_rate`] finds no marginal price in the quote;
/// - `overflow` when the impact or the size search overflows 256 bits;
/// - `price_impact` when `amount` is over the limit and either the quote has no [`Depth`] to
///   search a smaller size on, or even the smallest size is over it.
pub fn limit_swap(
    swap: &Swap,
    amount: U256,
    quote: &Quote,
    pair: &Pair,
    max_bps: u32,
    reduces: bool,
) -> Result<Option<(U256, Refusal)>, Refusal> {
    if amount.is_zero() {
        // Other limits left nothing: the caller refuses it as such.
        return Ok(None);
    }
    let overflow = || Refusal::new("overflow", "price impact overflows");
    let rate = marginal_rate(swap, quote, pair)
        .ok_or_else(|| Refusal::new("no_venue_price", "the venue reports no marginal price"))?;
    // A smaller trade than the quoted one has no more impact than it, so without the venue's
    // depth the quote's own impact is the conservative check.
    let (size, out, fee) = match (&quote.depth, amount == swap.amount_in) {
        (Some(d), false) => {
            let (out, fee) = quote_on(d, amount).ok_or_else(overflow)?;
            (amount, out, fee)
        }
        _ => (swap.amount_in, quote.amount_out, quote.fee),
    };
    if within(size, fee, out, rate, max_bps).ok_or_else(overflow)? {
        return Ok(None);
    }
    // The limit is already exceeded; the figure is for the message only.
    let bps = impact_bps(size, fee, out, rate)
        .map_or_else(|| "an overflowing number of".to_string(), |b| b.to_string());
    let detail = format!(
        "{size} units of {} move the price {bps} bps (max {max_bps})",
        swap.sell
    );
    let Some(depth) = &quote.depth else {
        return Err(Refusal::new("price_impact", detail));
    };
    match max_amount_in(depth, amount, max_bps).ok_or_else(overflow)? {
        a if a.is_zero() => Err(Refusal::new("price_impact", detail)),
        a => {
            let unwind = if reduces { "partial unwind: " } else { "" };
            Ok(Some((
                a,
                Refusal::new("price_impact", format!("{unwind}{detail}: cut to {a}")),
            )))
        }
    }
}

/// The verdict once the limits have sized `swap`: approved with the quote's output less
/// `slippage_bps` when nothing `cut` it; refused (`resized_to_zero`) when a cut left nothing;
/// otherwise [`resized`] to `amount`. A slippage limit above 10000 bps is refused (`bad_limit`).
pub fn sized_verdict(
    swap: &Swap,
    amount: U256,
    cut: Option<Refusal>,
    quote: &Quote,
    slippage_bps: u32,
) -> Verdict {
    match cut {
        None => match min_out_for_slippage(quote.amount_out, slippage_bps) {
            Some(min_amount_out) => Verdict::Approve { min_amount_out },
            None => Verdict::Refuse(Refusal::new(
                "bad_limit",
                format!("max_slippage_bps {slippage_bps} exceeds 10000"),
            )),
        },
        Some(_) if amount.is_zero() => Verdict::Refuse(Refusal::new(
            "resized_to_zero",
            "limits leave nothing to trade",
        )),
        Some(reason) => resized(swap, amount, quote, slippage_bps, reason),
    }
}

/// The verdict for `swap` cut to `amount` (non-zero, not above the intent) for `reason`: the
/// minimum output is `slippage_bps` below the smaller trade's exact output when the quote has the
/// venue's depth; without it the quote was for more, and a smaller trade gets a better price, so
/// the proportional share of the quote's minimum is conservative.
pub fn resized(
    swap: &Swap,
    amount: U256,
    quote: &Quote,
    slippage_bps: u32,
    reason: Refusal,
) -> Verdict {
    let exact = quote
        .depth
        .as_ref()
        .and_then(|d| quote_on(d, amount))
        .map(|(out, _)| out);
    let min = match exact {
        Some(out) => min_out_for_slippage(out, slippage_bps),
        None => min_out_for_slippage(quote.amount_out, slippage_bps)
            .map(|m| m.saturating_mul(amount) / swap.amount_in.max(U256::from(1u8))),
    };
    match min {
        Some(min_amount_out) => Verdict::Resize {
            amount_in: amount,
            min_amount_out,
            reason,
        },
        None => Verdict::Refuse(Refusal::new(
            "bad_limit",
            format!("max_slippage_bps {slippage_bps} exceeds 10000"),
        )),
    }
}

/// A bet of `investment` collateral on `outcome` of an FPMM with outcome-token balances `pool`
/// and LP `fee` (1e18 = 100 %): whether the average price per outcome token (net of the fee)
/// stays within `max_bps` of the outcome's marginal price before the buy, and that impact in bps
/// (rounded up). Errors as the contract's math does (invalid outcome, empty pool, overflow).
///
/// # Errors
///
/// The [`FpmmError`] of [`fpmm::calc_buy_amount`] (invalid outcome, fee of 100 % or more, empty
/// pool, SafeMath overflow), or of [`bet_impact_of`].
pub fn bet_impact(
    investment: U256,
    outcome: usize,
    pool: &[U256],
    fee: U256,
    max_bps: u32,
) -> Result<(bool, U256), FpmmError> {
    let tokens = fpmm::calc_buy_amount(investment, outcome, pool, fee)?;
    bet_impact_of(investment, tokens, outcome, pool, fee, max_bps)
}

/// [`bet_impact`] for a bet the venue quotes at `tokens` outcome tokens, against the marginal
/// price of `pool` before the buy.
///
/// # Errors
///
/// - [`FpmmError::InvalidOutcome`] if `outcome` is not an index of `pool`;
/// - [`FpmmError::ZeroBalances`] if any pool balance is zero (no marginal price);
/// - [`FpmmError::Arithmetic`] if the marginal price or impact overflows 256 bits, or the fee
///   (`investment · fee / 1e18`) exceeds the investment.
pub fn bet_impact_of(
    investment: U256,
    tokens: U256,
    outcome: usize,
    pool: &[U256],
    fee: U256,
    max_bps: u32,
) -> Result<(bool, U256), FpmmError> {
    let (num, den) = fpmm::marginal_price(outcome, pool)?;
    let fee_units = investment.checked_mul(fee).ok_or(FpmmError::Arithmetic)? / fpmm::one();
    // Outcome tokens per unit of collateral at the marginal price: den / num.
    let rate = Rate { num: den, den: num };
    let ok = within(investment, fee_units, tokens, rate, max_bps).ok_or(FpmmError::Arithmetic)?;
    let bps = impact_bps(investment, fee_units, tokens, rate).ok_or(FpmmError::Arithmetic)?;
    Ok((ok, bps))
}

/// The largest bet, at most `cap`, within `max_bps` of price impact on the FPMM (the contract's
/// own buy math, searched: impact grows with size); zero when no bet is. Errors as
/// [`bet_impact`].
///
/// # Errors
///
/// Those of [`bet_impact`], from the first size tried (`cap`) or any size of the search.
pub fn max_bet(
    outcome: usize,
    pool: &[U256],
    fee: U256,
    cap: U256,
    max_bps: u32,
) -> Result<U256, FpmmError> {
    if cap.is_zero() || bet_impact(cap, outcome, pool, fee, max_bps)?.0 {
        return Ok(cap);
    }
    let (mut lo, mut hi) = (U256::ZERO, cap);
    while hi - lo > U256::from(1u8) {
        let mid = lo + (hi - lo) / U256::from(2u8);
        if bet_impact(mid, outcome, pool, fee, max_bps)?.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn u(v: u128) -> U256 {
        U256::from(v)
    }

    fn pool(ri: u128, ro: u128) -> Depth {
        Depth::ConstantProduct {
            reserve_in: u(ri),
            reserve_out: u(ro),
            fee_bps: 30,
        }
    }

    #[test]
    fn impact_on_a_constant_product_pool_is_net_input_over_reserve() {
        // 990 USDC net into a 100,000 USDC pool: the price paid is 99 bps above the marginal.
        let d = pool(100_000_000_000, 50 * 10u128.pow(18));
        let a = u(990_000_000) * u(10_000) / u(9_970); // net of the 0.3 % fee: 990 USDC
        let (out, fee) = quote_on(&d, a).unwrap();
        let rate = Rate {
            num: u(50 * 10u128.pow(18)),
            den: u(100_000_000_000),
        };
        let bps = impact_bps(a, fee, out, rate).unwrap();
        assert_eq!(fee, a - u(990_000_000));
        assert_eq!(bps, u(100), "99 bps plus the output's rounding, rounded up");
        assert_eq!(within(a, fee, out, rate, 100), Some(true));
        assert_eq!(within(a, fee, out, rate, 98), Some(false));
    }

    #[test]
    fn max_amount_in_is_the_largest_size_within_the_limit() {
        let d = pool(5_000_000_000_000, 2_500 * 10u128.pow(18));
        let max = max_amount_in(&d, U256::MAX, 100).unwrap();
        let rate = Rate {
            num: u(2_500 * 10u128.pow(18)),
            den: u(5_000_000_000_000),
        };
        let check = |a: U256| {
            let (out, fee) = quote_on(&d, a).unwrap();
            within(a, fee, out, rate, 100).unwrap()
        };
        assert!(check(max));
        assert!(!check(max + u(1)), "one unit more is over the limit");
        // 1 % of a 5M pool: 50,000 USDC net of fee, grossed up by 0.3 %: 50,150.45 USDC.
        assert!(
            (u(50_150_000_000)..u(50_150_452_000)).contains(&max),
            "{max}"
        );
        assert_eq!(
            max_amount_in(&d, u(7), 100),
            Some(u(7)),
            "never above the cap"
        );
    }

    #[test]
    fn a_bet_moves_the_outcome_price_and_the_largest_bet_within_the_limit_is_found() {
        // An even market of 1,000 tokens a side, 2 % fee: a small bet pays about the marginal
        // price (0.5), a bet of half the pool far more.
        let pool = [u(1_000_000_000), u(1_000_000_000)];
        let fee = fpmm::one() / u(50);
        let (ok, bps) = bet_impact(u(1_000_000), 0, &pool, fee, 100).unwrap();
        assert!(ok && bps <= u(20), "{bps}");
        let (ok, bps) = bet_impact(u(500_000_000), 0, &pool, fee, 100).unwrap();
        // net n = 490 on B = 1000 a side: the price paid is n / (2B + n) = 19.7 % above.
        assert!(!ok && (u(1_967)..u(1_970)).contains(&bps), "{bps}");
        let max = max_bet(0, &pool, fee, u(500_000_000), 100).unwrap();
        assert!(bet_impact(max, 0, &pool, fee, 100).unwrap().0);
        assert!(!bet_impact(max + u(1), 0, &pool, fee, 100).unwrap().0);
        // n / (2B + n) ≤ 1 %: n ≤ 20.2 tokens net, 20.6 with the 2 % fee.
        assert!((u(20_500_000)..u(20_700_000)).contains(&max), "{max}");
    }

    proptest! {
        #[test]
        fn resized_trades_are_within_the_limit_and_never_grow(
            ri in 10u128.pow(6)..10u128.pow(30), ro in 10u128.pow(6)..10u128.pow(30),
            cap in 1u128..10u128.pow(30), bps in 1u32..5_000,
        ) {
            let d = pool(ri, ro);
            let rate = Rate { num: u(ro), den: u(ri) };
            let a = max_amount_in(&d, u(cap), bps).unwrap();
            prop_assert!(a <= u(cap));
            if !a.is_zero() {
                let (out, fee) = quote_on(&d, a).unwrap();
                prop_assert!(within(a, fee, out, rate, bps).unwrap());
            }
        }
    }
}
