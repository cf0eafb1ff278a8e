//! [`Detail::Compact`](super::Detail::Compact): what a replay's journal leaves out or counts.
//!
//! No `market` record per bar (the `run` record names the input), the first and the last book only, a
//! run of intents refused with the same verdict (every bar after a halt) as the first pair in
//! full plus one `refusals_repeated` record, and a swap approved and filled at one event time as
//! one `trade` record (its intent, verdict and fill bodies) instead of three. A held intent is
//! cloned, not formatted: a pair that joins a run costs a comparison, not a record.

use agent_core::agent::AuditEvent;
use agent_core::{Intent, IntentId, Token, U256, Verdict};

use super::{Addresses, Row, Trade, body, book_row, intent_row, row, trade_row, verdict_row};

/// What a compact journal holds back: an intent until its verdict, an approved swap until its
/// fill, the run of identical refusals being counted, and the latest book.
#[derive(Debug, Default)]
pub(super) struct Compactor {
    /// The intent written with its verdict, unless both join the run.
    held: Option<(i64, IntentId, Intent)>,
    /// An intent approved (or resized) at its event time, with its verdict: written with its
    /// fill as one `trade` record when the fill comes next at that time, else as they are.
    approved: Option<Approved>,
    /// The refusal every counted pair repeated, once one was written in full.
    run: Option<Repeats>,
    /// The latest book (`portfolio`) at its event time: the first is written as it comes (the
    /// starting balances), the ones between follow from the fills, and the last is written
    /// (formatted) when the run finishes.
    book: Option<(i64, Vec<(Token, U256)>)>,
    /// The first book was written.
    first_book: bool,
}

/// An approved intent awaiting its fill.
#[derive(Debug)]
struct Approved {
    ts: i64,
    id: IntentId,
    intent: Intent,
    verdict: Verdict,
}

/// A run of intents refused with the same verdict.
#[derive(Debug)]
struct Repeats {
    /// The verdict of the run's first pair (written in full).
    verdict: Verdict,
    /// Pairs collapsed after the first.
    count: u64,
    /// Event time and intent of the first and the last collapsed pair.
    first: Option<(i64, IntentId)>,
    last: Option<(i64, IntentId)>,
}

impl Compactor {
    /// Takes the events compaction changes (market, intent, verdict, portfolio, the fill of the
    /// approved swap held), pushing what is to be written now onto `out`; `false` for any other
    /// event, which the caller writes after `out`. Any event but that fill first lets the held
    /// approval go (its intent and verdict records); before the record of an event not taken
    /// the held intent is let go, and the run of
    /// refusals ends unless it is a decision (made every bar, refused or not) or a mark (which
    /// the journal does not keep).
    pub(super) fn take(&mut self, event: &AuditEvent<'_>, out: &mut Vec<Row>) -> bool {
        if let AuditEvent::Fill(fill) = event
            && let Some(a) = self
                .approved
                .take_if(|a| a.id == fill.id && a.ts == fill.ts)
        {
            out.push(trade_row(Trade {
                id: a.id,
                intent: a.intent,
                verdict: a.verdict,
                fill: (*fill).clone(),
            }));
            return true;
        }
        self.write_approved(out);
        match event {
            AuditEvent::Market { .. } => {}
            AuditEvent::Intent { ts, id, intent } => {
                // An intent before the verdict of the one held (a bundle's legs): write it.
                self.write_held(out);
                self.held = Some((*ts, (*id).clone(), (*intent).clone()));
            }
            AuditEvent::Verdict { ts, id, verdict } => self.verdict(*ts, id, verdict, out),
            AuditEvent::Portfolio { ts, balances } if !self.first_book => {
                self.first_book = true;
                out.push(book_row(*ts, balances));
            }
            AuditEvent::Portfolio { ts, balances } => {
                let book = self.book.get_or_insert_with(|| (*ts, Vec::new()));
                book.0 = *ts;
                book.1.clear();
                book.1.extend_from_slice(balances);
            }
            AuditEvent::Mark { .. } => return false,
            AuditEvent::Decision { .. } => {
                self.write_held(out);
                return false;
            }
            _ => {
                self.release(out);
                return false;
            }
        }
        true
    }

    /// A verdict: counted when it refuses the intent held exactly as the run's first did;
    /// otherwise written after that intent (and the run it ends), a refusal starting a run.
    fn verdict(&mut self, ts: i64, id: &IntentId, verdict: &Verdict, out: &mut Vec<Row>) {
        let held = self.held.take_if(|h| h.1 == *id);
        let refusal = matches!(verdict, Verdict::Refuse(_));
        if let (Some((at, id, _)), Some(run), true) = (&held, &mut self.run, refusal)
            && run.verdict == *verdict
        {
            run.count += 1;
            run.first.get_or_insert_with(|| (*at, id.clone()));
            run.last = Some((*at, id.clone()));
            return;
        }
        self.release(out);
        if refusal && held.is_some() {
            self.run = Some(Repeats {
                verdict: verdict.clone(),
                count: 0,
                first: None,
                last: None,
            });
        }
        let tokens = held
            .as_ref()
            .and_then(|(_, _, intent)| body::verdict_tokens(intent));
        match held {
            // A swap's fill may follow at this time: held for one `trade` record.
            Some((at, id, intent)) if !refusal && at == ts && intent.as_swap().is_some() => {
                self.approved = Some(Approved {
                    ts,
                    id,
                    intent,
                    verdict: verdict.clone(),
                });
            }
            Some((at, hid, intent)) => {
                out.push(intent_row(at, &hid, &intent));
                out.push(verdict_row(ts, id, verdict, tokens));
            }
            None => out.push(verdict_row(ts, id, verdict, tokens)),
        }
    }

    /// Writes the approved intent awaiting its fill, if any, as its `intent` and `verdict`
    /// records (something else came before the fill).
    fn write_approved(&mut self, out: &mut Vec<Row>) {
        if let Some(a) = self.approved.take() {
            out.push(intent_row(a.ts, &a.id, &a.intent));
            let tokens = body::verdict_tokens(&a.intent);
            out.push(verdict_row(a.ts, &a.id, &a.verdict, tokens));
        }
    }

    /// Writes what is held, if anything: the approved intent awaiting its fill and the intent
    /// awaiting its verdict (before a venue step filed under it).
    pub(super) fn write_held(&mut self, out: &mut Vec<Row>) {
        self.write_approved(out);
        if let Some((ts, id, intent)) = self.held.take() {
            out.push(intent_row(ts, &id, &intent));
        }
    }

    /// Ends the run (a `refusals_repeated` record when it counted any) and writes the held
    /// intent.
    fn release(&mut self, out: &mut Vec<Row>) {
        if let Some(Repeats {
            verdict,
            count,
            first: Some(first),
            last: Some(last),
        }) = self.run.take()
        {
            let f = serde_json::json!({
                "count": count,
                "first_ts": first.0, "first_intent": first.1.to_string(),
                "last_ts": last.0, "last_intent": last.1.to_string(),
                "verdict": body::verdict_fields(&Addresses::default(), &verdict, None),
            });
            out.push(row(
                last.0,
                "refusals_repeated",
                body::body("refusals_repeated", f),
            ));
        }
        self.write_held(out);
    }

    /// The end of the run: the open run of refusals, the held intent and the last book.
    pub(super) fn finish(&mut self, out: &mut Vec<Row>) {
        self.release(out);
        if let Some((ts, balances)) = self.book.take() {
            out.push(book_row(ts, &balances));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refuse(code: &'static str) -> Verdict {
        Verdict::Refuse(agent_core::Refusal::new(code, "no"))
    }

    /// Feeds an intent at `ts` and its verdict.
    fn pair(c: &mut Compactor, ts: i64, verdict: &Verdict, out: &mut Vec<Row>) {
        let id = IntentId::new("s", ts, 0);
        let pair = agent_core::Pair::eth_usdc();
        let intent = Intent::swap(&pair.quote, &pair.base, agent_core::U256::from(100u8));
        assert!(c.take(
            &AuditEvent::Intent {
                ts,
                id: &id,
                intent: &intent
            },
            out
        ));
        assert!(c.take(
            &AuditEvent::Verdict {
                ts,
                id: &id,
                verdict
            },
            out
        ));
    }

    #[test]
    fn identical_refusals_after_the_first_become_one_counted_record() {
        let (mut c, mut out) = (Compactor::default(), Vec::new());
        for ts in 1..=5 {
            pair(&mut c, ts, &refuse("kill_switch_halted"), &mut out);
        }
        // A different refusal ends the run and starts its own.
        pair(&mut c, 6, &refuse("max_position"), &mut out);
        c.finish(&mut out);
        let kinds: Vec<&str> = out.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                "intent",
                "verdict",
                "refusals_repeated",
                "intent",
                "verdict"
            ]
        );
        let text = |r: &Row| r.body.render(&Addresses::default()).into_owned();
        let body: serde_json::Value = serde_json::from_str(&text(&out[2])).unwrap();
        assert_eq!(body["count"], 4);
        assert_eq!(
            (body["first_ts"].as_i64(), body["last_ts"].as_i64()),
            (Some(2), Some(5))
        );
        assert_eq!(body["last_intent"], "s:5:0");
        let verdict: serde_json::Value = serde_json::from_str(&text(&out[1])).unwrap();
        assert_eq!(body["verdict"]["reason"], verdict["reason"]);
        assert_eq!(body["verdict"]["reason"]["code"], "kill_switch_halted");
    }

    /// A fill of `id`'s 100 USDC at `ts`.
    fn fill_of(id: &IntentId, ts: i64) -> agent_core::Fill {
        let pair = agent_core::Pair::eth_usdc();
        let units = agent_core::U256::from;
        agent_core::Fill {
            id: id.clone(),
            ts,
            sell: pair.quote.clone(),
            buy: pair.base.clone(),
            amount_in: units(100u8),
            amount_out: units(7u8),
            fee: units(1u8),
            fee_quote: units(1u8),
            gas_native: units(2u8),
            gas_cost: (pair.quote.clone(), units(3u8)),
            gas_quote: units(3u8),
            tx_hash: None,
        }
    }

    #[test]
    fn a_swap_approved_and_filled_at_its_event_time_is_one_trade_record() {
        let (mut c, mut out) = (Compactor::default(), Vec::new());
        let approve = Verdict::Approve {
            min_amount_out: agent_core::U256::from(5u8),
        };
        // Filled at its time: one record holding the three bodies.
        pair(&mut c, 1, &approve, &mut out);
        assert!(out.is_empty(), "held until its fill");
        let id1 = IntentId::new("s", 1, 0);
        assert!(c.take(&AuditEvent::Fill(&fill_of(&id1, 1)), &mut out));
        // Filled at a later event time (a late settlement): three records, as they came.
        pair(&mut c, 2, &approve, &mut out);
        let id2 = IntentId::new("s", 2, 0);
        assert!(!c.take(&AuditEvent::Fill(&fill_of(&id2, 3)), &mut out));
        // Approved, then something else (an execution failure) before any fill.
        pair(&mut c, 4, &approve, &mut out);
        let slippage = agent_core::VenueError::Slippage {
            min: agent_core::U256::from(5u8),
            got: agent_core::U256::from(4u8),
        };
        let failed = AuditEvent::ExecutionFailed {
            ts: 4,
            id: &IntentId::new("s", 4, 0),
            error: &slippage,
        };
        assert!(!c.take(&failed, &mut out));
        // Another intent's fill at the same time (a bundle's leg): not this one's.
        pair(&mut c, 5, &approve, &mut out);
        let other = IntentId::new("s#0", 5, 0);
        assert!(!c.take(&AuditEvent::Fill(&fill_of(&other, 5)), &mut out));
        // Approved at the run's end: written as it is.
        pair(&mut c, 6, &approve, &mut out);
        c.finish(&mut out);
        let rows: Vec<(&str, String)> = out
            .iter()
            .map(|r| {
                (
                    r.kind,
                    r.intent
                        .as_ref()
                        .map(|i| i.text().into_owned())
                        .unwrap_or_default(),
                )
            })
            .collect();
        let expected = [
            ("trade", "s:1:0"),
            ("intent", "s:2:0"),
            ("verdict", "s:2:0"),
            ("intent", "s:4:0"),
            ("verdict", "s:4:0"),
            ("intent", "s:5:0"),
            ("verdict", "s:5:0"),
            ("intent", "s:6:0"),
            ("verdict", "s:6:0"),
        ];
        assert_eq!(rows, expected.map(|(k, i)| (k, i.to_string())));
        // The trade's parts are the bodies their own records would have.
        let a = Addresses::default();
        let pair = agent_core::Pair::eth_usdc();
        let intent = Intent::swap(&pair.quote, &pair.base, agent_core::U256::from(100u8));
        let trade: serde_json::Value = serde_json::from_str(&out[0].body.render(&a)).unwrap();
        let part = |text: String| serde_json::from_str::<serde_json::Value>(&text).unwrap();
        assert_eq!(trade["kind"], "trade");
        assert_eq!(trade["intent"], part(body::intent(&a, &id1, &intent)));
        let tokens = body::verdict_tokens(&intent);
        assert_eq!(
            trade["verdict"],
            part(body::verdict(&a, &approve, tokens.as_ref()))
        );
        assert_eq!(trade["fill"], part(body::fill(&a, &fill_of(&id1, 1))));
        assert_eq!(out[0].ts, 1);
    }

    #[test]
    fn an_approval_is_written_with_its_intent_and_ends_the_run() {
        let (mut c, mut out) = (Compactor::default(), Vec::new());
        let approve = Verdict::Approve {
            min_amount_out: agent_core::U256::from(1u8),
        };
        pair(&mut c, 1, &refuse("cooldown"), &mut out);
        pair(&mut c, 2, &refuse("cooldown"), &mut out);
        pair(&mut c, 3, &approve, &mut out);
        pair(&mut c, 4, &refuse("cooldown"), &mut out);
        c.finish(&mut out);
        let kinds: Vec<&str> = out.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                "intent",
                "verdict",           // the first refusal
                "refusals_repeated", // the second, counted
                "intent",
                "verdict", // the approval
                "intent",
                "verdict", // a new run's first refusal
            ]
        );
    }
}
