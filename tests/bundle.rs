//! Bundles are judged as a whole (no leg without the other): on two paper pools of one pair a
//! bundle whose second leg would be cut is refused before anything is sent, a failed second
//! leg is reported and the first is sold back within the limits, and a bundle that passes
//! fills both legs.

use defai::connectors::{PaperAmmConfig, PaperVenue};
use defai::core::{
    Agent, AgentReport, Bar, Booking, Context, EventReplay, Fill, Intent, LimitGate, MarketEvent,
    MarketSet, Order, Pair, PairMarket, Portfolio, Quote, RiskLimits, Strategy, StrategyError,
    Swap, U256, Venue, VenueError, VenueSet,
};

/// Proposes each event's intents from a script, in order (nothing once it runs out).
struct Script(std::collections::VecDeque<Vec<Intent>>);

impl Strategy for Script {
    fn name(&self) -> &str {
        "script"
    }
    fn on_event(&mut self, _: &MarketEvent, _: &Context<'_>) -> Result<Vec<Intent>, StrategyError> {
        Ok(self.0.pop_front().unwrap_or_default())
    }
}

/// A paper pool whose executions fail when `fail` is set (a leg the chain would revert). With
/// `late`, its first execution fills but is reported as given up on (no receipt in time): the
/// transaction stays open until the next event's bookings make it a late fill. With `hang`,
/// its first execution is given up on and stays open (the bookings asked right after the
/// failure know nothing yet) until the next event's bookings report it dropped, having filled
/// nothing.
struct Flaky {
    inner: PaperVenue,
    fail: bool,
    late: bool,
    hang: bool,
    open: Option<Booking>,
    /// Bookings asks that answer "still open" before the open transaction settles.
    quiet: u8,
}

impl Venue for Flaky {
    fn name(&self) -> &str {
        "flaky"
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
        if std::mem::take(&mut self.hang) {
            self.open = Some(Booking::Dropped {
                id: order.id.clone(),
                label: "swap".into(),
                nonce: 0,
            });
            self.quiet = 1;
            return Err(VenueError::Transport("no receipt in time".into()));
        }
        let fill = self.inner.execute(order, ts).await?;
        if std::mem::take(&mut self.late) {
            self.open = Some(Booking::LateFill(Box::new(fill)));
            return Err(VenueError::Transport("no receipt in time".into()));
        }
        Ok(fill)
    }
    fn open_transactions(&self) -> usize {
        usize::from(self.open.is_some())
    }
    fn has_bookings(&self) -> bool {
        self.open.is_some()
    }
    async fn bookings(&mut self) -> Result<Vec<Booking>, VenueError> {
        if self.quiet > 0 {
            self.quiet -= 1;
            return Ok(Vec::new());
        }
        Ok(self.open.take().into_iter().collect())
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
    let script = vec![vec![Intent::Bundle(legs(&pair))]];
    run_script(script, depth_b, fail_b, false, RiskLimits::default())
}

/// [`run`] with a strategy proposing `script` (one entry per hour) under `limits`.
fn run_script(
    script: Vec<Vec<Intent>>,
    depth_b: u64,
    fail_b: bool,
    late_a: bool,
    limits: RiskLimits,
) -> AgentReport {
    run_flaky(script, depth_b, fail_b, late_a, false, limits)
}

/// [`run_script`], the second pool's first execution given up on and dropped when `hang_b`.
fn run_flaky(
    script: Vec<Vec<Intent>>,
    depth_b: u64,
    fail_b: bool,
    late_a: bool,
    hang_b: bool,
    limits: RiskLimits,
) -> AgentReport {
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
    let venue = |key: &str, cfg: PaperAmmConfig, fail: bool, late: bool, hang: bool| Flaky {
        inner: PaperVenue::new(pair.clone(), cfg).at_venue(key),
        fail,
        late,
        hang,
        open: None,
        quiet: 0,
    };
    let venues = VenueSet::keyed(vec![
        (
            "a".into(),
            pair.clone(),
            venue("a", deep, false, late_a, false),
        ),
        (
            "b".into(),
            pair.clone(),
            venue("b", shallow, fail_b, false, hang_b),
        ),
    ])
    .unwrap();
    let start = U256::from(10_000u64) * pair.quote.one();
    let agent = Agent::new(
        pair.clone(),
        EventReplay::new(events),
        venues,
        Box::new(Script(script.into())),
        Portfolio::with_balances([(pair.quote.clone(), start)]),
    )
    .with_gate(Box::new(LimitGate::new(limits)));
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

/// Two buys of 1,000 USDC, one on each pool: both legs add exposure.
fn two_buys(pair: &Pair) -> Vec<Swap> {
    let usd = U256::from(1_000u64) * pair.quote.one();
    vec![
        Swap::new(&pair.quote, &pair.base, usd).on("a"),
        Swap::new(&pair.quote, &pair.base, usd).on("b"),
    ]
}

#[test]
fn a_bundles_legs_together_meet_the_trade_rate_and_the_counts_are_not_left_behind_by_judging() {
    let pair = Pair::eth_usdc();
    let single = Intent::Swap(Swap::new(&pair.quote, &pair.base, pair.quote.one()).on("a"));
    let rate = |n: u32| RiskLimits {
        max_trades_per_hour: Some(n),
        ..RiskLimits::default()
    };
    // One trade an hour: the second leg would be the second trade, so the bundle is refused
    // whole and nothing is sent.
    let r = run_script(
        vec![vec![Intent::Bundle(two_buys(&pair))]],
        5_000_000,
        false,
        false,
        rate(1),
    );
    assert_eq!(r.fills, 0, "{:?}", r.risk);
    assert_eq!(
        r.risk.refused_by_reason.get("bundle_leg_refused"),
        Some(&1),
        "{:?}",
        r.risk
    );
    assert_eq!(r.risk.refused_by_reason.get("trade_rate"), Some(&1));
    // Three an hour: the bundle's two legs fill, and a single buy right after it is the third
    // (the legs were counted once, by their fills, not again for having been judged).
    let script = vec![vec![Intent::Bundle(two_buys(&pair)), single]];
    let r = run_script(script.clone(), 5_000_000, false, false, rate(3));
    assert_eq!(r.fills, 3, "{:?}", r.risk);
    // Two an hour: the single buy is the one refused.
    let r = run_script(script, 5_000_000, false, false, rate(2));
    assert_eq!(r.fills, 2, "{:?}", r.risk);
    assert_eq!(r.risk.refused_by_reason.get("trade_rate"), Some(&1));
}

/// The first leg's transaction is given up on (no receipt in time), so the bundle stops there
/// and nothing else is sent; it is then mined after all. Its late fill is booked and what it
/// bought is sold back on its venue before the strategy sees the next event: the book ends
/// flat in ETH, and the journal stream carries the unwind under the bundle's unwind id.
#[test]
fn a_first_leg_given_up_on_and_mined_late_is_sold_back_on_its_venue() {
    let pair = Pair::eth_usdc();
    let script = vec![vec![Intent::Bundle(arbitrage(&pair))]];
    let r = run_script(script, 5_000_000, false, true, RiskLimits::default());
    assert_eq!(r.execution_failures, 1, "the first leg: {:?}", r.risk);
    assert_eq!(
        r.fills, 2,
        "the late first leg and its unwind, not the second leg"
    );
    assert_eq!(r.portfolio.balance(&pair.base), U256::ZERO, "flat in ETH");
    // The round trip on pool "a" costs its fees and gas, no more (see the unwind test above).
    let lost = r.start_equity - r.end_equity;
    assert!(lost < U256::from(17u64) * pair.quote.one(), "lost {lost}");
}

/// The second leg is given up on (no receipt) and its transaction stays open, so the unwind
/// of the first leg is refused at first (nothing is sent while a transaction may still be
/// mined); it is not forgotten: once the open transaction is known dropped, the next event
/// sells the first leg's ETH back.
#[test]
fn an_unwind_refused_while_a_leg_is_open_is_offered_again_once_it_settles() {
    let pair = Pair::eth_usdc();
    let script = vec![vec![Intent::Bundle(arbitrage(&pair))]];
    let r = run_flaky(script, 5_000_000, false, false, true, RiskLimits::default());
    assert_eq!(r.execution_failures, 1, "the second leg: {:?}", r.risk);
    assert_eq!(
        r.risk.refused_by_reason.get("open_transaction"),
        Some(&1),
        "the first try of the unwind: {:?}",
        r.risk
    );
    assert_eq!(
        r.fills, 2,
        "the first leg and, on the next event, its unwind"
    );
    assert_eq!(r.portfolio.balance(&pair.base), U256::ZERO, "flat in ETH");
}

/// A strategy whose name holds `#` (which intent ids reserve for a bundle's legs) is refused
/// before anything runs.
#[test]
fn a_strategy_named_with_a_hash_is_refused_at_start() {
    struct Hashy;
    impl Strategy for Hashy {
        fn name(&self) -> &str {
            "grid#2"
        }
        fn on_event(
            &mut self,
            _: &MarketEvent,
            _: &Context<'_>,
        ) -> Result<Vec<Intent>, StrategyError> {
            Ok(vec![])
        }
    }
    let pair = Pair::eth_usdc();
    let agent = Agent::new(
        pair.clone(),
        EventReplay::new(vec![]),
        PaperVenue::new(pair.clone(), PaperAmmConfig::default_for(&pair)),
        Box::new(Hashy),
        Portfolio::new(),
    );
    let err = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(agent.run())
        .unwrap_err();
    assert!(err.to_string().contains("grid#2"), "{err}");
}
