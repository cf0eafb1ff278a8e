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
