//! Balances in exact token units, and the fees and gas paid to get them.

use crate::amount::{Token, U256, base_to_quote};
use crate::intent::Fill;
use crate::market::Pair;

/// Why a fill or a gas charge could not be booked; the portfolio is unchanged when one is
/// returned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PortfolioError {
    /// A token's debits (the amount sold, the gas) exceed its balance plus what the same fill
    /// credits of it.
    #[error("fill {id} debits {need} units of {token} but the portfolio holds {have}")]
    Insufficient {
        /// The intent id of the fill or charge, as text.
        id: String,
        /// The token that would go negative.
        token: Token,
        /// The total debit of `token`, in its units.
        need: U256,
        /// The balance of `token` before the booking, in its units.
        have: U256,
    },
    /// A balance or a debit would exceed 256 bits.
    #[error("balance of {token} overflows")]
    Overflow {
        /// The token whose balance or debit overflows.
        token: Token,
    },
}

/// The agent's holdings. Every change goes through [`Portfolio::apply_fill`], which either
/// applies a whole fill or nothing.
#[derive(Debug, Clone, Default)]
pub struct Portfolio {
    // A handful of tokens: a vector beats a map and keeps iteration order deterministic.
    balances: Vec<(Token, U256)>,
    // Float mirror of `balances` for per-bar marking (reports and signals), kept in step by
    // `set_balance`, the only writer.
    floats: Vec<f64>,
    fees_quote: U256,
    gas_native: U256,
    gas_quote: U256,
    fills: u64,
    // The agent's own pair and where its tokens sit in `balances` (tokens are only ever
    // appended, so a slot never moves), for the per-bar float lookup without a scan.
    tracked: Option<Tracked>,
}

/// A pair [`Portfolio::track`] was told of: its two tokens and their slots in the book (`None`
/// until the token is first set).
#[derive(Debug, Clone)]
struct Tracked {
    quote: Token,
    base: Token,
    quote_slot: Option<usize>,
    base_slot: Option<usize>,
}

impl Portfolio {
    /// An empty portfolio: no balances, no fees, gas or fills booked.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts with the given balances.
    pub fn with_balances(balances: impl IntoIterator<Item = (Token, U256)>) -> Self {
        let mut p = Self::new();
        for (t, a) in balances {
            p.set_balance(&t, a);
        }
        p
    }

    /// The balance of `token` in its units; zero for a token never held.
    #[inline]
    pub fn balance(&self, token: &Token) -> U256 {
        self.balances
            .iter()
            .find(|(t, _)| t == token)
            .map(|(_, a)| *a)
            .unwrap_or(U256::ZERO)
    }

    /// Overwrites a balance (deposits, or reconciliation from chain balances).
    pub fn set_balance(&mut self, token: &Token, amount: U256) {
        let f = token.to_f64(amount);
        match self.balances.iter().position(|(t, _)| t == token) {
            Some(i) => {
                self.balances[i].1 = amount;
                self.floats[i] = f;
            }
            None => {
                if let Some(t) = &mut self.tracked {
                    let slot = Some(self.balances.len());
                    if t.quote == *token {
                        t.quote_slot = slot;
                    }
                    if t.base == *token {
                        t.base_slot = slot;
                    }
                }
                self.balances.push((token.clone(), amount));
                self.floats.push(f);
            }
        }
    }

    /// Remembers `pair` (an agent's own) so that [`Portfolio::pair_balances_f64`] on it, or on a
    /// clone of it, reads its two balances without scanning the book. Any other pair is still
    /// looked up by scanning; the answers are the same either way.
    pub fn track(&mut self, pair: &Pair) {
        let slot = |token: &Token| self.balances.iter().position(|(t, _)| t == token);
        self.tracked = Some(Tracked {
            quote_slot: slot(&pair.quote),
            base_slot: slot(&pair.base),
            quote: pair.quote.clone(),
            base: pair.base.clone(),
        });
    }

    /// A balance in whole tokens as a float (for signals and reports).
    #[inline]
    pub fn balance_f64(&self, token: &Token) -> f64 {
        self.balances
            .iter()
            .position(|(t, _)| t == token)
            .map(|i| self.floats[i])
            .unwrap_or(0.0)
    }

    /// Every balance set so far (zeros included), in units, in the order tokens were first
    /// seen.
    pub fn balances(&self) -> &[(Token, U256)] {
        &self.balances
    }

    /// Books a fill: debits what was sold and the gas, credits what was bought, adds up fees and
    /// gas. All-or-nothing: on error the portfolio is unchanged.
    ///
    /// # Errors
    ///
    /// - [`PortfolioError::Insufficient`] when a token's balance plus its credit is less than
    ///   its debits (the amount sold, the gas when paid in it);
    /// - [`PortfolioError::Overflow`] when a credited balance or a summed debit exceeds 256 bits.
    pub fn apply_fill(&mut self, fill: &Fill) -> Result<(), PortfolioError> {
        let (gas_token, gas_amount) = &fill.gas_cost;
        // Net each touched token's credit and debits first (gas may be paid in the token sold
        // or bought), then commit only if every balance stays representable and non-negative.
        let touched = [&fill.sell, &fill.buy, gas_token];
        let mut after: Vec<(&Token, U256)> = Vec::with_capacity(3);
        for token in touched {
            if after.iter().any(|(t, _)| *t == token) {
                continue;
            }
            let have = self.balance(token);
            let mut credit = U256::ZERO;
            let mut debit = U256::ZERO;
            if token == &fill.buy {
                credit = fill.amount_out;
            }
            if token == &fill.sell {
                debit = fill.amount_in;
            }
            if token == gas_token {
                debit = debit
                    .checked_add(*gas_amount)
                    .ok_or_else(|| PortfolioError::Overflow {
                        token: token.clone(),
                    })?;
            }
            let gross = have
                .checked_add(credit)
                .ok_or_else(|| PortfolioError::Overflow {
                    token: token.clone(),
                })?;
            let net = gross
                .checked_sub(debit)
                .ok_or_else(|| PortfolioError::Insufficient {
                    id: fill.id.to_string(),
                    token: token.clone(),
                    need: debit,
                    have,
                })?;
            after.push((token, net));
        }
        for (token, amount) in after {
            self.set_balance(token, amount);
        }
        self.fees_quote = self.fees_quote.saturating_add(fill.fee_quote);
        self.gas_native = self.gas_native.saturating_add(fill.gas_native);
        self.gas_quote = self.gas_quote.saturating_add(fill.gas_quote);
        self.fills += 1;
        Ok(())
    }

    /// Books gas a transaction burned without filling anything (it reverted, or it was an
    /// approval whose swap failed): `amount` units of `token` (the gas token) leave the book,
    /// `gas_quote` (quote units) adds to the gas paid. All-or-nothing, like
    /// [`Portfolio::apply_fill`]; `id` names the intent in an error.
    ///
    /// # Errors
    /// [`PortfolioError::Insufficient`] when the book holds less than `amount` of `token`.
    pub fn charge_gas(
        &mut self,
        id: &str,
        token: &Token,
        amount: U256,
        gas_quote: U256,
    ) -> Result<(), PortfolioError> {
        let have = self.balance(token);
        let net = have
            .checked_sub(amount)
            .ok_or_else(|| PortfolioError::Insufficient {
                id: id.to_string(),
                token: token.clone(),
                need: amount,
                have,
            })?;
        self.set_balance(token, net);
        self.gas_native = self.gas_native.saturating_add(amount);
        self.gas_quote = self.gas_quote.saturating_add(gas_quote);
        Ok(())
    }

    /// Total value in the pair's quote token at `price_units` (quote units per whole base),
    /// rounded down. Tokens other than the pair's are not priced here and count as zero.
    #[inline]
    pub fn equity(&self, pair: &Pair, price_units: U256) -> U256 {
        let quote = self.balance(&pair.quote);
        let base = self.balance(&pair.base);
        quote.saturating_add(base_to_quote(base, pair.base.decimals(), price_units))
    }

    /// Same as [`Portfolio::equity`] as a float, at a float price; for per-bar metrics only.
    #[inline]
    pub fn equity_f64(&self, pair: &Pair, price: f64) -> f64 {
        let (quote, base) = self.pair_balances_f64(pair);
        quote + base * price
    }

    /// The quote and base balances of `pair` in whole tokens as floats (as
    /// [`Portfolio::balance_f64`] gives each): read from two slots for the pair
    /// [`Portfolio::track`] remembers (or a clone of it), else found in one pass over the book.
    #[inline(always)]
    pub fn pair_balances_f64(&self, pair: &Pair) -> (f64, f64) {
        if let Some(t) = &self.tracked
            && t.quote.is(&pair.quote)
            && t.base.is(&pair.base)
        {
            let at = |slot: Option<usize>| slot.map_or(0.0, |i| self.floats[i]);
            return (at(t.quote_slot), at(t.base_slot));
        }
        self.scan_pair_balances_f64(pair)
    }

    /// [`Portfolio::pair_balances_f64`] of a pair not tracked: one pass over the book.
    fn scan_pair_balances_f64(&self, pair: &Pair) -> (f64, f64) {
        let (mut quote, mut base) = (0.0, 0.0);
        for ((token, _), f) in self.balances.iter().zip(&self.floats) {
            if *token == pair.quote {
                quote = *f;
            }
            if *token == pair.base {
                base = *f;
            }
        }
        (quote, base)
    }

    /// LP fees paid, valued in the quote token at each trade.
    pub fn fees_quote(&self) -> U256 {
        self.fees_quote
    }
    /// Gas burned, in native units (wei).
    pub fn gas_native(&self) -> U256 {
        self.gas_native
    }
    /// Gas valued in the quote token at each trade.
    pub fn gas_quote(&self) -> U256 {
        self.gas_quote
    }
    /// The number of fills booked by [`Portfolio::apply_fill`] (gas charges not counted).
    pub fn fills(&self) -> u64 {
        self.fills
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intent::IntentId;

    fn fill(pair: &Pair, sell_quote: bool, amount_in: u64, amount_out: u128, gas: u64) -> Fill {
        let (sell, buy) = if sell_quote {
            (pair.quote.clone(), pair.base.clone())
        } else {
            (pair.base.clone(), pair.quote.clone())
        };
        Fill {
            id: IntentId::new("t", 0, 0),
            ts: 0,
            sell,
            buy,
            amount_in: U256::from(amount_in),
            amount_out: U256::from(amount_out),
            fee: U256::from(amount_in * 3 / 1000),
            fee_quote: U256::from(3_000_000u64),
            gas_native: U256::from(2_400_000_000_000_000u64),
            gas_cost: (pair.quote.clone(), U256::from(gas)),
            gas_quote: U256::from(gas),
            tx_hash: None,
        }
    }

    #[test]
    fn a_tracked_pair_reads_the_same_balances_as_a_scan_as_the_book_changes() {
        let pair = Pair::eth_usdc();
        // Equal tokens built apart: not the tracked ones, so looked up by scanning.
        let twin = Pair::eth_usdc();
        let gas = Token::new("GAS", 18);
        let mut p = Portfolio::with_balances([(gas.clone(), U256::from(7u8))]);
        p.track(&pair);
        let scan = |p: &Portfolio| (p.balance_f64(&pair.quote), p.balance_f64(&pair.base));
        assert_eq!(
            p.pair_balances_f64(&pair),
            (0.0, 0.0),
            "neither token held yet"
        );
        p.set_balance(&pair.quote, U256::from(2_500_000u64));
        assert_eq!(p.pair_balances_f64(&pair), (2.5, 0.0));
        p.apply_fill(&fill(&pair, true, 1_000_000, 250_000_000_000_000_000, 0))
            .unwrap();
        p.set_balance(&gas, U256::from(9u8));
        for q in [&pair, &twin] {
            assert_eq!(p.pair_balances_f64(q), scan(&p));
            assert_eq!(p.pair_balances_f64(q), (1.5, 0.25));
        }
        // A clone keeps the slots, and tracking again finds tokens already held.
        let mut c = p.clone();
        c.set_balance(&pair.base, U256::from(10u64).pow(U256::from(18u8)));
        assert_eq!(c.pair_balances_f64(&pair), (1.5, 1.0));
        c.track(&twin);
        assert_eq!(c.pair_balances_f64(&twin), (1.5, 1.0));
        assert_eq!(
            p.pair_balances_f64(&pair),
            (1.5, 0.25),
            "the original is unchanged"
        );
    }

    #[test]
    fn fill_moves_exact_units_and_books_fees_and_gas() {
        let pair = Pair::eth_usdc();
        let mut p = Portfolio::with_balances([(pair.quote.clone(), U256::from(10_000_000_000u64))]);
        // Buy 0.5 ETH for 1000 USDC, paying 2.5 USDC of gas.
        let f = fill(
            &pair,
            true,
            1_000_000_000,
            500_000_000_000_000_000,
            2_500_000,
        );
        p.apply_fill(&f).unwrap();
        assert_eq!(p.balance(&pair.quote), U256::from(8_997_500_000u64));
        assert_eq!(
            p.balance(&pair.base),
            U256::from(500_000_000_000_000_000u128)
        );
        assert_eq!(p.fees_quote(), U256::from(3_000_000u64));
        assert_eq!(p.gas_quote(), U256::from(2_500_000u64));
        assert_eq!(p.fills(), 1);
        // Equity at 2000 USDC/ETH: 8997.5 + 1000 = 9997.5 — fees and gas cost equity.
        let eq = p.equity(&pair, U256::from(2_000_000_000u64));
        assert_eq!(eq, U256::from(9_997_500_000u64));
    }

    #[test]
    fn insufficient_balance_leaves_portfolio_unchanged() {
        let pair = Pair::eth_usdc();
        let mut p = Portfolio::with_balances([(pair.quote.clone(), U256::from(1_000_000_000u64))]);
        // Selling all the quote leaves nothing for gas: refused as a whole.
        let f = fill(&pair, true, 1_000_000_000, 1, 1);
        let before = p.clone();
        assert!(matches!(
            p.apply_fill(&f),
            Err(PortfolioError::Insufficient { .. })
        ));
        assert_eq!(p.balances(), before.balances());
        assert_eq!(p.fills(), 0);
    }

    #[test]
    fn gas_in_a_third_token_is_debited_from_it() {
        let pair = Pair::eth_usdc();
        let native = Token::new("GAS", 18);
        let mut p = Portfolio::with_balances([
            (pair.base.clone(), U256::from(10u64)),
            (native.clone(), U256::from(5u64)),
        ]);
        let mut f = fill(&pair, false, 10, 20_000, 0);
        f.gas_cost = (native.clone(), U256::from(4u64));
        p.apply_fill(&f).unwrap();
        assert_eq!(p.balance(&native), U256::from(1u64));
        assert_eq!(p.balance(&pair.base), U256::ZERO);
        assert_eq!(p.balance(&pair.quote), U256::from(20_000u64));
        f.gas_cost = (native.clone(), U256::from(2u64));
        let before = p.clone();
        assert!(p.apply_fill(&f).is_err());
        assert_eq!(p.balances(), before.balances());
    }
}
