//! Test fixtures shared by the board's and the metrics' unit tests.

use agent_core::agent::AuditEvent;
use agent_core::kill_switch::SwitchChange;
use agent_core::{Fill, Intent, IntentId, Refusal, SwitchState, Token, U256, Verdict};

use super::board::AgentStatus;

pub(super) fn usdc() -> Token {
    Token::new("USDC", 6)
}
pub(super) fn weth() -> Token {
    Token::new("WETH", 18)
}

/// One bar with two intents: one filled, one refused; then a halt.
pub(super) fn feed(s: &mut AgentStatus) {
    let (q, b) = (usdc(), weth());
    let balances = vec![(q.clone(), U256::from(10_000_000_000u64))];
    s.apply(&AuditEvent::Portfolio {
        ts: 0,
        balances: &balances,
    });
    let decision = agent_core::Decision {
        model: "abc".into(),
        features: None,
        output: 0.7,
        action: "long".into(),
    };
    s.apply(&AuditEvent::Decision {
        ts: 100,
        decision: &decision,
    });
    let id0 = IntentId::new("ema_cross", 100, 0);
    let intent0 = Intent::swap(&q, &b, U256::from(1_000_000_000u64));
    s.apply(&AuditEvent::Intent {
        ts: 100,
        id: &id0,
        intent: &intent0,
    });
    s.apply(&AuditEvent::Verdict {
        ts: 100,
        id: &id0,
        verdict: &Verdict::Approve {
            min_amount_out: U256::ZERO,
        },
    });
    let fill = Fill {
        id: id0.clone(),
        ts: 100,
        sell: q.clone(),
        buy: b.clone(),
        amount_in: U256::from(1_000_000_000u64),
        amount_out: U256::from(500_000_000_000_000_000u64),
        fee: U256::ZERO,
        fee_quote: U256::ZERO,
        gas_native: U256::ZERO,
        gas_cost: (q.clone(), U256::ZERO),
        gas_quote: U256::ZERO,
        tx_hash: None,
    };
    s.apply(&AuditEvent::Fill(&fill));
    let id1 = IntentId::new("ema_cross", 100, 1);
    s.apply(&AuditEvent::Intent {
        ts: 100,
        id: &id1,
        intent: &intent0,
    });
    s.apply(&AuditEvent::Verdict {
        ts: 100,
        id: &id1,
        verdict: &Verdict::Refuse(Refusal::new("max_position", "too big")),
    });
    s.apply(&AuditEvent::Mark {
        ts: 100,
        price: 2000.0,
        equity: 9_990.5,
    });
    s.apply(&AuditEvent::KillSwitch {
        ts: 101,
        change: &SwitchChange {
            from: SwitchState::Active,
            to: SwitchState::Halted,
            flattening: false,
            flatten_now: false,
            reason: "operator: test".into(),
        },
    });
}
