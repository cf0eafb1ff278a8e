//! The agent loop through the library API: exact accounting, determinism and the risk seam.

mod common;

use std::sync::{Arc, Mutex};

use common::{Tape, agent, bundled_bars as bars, paper, run_to_end};
use defai::core::{
    AgentReport, Bar, Context, Fill, Intent, MarketEvent, Order, Pair, Quote, Strategy,
    StrategyError, Swap, U256, Venue, VenueError,
};
use defai::strategies::EmaCross;

fn run<V: Venue>(
    strategy: Box<dyn Strategy>,
    venue: V,
    bars: Vec<Bar>,
) -> (AgentReport, Vec<Fill>) {
    let tape = Tape::default();
    let report = run_to_end(agent(strategy, venue, bars).with_observer(Box::new(tape.clone())));
    (report, tape.fills())
}

#[test]
fn ema_cross_is_deterministic() {
    let (r1, f1) = run(Box::new(EmaCross::new(12, 26, 0.95)), paper(), bars());
    let (r2, f2) = run(Box::new(EmaCross::new(12, 26, 0.95)), paper(), bars());
    assert!(!f1.is_empty());
    assert_eq!(f1, f2, "same input → identical fills, to the wei");
    assert_eq!(r1.end_equity, r2.end_equity);
}

#[test]
fn balances_equal_the_sum_of_fills_to_the_unit() {
    let (report, fills) = run(Box::new(EmaCross::new(12, 26, 0.95)), paper(), bars());
    let pair = Pair::eth_usdc();
    let (mut quote, mut base) = (U256::from(10_000_000_000u64), U256::ZERO);
    let (mut fees, mut gas) = (U256::ZERO, U256::ZERO);
    for f in &fills {
        assert_eq!(f.gas_cost.0, pair.quote, "paper gas is paid in quote");
        if f.sell == pair.quote {
            quote = quote - f.amount_in - f.gas_cost.1;
            base += f.amount_out;
        } else {
            base -= f.amount_in;
            quote = quote + f.amount_out - f.gas_cost.1;
        }
        fees += f.fee_quote;
        gas += f.gas_quote;
        assert!(f.fee > U256::ZERO && f.gas_native > U256::ZERO);
    }
    assert_eq!(report.portfolio.balance(&pair.quote), quote);
    assert_eq!(report.portfolio.balance(&pair.base), base);
    assert_eq!(report.portfolio.fees_quote(), fees);
    assert_eq!(report.portfolio.gas_quote(), gas);
    assert_eq!(report.fills as usize, fills.len());
}

#[test]
fn fees_and_gas_cost_equity() {
    // Buy on the first bar, sell on the second, at an unchanged price: equity must fall by
    // exactly the fees, the gas and the price impact — nothing is created.
    struct RoundTrip(u32);
    impl Strategy for RoundTrip {
        fn name(&self) -> &str {
            "round_trip"
        }
        fn on_event(
            &mut self,
            _: &MarketEvent,
            ctx: &Context<'_>,
        ) -> Result<Vec<Intent>, StrategyError> {
            self.0 += 1;
            let target = if self.0 == 1 { 0.5 } else { 0.0 };
            Ok(ctx.target_exposure(target)?.into_iter().collect())
        }
    }
    let flat = |ts| Bar {
        ts,
        open: 2000.0,
        high: 2000.0,
        low: 2000.0,
        close: 2000.0,
        volume: 1.0,
    };
    let (report, fills) = run(Box::new(RoundTrip(0)), paper(), vec![flat(0), flat(3600)]);
    assert_eq!(fills.len(), 2);
    assert!(report.end_equity < report.start_equity);
    let lost = report.start_equity - report.end_equity;
    let costs = report.portfolio.fees_quote() + report.portfolio.gas_quote();
    assert!(lost >= costs, "lost {lost} ≥ fees + gas {costs}");
    assert_eq!(
        report.portfolio.gas_quote(),
        U256::from(2 * 4_800_000u64),
        "2 swaps × 120k gas × 20 gwei at 2000"
    );
}

/// A venue that counts what reaches it, to prove what the gate keeps away.
struct Counting<V> {
    inner: V,
    executed: Arc<Mutex<u32>>,
}

impl<V: Venue> Venue for Counting<V> {
    fn name(&self) -> &str {
        "counting"
    }
    fn observe(&mut self, e: &MarketEvent) {
        self.inner.observe(e)
    }
    async fn quote(&mut self, s: &Swap) -> Result<Quote, VenueError> {
        self.inner.quote(s).await
    }
    async fn execute(&mut self, o: &Order, ts: i64) -> Result<Fill, VenueError> {
        *self.executed.lock().unwrap() += 1;
        self.inner.execute(o, ts).await
    }
}

#[test]
fn gate_refuses_unaffordable_and_foreign_intents_before_the_venue() {
    struct Greedy;
    impl Strategy for Greedy {
        fn name(&self) -> &str {
            "greedy"
        }
        fn on_event(
            &mut self,
            _: &MarketEvent,
            ctx: &Context<'_>,
        ) -> Result<Vec<Intent>, StrategyError> {
            let p = ctx.pair;
            let all_in = ctx.quote_balance();
            let dai = defai::core::Token::new("DAI", 18);
            Ok(vec![
                Intent::swap(&p.quote, &p.base, all_in + U256::from(1u8)), // more than held
                Intent::swap(&p.quote, &p.base, all_in),                   // nothing left for gas
                Intent::swap(&dai, &p.base, U256::from(1u8)),              // not the agent's pair
                Intent::swap(&p.quote, &p.base, U256::ZERO),               // zero
            ])
        }
    }
    let executed = Arc::new(Mutex::new(0));
    let venue = Counting {
        inner: paper(),
        executed: executed.clone(),
    };
    let (report, fills) = run(Box::new(Greedy), venue, bars()[..50].to_vec());
    assert!(fills.is_empty());
    assert_eq!(
        *executed.lock().unwrap(),
        0,
        "no refused intent reaches the venue"
    );
    assert_eq!(report.risk.refused, 200);
    assert_eq!(report.risk.refused_by_reason["insufficient_balance"], 50);
    assert_eq!(report.risk.refused_by_reason["insufficient_gas"], 50);
    assert_eq!(report.risk.refused_by_reason["token_not_allowed"], 50);
    assert_eq!(report.risk.refused_by_reason["zero_amount"], 50);
}

#[test]
fn non_finite_strategy_output_is_a_fault_and_sends_nothing() {
    struct Broken;
    impl Strategy for Broken {
        fn name(&self) -> &str {
            "broken"
        }
        fn on_event(
            &mut self,
            _: &MarketEvent,
            ctx: &Context<'_>,
        ) -> Result<Vec<Intent>, StrategyError> {
            Ok(ctx.target_exposure(f64::NAN)?.into_iter().collect())
        }
    }
    let executed = Arc::new(Mutex::new(0));
    let venue = Counting {
        inner: paper(),
        executed: executed.clone(),
    };
    let (report, _) = run(Box::new(Broken), venue, bars()[..10].to_vec());
    assert_eq!(report.strategy_faults, 10);
    assert_eq!(report.intents, 0);
    assert_eq!(*executed.lock().unwrap(), 0);
}

#[test]
fn bad_and_out_of_order_bars_are_never_traded_on() {
    let mut b = bars()[..40].to_vec();
    b[30].close = f64::NAN;
    b[35].ts = b[10].ts; // time going backwards
    let (report, _) = run(Box::new(EmaCross::new(3, 6, 0.95)), paper(), b);
    assert_eq!(report.bad_events, 2);
    assert_eq!(report.bars, 38);
}
