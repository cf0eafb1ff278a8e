//! Bundles are judged as a whole (no leg without the other): on two paper pools of one pair a
//! bundle whose second leg would be cut is refused before anything is sent, a failed second
//! leg is reported and the first is sold back within the limits, and a bundle that passes
//! fills both legs.

use defai::connectors::{PaperAmmConfig, PaperVenue};
use defai::core::{
    Agent, AgentReport, Bar, Context, EventReplay, Fill, Intent, MarketEvent, MarketSet, Order,
    Pair, PairMarket, Portfolio, Quote, Strategy, StrategyError, Swap, U256, Venue, VenueError,
    VenueSet,
};

/// Proposes `legs` as one bundle on the first event, nothing after.
struct OneBundle(Option<Vec<Swap>>);

impl Strategy for OneBundle {
    fn name(&self) -> &str {
        "bundle"
    }
    fn on_event(&mut self, _: &MarketEvent, _: &Context<'_>) -> Result<Vec<Intent>, StrategyError> {
        Ok(self.0.take().map(Intent::Bundle).into_iter().collect())
    }
}

/// A paper pool whose executions fail when `fail` is set (a leg the chain would revert).
struct Failing {
    inner: PaperVenue,
    fail: bool,
}

impl Venue for Failing {
    fn name(&self) -> &str {
        "failing"
    }
    fn observe(&mut self, event: &MarketEvent) {
        self.inner.observe(event);
    }
    async fn quote(&mut self, swap: &Swap) -> Result<Quote, VenueError> {
        self.inner.quote(swap).await
    }
    async fn execute(&mut self, order: &Order, ts: i64) -> Result<Fill, VenueError> {
        if self.fail {
            return Err(VenueError::Rejected("reverted".into()));
        }
        self.inner.execute(order, ts).await
    }
}

fn flat(ts: i64, p: f64) -> Bar {
    Bar {
        ts,
        open: p,
        high: p,
        low: p,
        close: p,
        volume: 1.0,
    }
}

/// Pools "a" (2,000 USDC per ETH) and "b" (2,040), `depth_b` USDC deep, for three hours.
fn run(legs: impl Fn(&Pair) -> Vec<Swap>, depth_b: u64, fail_b: bool) -> AgentReport {
    let pair = Pair::eth_usdc();
    let events = (0..3)
        .map(|i| {
            let entry = |key: &str, p: f64| PairMarket {
                pair: pair.clone(),
                bar: flat(i * 3600, p),
                pool: None,
                venue: Some(key.to_string()),
            };
            MarketEvent::Markets(Box::new(MarketSet {
                ts: i * 3600,
                markets: vec![entry("a", 2000.0), entry("b", 2040.0)],
            }))
        })
        .collect();
    let deep = PaperAmmConfig::default_for(&pair);
    let shallow = PaperAmmConfig {
        depth_quote: U256::from(depth_b) * pair.quote.one(),
        ..deep.clone()
    };
    let venue = |key: &str, cfg: PaperAmmConfig, fail: bool| Failing {
        inner: PaperVenue::new(pair.clone(), cfg).at_venue(key),
        fail,
    };
    let venues = VenueSet::keyed(vec![
        ("a".into(), pair.clone(), venue("a", deep, false)),
        ("b".into(), pair.clone(), venue("b", shallow, fail_b)),
    ])
    .unwrap();
    let start = U256::from(10_000u64) * pair.quote.one();
    let agent = Agent::new(
        pair.clone(),
        EventReplay::new(events),
        venues,
        Box::new(OneBundle(Some(legs(&pair)))),
        Portfolio::with_balances([(pair.quote.clone(), start)]),
    );
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(agent.run())
        .unwrap()
}

/// Buy 0.5 ETH worth on "a" (1,000 USDC), sell it on "b".
fn arbitrage(pair: &Pair) -> Vec<Swap> {
    vec![
        Swap::new(
            &pair.quote,
            &pair.base,
            U256::from(1_000u64) * pair.quote.one(),
        )
        .on("a"),
        Swap::new(
            &pair.base,
            &pair.quote,
            U256::from(5u64) * pair.base.one() / U256::from(10u8),
        )
        .on("b"),
    ]
}

#[test]
fn a_bundle_that_passes_fills_both_legs_on_their_venues_and_books_the_gap() {
    let r = run(arbitrage, 5_000_000, false);
    assert_eq!(r.fills, 2, "{:?}", r.risk);
    assert_eq!(
        r.portfolio.balance(&r.pair.base),
        U256::ZERO,
        "the second leg sold what the first bought"
    );
    // 2 % apart, 0.6 % of fees, a little impact: the round trip gains.
    assert!(
        r.end_equity > r.start_equity,
        "{} → {}",
        r.start_equity,
        r.end_equity
    );
}

#[test]
fn a_bundle_whose_second_leg_would_be_cut_is_refused_whole_and_nothing_is_sent() {
    // Pool "b" only 40,000 USDC deep: selling ~1,000 USDC of ETH into it moves its price by
    // ~2.5 %, past the 100 bps price-impact limit, so the gate would cut that leg.
    let r = run(arbitrage, 40_000, false);
    assert_eq!(r.fills, 0, "no leg without the other");
    assert_eq!(
        r.risk.refused_by_reason.get("bundle_leg_cut"),
        Some(&1),
        "{:?}",
        r.risk
    );
    assert_eq!(r.end_equity, r.start_equity);
}

#[test]
fn a_failed_second_leg_is_reported_and_the_first_leg_is_sold_back() {
    let r = run(arbitrage, 5_000_000, true);
    assert_eq!(r.execution_failures, 1, "the second leg: {:?}", r.risk);
    assert_eq!(r.fills, 2, "the first leg and its unwind");
    assert_eq!(
        r.portfolio.balance(&r.pair.base),
        U256::ZERO,
        "nothing left from the first leg"
    );
    // The unwind costs the round trip on pool "a" and nothing more: 2 × 0.3 % of 1,000 USDC in
    // LP fees and 2 × 4.8 USDC of gas (120,000 gas at 20 gwei, ETH at 2,000), ~15.6 USDC.
    let lost = r.start_equity - r.end_equity;
    assert!(lost < U256::from(17u64) * r.pair.quote.one(), "lost {lost}");
    assert!(lost > U256::from(15u64) * r.pair.quote.one(), "lost {lost}");
}
