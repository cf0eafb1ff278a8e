//! Prometheus text exposition of the board (`GET /metrics`).

use std::fmt::Write as _;

use agent_core::SwitchState;

use super::board::{AgentStatus, Counters};

/// The numbers `/metrics` exposes for one agent.
#[derive(Debug, Clone)]
pub(super) struct MetricsRow {
    c: Counters,
    equity: Option<f64>,
    switch: SwitchState,
    last_ts: Option<i64>,
}

impl MetricsRow {
    pub(super) fn of(s: &AgentStatus) -> Self {
        Self {
            c: s.counters.clone(),
            equity: s.last_equity,
            switch: s.switch.state,
            last_ts: s.last_ts,
        }
    }
}

fn switch_gauge(s: SwitchState) -> u8 {
    match s {
        SwitchState::Active => 0,
        SwitchState::ReduceOnly => 1,
        SwitchState::Halted => 2,
    }
}

/// A label value, escaped as the exposition format wants (`\\`, `\"`, `\n`).
fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Reads one sample of a metric from an agent's row; `None`: no sample (e.g. no bar yet).
type Get = fn(&MetricsRow) -> Option<f64>;

/// The metrics with one sample per agent: name, type, help text and the sample.
const SIMPLE: [(&str, &str, &str, Get); 11] = [
    (
        "defai_bars_total",
        "counter",
        "Market bars processed.",
        |r| Some(r.c.bars as f64),
    ),
    (
        "defai_bad_events_total",
        "counter",
        "Market events refused as unusable.",
        |r| Some(r.c.bad_events as f64),
    ),
    (
        "defai_intents_total",
        "counter",
        "Intents the strategy produced.",
        |r| Some(r.c.intents as f64),
    ),
    (
        "defai_fills_total",
        "counter",
        "Orders filled and booked.",
        |r| Some(r.c.fills as f64),
    ),
    (
        "defai_execution_failures_total",
        "counter",
        "Approved orders the venue failed to fill.",
        |r| Some(r.c.execution_failures as f64),
    ),
    (
        "defai_strategy_faults_total",
        "counter",
        "Strategy failures or unusable outputs.",
        |r| Some(r.c.strategy_faults as f64),
    ),
    (
        "defai_reconciliations_total",
        "counter",
        "Booked balances corrected from the venue's record.",
        |r| Some(r.c.reconciliations as f64),
    ),
    (
        "defai_kill_switch_changes_total",
        "counter",
        "Kill switch state changes.",
        |r| Some(r.c.kill_switch_changes as f64),
    ),
    (
        "defai_equity",
        "gauge",
        "Equity at the last bar's close, in quote token units.",
        |r| r.equity,
    ),
    (
        "defai_kill_switch_state",
        "gauge",
        "Kill switch: 0 active, 1 reduce_only, 2 halted.",
        |r| Some(switch_gauge(r.switch) as f64),
    ),
    (
        "defai_last_bar_timestamp_seconds",
        "gauge",
        "Event time of the last bar processed (unix seconds).",
        |r| r.last_ts.map(|t| t as f64),
    ),
];

/// The Prometheus text of every agent's row: the metrics of [`SIMPLE`], then the verdicts and
/// the refusals by reason.
pub(super) fn render_metrics(rows: &[(String, MetricsRow)]) -> String {
    let mut out = String::with_capacity(2048 + rows.len() * 1024);
    for (name, kind, help, get) in SIMPLE {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (agent, r) in rows {
            if let Some(v) = get(r) {
                let _ = writeln!(out, "{name}{{agent=\"{}\"}} {}", label(agent), num(v));
            }
        }
    }
    render_verdicts(&mut out, rows);
    render_refusals(&mut out, rows);
    out
}

/// `defai_verdicts_total`: the gate's verdicts per agent, by verdict.
fn render_verdicts(out: &mut String, rows: &[(String, MetricsRow)]) {
    let name = "defai_verdicts_total";
    let _ = writeln!(
        out,
        "# HELP {name} Risk gate verdicts.\n# TYPE {name} counter"
    );
    for (agent, r) in rows {
        for (verdict, v) in [
            ("approve", r.c.approved),
            ("resize", r.c.resized),
            ("refuse", r.c.refused),
        ] {
            let _ = writeln!(
                out,
                "{name}{{agent=\"{}\",verdict=\"{verdict}\"}} {v}",
                label(agent)
            );
        }
    }
}

/// `defai_refusals_total`: refused intents per agent, by reason code.
fn render_refusals(out: &mut String, rows: &[(String, MetricsRow)]) {
    let name = "defai_refusals_total";
    let _ = writeln!(
        out,
        "# HELP {name} Refused intents by reason code.\n# TYPE {name} counter"
    );
    for (agent, r) in rows {
        for (reason, v) in &r.c.refused_by_reason {
            let _ = writeln!(
                out,
                "{name}{{agent=\"{}\",reason=\"{}\"}} {v}",
                label(agent),
                label(reason)
            );
        }
    }
}

/// A sample value: integers without a fraction, non-finite values as the format spells them.
fn num(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::board::Board;
    use crate::control::fixtures::{feed, usdc, weth};
    use agent_core::agent::AuditEvent;
    use agent_core::{Intent, IntentId, Refusal, U256, Verdict};

    #[test]
    fn metrics_are_prometheus_text_with_the_agent_label() {
        let board = Board::new();
        let h = board.register("alpha \"1\"", None);
        let mut o = h.observer();
        let mut s = AgentStatus::default();
        feed(&mut s);
        // Through the observer, as an agent would.
        {
            let (q, b) = (usdc(), weth());
            let id = IntentId::new("ema_cross", 100, 0);
            let intent = Intent::swap(&q, &b, U256::from(5u64));
            o.on_audit(&AuditEvent::Intent {
                ts: 100,
                id: &id,
                intent: &intent,
            })
            .unwrap();
            o.on_audit(&AuditEvent::Verdict {
                ts: 100,
                id: &id,
                verdict: &Verdict::Refuse(Refusal::new("kill_switch_halted", "halted")),
            })
            .unwrap();
            o.on_audit(&AuditEvent::Mark {
                ts: 100,
                price: 2000.0,
                equity: 10_000.25,
            })
            .unwrap();
        }
        let text = board.metrics(None).unwrap();
        let lbl = "agent=\"alpha \\\"1\\\"\"";
        for want in [
            "# HELP defai_bars_total Market bars processed.".to_string(),
            "# TYPE defai_bars_total counter".to_string(),
            format!("defai_bars_total{{{lbl}}} 1"),
            format!("defai_intents_total{{{lbl}}} 1"),
            "# TYPE defai_equity gauge".to_string(),
            format!("defai_equity{{{lbl}}} 10000.25"),
            format!("defai_kill_switch_state{{{lbl}}} 0"),
            format!("defai_verdicts_total{{{lbl},verdict=\"refuse\"}} 1"),
            format!("defai_verdicts_total{{{lbl},verdict=\"approve\"}} 0"),
            format!("defai_refusals_total{{{lbl},reason=\"kill_switch_halted\"}} 1"),
        ] {
            assert!(
                text.lines().any(|l| l == want),
                "missing `{want}` in\n{text}"
            );
        }
        // Every sample line is `name{labels} value` with a HELP and TYPE before it.
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_string());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (name, rest) = line.split_once('{').expect(line);
            assert!(typed.contains(name), "{name} has no TYPE before it");
            let value = rest.rsplit_once("} ").expect(line).1;
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
        // A halted agent's gauge is 2.
        let rows = vec![("b".to_string(), MetricsRow::of(&s))];
        let t2 = render_metrics(&rows);
        assert!(
            t2.contains("defai_kill_switch_state{agent=\"b\"} 2\n"),
            "{t2}"
        );
        assert!(t2.contains("defai_fills_total{agent=\"b\"} 1\n"), "{t2}");
        assert!(board.metrics(Some("nobody")).is_none());
    }
}
