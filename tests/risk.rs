//! The risk gate and kill switch through the real loop: limits hold for random intents on random
//! price paths, the March 2020 crash trips the switch, and a flatten stays flat.

mod common;

use common::{Tape, agent, bundled_bars, paper, run_to_end};
use defai::core::amount::{base_to_quote, price_to_units};
use defai::core::{
    AgentReport, Bar, Context, Intent, KillMode, KillSwitch, KillSwitchPolicy, LimitGate,
    MarketEvent, Pair, RiskLimits, Strategy, StrategyError, SwitchState, U256,
};
use proptest::prelude::*;

fn run(
    strategy: Box<dyn Strategy>,
    limits: RiskLimits,
    on_breach: KillMode,
    bars: Vec<Bar>,
) -> (AgentReport, Tape) {
    let tape = Tape::default();
    let policy = KillSwitchPolicy {
        on_breach,
        ..KillSwitchPolicy::default()
    };
    let agent = agent(strategy, paper(), bars)
        .with_gate(Box::new(LimitGate::new(limits)))
        .with_kill_switch(KillSwitch::new(), policy, None)
        .with_observer(Box::new(tape.clone()));
    (run_to_end(agent), tape)
}

struct AlwaysLong;
impl Strategy for AlwaysLong {
    fn name(&self) -> &str {
        "always_long"
    }
    fn on_event(
        &mut self,
        _: &MarketEvent,
        ctx: &Context<'_>,
    ) -> Result<Vec<Intent>, StrategyError> {
        Ok(ctx.target_exposure(0.95)?.into_iter().collect())
    }
}

fn march_2020() -> Vec<Bar> {
    let all = bundled_bars();
    // 2020-03-01 .. 2020-04-10: ETH fell from ~230 to ~110 in days around 12–13 March.
    all.into_iter()
        .filter(|b| (1_583_020_800..1_586_476_800).contains(&b.ts))
        .collect()
}

#[test]
fn march_2020_crash_trips_the_drawdown_limit_and_flatten_stays_flat() {
    let limits = RiskLimits {
        max_drawdown_pct: Some(10.0),
        max_daily_loss_pct: None,
        ..RiskLimits::default()
    };
    let (report, tape) = run(
        Box::new(AlwaysLong),
        limits,
        KillMode::Flatten,
        march_2020(),
    );
    let ks = &report.kill_switch;
    assert_eq!(ks.state, SwitchState::Halted, "{ks:?}");
    assert!(
        ks.reason.as_deref().unwrap().contains("max_drawdown"),
        "{ks:?}"
    );
    let tripped = ks.tripped_at.unwrap();
    assert!(
        (1_583_020_800..1_584_316_800).contains(&tripped),
        "tripped in early/mid March 2020: {tripped}"
    );
    assert_eq!(
        report.portfolio.balance(&Pair::eth_usdc().base),
        U256::ZERO,
        "flat after the flatten"
    );
    let t = tape.0.lock().unwrap();
    let last_fill = t.1.last().unwrap();
    assert_eq!(
        last_fill.buy,
        Pair::eth_usdc().quote,
        "the last trade is the unwind"
    );
    assert!(t.1.iter().all(|f| f.ts <= last_fill.ts));
    // Equity does not move after the unwind: nothing was bought again.
    let after: Vec<f64> = t.0.iter().rev().take(100).map(|m| m.1).collect();
    assert!(
        after.windows(2).all(|w| w[0] == w[1]),
        "equity frozen after the flatten"
    );
    assert!(
        report
            .risk
            .refused_by_reason
            .get("kill_switch_halted")
            .copied()
            .unwrap_or(0)
            > 0
    );
}

#[test]
fn march_2020_with_halt_keeps_the_position_but_sends_nothing() {
    let limits = RiskLimits {
        max_drawdown_pct: Some(10.0),
        max_daily_loss_pct: None,
        ..RiskLimits::default()
    };
    let (report, tape) = run(Box::new(AlwaysLong), limits, KillMode::Halt, march_2020());
    assert_eq!(report.kill_switch.state, SwitchState::Halted);
    let t = tape.0.lock().unwrap();
    let tripped = report.kill_switch.tripped_at.unwrap();
    // A breach is seen at the bar's close, after that bar's trades.
    assert!(
        t.1.iter().all(|f| f.ts <= tripped),
        "no fill after the trip"
    );
    assert!(
        report.portfolio.balance(&Pair::eth_usdc().base) > U256::ZERO,
        "halt does not unwind"
    );
}

/// Emits scripted random swaps: (buy?, fraction of the balance in per-mille, up to 3× it).
struct Random {
    script: Vec<(bool, u32)>,
    i: usize,
}

impl Strategy for Random {
    fn name(&self) -> &str {
        "random"
    }
    fn on_event(
        &mut self,
        _: &MarketEvent,
        ctx: &Context<'_>,
    ) -> Result<Vec<Intent>, StrategyError> {
        let (buy, permille) = self.script[self.i % self.script.len()];
        self.i += 1;
        let p = ctx.pair;
        let (sell, get, bal) = if buy {
            (&p.quote, &p.base, ctx.quote_balance())
        } else {
            (&p.base, &p.quote, ctx.base_balance())
        };
        let amount = bal * U256::from(permille) / U256::from(1000u32);
        Ok(vec![Intent::swap(sell, get, amount.max(U256::from(1u8)))])
    }
}

fn price_path(start: f64, moves: &[i32]) -> Vec<Bar> {
    let mut px = start;
    moves
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let open = px;
            px = (px * (1.0 + *m as f64 / 1000.0)).max(1.0);
            Bar {
                ts: 1_600_000_000 + i as i64 * 3600,
                open,
                high: open.max(px),
                low: open.min(px),
                close: px,
                volume: 1.0,
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// 24 cases × 500 bars = 12,000 random intents.
    #[test]
    fn random_intents_never_breach_the_limits(
        moves in prop::collection::vec(-80i32..80, 500),
        script in prop::collection::vec((any::<bool>(), 1u32..3000), 1..50),
        max_pos in 10.0f64..100.0,
        max_notional in 100u64..20_000,
        max_dd in 5.0f64..40.0,
        max_daily in 3.0f64..30.0,
    ) {
        let limits = RiskLimits {
            max_position_pct: max_pos,
            max_trade_notional: Some(U256::from(max_notional) * U256::from(1_000_000u64)),
            max_drawdown_pct: Some(max_dd),
            max_daily_loss_pct: Some(max_daily),
            max_trades_per_hour: Some(1000),
            ..RiskLimits::default()
        };
        let pair = Pair::eth_usdc();
        let bars = price_path(2000.0, &moves);
        let (report, tape) = run(Box::new(Random { script, i: 0 }), limits, KillMode::Flatten, bars.clone());
        let t = tape.0.lock().unwrap();
        prop_assert_eq!(t.0.len(), bars.len());

        // Replay the fills to check the position right after each one, at that bar's price.
        let mut quote = U256::from(10_000_000_000u64);
        let mut base = U256::ZERO;
        let trip = report.kill_switch.tripped_at;
        for f in &t.1 {
            let bar = bars.iter().find(|b| b.ts == f.ts).unwrap();
            let px = price_to_units(bar.close, 6).unwrap();
            let buys_base = f.buy == pair.base;
            if buys_base {
                prop_assert!(f.amount_in <= U256::from(max_notional) * U256::from(1_000_000u64), "trade over max_trade_notional");
                if let Some(tr) = trip { prop_assert!(f.ts <= tr, "a buy after the breach"); }
                quote -= f.amount_in + f.gas_cost.1;
                base += f.amount_out;
            } else {
                base -= f.amount_in;
                quote = quote + f.amount_out - f.gas_cost.1;
            }
            if buys_base {
                let held = base_to_quote(base, 18, px);
                let equity = quote + held;
                // held / equity ≤ max_pos (plus one unit of rounding)
                prop_assert!(held * U256::from(1_000_000u64) <= equity * U256::from((max_pos * 10_000.0).round() as u64) + U256::from(1_000_000u64),
                    "position {} of equity {} over {} %", held, equity, max_pos);
            }
        }
        prop_assert_eq!(report.portfolio.balance(&pair.base), base);

        // Loss limits: before the trip every bar is within both limits; from the trip on the
        // position is flat, so equity no longer moves.
        let mut peak = 0.0f64;
        let mut day_start: Option<(i64, f64)> = None;
        for (bar, (_, equity)) in bars.iter().zip(t.0.iter()) {
            let day = bar.ts.div_euclid(86_400);
            if day_start.is_none_or(|(d, _)| d != day) { day_start = Some((day, *equity)); }
            peak = peak.max(*equity);
            match trip {
                Some(tr) if bar.ts > tr => {}
                Some(tr) if bar.ts == tr => {}
                _ => {
                    prop_assert!(1.0 - equity / peak < max_dd / 100.0, "drawdown past the limit without a trip");
                    let (_, start) = day_start.unwrap();
                    prop_assert!(1.0 - equity / start < max_daily / 100.0, "daily loss past the limit without a trip");
                }
            }
        }
        if let Some(tr) = trip {
            prop_assert_eq!(report.portfolio.balance(&pair.base), U256::ZERO);
            let after: Vec<f64> = bars.iter().zip(t.0.iter()).filter(|(b, _)| b.ts > tr).map(|(_, m)| m.1).collect();
            prop_assert!(after.windows(2).all(|w| w[0] == w[1]), "equity moved after the flatten");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Price impact (issue 11, item 1)

use defai::connectors::{PaperAmmConfig, PaperVenue};
use defai::core::risk::impact::{self, Rate};

/// A paper ETH/USDC pool with `depth` whole USDC on the quote side after each re-centring.
fn thin_pool(depth: u64) -> PaperVenue {
    let pair = Pair::eth_usdc();
    let mut cfg = PaperAmmConfig::default_for(&pair);
    cfg.depth_quote = U256::from(depth) * pair.quote.one();
    PaperVenue::new(pair, cfg)
}

/// Flat price: each bar closes at `px`, an hour apart.
fn flat(px: f64, n: usize) -> Vec<Bar> {
    (0..n)
        .map(|i| Bar {
            ts: 1_600_000_000 + i as i64 * 3600,
            open: px,
            high: px,
            low: px,
            close: px,
            volume: 1.0,
        })
        .collect()
}

/// Goes all in on the first bar, then holds.
struct AllInOnce(bool);
impl Strategy for AllInOnce {
    fn name(&self) -> &str {
        "all_in_once"
    }
    fn on_event(
        &mut self,
        _: &MarketEvent,
        ctx: &Context<'_>,
    ) -> Result<Vec<Intent>, StrategyError> {
        if std::mem::replace(&mut self.0, true) {
            return Ok(vec![]);
        }
        let p = ctx.pair;
        // 9,000 of the 10,000 USDC: the rest pays gas.
        let amount = ctx.quote_balance() * U256::from(9u8) / U256::from(10u8);
        Ok(vec![Intent::swap(&p.quote, &p.base, amount)])
    }
}

/// The pool's reserves (base, quote) after re-centring on `close`, as the paper venue sets them.
fn recentred(depth: U256, close: f64) -> (U256, U256) {
    let px = price_to_units(close, 6).unwrap();
    (depth * U256::from(10u128.pow(18)) / px, depth)
}

/// The fill's impact in bps against the pool it met (`(base, quote)` reserves before it).
fn fill_impact(f: &defai::core::Fill, pool: (U256, U256)) -> (U256, (U256, U256)) {
    let (rb, rq) = pool;
    let sells_base = f.sell == Pair::eth_usdc().base;
    let rate = if sells_base {
        Rate { num: rq, den: rb }
    } else {
        Rate { num: rb, den: rq }
    };
    let bps = impact::impact_bps(f.amount_in, f.fee, f.amount_out, rate).unwrap();
    let after = if sells_base {
        (rb + f.amount_in, rq - f.amount_out)
    } else {
        (rb - f.amount_out, rq + f.amount_in)
    };
    (bps, after)
}

#[test]
fn a_buy_as_large_as_the_pool_is_resized_to_the_price_impact_limit() {
    // 9,000 USDC into a pool with 10,000 USDC of depth: on today's main this is approved and
    // fills at about twice the close.
    let tape = Tape::default();
    let agent = agent(
        Box::new(AllInOnce(false)),
        thin_pool(10_000),
        flat(2000.0, 3),
    )
    .with_gate(Box::new(LimitGate::new(RiskLimits::default())))
    .with_observer(Box::new(tape.clone()));
    let report = run_to_end(agent);
    let fills = tape.fills();
    assert_eq!(fills.len(), 1, "{fills:?}");
    let (bps, _) = fill_impact(&fills[0], recentred(U256::from(10_000_000_000u64), 2000.0));
    assert!(
        bps <= U256::from(100u32),
        "filled {bps} bps from the marginal price"
    );
    // The largest size within 100 bps: net 1 % of the 10,000 USDC reserve, grossed up by the fee.
    assert!(
        (U256::from(100_300_000u64)..U256::from(100_310_000u64)).contains(&fills[0].amount_in),
        "{}",
        fills[0].amount_in
    );
    assert_eq!(report.risk.resized, 1);
    assert_eq!(report.risk.partial_unwinds, 0, "a buy is not an unwind");
    let avg =
        1e12 * fills[0].amount_in.to::<u128>() as f64 / fills[0].amount_out.to::<u128>() as f64;
    assert!(
        avg < 2000.0 * 1.0131,
        "average price {avg} (fee and 1 % of impact at most)"
    );
}

/// Holds a position the size of the pool, then asks the kill switch to flatten it.
fn flatten_thin(mode: KillMode) -> (AgentReport, Vec<defai::core::Fill>) {
    let depth = U256::from(20_000_000_000u64); // 20,000 USDC
    let pair = Pair::eth_usdc();
    // 5 ETH at 2000 = 10,000 USDC: half the pool's quote side.
    let portfolio = defai::core::Portfolio::with_balances([
        (pair.base.clone(), U256::from(5u8) * pair.base.one()),
        (pair.quote.clone(), U256::from(1_000_000_000u64)),
    ]);
    let tape = Tape::default();
    let mut kill = KillSwitch::new();
    kill.trip(mode, "test", 0);
    let agent = defai::core::Agent::new(
        pair,
        defai::core::BarReplay::new(flat(2000.0, 200)),
        thin_pool(20_000),
        Box::new(AlwaysLong),
        portfolio,
    )
    .with_kill_switch(kill, KillSwitchPolicy::default(), None)
    .with_observer(Box::new(tape.clone()));
    let report = run_to_end(agent);
    let fills = tape.fills();
    for f in &fills {
        let (bps, _) = fill_impact(f, recentred(depth, 2000.0));
        if mode == KillMode::Flatten {
            assert!(
                bps <= U256::from(100u32),
                "an unwind slice filled {bps} bps away"
            );
        }
    }
    (report, fills)
}

#[test]
fn flatten_sells_the_largest_slice_within_the_impact_limit_each_cycle_until_flat() {
    let (report, fills) = flatten_thin(KillMode::Flatten);
    assert_eq!(
        report.portfolio.balance(&Pair::eth_usdc().base),
        U256::ZERO,
        "flat in the end"
    );
    assert_eq!(report.kill_switch.state, SwitchState::Halted);
    assert!(fills.len() > 10, "sold in slices: {}", fills.len());
    assert_eq!(
        report.risk.partial_unwinds,
        fills.len() as u64 - 1,
        "every slice but the last is a partial unwind"
    );
}

#[test]
fn flatten_now_ignores_the_impact_limit_and_exits_at_once() {
    let (report, fills) = flatten_thin(KillMode::FlattenNow);
    assert_eq!(fills.len(), 1, "one sale of everything");
    assert_eq!(report.portfolio.balance(&Pair::eth_usdc().base), U256::ZERO);
    let (bps, _) = fill_impact(&fills[0], recentred(U256::from(20_000_000_000u64), 2000.0));
    assert!(
        bps > U256::from(3_000u32),
        "it paid the impact it was told to ignore: {bps}"
    );
    assert_eq!(report.risk.partial_unwinds, 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random paths × random intents on a thin pool: no fill ever beyond the impact limit.
    #[test]
    fn random_intents_never_fill_beyond_the_price_impact_limit(
        moves in prop::collection::vec(-80i32..80, 200),
        script in prop::collection::vec((any::<bool>(), 1u32..3000), 1..30),
        depth in 2_000u64..200_000,
        max_bps in 5u32..500,
        max_dd in 5.0f64..40.0,
    ) {
        let limits = RiskLimits {
            max_price_impact_bps: Some(max_bps),
            max_drawdown_pct: Some(max_dd),
            max_trades_per_hour: None,
            max_price_deviation_bps: None,
            ..RiskLimits::default()
        };
        let bars = price_path(2000.0, &moves);
        let tape = Tape::default();
        let agent = agent(Box::new(Random { script, i: 0 }), thin_pool(depth), bars.clone())
            .with_gate(Box::new(LimitGate::new(limits)))
            .with_kill_switch(KillSwitch::new(), KillSwitchPolicy::default(), None)
            .with_observer(Box::new(tape.clone()));
        run_to_end(agent);
        let depth = U256::from(depth) * U256::from(1_000_000u64);
        let mut pool: Option<(i64, (U256, U256))> = None;
        for f in tape.fills() {
            let bar = bars.iter().find(|b| b.ts == f.ts).unwrap();
            // Fills of one bar meet the pool the earlier ones left.
            let before = match pool {
                Some((ts, p)) if ts == f.ts => p,
                _ => recentred(depth, bar.close),
            };
            let (bps, after) = fill_impact(&f, before);
            prop_assert!(bps <= U256::from(max_bps), "fill {} at {} bps over the limit {}", f.id, bps, max_bps);
            pool = Some((f.ts, after));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Loss baselines across restarts (issue 11, item 2)

use defai::core::{BaselineStore, RiskBaselines};
use std::sync::{Arc, Mutex};

/// Baselines kept between two "processes" of one agent.
#[derive(Clone, Default)]
struct Saved(Arc<Mutex<Option<RiskBaselines>>>);

impl Saved {
    /// Each process opens the same store and finds what the one before saved.
    fn opener(self) -> OpenBaselines {
        Box::new(move || {
            let prev = self.0.lock().unwrap().clone();
            (Box::new(self.clone()) as Box<dyn BaselineStore>, prev)
        })
    }
}
impl BaselineStore for Saved {
    fn save(&mut self, b: &RiskBaselines) -> Result<(), String> {
        *self.0.lock().unwrap() = Some(b.clone());
        Ok(())
    }
}

/// Opens a process's baseline store: the store and what the last process saved in it.
type OpenBaselines = Box<dyn Fn() -> (Box<dyn BaselineStore>, Option<RiskBaselines>)>;

/// Runs AlwaysLong over `bars` with `limits` (on breach: halt), stopping after `split` bars and
/// restarting from what the first process left: its book, its latched switch and — with
/// `store` — its saved baselines. `split = bars.len()` is the uninterrupted run.
fn run_with_restart(
    bars: &[Bar],
    split: usize,
    limits: &RiskLimits,
    store: Option<OpenBaselines>,
) -> AgentReport {
    let policy = KillSwitchPolicy {
        on_breach: KillMode::Halt,
        ..KillSwitchPolicy::default()
    };
    let pair = Pair::eth_usdc();
    let mut portfolio = defai::core::Portfolio::with_balances([(
        pair.quote.clone(),
        U256::from(10_000_000_000u64),
    )]);
    let mut switch = defai::core::SwitchRecord::default();
    let mut last = None;
    for part in [&bars[..split], &bars[split..]] {
        if part.is_empty() {
            continue;
        }
        let mut agent = defai::core::Agent::new(
            pair.clone(),
            defai::core::BarReplay::new(part.to_vec()),
            paper(),
            Box::new(AlwaysLong),
            portfolio.clone(),
        )
        .with_gate(Box::new(LimitGate::new(limits.clone())))
        .with_kill_switch(
            KillSwitch::restore(switch.clone(), None),
            policy.clone(),
            None,
        );
        if let Some(open) = &store {
            let (s, saved) = open();
            agent = agent.with_baselines(s, saved);
        }
        let report = run_to_end(agent);
        portfolio = report.portfolio.clone();
        switch = report.kill_switch.clone();
        last = Some(report);
    }
    last.unwrap()
}

/// Hourly bars from `start`, each close `step` per-mille from the one before.
fn drift(start_ts: i64, px: f64, steps: &[(usize, f64)]) -> Vec<Bar> {
    let mut out = Vec::new();
    let mut p = px;
    for &(n, step) in steps {
        for _ in 0..n {
            let open = p;
            p *= 1.0 + step / 1000.0;
            out.push(Bar {
                ts: start_ts + out.len() as i64 * 3600,
                open,
                high: open.max(p),
                low: open.min(p),
                close: p,
                volume: 1.0,
            });
        }
    }
    out
}

#[test]
fn a_restart_does_not_reset_the_drawdown_the_switch_trips_exactly_when_the_total_crosses_it() {
    // Up 20 % over a day, then down 2 % an hour: a 30 % drawdown limit trips on day two.
    let bars = drift(1_600_041_600, 2000.0, &[(24, 7.6), (30, -20.0)]);
    let limits = RiskLimits {
        max_drawdown_pct: Some(30.0),
        max_daily_loss_pct: None,
        ..RiskLimits::permissive()
    };
    let whole = run_with_restart(&bars, bars.len(), &limits, None);
    let tripped = whole
        .kill_switch
        .tripped_at
        .expect("the uninterrupted run trips");
    // Restart after about half the limit is lost.
    let split = 24 + 8;
    assert!(bars[split].ts < tripped);
    let open = Saved::default().opener();
    let restarted = run_with_restart(&bars, split, &limits, Some(open));
    assert_eq!(restarted.kill_switch.tripped_at, Some(tripped));
    assert_eq!(restarted.kill_switch.reason, whole.kill_switch.reason);
    assert_eq!(restarted.portfolio.balances(), whole.portfolio.balances());
    // Without the saved baselines (today's main) the drawdown restarts at the restart.
    let forgetful = run_with_restart(&bars, split, &limits, None);
    assert_ne!(forgetful.kill_switch.tripped_at, Some(tripped));
}

#[test]
fn across_utc_midnight_the_day_rolls_over_and_the_drawdown_does_not() {
    // Day one (from 00:00 UTC): down 9 %; day two: down 9 % again. Daily limit 12 % never
    // trips; the drawdown limit of 15 % trips on day two, measured from day one's peak.
    // 2020-09-14 00:00 UTC.
    let midnight: i64 = 1_600_041_600;
    assert_eq!(midnight % 86_400, 0);
    let bars = drift(midnight, 2000.0, &[(1, 0.0), (23, -4.09), (24, -3.92)]);
    let limits = RiskLimits {
        max_drawdown_pct: Some(15.0),
        max_daily_loss_pct: Some(12.0),
        ..RiskLimits::permissive()
    };
    let whole = run_with_restart(&bars, bars.len(), &limits, None);
    let tripped = whole.kill_switch.tripped_at.expect("the drawdown trips");
    assert!(tripped >= midnight + 86_400, "on day two");
    assert!(
        whole
            .kill_switch
            .reason
            .as_deref()
            .unwrap()
            .contains("max_drawdown")
    );
    // Restart exactly at midnight, baselines in the state folder's file.
    let dir = tempfile::tempdir().unwrap();
    let state = defai::connectors::StateDir::open(dir.path()).unwrap();
    let open = Box::new(move || {
        (
            Box::new(state.baseline_store()) as Box<dyn BaselineStore>,
            state.load_baselines().unwrap(),
        )
    });
    let restarted = run_with_restart(&bars, 24, &limits, Some(open));
    assert_eq!(restarted.kill_switch.tripped_at, Some(tripped));
    assert_eq!(restarted.kill_switch.reason, whole.kill_switch.reason);
    let saved = defai::connectors::StateDir::open(dir.path())
        .unwrap()
        .load_baselines()
        .unwrap()
        .unwrap();
    assert_eq!(
        saved.day,
        Some((midnight + 86_400) / 86_400),
        "the day rolled over"
    );
    assert!(saved.drawdown_breached);
    let forgetful = run_with_restart(&bars, 24, &limits, None);
    assert_eq!(
        forgetful.kill_switch.tripped_at, None,
        "without them nothing trips"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Random paths, a restart anywhere: the same trip, at the same bar, with the same book as
    /// without the restart.
    #[test]
    fn no_loss_past_a_limit_across_random_restarts(
        moves in prop::collection::vec(-60i32..50, 120),
        split in 1usize..119,
        max_dd in 5.0f64..30.0,
        max_daily in 3.0f64..20.0,
    ) {
        let bars = price_path(2000.0, &moves);
        let limits = RiskLimits {
            max_drawdown_pct: Some(max_dd),
            max_daily_loss_pct: Some(max_daily),
            max_trades_per_hour: Some(3),
            ..RiskLimits::default()
        };
        let whole = run_with_restart(&bars, bars.len(), &limits, None);
        let open = Saved::default().opener();
        let restarted = run_with_restart(&bars, split, &limits, Some(open));
        prop_assert_eq!(restarted.kill_switch.tripped_at, whole.kill_switch.tripped_at);
        prop_assert_eq!(&restarted.kill_switch.reason, &whole.kill_switch.reason);
        prop_assert_eq!(restarted.portfolio.balances(), whole.portfolio.balances());
    }
}

// ---------------------------------------------------------------------------------------------
// A journal that cannot write (issue 11, item 4)

/// Breaks the journal's database from outside (another connection drops its table) when the
/// `nth` intent reaches the audit stream, just before the journal writes it.
struct BreakJournalAt {
    path: std::path::PathBuf,
    nth: usize,
    seen: usize,
}
impl defai::core::Observer for BreakJournalAt {
    fn on_audit(
        &mut self,
        e: &defai::core::AuditEvent<'_>,
    ) -> Result<(), defai::core::agent::AuditError> {
        if let defai::core::AuditEvent::Intent { .. } = e {
            self.seen += 1;
            if self.seen == self.nth {
                let c = rusqlite::Connection::open(&self.path).unwrap();
                c.execute_batch("DROP TABLE records").unwrap();
            }
        }
        Ok(())
    }
}

#[test]
fn a_journal_that_fails_mid_run_halts_the_agent_and_nothing_is_sent_after() {
    use defai::connectors::journal::{Durability, Journal, JournalObserver};
    let dir = tempfile::tempdir().unwrap();
    let state = defai::connectors::StateDir::open(dir.path()).unwrap();
    let path = dir.path().join("journal.sqlite");
    let journal = Journal::open_with(&path, Durability::Full).unwrap();
    let tape = Tape::default();
    let kill = KillSwitch::restore(
        Default::default(),
        Some(Box::new(state.switch_store().unwrap())),
    );
    // Random trades on every bar; the journal breaks at the 10th intent.
    let script = vec![(true, 500), (false, 700), (true, 900)];
    let agent = agent(
        Box::new(Random { script, i: 0 }),
        paper(),
        price_path(2000.0, &[5; 60]),
    )
    .with_kill_switch(kill, KillSwitchPolicy::default(), None)
    .with_observer(Box::new(tape.clone()))
    .with_observer(Box::new(BreakJournalAt {
        path: path.clone(),
        nth: 10,
        seen: 0,
    }))
    .with_observer(Box::new(JournalObserver::new(journal)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(agent.run())
        .expect_err("the run stops with an error");
    let msg = err.to_string();
    assert!(
        msg.contains("journal write failed") && msg.contains("no such table"),
        "{msg}"
    );
    let fills = tape.fills();
    assert_eq!(
        fills.len(),
        9,
        "the nine intents before the failure filled, none after"
    );
    let bars = price_path(2000.0, &[5; 60]);
    assert!(fills.iter().all(|f| f.ts < bars[9].ts));
    // Latched: a restart finds the switch halted, with the reason.
    let rec = state.load_switch().unwrap().unwrap();
    assert_eq!(rec.state, SwitchState::Halted);
    assert!(rec.reason.unwrap().contains("journal failure"));
}

// ---------------------------------------------------------------------------------------------
// Data age on a live source (a `[risk]` key that must mean what it says in every mode)

#[test]
fn on_a_source_stamped_with_chain_time_data_age_is_measured_against_the_wall_clock() {
    // Bars from September 2020, as a chain source would stamp them with their blocks' times.
    let bars = flat(2000.0, 5);
    let limits = RiskLimits {
        max_data_age_s: Some(3600),
        ..RiskLimits::default()
    };
    let run = |wall: bool| {
        let mut a = agent(Box::new(AllInOnce(false)), paper(), bars.clone())
            .with_gate(Box::new(LimitGate::new(limits.clone())))
            .with_kill_switch(KillSwitch::new(), KillSwitchPolicy::default(), Some(3600));
        if wall {
            a = a.with_wall_data_age();
        }
        run_to_end(a)
    };
    let live = run(true);
    assert_eq!(live.fills, 0, "nothing traded on blocks years old");
    assert_eq!(live.kill_switch.state, SwitchState::Halted);
    assert!(
        live.kill_switch
            .reason
            .as_deref()
            .unwrap()
            .contains("max_data_age_s"),
        "{:?}",
        live.kill_switch
    );
    // A replay's clock is its data's: the same bars are fresh there.
    let replay = run(false);
    assert_eq!(replay.fills, 1);
    assert_eq!(replay.kill_switch.state, SwitchState::Active);
}

// ---------------------------------------------------------------------------------------------
// A resume queued while the agent was stopped (issue 15, item 6)

use defai::core::{
    Order, Quote, SettledTx, Settlement, Swap, SwitchAction, SwitchCommand, SwitchRecord,
    SwitchStore, UnsettledTx, VenueError,
};

/// The paper pool, plus a chain's answer about one transaction the journal left open: pending
/// while `pending` is set.
struct WithPendingTx {
    inner: PaperVenue,
    pending: Arc<std::sync::atomic::AtomicBool>,
}
impl defai::core::Venue for WithPendingTx {
    fn name(&self) -> &str {
        "paper_with_a_pending_tx"
    }
    fn observe(&mut self, e: &MarketEvent) {
        self.inner.observe(e)
    }
    async fn quote(&mut self, swap: &Swap) -> Result<Quote, VenueError> {
        self.inner.quote(swap).await
    }
    async fn execute(&mut self, order: &Order, ts: i64) -> Result<defai::core::Fill, VenueError> {
        self.inner.execute(order, ts).await
    }
    async fn settle(&mut self, open: &[UnsettledTx]) -> Result<Vec<SettledTx>, VenueError> {
        let pending = self.pending.load(std::sync::atomic::Ordering::SeqCst);
        Ok(open
            .iter()
            .map(|u| SettledTx {
                nonce: u.nonce,
                outcome: if pending {
                    Settlement::Pending {
                        hash: u.hashes[0].clone(),
                    }
                } else {
                    Settlement::Dropped
                },
                credits: vec![],
                debits: vec![],
            })
            .collect())
    }
}

/// Operator commands written while the agent was stopped, delivered one per poll.
#[derive(Clone, Default)]
struct Inbox(Arc<Mutex<Vec<SwitchCommand>>>);
impl SwitchStore for Inbox {
    fn save(&mut self, _: &SwitchRecord) -> Result<(), String> {
        Ok(())
    }
    fn poll(&mut self) -> Option<SwitchCommand> {
        let mut q = self.0.lock().unwrap();
        (!q.is_empty()).then(|| q.remove(0))
    }
}

#[test]
fn a_resume_queued_while_stopped_does_not_cancel_the_restarts_latch_nor_lift_a_pending_tx() {
    let pending = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let resume_cmd = |id| SwitchCommand {
        id,
        action: SwitchAction::Resume,
        reason: "checked".into(),
    };
    // Halted by the operator before the stop; a resume queued while stopped; another one later.
    let inbox = Inbox::default();
    inbox
        .0
        .lock()
        .unwrap()
        .extend([resume_cmd(5), resume_cmd(6)]);
    let halted = SwitchRecord {
        state: SwitchState::Halted,
        reason: Some("operator: maintenance".into()),
        ..SwitchRecord::default()
    };
    let resume = defai::core::Resume {
        unsettled: vec![UnsettledTx {
            intent_id: Some("always_long:1:0".into()),
            label: "swap".into(),
            nonce: 7,
            hashes: vec!["0xabc".into()],
        }],
        ..Default::default()
    };
    let venue = WithPendingTx {
        inner: paper(),
        pending: pending.clone(),
    };
    let tape = Tape::default();
    let agent = agent(Box::new(AlwaysLong), venue, flat(2000.0, 10))
        .with_kill_switch(
            KillSwitch::restore(halted, Some(Box::new(inbox.clone()))),
            KillSwitchPolicy::default(),
            None,
        )
        .with_observer(Box::new(tape.clone()))
        .resuming(resume);
    let report = run_to_end(agent);
    assert_eq!(
        report.kill_switch.state,
        SwitchState::ReduceOnly,
        "{:?}",
        report.kill_switch
    );
    let reason = report.kill_switch.reason.clone().unwrap();
    assert!(
        reason.contains("operator resume refused") && reason.contains("still pending"),
        "the second resume is refused while the transaction is pending, and says why: {reason}"
    );
    assert!(
        tape.fills().is_empty(),
        "nothing bought with a transaction pending"
    );
    assert!(
        inbox.0.lock().unwrap().is_empty(),
        "both commands were applied"
    );
}

/// A source of the given events, in order.
struct Events(std::collections::VecDeque<MarketEvent>);

impl defai::core::MarketSource for Events {
    async fn next_event(&mut self) -> Result<Option<MarketEvent>, defai::core::SourceError> {
        Ok(self.0.pop_front())
    }
}

/// Issue 12 (idle chains): a timer tick carries no new data; strategies do not see it as a bar,
/// and the stale-data limit measures the latest data's age on it, so a chain that stops making
/// blocks halts the agent rather than trading on old reserves.
#[test]
fn a_timer_tick_is_no_bar_and_the_stale_data_limit_halts_on_old_data() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let bar = Bar {
        ts: now,
        open: 2000.0,
        high: 2000.0,
        low: 2000.0,
        close: 2000.0,
        volume: 1.0,
    };
    let events = Events(
        [
            MarketEvent::Bar(bar),
            // The latest block is 100 s old by now: over 3 × max_data_age_s = 30 s.
            MarketEvent::Tick { ts: now - 100 },
        ]
        .into(),
    );
    let pair = Pair::eth_usdc();
    let portfolio = defai::core::Portfolio::with_balances([(
        pair.quote.clone(),
        U256::from(10_000_000_000u64),
    )]);
    let tape = Tape::default();
    let agent = defai::core::Agent::new(pair, events, paper(), Box::new(AlwaysLong), portfolio)
        .with_kill_switch(KillSwitch::new(), KillSwitchPolicy::default(), Some(10))
        .with_wall_data_age()
        .with_observer(Box::new(tape.clone()));
    let report = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(agent.run())
        .unwrap();
    assert_eq!(report.bars, 1, "the tick is not a bar");
    assert_eq!(tape.0.lock().unwrap().0.len(), 1, "one mark: the bar's");
    assert_eq!(report.kill_switch.state, SwitchState::Halted);
    let reason = report.kill_switch.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("market data 10") && reason.contains("s old, over 3× max_data_age_s"),
        "{reason}"
    );
}
