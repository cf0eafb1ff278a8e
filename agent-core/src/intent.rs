//! What a strategy wants (an [`Intent`]), what the venue says it would get ([`Quote`]), what the
//! risk gate lets through ([`Order`]) and what happened ([`Fill`]).

use std::fmt;
use std::sync::Arc;

use crate::amount::{Token, U256};

/// A deterministic id: the strategy, the event time and the intent's position among that event's
/// intents. The same input always yields the same ids, so a restart can tell what it already sent.
/// Displayed as `strategy:ts:seq`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IntentId {
    strategy: Arc<str>,
    ts: i64,
    seq: u32,
}

impl IntentId {
    /// The id of intent number `seq` of the event at `ts` (unix seconds) from strategy
    /// `strategy` (its [`crate::Strategy::name`]).
    pub fn new(strategy: impl Into<Arc<str>>, ts: i64, seq: u32) -> Self {
        Self {
            strategy: strategy.into(),
            ts,
            seq,
        }
    }
    /// The strategy part: the strategy's name, with a `#k` or `#unwind{seq}` suffix for a
    /// bundle's legs and unwinds.
    pub fn strategy(&self) -> &str {
        &self.strategy
    }
    /// The id of leg `k` of this bundle: `strategy#k:ts:seq`, as deterministic as the bundle's.
    pub fn leg(&self, k: usize) -> Self {
        Self::new(format!("{}#{k}", self.strategy), self.ts, self.seq)
    }
    /// The id of unwind `k` of this bundle (selling back what its legs bought):
    /// `strategy#unwind{seq}:ts:k`, under the bundle's own time.
    pub fn unwind(&self, k: u32) -> Self {
        Self::new(format!("{}#unwind{}", self.strategy, self.seq), self.ts, k)
    }

    /// Parses an id's text form `strategy:ts:seq` (the strategy may hold `:` itself).
    pub fn parse(id: &str) -> Option<IntentId> {
        let mut parts = id.rsplitn(3, ':');
        let (seq, ts, strategy) = (parts.next()?, parts.next()?, parts.next()?);
        Some(Self::new(strategy, ts.parse().ok()?, seq.parse().ok()?))
    }

    /// The bundle a leg's id (`strategy#k:ts:seq`) or an unwind's id
    /// (`strategy#unwind{seq}:ts:k`) belongs to, as `strategy:ts:seq`; `None` for any other id.
    pub fn bundle_of(id: &str) -> Option<IntentId> {
        let member = Self::parse(id)?;
        let (base, tag) = member.strategy.rsplit_once('#')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let seq = if digits(tag) {
            member.seq
        } else {
            tag.strip_prefix("unwind")
                .filter(|n| digits(n))?
                .parse()
                .ok()?
        };
        Some(Self::new(base, member.ts, seq))
    }

    /// The time of the event that produced the intent, unix seconds.
    pub fn ts(&self) -> i64 {
        self.ts
    }
    /// The intent's position among its event's intents (from 0), or the unwind number of an
    /// unwind's id; a cycle's redemption uses [`crate::prediction::REDEEM_SEQ`].
    pub fn seq(&self) -> u32 {
        self.seq
    }
}

impl IntentId {
    /// The id's text form, `strategy:ts:seq` (as [`fmt::Display`] writes it), in a `String`
    /// sized for it: a replay's journal files three records under each intent's id.
    pub fn text(&self) -> String {
        let (mut ts, mut seq) = (itoa::Buffer::new(), itoa::Buffer::new());
        let (ts, seq) = (ts.format(self.ts), seq.format(self.seq));
        let mut out = String::with_capacity(self.strategy.len() + ts.len() + seq.len() + 2);
        for part in [&*self.strategy, ":", ts, ":", seq] {
            out.push_str(part);
        }
        out
    }
}

impl fmt::Display for IntentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (mut ts, mut seq) = (itoa::Buffer::new(), itoa::Buffer::new());
        for part in [
            &*self.strategy,
            ":",
            ts.format(self.ts),
            ":",
            seq.format(self.seq),
        ] {
            f.write_str(part)?;
        }
        Ok(())
    }
}

/// Sell exactly `amount_in` of `sell` for as much `buy` as the venue gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swap {
    /// The token given up.
    pub sell: Token,
    /// The token received.
    pub buy: Token,
    /// How much of `sell` to spend, in its units (the risk gate may cut it, never raise it).
    pub amount_in: U256,
    /// The venue to trade on, by its key in a [`crate::VenueSet`] (two DEXes of one pair);
    /// `None`: the venue of the pair.
    pub venue: Option<String>,
}

impl Swap {
    /// Sells `amount_in` of `sell` for `buy` on the venue of the pair.
    pub fn new(sell: &Token, buy: &Token, amount_in: U256) -> Self {
        Self {
            sell: sell.clone(),
            buy: buy.clone(),
            amount_in,
            venue: None,
        }
    }

    /// The same swap on the venue keyed `venue` in a [`crate::VenueSet`].
    pub fn on(mut self, venue: &str) -> Self {
        self.venue = Some(venue.to_string());
        self
    }
}

/// What a strategy asks for. The risk gate decides whether it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Intent {
    /// Sell a token for another on a venue of the agent's pair.
    Swap(Swap),
    /// Buy outcome tokens of a prediction market.
    Bet(Bet),
    /// Redeem the positions held in resolved prediction markets for collateral.
    Redeem(Redeem),
    /// Swaps judged as a whole and executed in order (a cross-venue arbitrage): every leg is
    /// judged before the first is sent, and the bundle is refused if any leg would be refused or
    /// cut; a leg that sells what the previous one buys sells exactly what that one filled. A
    /// leg that fails after an earlier one filled is reported and the earlier legs are unwound
    /// (sold back on their venue within the limits).
    Bundle(Vec<Swap>),
}

/// Redeem every position held in the resolved `markets` (addresses or ids) for `collateral`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeem {
    /// The resolved markets holding our outcome tokens when the redemption was decided, for the
    /// audit stream and the journal; the venue redeems every resolved position it holds.
    pub markets: Vec<String>,
    /// The collateral token the positions pay out in (the agent's numéraire).
    pub collateral: Token,
}

/// Put `investment` collateral on `outcome` of `market` (an address or id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bet {
    /// The market's address or id, as in [`crate::MarketView::id`].
    pub market: String,
    /// Index of the outcome bought, into the market's pool balances (0 and 1 for a binary
    /// market).
    pub outcome: usize,
    /// Collateral spent, in its units, LP fee included.
    pub investment: U256,
    /// The collateral token; the risk gate refuses a bet not in the agent's numéraire.
    pub collateral: Token,
}

impl Intent {
    /// An [`Intent::Swap`] selling `amount_in` units of `sell` for `buy` on the pair's venue.
    pub fn swap(sell: &Token, buy: &Token, amount_in: U256) -> Self {
        Intent::Swap(Swap::new(sell, buy, amount_in))
    }
    /// The swap of an [`Intent::Swap`]; `None` for any other intent (a bundle's legs included).
    pub fn as_swap(&self) -> Option<&Swap> {
        match self {
            Intent::Swap(s) => Some(s),
            Intent::Bet(_) | Intent::Redeem(_) | Intent::Bundle(_) => None,
        }
    }
    /// The bet of an [`Intent::Bet`]; `None` for any other intent.
    pub fn as_bet(&self) -> Option<&Bet> {
        match self {
            Intent::Bet(b) => Some(b),
            Intent::Swap(_) | Intent::Redeem(_) | Intent::Bundle(_) => None,
        }
    }
}

/// A venue's answer to "what would this swap give right now", before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// What the swap would return now, in units of the token bought, LP fee and price impact
    /// included (gas not deducted).
    pub amount_out: U256,
    /// LP fee, in units of the token sold.
    pub fee: U256,
    /// Gas the venue expects to burn, in the chain's native units (wei).
    pub gas_native: U256,
    /// The gas price the transaction would pay, wei per gas unit.
    pub gas_price_wei: U256,
    /// What the portfolio will be debited for gas: token and amount.
    pub gas_cost: (Token, U256),
    /// The venue's marginal price before the trade, quote units per whole base token; the risk
    /// gate compares it with its reference price.
    pub venue_price: U256,
    /// How the venue's price moves with size, when the venue can say: the risk gate resizes an
    /// intent to its price-impact limit with it. `None`: the gate can only measure this quote's
    /// impact, and refuses what exceeds the limit.
    pub depth: Option<Depth>,
}

/// The liquidity a quote was computed on, exactly as the venue's own math uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Depth {
    /// A constant-product pool (Uniswap V2, `x · y = k`): its reserve of the token sold and of the
    /// token bought, in token units, and the LP fee in bps (30 for Uniswap V2). Outputs follow
    /// [`crate::amm::get_amount_out`].
    ConstantProduct {
        /// The pool's reserve of the token sold, in its units.
        reserve_in: U256,
        /// The pool's reserve of the token bought, in its units.
        reserve_out: U256,
        /// LP fee in basis points of the input (30 = 0.3 %).
        fee_bps: u32,
    },
}

/// An intent the risk gate approved (possibly resized), with the minimum output the venue must
/// honour or refuse the trade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// The id of the intent approved (a bundle leg's or unwind's own id for those).
    pub id: IntentId,
    /// The swap to execute; its `amount_in` is the gate's size when the verdict resized it.
    pub swap: Swap,
    /// The least the fill may return, in units of `swap.buy`: the venue refuses to fill below
    /// it ([`crate::VenueError::Slippage`]) and a chain venue passes it as the router's
    /// `amountOutMin`.
    pub min_amount_out: U256,
}

/// A completed trade, in exact token units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fill {
    /// The id of the order filled.
    pub id: IntentId,
    /// Execution time, unix seconds: the event time the order was executed at.
    pub ts: i64,
    /// The token given up.
    pub sell: Token,
    /// The token received.
    pub buy: Token,
    /// What left the book, units of `sell` (LP fee included; gas is in `gas_cost`).
    pub amount_in: U256,
    /// What arrived, units of `buy`.
    pub amount_out: U256,
    /// LP fee, in units of the token sold.
    pub fee: U256,
    /// The LP fee valued in the portfolio's quote token at execution.
    pub fee_quote: U256,
    /// Gas burned, in native units (wei).
    pub gas_native: U256,
    /// What the portfolio is debited for gas: token and amount.
    pub gas_cost: (Token, U256),
    /// Gas valued in the quote token at execution.
    pub gas_quote: U256,
    /// Transaction hash, when the venue is a chain.
    pub tx_hash: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::IntentId;

    #[test]
    fn an_ids_text_is_strategy_ts_seq_and_parses_back_to_the_id() {
        for (strategy, ts, seq) in [
            ("ema_cross", 1_544_932_800, 0),
            ("a:b", -1, u32::MAX),
            ("arb#unwind3", i64::MIN, 7),
            ("", i64::MAX, 12),
        ] {
            let id = IntentId::new(strategy, ts, seq);
            let expected = format!("{strategy}:{ts}:{seq}");
            assert_eq!(id.text(), expected);
            assert_eq!(id.to_string(), expected);
            assert_eq!(IntentId::parse(&id.text()), Some(id));
        }
    }

    #[test]
    fn a_legs_and_an_unwinds_id_name_their_bundle_and_no_other_id_does() {
        let bundle = IntentId::new("arb", 3600, 2);
        for member in [
            bundle.leg(0),
            bundle.leg(11),
            bundle.unwind(0),
            bundle.unwind(7),
        ] {
            assert_eq!(
                IntentId::bundle_of(&member.to_string()),
                Some(bundle.clone()),
                "{member}"
            );
        }
        for other in [
            "arb:3600:2",
            "arb#x:3600:2",
            "arb#unwind:3600:0",
            "arb#1:t:2",
            "a#1",
        ] {
            assert_eq!(IntentId::bundle_of(other), None, "{other}");
        }
    }
}
