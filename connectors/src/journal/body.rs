//! Journal record bodies, schema 3: every body is one JSON object with its `kind` (the record's
//! kind again, so a body read on its own says what it is), the schema version `v` and named
//! fields. Amounts are objects naming their token: `{"units": "1500000", "symbol": "USDC",
//! "decimals": 6, "address": "0x…"}` — `units` is the exact integer count of the token's
//! smallest unit as a decimal string; `address` is the token's contract on the chain the run
//! traded on, left out off chain. The fields of each kind are documented in `docs/journal.md`.
//!
//! The bodies a replay writes most (swap intents, verdicts, fills, books) are written from typed
//! structs straight into their text by [`Text`], byte for byte what `serde_json` writes for the
//! same struct (the tests hold the two side by side), without its per-key escape scan; the rest
//! are built as JSON values. Keys are written in alphabetical order either way.
//!
//! Schema 1 (journals written before) stored Rust `Debug` text for intents, verdicts and kill
//! switch changes and bare strings for amounts; those records still verify (the hash covers the
//! stored bytes) and are read back as legacy ([`schema_of`]).

use std::collections::BTreeMap;

use agent_core::{Intent, IntentId, Refusal, Swap, Token, U256, Verdict};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// The schema version written into every body (`"v": 3`). Schema 2 (written for a few
/// commits before it) had the same kinds and fields, plus `sell` and `buy` token objects in
/// intents and fills and `"address": null` in off-chain amounts; it is read alike.
pub const SCHEMA: u64 = 3;

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
/// chain (every `address` is then left out).
#[derive(Debug, Clone, Default)]
pub struct Addresses(pub BTreeMap<String, String>);

/// An amount as written: `{"address"?, "decimals", "symbol", "units"}`, `units` the exact
/// integer as a decimal string; a token alone is the same object without `units` (`None`).
/// `symbol` and `decimals` are `null` for a token the record cannot name.
#[derive(Serialize)]
pub(super) struct Amount<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<&'a str>,
    decimals: Option<u8>,
    symbol: Option<&'a str>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "some_decimal"
    )]
    units: Option<U256>,
}

/// `units` as a decimal string (through `u128` when it fits: the same digits, without the
/// 256-bit divisions or the formatting machinery).
fn decimal<S: serde::Serializer>(units: &U256, s: S) -> Result<S::Ok, S::Error> {
    with_digits(units, |digits| s.serialize_str(digits))
}

/// `f` of `units`' decimal digits: through `u128` and `itoa` when it fits, else `U256`'s text
/// (the same digits either way).
fn with_digits<R>(units: &U256, f: impl FnOnce(&str) -> R) -> R {
    match u128::try_from(*units) {
        Ok(small) => f(itoa::Buffer::new().format(small)),
        Err(_) => f(&units.to_string()),
    }
}

/// [`decimal`] of optional units (a `None` is skipped before it gets here).
fn some_decimal<S: serde::Serializer>(units: &Option<U256>, s: S) -> Result<S::Ok, S::Error> {
    match units {
        Some(u) => decimal(u, s),
        None => s.serialize_none(),
    }
}

impl Addresses {
    /// `token` as written: an [`Amount`] without units.
    fn token_ref<'a>(&'a self, token: &'a Token) -> Amount<'a> {
        Amount {
            address: self.0.get(token.symbol()).map(String::as_str),
            decimals: Some(token.decimals()),
            symbol: Some(token.symbol()),
            units: None,
        }
    }

    /// `units` of `token` as written ([`Amount`]).
    fn amount_ref<'a>(&'a self, token: &'a Token, units: U256) -> Amount<'a> {
        Amount {
            units: Some(units),
            ..self.token_ref(token)
        }
    }

    /// `{"symbol", "decimals", "address"?}` of `token`.
    pub(super) fn token(&self, token: &Token) -> Value {
        to_value(&self.token_ref(token))
    }

    /// `units` of `token` as an amount object.
    pub(super) fn amount(&self, token: &Token, units: U256) -> Value {
        to_value(&self.amount_ref(token, units))
    }

    /// `units` of a token the record cannot name (a bet's outcome tokens, a bundle's output):
    /// symbol and decimals `null`, no address.
    pub(super) fn bare(units: U256) -> Value {
        to_value(&bare_ref(units))
    }
}

/// [`Addresses::bare`] as written.
fn bare_ref<'a>(units: U256) -> Amount<'a> {
    Amount {
        address: None,
        decimals: None,
        symbol: None,
        units: Some(units),
    }
}

/// A typed body or field as a JSON value (the types here always serialize).
fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Compact JSON text written field by field: `{"key":value,...}` with the keys in the order
/// given (alphabetical, as `serde_json` writes a struct whose fields are declared so), strings
/// escaped as `serde_json` escapes them.
struct Text {
    out: String,
    /// Whether the object being written has no field yet.
    first: bool,
}

impl Text {
    /// A new object, `{`.
    fn object() -> Self {
        let mut out = String::with_capacity(320);
        out.push('{');
        Self { out, first: true }
    }

    /// `"key":` (after a `,` unless it is the object's first key); `key` needs no escaping.
    fn key(&mut self, key: &'static str) -> &mut Self {
        if !std::mem::take(&mut self.first) {
            self.out.push(',');
        }
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
        self
    }

    /// `value` as a JSON string ([`escape_into`]).
    fn str(&mut self, value: &str) {
        escape_into(&mut self.out, value);
    }

    /// `value` as JSON text already (a number, `null`, a body).
    fn raw(&mut self, value: &str) {
        self.out.push_str(value);
    }

    /// An object as a value: `{`, the fields `fields` writes, `}`.
    fn object_in(&mut self, fields: impl FnOnce(&mut Self)) {
        self.out.push('{');
        self.first = true;
        fields(self);
        self.out.push('}');
        self.first = false;
    }

    /// An array as a value: `[`, each item as `item` writes it, `,` between, `]`.
    fn array<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Self, &T)) {
        self.out.push('[');
        for (i, t) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            item(self, t);
        }
        self.out.push(']');
    }

    /// An amount or a token ([`Amount`]) as a value, as its derived `Serialize` writes it.
    fn amount(&mut self, a: &Amount<'_>) {
        self.object_in(|t| {
            if let Some(address) = a.address {
                t.key("address").str(address);
            }
            match a.decimals {
                Some(d) => t.key("decimals").raw(itoa::Buffer::new().format(d)),
                None => t.key("decimals").raw("null"),
            }
            match a.symbol {
                Some(symbol) => t.key("symbol").str(symbol),
                None => t.key("symbol").raw("null"),
            }
            if let Some(units) = &a.units {
                t.key("units").decimal(units);
            }
        });
    }

    /// `units` as a decimal string ([`decimal`]'s digits).
    fn decimal(&mut self, units: &U256) {
        self.out.push('"');
        with_digits(units, |digits| self.out.push_str(digits));
        self.out.push('"');
    }

    /// The closed object's text.
    fn close(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// `value` as a JSON string appended to `out`, escaped exactly as `serde_json` escapes it: `"`
/// and `\\` with a backslash, backspace, form feed, newline, carriage return and tab by their
/// short escapes, the other control characters below U+0020 as `\u00XX` (lowercase hex), every
/// other character as it is.
fn escape_into(out: &mut String, value: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in value.bytes().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&value[start..i]);
        if short.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        } else {
            out.push_str(short);
        }
        start = i + 1;
    }
    out.push_str(&value[start..]);
    out.push('"');
}

/// `fields` as a body of `kind` in the current schema: `{"v": 3, "kind": kind, ...fields}`.
pub(super) fn body(kind: &str, fields: Value) -> String {
    let mut map = Map::with_capacity(8);
    map.insert("v".into(), SCHEMA.into());
    map.insert("kind".into(), kind.into());
    if let Value::Object(f) = fields {
        map.extend(f);
    }
    Value::Object(map).to_string()
}

/// A swap's fields as written: the input amount (which names the token sold), the token
/// bought and the venue key (`null`: the pair's only venue).
#[derive(Serialize)]
struct SwapFields<'a> {
    amount_in: Amount<'a>,
    buy: Amount<'a>,
    venue: &'a Option<String>,
}

/// A swap's fields ([`SwapFields`]).
fn swap_fields<'a>(a: &'a Addresses, s: &'a Swap) -> SwapFields<'a> {
    SwapFields {
        amount_in: a.amount_ref(&s.sell, s.amount_in),
        buy: a.token_ref(&s.buy),
        venue: &s.venue,
    }
}

/// A swap intent's body: [`SwapFields`] with the intent's id, kind, type and schema. Written
/// by [`SwapIntent::text`] (the tests check it against the derived `Serialize`).
#[cfg_attr(test, derive(Serialize))]
struct SwapIntent<'a> {
    amount_in: Amount<'a>,
    buy: Amount<'a>,
    #[cfg_attr(test, serde(serialize_with = "id_text"))]
    id: &'a IntentId,
    kind: &'static str,
    r#type: &'static str,
    v: u64,
    venue: &'a Option<String>,
}

impl SwapIntent<'_> {
    /// The body's text.
    fn text(&self) -> String {
        let mut t = Text::object();
        t.key("amount_in").amount(&self.amount_in);
        t.key("buy").amount(&self.buy);
        t.key("id").str(&self.id.text());
        t.key("kind").str(self.kind);
        t.key("type").str(self.r#type);
        t.key("v").raw(itoa::Buffer::new().format(self.v));
        match self.venue {
            Some(venue) => t.key("venue").str(venue),
            None => t.key("venue").raw("null"),
        }
        t.close()
    }
}

/// An intent id as its text (`strategy:ts:seq`).
#[cfg(test)]
fn id_text<S: serde::Serializer>(id: &IntentId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&id.text())
}

/// An intent's body: its id and `type` (`swap`, `bet`, `redeem`, `bundle`) with that type's
/// fields; a swap's fields at the top level (a bundle leg's as sent), a bundle's legs in
/// `legs`.
pub(super) fn intent(a: &Addresses, id: &IntentId, intent: &Intent) -> String {
    if let Intent::Swap(s) = intent {
        return (SwapIntent {
            amount_in: a.amount_ref(&s.sell, s.amount_in),
            buy: a.token_ref(&s.buy),
            id,
            kind: "intent",
            r#type: "swap",
            v: SCHEMA,
            venue: &s.venue,
        })
        .text();
    }
    let mut f = match intent {
        Intent::Bet(b) => json!({
            "market": b.market, "outcome": b.outcome,
            "investment": a.amount(&b.collateral, b.investment),
            "collateral": a.token(&b.collateral),
        }),
        Intent::Redeem(r) => json!({"markets": r.markets, "collateral": a.token(&r.collateral)}),
        Intent::Bundle(legs) => {
            json!({"legs": legs.iter().map(|s| to_value(&swap_fields(a, s))).collect::<Vec<_>>()})
        }
        // A kind of intent added later: its text, so nothing is lost.
        other => json!({"text": format!("{other:?}")}),
    };
    let t = match intent {
        Intent::Bet(_) => "bet",
        Intent::Redeem(_) => "redeem",
        Intent::Bundle(_) => "bundle",
        _ => "other",
    };
    f["id"] = id.text().into();
    f["type"] = t.into();
    body("intent", f)
}

/// The tokens a verdict's amounts are in: the intent's sell and buy tokens, when it is one
/// swap (a bet's and a bundle's amounts are written without a token).
pub(super) fn verdict_tokens(intent: &Intent) -> Option<(Token, Token)> {
    intent.as_swap().map(|s| (s.sell.clone(), s.buy.clone()))
}

/// A refusal as written: `{"code", "detail"}`.
#[derive(Serialize)]
struct Reason<'a> {
    code: &'a str,
    detail: &'a str,
}

impl<'a> From<&'a Refusal> for Reason<'a> {
    fn from(r: &'a Refusal) -> Self {
        Reason {
            code: r.code,
            detail: &r.detail,
        }
    }
}

/// A verdict's body; the fields a verdict does not have are left out.
#[derive(Serialize)]
struct VerdictBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    amount_in: Option<Amount<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_amount_out: Option<Amount<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<Reason<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    v: Option<u64>,
    verdict: &'static str,
}

impl VerdictBody<'_> {
    /// The body's text, as the derived `Serialize` writes it.
    fn text(&self) -> String {
        let mut t = Text::object();
        if let Some(a) = &self.amount_in {
            t.key("amount_in").amount(a);
        }
        if let Some(kind) = self.kind {
            t.key("kind").str(kind);
        }
        if let Some(a) = &self.min_amount_out {
            t.key("min_amount_out").amount(a);
        }
        if let Some(r) = &self.reason {
            t.key("reason").object_in(|t| {
                t.key("code").str(r.code);
                t.key("detail").str(r.detail);
            });
        }
        if let Some(v) = self.v {
            t.key("v").raw(itoa::Buffer::new().format(v));
        }
        t.key("verdict").str(self.verdict);
        t.close()
    }
}

/// A verdict's body ([`verdict_of`] with its kind and schema).
pub(super) fn verdict(a: &Addresses, v: &Verdict, tokens: Option<&(Token, Token)>) -> String {
    let mut b = verdict_of(a, v, tokens);
    (b.kind, b.v) = (Some("verdict"), Some(SCHEMA));
    b.text()
}

/// A verdict's fields alone, as a JSON value ([`verdict_of`]): a run of repeated refusals
/// names the verdict it repeats.
pub(super) fn verdict_fields(a: &Addresses, v: &Verdict, tokens: Option<&(Token, Token)>) -> Value {
    to_value(&verdict_of(a, v, tokens))
}

/// A verdict's fields: `verdict` (`approve`, `resize`, `refuse`), `min_amount_out` (of the
/// token bought) and `amount_in` (of the token sold) where it has them, and the `reason`
/// (`code`, `detail`) of a resize or refusal. `tokens` are the intent's sell and buy tokens
/// (`None`: a bet's or a bundle's amounts, written without a token).
fn verdict_of<'a>(
    a: &'a Addresses,
    v: &'a Verdict,
    tokens: Option<&'a (Token, Token)>,
) -> VerdictBody<'a> {
    let out = |units: U256| match tokens {
        Some((_, buy)) => a.amount_ref(buy, units),
        None => bare_ref(units),
    };
    let input = |units: U256| match tokens {
        Some((sell, _)) => a.amount_ref(sell, units),
        None => bare_ref(units),
    };
    let mut b = VerdictBody {
        amount_in: None,
        kind: None,
        min_amount_out: None,
        reason: None,
        v: None,
        verdict: "refuse",
    };
    match v {
        Verdict::Approve { min_amount_out } => {
            b.verdict = "approve";
            b.min_amount_out = Some(out(*min_amount_out));
        }
        Verdict::Resize {
            amount_in,
            min_amount_out,
            reason,
        } => {
            b.verdict = "resize";
            b.amount_in = Some(input(*amount_in));
            b.min_amount_out = Some(out(*min_amount_out));
            b.reason = Some(reason.into());
        }
        Verdict::Refuse(r) => b.reason = Some(r.into()),
    }
    b
}

/// A swap fill's body, written by [`FillBody::text`] (the tests check it against the derived
/// `Serialize`).
#[cfg_attr(test, derive(Serialize))]
struct FillBody<'a> {
    amount_in: Amount<'a>,
    amount_out: Amount<'a>,
    fee: Amount<'a>,
    gas: Amount<'a>,
    #[cfg_attr(test, serde(serialize_with = "decimal"))]
    gas_native_wei: U256,
    kind: &'static str,
    v: u64,
}

impl FillBody<'_> {
    /// The body's text.
    fn text(&self) -> String {
        let mut t = Text::object();
        t.key("amount_in").amount(&self.amount_in);
        t.key("amount_out").amount(&self.amount_out);
        t.key("fee").amount(&self.fee);
        t.key("gas").amount(&self.gas);
        t.key("gas_native_wei").decimal(&self.gas_native_wei);
        t.key("kind").str(self.kind);
        t.key("v").raw(itoa::Buffer::new().format(self.v));
        t.close()
    }
}

/// A swap fill's body: `amount_in` (of the token sold), `amount_out` (of the token bought),
/// the LP `fee` (token sold), the `gas` debited (its token) and `gas_native_wei`.
pub(super) fn fill(a: &Addresses, f: &agent_core::Fill) -> String {
    (FillBody {
        amount_in: a.amount_ref(&f.sell, f.amount_in),
        amount_out: a.amount_ref(&f.buy, f.amount_out),
        fee: a.amount_ref(&f.sell, f.fee),
        gas: a.amount_ref(&f.gas_cost.0, f.gas_cost.1),
        gas_native_wei: f.gas_native,
        kind: "fill",
        v: SCHEMA,
    })
    .text()
}

/// A compact journal's `trade` body: `intent`, `verdict` and `fill`, each the body its own
/// record would have (with its `kind` and `v`), in one record.
pub(super) fn trade(a: &Addresses, t: &super::Trade) -> String {
    let mut text = Text::object();
    text.key("fill").raw(&fill(a, &t.fill));
    text.key("intent").raw(&intent(a, &t.id, &t.intent));
    text.key("kind").str("trade");
    text.key("v").raw(itoa::Buffer::new().format(SCHEMA));
    text.key("verdict")
        .raw(&verdict(a, &t.verdict, verdict_tokens(&t.intent).as_ref()));
    text.close()
}

/// A book's body, written by [`BookBody::text`] (the tests check it against the derived
/// `Serialize`).
#[cfg_attr(test, derive(Serialize))]
struct BookBody<'a> {
    balances: Vec<Amount<'a>>,
    kind: &'static str,
    v: u64,
}

impl BookBody<'_> {
    /// The body's text.
    fn text(&self) -> String {
        let mut t = Text::object();
        t.key("balances").array(&self.balances, Text::amount);
        t.key("kind").str(self.kind);
        t.key("v").raw(itoa::Buffer::new().format(self.v));
        t.close()
    }
}

/// A book's body: `balances`, one amount per token, in the book's order.
pub(super) fn portfolio(a: &Addresses, balances: &[(Token, U256)]) -> String {
    (BookBody {
        balances: balances.iter().map(|(t, u)| a.amount_ref(t, *u)).collect(),
        kind: "portfolio",
        v: SCHEMA,
    })
    .text()
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
/// object's `units` (schemas 2 and 3); `None` for anything else.
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
    fn the_bodies_a_replay_writes_most_keep_the_bytes_schema_3_wrote() {
        // Bodies from the bundled backtest's journal as written before the bodies were written
        // field by field (c6d0b67): the chain hash covers these bytes.
        let (usdc, eth) = (Token::new("USDC", 6), Token::new("ETH", 18));
        let a = Addresses::default();
        let units = |s: &str| s.parse::<U256>().unwrap();
        let id = IntentId::new("ema_cross", 1_544_932_800, 0);
        let buy = Intent::swap(&usdc, &eth, units("9500000000"));
        assert_eq!(
            intent(&a, &id, &buy),
            r#"{"amount_in":{"decimals":6,"symbol":"USDC","units":"9500000000"},"buy":{"decimals":18,"symbol":"ETH"},"id":"ema_cross:1544932800:0","kind":"intent","type":"swap","v":3,"venue":null}"#
        );
        let approve = Verdict::Approve {
            min_amount_out: units("109449843760426674971"),
        };
        assert_eq!(
            verdict(&a, &approve, verdict_tokens(&buy).as_ref()),
            r#"{"kind":"verdict","min_amount_out":{"decimals":18,"symbol":"ETH","units":"109449843760426674971"},"v":3,"verdict":"approve"}"#
        );
        let f = agent_core::Fill {
            id,
            ts: 1_544_932_800,
            sell: usdc.clone(),
            buy: eth,
            amount_in: units("9500000000"),
            amount_out: units("110555397737804722193"),
            fee: units("28500000"),
            fee_quote: units("28500000"),
            gas_native: units("2400000000000000"),
            gas_cost: (usdc.clone(), units("205224")),
            gas_quote: units("205224"),
            tx_hash: None,
        };
        assert_eq!(
            fill(&a, &f),
            r#"{"amount_in":{"decimals":6,"symbol":"USDC","units":"9500000000"},"amount_out":{"decimals":18,"symbol":"ETH","units":"110555397737804722193"},"fee":{"decimals":6,"symbol":"USDC","units":"28500000"},"gas":{"decimals":6,"symbol":"USDC","units":"205224"},"gas_native_wei":"2400000000000000","kind":"fill","v":3}"#
        );
        assert_eq!(
            portfolio(&a, &[(usdc, units("10000000000"))]),
            r#"{"balances":[{"decimals":6,"symbol":"USDC","units":"10000000000"}],"kind":"portfolio","v":3}"#
        );
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut samples: Vec<String> = (0u8..=0x7f).map(|b| format!("a{}b", b as char)).collect();
        samples.extend(
            [
                "",
                "plain",
                "q\"uote\\back",
                "line\nbreak\ttab\r\u{8}\u{c}",
                "\u{1}\u{1f}é€😀\u{7f}",
            ]
            .map(String::from),
        );
        for sample in &samples {
            let mut out = String::new();
            escape_into(&mut out, sample);
            assert_eq!(out, serde_json::to_string(sample).unwrap(), "{sample:?}");
        }
    }

    #[test]
    fn the_hand_written_bodies_are_byte_for_byte_what_serde_writes() {
        let (usdc, eth) = (Token::new("USDC", 6), Token::new("E\"T\nH", 18));
        let mut on_chain = Addresses::default();
        on_chain.0.insert(
            "USDC".into(),
            "0x00000000000000000000000000000000000000aa".into(),
        );
        let big = U256::MAX;
        let edge = U256::from(u128::MAX) + U256::from(1u8);
        let venue = Some("uni\"v3".to_string());
        for a in [Addresses::default(), on_chain] {
            for units in [U256::ZERO, U256::from(2_500_000u64), edge, big] {
                let id = IntentId::new("s\\x", -7, 3);
                for venue in [&None, &venue] {
                    let b = SwapIntent {
                        amount_in: a.amount_ref(&usdc, units),
                        buy: a.token_ref(&eth),
                        id: &id,
                        kind: "intent",
                        r#type: "swap",
                        v: SCHEMA,
                        venue,
                    };
                    assert_eq!(b.text(), serde_json::to_string(&b).unwrap());
                }
                let fill = FillBody {
                    amount_in: a.amount_ref(&usdc, units),
                    amount_out: a.amount_ref(&eth, big),
                    fee: a.amount_ref(&usdc, U256::from(1u8)),
                    gas: bare_ref(edge),
                    gas_native_wei: units,
                    kind: "fill",
                    v: SCHEMA,
                };
                assert_eq!(fill.text(), serde_json::to_string(&fill).unwrap());
                let verdicts = [
                    Verdict::Approve {
                        min_amount_out: units,
                    },
                    Verdict::Resize {
                        amount_in: units,
                        min_amount_out: big,
                        reason: Refusal::new("price_impact", "too \"deep\"\n"),
                    },
                    Verdict::Refuse(Refusal::new("cooldown", "")),
                ];
                let tokens = Some((usdc.clone(), eth.clone()));
                for v in &verdicts {
                    for tokens in [None, tokens.as_ref()] {
                        let mut b = verdict_of(&a, v, tokens);
                        assert_eq!(b.text(), serde_json::to_string(&b).unwrap());
                        (b.kind, b.v) = (Some("verdict"), Some(SCHEMA));
                        assert_eq!(b.text(), serde_json::to_string(&b).unwrap());
                    }
                }
                for n in 0..3 {
                    let book = BookBody {
                        balances: [(&usdc, units), (&eth, big)][..n]
                            .iter()
                            .map(|(t, u)| a.amount_ref(t, *u))
                            .collect(),
                        kind: "portfolio",
                        v: SCHEMA,
                    };
                    assert_eq!(book.text(), serde_json::to_string(&book).unwrap());
                }
            }
        }
    }

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
        let off_chain = Addresses::default().amount(&usdc, big);
        assert!(off_chain.get("address").is_none(), "{off_chain}");
        // Both sides of the `u128` shortcut write the same digits as `U256`'s own text.
        let edge = U256::from(u128::MAX);
        for units in [
            U256::ZERO,
            U256::from(1u8),
            edge,
            edge + U256::from(1u8),
            big,
        ] {
            let text = serde_json::to_string(&a.amount_ref(&usdc, units)).unwrap();
            assert!(text.ends_with(&format!(r#""units":"{units}"}}"#)), "{text}");
        }
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
            (Some(SCHEMA), Some("intent"))
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
        assert_eq!(schema_of(&verdict(&a, &v, None)), SCHEMA);
        assert_eq!(schema_of("\"Refuse(Refusal { code: \\\"x\\\" })\""), 1);
        assert_eq!(schema_of("{\"USDC\":\"100\"}"), 1);
        assert_eq!(schema_of("Swap(Swap { .. })"), 1);
    }
}
