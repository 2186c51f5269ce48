//! `Envelope::decode` against bad input, systematically: whatever bytes arrive on whatever
//! subject, decoding never panics; a valid envelope of every event type round-trips; and a valid
//! envelope with one field broken (dropped, retyped, out of range, on the wrong subject, of a newer
//! version) is refused, while one whose free text became arbitrary unicode is still read.

use common::{
    Envelope, Event, PaymentMethod, Role, Won,
    event::{
        DecodeError, OrderCancelled, OrderCreated, OrderExpired, OrderFailed, OrderFailure, OrderPaid,
        PaymentCancelled, PaymentCompleted, PaymentDecline, PaymentFailed, ReleaseReason, SCHEMA_VERSION, SellerPayout,
        SettlementClosed, StockRejected, StockRejection, StockReleased, StockReserved, UserRegistered,
    },
};
use proptest::{prelude::*, sample::select, test_runner::Config};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

/// 256 cases per property; failures are not persisted (no regression files next to the tests).
fn config() -> Config {
    Config { cases: 256, failure_persistence: None, ..Config::default() }
}

// ----- valid envelopes -----

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

/// Any instant RFC 3339 can write (years 0000 to 9999), to the nanosecond, in UTC.
fn instant() -> impl Strategy<Value = OffsetDateTime> {
    (-62_167_219_200_i64..=253_402_300_799, 0..1_000_000_000_i64).prop_map(|(secs, nanos)| {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(secs) * 1_000_000_000 + i128::from(nanos)).unwrap()
    })
}

fn quantity() -> impl Strategy<Value = u32> {
    1..=u32::MAX
}

fn money() -> impl Strategy<Value = Won> {
    (1..=i64::MAX).prop_map(Won)
}

fn text() -> impl Strategy<Value = String> {
    any::<String>()
}

/// A seller's figures that add up: gross - refunds = net = fee + payout.
fn payout() -> impl Strategy<Value = SellerPayout> {
    (uuid(), 0..=1_000_000_000_000_i64, any::<i64>())
        .prop_flat_map(|(seller, gross, orders)| (Just((seller, gross, orders)), 0..=gross))
        .prop_flat_map(|((seller, gross, orders), refunds)| {
            (Just((seller, gross, orders, refunds)), 0..=gross - refunds)
        })
        .prop_map(|((seller_id, gross, orders, refunds), fee)| SellerPayout {
            seller_id,
            gross: Won(gross),
            refunds: Won(refunds),
            net: Won(gross - refunds),
            fee: Won(fee),
            payout: Won(gross - refunds - fee),
            orders,
        })
}

fn stock_reserved() -> impl Strategy<Value = StockReserved> {
    quantity().prop_flat_map(|q| (Just(q), 1..=i64::MAX / i64::from(q))).prop_flat_map(|(q, price)| {
        (uuid(), uuid(), uuid(), text(), uuid(), select(PaymentMethod::ALL)).prop_map(
            move |(order_id, product_id, seller_id, category, user_id, payment_method)| StockReserved {
                order_id,
                product_id,
                quantity: q,
                unit_price: Won(price),
                amount: Won(price * i64::from(q)),
                seller_id,
                category,
                user_id,
                payment_method,
            },
        )
    })
}

fn settlement_closed() -> impl Strategy<Value = SettlementClosed> {
    let day = "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])";
    (1..=5_u32).prop_flat_map(|parts| (Just(parts), 1..=parts)).prop_flat_map(move |(parts, part)| {
        (day, text(), 0..=10_000_u32, prop::collection::vec(payout(), 0..4), any::<u64>()).prop_map(
            move |(date, time_zone, fee_rate_bps, payouts, ledger_entries)| SettlementClosed {
                date,
                time_zone,
                fee_rate_bps,
                payouts,
                ledger_entries,
                part,
                parts,
            },
        )
    })
}

/// Every event type, each with arbitrary but contract-abiding data.
fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (uuid(), "[!-~]\\PC{0,30}", text(), select(Role::ALL)).prop_map(|(user_id, email, name, role)| {
            Event::UserRegistered(UserRegistered { user_id, email, name, role })
        }),
        (uuid(), uuid(), uuid(), quantity(), select(PaymentMethod::ALL)).prop_map(
            |(order_id, user_id, product_id, quantity, payment_method)| Event::OrderCreated(OrderCreated {
                order_id,
                user_id,
                product_id,
                quantity,
                payment_method
            })
        ),
        (uuid(), uuid(), money()).prop_map(|(order_id, payment_id, amount)| Event::OrderPaid(OrderPaid {
            order_id,
            payment_id,
            amount
        })),
        (uuid(), select(OrderFailure::ALL), proptest::option::of(text()))
            .prop_map(|(order_id, reason, detail)| Event::OrderFailed(OrderFailed { order_id, reason, detail })),
        (uuid(), uuid(), money()).prop_map(|(order_id, payment_id, amount)| Event::OrderCancelled(OrderCancelled {
            order_id,
            payment_id,
            amount
        })),
        (uuid(), any::<u64>())
            .prop_map(|(order_id, after_secs)| Event::OrderExpired(OrderExpired { order_id, after_secs })),
        stock_reserved().prop_map(Event::StockReserved),
        (uuid(), uuid(), quantity(), select(StockRejection::ALL)).prop_map(
            |(order_id, product_id, quantity, reason)| Event::StockRejected(StockRejected {
                order_id,
                product_id,
                quantity,
                reason
            })
        ),
        (uuid(), uuid(), quantity(), select(ReleaseReason::ALL)).prop_map(
            |(order_id, product_id, quantity, reason)| Event::StockReleased(StockReleased {
                order_id,
                product_id,
                quantity,
                reason
            })
        ),
        ((uuid(), uuid(), uuid(), money(), select(PaymentMethod::ALL)), (uuid(), text(), uuid(), quantity())).prop_map(
            |((payment_id, order_id, user_id, amount, method), (seller_id, category, product_id, quantity))| {
                Event::PaymentCompleted(PaymentCompleted {
                    payment_id,
                    order_id,
                    user_id,
                    amount,
                    method,
                    seller_id,
                    category,
                    product_id,
                    quantity,
                })
            }
        ),
        (uuid(), uuid(), uuid(), money(), select(PaymentMethod::ALL), select(PaymentDecline::ALL)).prop_map(
            |(payment_id, order_id, user_id, amount, method, reason)| Event::PaymentFailed(PaymentFailed {
                payment_id,
                order_id,
                user_id,
                amount,
                method,
                reason
            })
        ),
        ((uuid(), uuid(), uuid(), money()), (uuid(), text(), uuid(), quantity())).prop_map(
            |((payment_id, order_id, user_id, amount), (seller_id, category, product_id, quantity))| {
                Event::PaymentCancelled(PaymentCancelled {
                    payment_id,
                    order_id,
                    user_id,
                    amount,
                    seller_id,
                    category,
                    product_id,
                    quantity,
                })
            }
        ),
        settlement_closed().prop_map(Event::SettlementClosed),
    ]
}

/// A valid envelope: any event, caused by a request or by another event, at any instant.
fn envelope() -> impl Strategy<Value = Envelope> {
    (uuid(), event(), proptest::option::of(uuid()), instant(), text(), 0..=SCHEMA_VERSION).prop_map(
        |(id, event, causation_id, occurred_at, producer, version)| Envelope {
            id,
            correlation_id: event.key(),
            event,
            causation_id,
            occurred_at,
            producer,
            version,
        },
    )
}

// ----- arbitrary JSON -----

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // NaN and infinities become null
        text().prop_map(Value::String),
    ]
}

/// Any JSON value, nested at most 4 deep, with at most 6 items per array or object.
fn json() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object with some of the envelope's keys (and the payload keys in `data`), holding anything.
fn envelope_shaped() -> impl Strategy<Value = Value> {
    const KEYS: &[&str] = &["id", "type", "data", "correlationId", "causationId", "occurredAt", "producer", "version"];
    let typed = prop_oneof![select(Event::TYPES).prop_map(Value::from), json()];
    (prop::collection::btree_map(select(KEYS), json(), 0..=KEYS.len()), typed).prop_map(|(fields, ty)| {
        let mut object: Map<String, Value> = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        object.insert("type".into(), ty);
        Value::Object(object)
    })
}

// ----- mutations of one field -----

/// What a mutation does to one field of a valid envelope's JSON.
#[derive(Debug, Clone)]
enum Mutation {
    Drop,
    Null,
    /// A value of a JSON type no field of the contract has where that field is (see [`retyped`]).
    Retype(Value),
    Number(Number),
    /// Arbitrary unicode text in place of a string.
    Text(String),
    /// A field the contract does not know, next to this one.
    Unknown(String, Value),
}

#[derive(Debug, Clone, Copy)]
enum Number {
    Zero,
    Negative(i64),
    AboveU32(u64),
    /// Beyond u64: serde_json reads it as a float.
    AboveU64(f64),
    Fraction(f64),
}

impl Number {
    fn value(self) -> Value {
        match self {
            Number::Zero => Value::from(0),
            Number::Negative(n) => Value::from(n),
            Number::AboveU32(n) => Value::from(n),
            Number::AboveU64(f) | Number::Fraction(f) => Value::from(f),
        }
    }
}

fn number() -> impl Strategy<Value = Number> {
    prop_oneof![
        Just(Number::Zero),
        (i64::MIN..0).prop_map(Number::Negative),
        (u64::from(u32::MAX) + 1..=u64::MAX).prop_map(Number::AboveU32),
        (1.9e19..1e300_f64).prop_map(Number::AboveU64),
        (-1e9..1e9_f64).prop_filter("not a whole number", |f| f.fract() != 0.0).prop_map(Number::Fraction),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        Just(Mutation::Drop),
        Just(Mutation::Null),
        json().prop_map(Mutation::Retype),
        number().prop_map(Mutation::Number),
        text().prop_map(Mutation::Text),
        ("[a-zA-Z]{1,12}", json()).prop_map(|(k, v)| Mutation::Unknown(format!("x{k}"), v)),
    ]
}

/// Where a field sits: on the envelope, in `data`, or in the first payout of a settlement.
#[derive(Debug, Clone, PartialEq)]
enum Place {
    Envelope,
    Data,
    Payout,
}

/// Every field of `json` (a valid envelope) that a mutation can target.
fn fields(json: &Value) -> Vec<(Place, String)> {
    let mut all: Vec<_> = json.as_object().unwrap().keys().map(|k| (Place::Envelope, k.clone())).collect();
    all.extend(json["data"].as_object().unwrap().keys().map(|k| (Place::Data, k.clone())));
    if let Some(first) = json["data"].get("payouts").and_then(|p| p.get(0)) {
        all.extend(first.as_object().unwrap().keys().map(|k| (Place::Payout, k.clone())));
    }
    all
}

fn object_at<'a>(json: &'a mut Value, place: &Place) -> &'a mut Map<String, Value> {
    let target = match place {
        Place::Envelope => json,
        Place::Data => &mut json["data"],
        Place::Payout => &mut json["data"]["payouts"][0],
    };
    target.as_object_mut().unwrap()
}

/// `replacement`, turned into a value of a JSON type that `original` cannot be replaced with:
/// no scalar field takes a bool, an array or an object; `data` is the one object, `payouts` the one
/// array, and neither takes a scalar.
fn retyped(original: &Value, replacement: Value) -> Value {
    let incompatible = |v: &Value| match original {
        Value::Object(_) => !v.is_object(),
        Value::Array(_) => !v.is_array(),
        _ => v.is_boolean() || v.is_array() || v.is_object(),
    };
    if incompatible(&replacement) { replacement } else { Value::Bool(true) }
}

/// What decoding a mutated envelope must give.
#[derive(Debug, PartialEq)]
enum Expect {
    Reject,
    Accept,
    /// Either; but what is accepted must be consistent (see [`assert_consistent`]).
    Either,
}

const OPTIONAL: &[&str] = &["causationId", "detail"];
const DEFAULTED: &[&str] = &["part", "parts"];
const MONEY: &[&str] = &["amount", "unitPrice", "gross", "refunds", "net", "fee", "payout"];
const U32: &[&str] = &["quantity", "feeRateBps", "part", "parts", "version"];
const FREE_TEXT: &[&str] = &["name", "category", "producer", "detail", "timeZone"];

/// Applies `mutation` to `field` of `json` and says what decoding the result must give.
fn apply(json: &mut Value, (place, field): &(Place, String), mutation: &Mutation) -> Expect {
    let original = object_at(json, place)[field].clone();
    let target = object_at(json, place);
    let name = field.as_str();
    match mutation {
        Mutation::Drop => {
            target.remove(name);
            if OPTIONAL.contains(&name) || DEFAULTED.contains(&name) { Expect::Either } else { Expect::Reject }
        }
        Mutation::Null => {
            target.insert(field.clone(), Value::Null);
            if OPTIONAL.contains(&name) { Expect::Accept } else { Expect::Reject }
        }
        Mutation::Retype(v) => {
            target.insert(field.clone(), retyped(&original, v.clone()));
            Expect::Reject
        }
        Mutation::Number(n) => {
            if !original.is_number() {
                return Expect::Either; // not a number field: nothing changed
            }
            target.insert(field.clone(), n.value());
            match (n, name) {
                (Number::AboveU64(_) | Number::Fraction(_), _) => Expect::Reject,
                (Number::Negative(_), "orders") => Expect::Accept,
                (Number::Negative(_), _) => Expect::Reject,
                (Number::AboveU32(_), _) if U32.contains(&name) => Expect::Reject,
                (Number::AboveU32(n), _) if MONEY.contains(&name) || name == "orders" => {
                    if *n > i64::MAX as u64 {
                        Expect::Reject
                    } else {
                        Expect::Either
                    }
                }
                (Number::AboveU32(_), _) => Expect::Either, // a u64: afterSecs, ledgerEntries
                (Number::Zero, "quantity" | "amount" | "unitPrice" | "part" | "parts") => Expect::Reject,
                (Number::Zero, _) => Expect::Either,
            }
        }
        Mutation::Text(s) => {
            if !original.is_string() {
                return Expect::Either;
            }
            target.insert(field.clone(), Value::String(s.clone()));
            if Some(s.as_str()) == original.as_str() || FREE_TEXT.contains(&name) {
                Expect::Accept
            } else if name == "email" {
                if s.trim().is_empty() { Expect::Reject } else { Expect::Accept }
            } else if name == "correlationId" || (name == "date" && *place == Place::Data) {
                Expect::Reject // no longer the event's key (or its subject's)
            } else {
                Expect::Either // a UUID, a time, a type or a vocabulary word that is almost surely not one
            }
        }
        Mutation::Unknown(key, v) => {
            target.insert(key.clone(), v.clone());
            Expect::Reject
        }
    }
}

/// What any accepted envelope must satisfy: it belongs on the subject it came on, keeps the saga
/// key as its correlation id, and decodes from its own serialisation to itself.
fn assert_consistent(subject: &str, decoded: &Envelope) -> Result<(), TestCaseError> {
    prop_assert_eq!(decoded.subject(), subject);
    prop_assert_eq!(&decoded.correlation_id, &decoded.event.key());
    let again = Envelope::decode(subject, &decoded.to_json());
    prop_assert_eq!(again.as_ref(), Ok(decoded));
    Ok(())
}

fn decoded(subject: &str, bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(env) = Envelope::decode(subject, bytes) {
        assert_consistent(subject, &env)?;
    }
    Ok(())
}

/// Subjects an envelope does not belong on.
fn wrong_subject(env: &Envelope) -> impl Strategy<Value = String> + use<> {
    let (subject, key, ty) = (env.subject(), env.event.key(), env.event.event_type());
    let other_type = select(Event::TYPES).prop_filter("another type", move |t| *t != ty);
    let right = subject.clone();
    prop_oneof![
        other_type.prop_map(move |t| format!("{t}.{key}")),
        Just(format!("{}.{}", ty, Uuid::nil())),
        Just(format!("{subject}.x")),
        Just(subject.to_uppercase()),
        Just(String::new()),
        text(),
    ]
    .prop_filter("not the envelope's subject", move |s| *s != right)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(subject in text(), bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decoded(&subject, &bytes)?;
    }

    #[test]
    fn arbitrary_json_never_panics(subject in text(), json in json()) {
        decoded(&subject, json.to_string().as_bytes())?;
    }

    #[test]
    fn envelope_shaped_json_never_panics(json in envelope_shaped(), key in prop_oneof![uuid().prop_map(|u| u.to_string()), text()]) {
        let ty = json["type"].as_str().unwrap_or("user.registered");
        decoded(&format!("{ty}.{key}"), json.to_string().as_bytes())?;
    }

    #[test]
    fn every_valid_envelope_round_trips(env in envelope()) {
        let decoded = Envelope::decode(&env.subject(), &env.to_json());
        prop_assert_eq!(decoded.as_ref(), Ok(&env));
    }

    #[test]
    fn a_valid_envelope_cut_short_is_malformed(env in envelope(), cut in any::<prop::sample::Index>()) {
        let bytes = env.to_json();
        let cut = cut.index(bytes.len());
        let err = Envelope::decode(&env.subject(), &bytes[..cut]).unwrap_err();
        prop_assert!(matches!(err, DecodeError::Malformed(_)), "{err:?}");
    }

    #[test]
    fn a_valid_envelope_with_one_field_mutated_is_judged_by_the_contract(
        env in envelope(),
        which in any::<prop::sample::Index>(),
        mutation in mutation(),
    ) {
        let subject = env.subject();
        let mut json: Value = serde_json::from_slice(&env.to_json()).unwrap();
        let all = fields(&json);
        let field = which.get(&all);
        let expect = apply(&mut json, field, &mutation);
        let result = Envelope::decode(&subject, json.to_string().as_bytes());
        match (&expect, &result) {
            (Expect::Reject, Ok(decoded)) => prop_assert!(false, "{field:?} {mutation:?} accepted: {decoded:?}"),
            (Expect::Accept, Err(e)) => prop_assert!(false, "{field:?} {mutation:?} rejected: {e}"),
            _ => {}
        }
        if let Ok(decoded) = &result {
            assert_consistent(&subject, decoded)?;
        }
    }

    #[test]
    fn a_valid_envelope_on_another_subject_is_rejected(
        (env, subject) in envelope().prop_flat_map(|env| { let s = wrong_subject(&env); (Just(env), s) }),
    ) {
        let err = Envelope::decode(&subject, &env.to_json()).unwrap_err();
        prop_assert!(matches!(err, DecodeError::SubjectMismatch { .. }), "{err:?}");
    }

    #[test]
    fn a_newer_version_is_unsupported(mut env in envelope(), version in SCHEMA_VERSION + 1..=u32::MAX) {
        env.version = version;
        prop_assert_eq!(Envelope::decode(&env.subject(), &env.to_json()), Err(DecodeError::UnsupportedVersion(version)));
    }

    #[test]
    fn an_event_on_another_event_type_is_rejected(env in envelope(), other in select(Event::TYPES)) {
        prop_assume!(other != env.event.event_type());
        let mut json: Value = serde_json::from_slice(&env.to_json()).unwrap();
        json["type"] = other.into();
        // On its own subject: the type no longer matches it (if the data even fits the type).
        prop_assert!(Envelope::decode(&env.subject(), json.to_string().as_bytes()).is_err());
    }
}
