//! Journal record bodies, schema 2: every body is one JSON object with its `kind` (the record's
//! kind again, so a body read on its own says what it is), the schema version `v` and named
//! fields. Amounts are objects naming their token: `{"units": "1500000", "symbol": "USDC",
//! "decimals": 6, "address": "0x…" | null}` — `units` is the exact integer count of the token's
//! smallest unit as a decimal string; `address` is the token's contract on the chain the run
//! traded on, `null` off chain. The fields of each kind are documented in `docs/journal.md`.
//!
//! Schema 1 (journals written before) stored Rust `Debug` text for intents, verdicts and kill
//! switch changes and bare strings for amounts; those records still verify (the hash covers the
//! stored bytes) and are read back as legacy ([`schema_of`]).

use std::collections::BTreeMap;

use agent_core::{Intent, IntentId, Refusal, Swap, Token, U256, Verdict};
use serde_json::{Map, Value, json};

/// The schema version written into every body (`"v": 2`).
pub const SCHEMA: u64 = 2;

/// The schema of a stored body: its `v` when it is a JSON object carrying one, else 1 (a
/// legacy body: `Debug` text, a bare JSON string, or an object without `v`).
pub fn schema_of(body: &str) -> u64 {
    if !body.starts_with('{') {
        return 1;
    }
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("v").and_then(Value::as_u64))
        .unwrap_or(1)
}

/// Token contract addresses by symbol, for the amounts of a chain run's records; empty off
/// chain (every `address` is then `null`).
#[derive(Debug, Clone, Default)]
pub struct Addresses(pub BTreeMap<String, String>);

impl Addresses {
    /// `{"symbol", "decimals", "address"}` of `token`.
    pub(super) fn token(&self, token: &Token) -> Value {
        json!({
            "symbol": token.symbol(),
            "decimals": token.decimals(),
            "address": self.0.get(token.symbol()),
        })
    }

    /// `units` of `token` as an amount object.
    pub(super) fn amount(&self, token: &Token, units: U256) -> Value {
        let mut v = self.token(token);
        v["units"] = Value::String(units.to_string());
        v
    }

    /// `units` of a token the record cannot name (a bet's outcome tokens, a bundle's output):
    /// symbol, decimals and address `null`.
    pub(super) fn bare(units: U256) -> Value {
        json!({"units": units.to_string(), "symbol": null, "decimals": null, "address": null})
    }
}

/// `fields` as a schema-2 body of `kind`: `{"v": 2, "kind": kind, ...fields}`.
pub(super) fn body(kind: &str, fields: Value) -> String {
    let mut map = Map::with_capacity(8);
    map.insert("v".into(), SCHEMA.into());
    map.insert("kind".into(), kind.into());
    if let Value::Object(f) = fields {
        map.extend(f);
    }
    Value::Object(map).to_string()
}

/// A swap's fields: sell and buy tokens, the input amount and the venue key (`null`: the
/// pair's only venue).
fn swap_fields(a: &Addresses, s: &Swap) -> Value {
    json!({
        "sell": a.token(&s.sell), "buy": a.token(&s.buy),
        "amount_in": a.amount(&s.sell, s.amount_in), "venue": s.venue,
    })
}

/// An intent's body: its id and `type` (`swap`, `bet`, `redeem`, `bundle`) with that type's
/// fields; a swap's fields at the top level (a bundle leg's as sent), a bundle's legs in
/// `legs`.
pub(super) fn intent(a: &Addresses, id: &IntentId, intent: &Intent) -> String {
    let mut f = match intent {
        Intent::Swap(s) => swap_fields(a, s),
        Intent::Bet(b) => json!({
            "market": b.market, "outcome": b.outcome,
            "investment": a.amount(&b.collateral, b.investment),
            "collateral": a.token(&b.collateral),
        }),
        Intent::Redeem(r) => json!({"markets": r.markets, "collateral": a.token(&r.collateral)}),
        Intent::Bundle(legs) => {
            json!({"legs": legs.iter().map(|s| swap_fields(a, s)).collect::<Vec<_>>()})
        }
        // A kind of intent added later: its text, so nothing is lost.
        other => json!({"text": format!("{other:?}")}),
    };
    let t = match intent {
        Intent::Swap(_) => "swap",
        Intent::Bet(_) => "bet",
        Intent::Redeem(_) => "redeem",
        Intent::Bundle(_) => "bundle",
        _ => "other",
    };
    f["id"] = id.to_string().into();
    f["type"] = t.into();
    body("intent", f)
}

/// The tokens a verdict's amounts are in: the intent's sell and buy tokens, when it is one
/// swap (a bet's and a bundle's amounts are written without a token).
pub(super) fn verdict_tokens(intent: &Intent) -> Option<(Token, Token)> {
    intent.as_swap().map(|s| (s.sell.clone(), s.buy.clone()))
}

/// A refusal as `{"code", "detail"}`.
fn refusal(r: &Refusal) -> Value {
    json!({"code": r.code, "detail": r.detail})
}

/// A verdict's fields: `verdict` (`approve`, `resize`, `refuse`), `min_amount_out` (of the
/// token bought) and `amount_in` (of the token sold) where it has them, and the `reason`
/// (`code`, `detail`) of a resize or refusal.
pub(super) fn verdict_fields(a: &Addresses, v: &Verdict, tokens: Option<&(Token, Token)>) -> Value {
    let out = |units: U256| match tokens {
        Some((_, buy)) => a.amount(buy, units),
        None => Addresses::bare(units),
    };
    let input = |units: U256| match tokens {
        Some((sell, _)) => a.amount(sell, units),
        None => Addresses::bare(units),
    };
    match v {
        Verdict::Approve { min_amount_out } => {
            json!({"verdict": "approve", "min_amount_out": out(*min_amount_out)})
        }
        Verdict::Resize {
            amount_in,
            min_amount_out,
            reason,
        } => json!({
            "verdict": "resize", "amount_in": input(*amount_in),
            "min_amount_out": out(*min_amount_out), "reason": refusal(reason),
        }),
        Verdict::Refuse(r) => json!({"verdict": "refuse", "reason": refusal(r)}),
    }
}

/// A verdict's body ([`verdict_fields`]).
pub(super) fn verdict(a: &Addresses, v: &Verdict, tokens: Option<&(Token, Token)>) -> String {
    body("verdict", verdict_fields(a, v, tokens))
}

/// A swap fill's body: tokens, `amount_in` (sell), `amount_out` (buy), the LP `fee` (sell),
/// the `gas` debited (its token) and `gas_native_wei`.
pub(super) fn fill(a: &Addresses, f: &agent_core::Fill) -> String {
    body(
        "fill",
        json!({
            "sell": a.token(&f.sell), "buy": a.token(&f.buy),
            "amount_in": a.amount(&f.sell, f.amount_in),
            "amount_out": a.amount(&f.buy, f.amount_out),
            "fee": a.amount(&f.sell, f.fee),
            "gas": a.amount(&f.gas_cost.0, f.gas_cost.1),
            "gas_native_wei": f.gas_native.to_string(),
        }),
    )
}

/// A book's body: `balances`, one amount per token, in the book's order.
pub(super) fn portfolio(a: &Addresses, balances: &[(Token, U256)]) -> String {
    let list: Vec<Value> = balances.iter().map(|(t, u)| a.amount(t, *u)).collect();
    body("portfolio", json!({ "balances": list }))
}

/// A kill-switch change: `from`, `to` (`active`, `reduce_only`, `halted`), whether a flatten
/// is under way (and ignores the price-impact limit), and the reason.
pub(super) fn kill_switch(c: &agent_core::kill_switch::SwitchChange) -> String {
    body(
        "kill_switch",
        json!({
            "from": c.from, "to": c.to, "flattening": c.flattening,
            "flatten_now": c.flatten_now, "reason": c.reason,
        }),
    )
}

/// A body of one text field `field` (errors, reasons).
pub(super) fn text(kind: &str, field: &str, value: &str) -> String {
    let mut f = Map::with_capacity(1);
    f.insert(field.into(), value.into());
    body(kind, Value::Object(f))
}

/// The tokens' amounts of a restart's receipt moves, `[amount, ...]`.
pub(super) fn moves(a: &Addresses, side: &[(Token, U256)]) -> Value {
    side.iter().map(|(t, u)| a.amount(t, *u)).collect()
}

/// The integer units of an amount in either schema: a decimal string (schema 1) or an amount
/// object's `units` (schema 2); `None` for anything else.
pub(super) fn units_of(v: &Value) -> Option<U256> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Object(o) => o.get("units")?.as_str()?.parse().ok(),
        _ => None,
    }
}

/// The symbol of a token in either schema: a string (schema 1) or a token object's `symbol`.
pub(super) fn symbol_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("symbol")?.as_str().map(str::to_string),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_amount_names_its_token_and_keeps_every_unit() {
        let usdc = Token::new("USDC", 6);
        let mut a = Addresses::default();
        a.0.insert(
            "USDC".into(),
            "0x00000000000000000000000000000000000000aa".into(),
        );
        let big = U256::MAX;
        let v = a.amount(&usdc, big);
        assert_eq!(v["units"], big.to_string());
        assert_eq!(
            (v["symbol"].as_str(), v["decimals"].as_u64()),
            (Some("USDC"), Some(6))
        );
        assert_eq!(v["address"], "0x00000000000000000000000000000000000000aa");
        assert_eq!(units_of(&v), Some(big));
        assert_eq!(symbol_of(&a.token(&usdc)).as_deref(), Some("USDC"));
        assert_eq!(
            Addresses::default().amount(&usdc, big)["address"],
            Value::Null
        );
    }

    #[test]
    fn every_body_carries_its_kind_and_the_schema_and_legacy_bodies_read_as_schema_1() {
        let pair = agent_core::Pair::eth_usdc();
        let id = IntentId::new("s", 7, 0);
        let i = Intent::swap(&pair.quote, &pair.base, U256::from(2_500_000u64));
        let a = Addresses::default();
        let b: Value = serde_json::from_str(&intent(&a, &id, &i)).unwrap();
        assert_eq!(
            (b["v"].as_u64(), b["kind"].as_str()),
            (Some(2), Some("intent"))
        );
        assert_eq!(
            (b["type"].as_str(), b["id"].as_str()),
            (Some("swap"), Some("s:7:0"))
        );
        assert_eq!(b["amount_in"]["units"], "2500000");
        assert_eq!(b["amount_in"]["symbol"], "USDC");
        let v = Verdict::Resize {
            amount_in: U256::from(1u8),
            min_amount_out: U256::from(2u8),
            reason: Refusal::new("price_impact", "too deep"),
        };
        let tokens = verdict_tokens(&i);
        let vb: Value = serde_json::from_str(&verdict(&a, &v, tokens.as_ref())).unwrap();
        assert_eq!(vb["verdict"], "resize");
        assert_eq!(vb["amount_in"]["symbol"], "USDC");
        assert_eq!(vb["min_amount_out"]["symbol"], "ETH");
        assert_eq!(vb["reason"]["code"], "price_impact");
        assert_eq!(schema_of(&verdict(&a, &v, None)), 2);
        assert_eq!(schema_of("\"Refuse(Refusal { code: \\\"x\\\" })\""), 1);
        assert_eq!(schema_of("{\"USDC\":\"100\"}"), 1);
        assert_eq!(schema_of("Swap(Swap { .. })"), 1);
    }
}
