//! The event contract: one envelope, one enum of every event, one place that maps events to subjects.
//!
//! On the wire an event is plain JSON (camelCase) so a person can read it with `nats sub` and write one
//! with `nats pub`:
//!
//! ```json
//! {"id":"0193...","type":"user.registered","correlationId":"0193...","causationId":null,
//!  "occurredAt":"2026-11-24T09:00:00Z","producer":"svc-user","version":1,"data":{...}}
//! ```
//!
//! Subjects read `<aggregate>.<event>.<key>`: `nats sub 'user.>'` watches a domain and
//! `nats sub '*.*.<key>'` watches one saga.

mod envelope;
mod payloads;
mod table;
mod vocabulary;

pub use envelope::{DecodeError, Envelope};
pub use payloads::*;
pub use table::{Event, EventType};
pub use vocabulary::{OrderFailure, PaymentDecline, PaymentMethod, Quantity, ReleaseReason, Role, StockRejection, Won};

/// The schema version every event type is written with today. A consumer rejects (dead-letters) an
/// event written with a newer version than it understands instead of guessing.
pub const SCHEMA_VERSION: u32 = 1;

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn registered() -> Envelope {
        Envelope::new(
            "svc-user",
            Event::UserRegistered(UserRegistered {
                user_id: Uuid::now_v7(),
                email: "kim@example.com".into(),
                name: "Kim".into(),
                role: Role::Customer,
            }),
        )
    }

    #[test]
    fn a_settlement_closed_part_must_be_one_of_its_parts() {
        let closed = |part, parts| {
            let e = SettlementClosed {
                date: "2026-11-30".into(),
                time_zone: "Asia/Seoul".into(),
                fee_rate_bps: 300,
                payouts: vec![],
                ledger_entries: 1,
                part,
                parts,
            };
            let env = Envelope::new("svc-settlement", Event::SettlementClosed(e));
            Envelope::decode(&env.subject(), &env.to_json()).map(|_| ())
        };
        assert!(closed(1, 1).is_ok() && closed(2, 3).is_ok() && closed(3, 3).is_ok());
        assert!(closed(0, 1).is_err() && closed(4, 3).is_err());
    }

    #[test]
    fn an_envelope_round_trips_through_its_subject() {
        let env = registered();
        let decoded = Envelope::decode(&env.subject(), &env.to_json()).unwrap();
        // RFC 3339 keeps nanoseconds, so the round trip is exact.
        assert_eq!(decoded, env);
    }

    #[test]
    fn the_wire_shape_is_flat_camel_case_json() {
        let env = registered();
        let json: serde_json::Value = serde_json::from_slice(&env.to_json()).unwrap();
        assert_eq!(json["type"], "user.registered");
        assert_eq!(json["producer"], "svc-user");
        assert_eq!(json["version"], 1);
        assert_eq!(json["correlationId"], json["data"]["userId"]);
        assert!(json["causationId"].is_null());
        assert_eq!(json["data"]["role"], "CUSTOMER");
    }

    #[test]
    fn subjects_read_aggregate_event_key() {
        let env = registered();
        let Event::UserRegistered(data) = &env.event else { unreachable!() };
        assert_eq!(env.subject(), format!("user.registered.{}", data.user_id));
    }

    #[test]
    fn a_caused_event_keeps_the_saga_and_points_at_its_cause() {
        let cause = registered();
        let effect = Envelope::caused_by("svc-other", &cause, cause.event.clone());
        assert_eq!(effect.correlation_id, cause.correlation_id);
        assert_eq!(effect.causation_id, Some(cause.id));
        assert_ne!(effect.id, cause.id);
    }

    #[test]
    fn every_type_is_a_two_token_subject_prefix_inside_the_stream() {
        for ty in Event::TYPES {
            let aggregate = ty.split('.').next().unwrap();
            assert_eq!(ty.split('.').count(), 2, "{ty}");
            assert!(crate::bus::STREAM_SUBJECTS.contains(&format!("{aggregate}.>").as_str()), "{ty} not in the stream");
        }
    }

    #[test]
    fn money_never_overflows_silently() {
        assert_eq!(Won(15_000).times(3), Some(Won(45_000)));
        assert_eq!(Won(i64::MAX).times(2), None);
    }

    #[test]
    fn garbage_is_malformed() {
        let err = Envelope::decode("user.registered.x", b"{not json").unwrap_err();
        assert!(matches!(err, DecodeError::Malformed(_)));
    }

    #[test]
    fn an_unknown_event_type_is_malformed() {
        let env = registered();
        let text = String::from_utf8(env.to_json()).unwrap().replace("user.registered", "user.exploded");
        assert!(matches!(Envelope::decode(&env.subject(), text.as_bytes()), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn an_event_on_the_wrong_subject_is_rejected() {
        let env = registered();
        let err = Envelope::decode("user.registered.someone-else", &env.to_json()).unwrap_err();
        assert!(matches!(err, DecodeError::SubjectMismatch { .. }));
    }

    #[test]
    fn a_newer_schema_version_is_rejected() {
        let mut env = registered();
        env.version = SCHEMA_VERSION + 1;
        let err = Envelope::decode(&env.subject(), &env.to_json()).unwrap_err();
        assert_eq!(err, DecodeError::UnsupportedVersion(SCHEMA_VERSION + 1));
    }

    #[test]
    fn a_correlation_id_other_than_the_key_is_rejected() {
        let mut env = registered();
        env.correlation_id = "another-saga".into();
        assert!(matches!(Envelope::decode(&env.subject(), &env.to_json()), Err(DecodeError::Invalid(_))));
    }

    #[test]
    fn unknown_envelope_fields_are_rejected() {
        let env = registered();
        let mut json: serde_json::Value = serde_json::from_slice(&env.to_json()).unwrap();
        json["causationID"] = serde_json::Value::Null;
        let err = Envelope::decode(&env.subject(), json.to_string().as_bytes()).unwrap_err();
        assert_eq!(err, DecodeError::Malformed("unknown field `causationID` in the envelope".into()));
    }

    #[test]
    fn contract_rules_are_checked_at_decoding() {
        let order = Uuid::now_v7();
        let reserved = |quantity, unit_price, amount| {
            Envelope::new(
                "svc-product",
                Event::StockReserved(StockReserved {
                    order_id: order,
                    product_id: order,
                    quantity,
                    unit_price: Won(unit_price),
                    amount: Won(amount),
                    seller_id: order,
                    category: "books".into(),
                    user_id: order,
                    payment_method: PaymentMethod::Card,
                }),
            )
        };
        let decode = |env: Envelope| Envelope::decode(&env.subject(), &env.to_json());
        assert!(decode(reserved(2, 15_000, 30_000)).is_ok());
        for (q, price, amount) in [(0, 15_000, 0), (2, 15_000, 29_999), (1, 0, 0), (2, -5, -10), (2, i64::MAX, 1)] {
            assert!(
                matches!(decode(reserved(q, price, amount)), Err(DecodeError::Invalid(_))),
                "{q} x {price} = {amount}"
            );
        }
    }

    #[test]
    fn unknown_data_fields_are_rejected() {
        let env = registered();
        let mut json: serde_json::Value = serde_json::from_slice(&env.to_json()).unwrap();
        json["data"]["password"] = "hunter2".into();
        let err = Envelope::decode(&env.subject(), json.to_string().as_bytes()).unwrap_err();
        assert!(matches!(err, DecodeError::Malformed(_)));
    }

    /// The wire name of every vocabulary value is its serde name, and parses back to it.
    fn assert_wire_names<T>(all: &[T], as_str: fn(T) -> &'static str, parse: fn(&str) -> Option<T>)
    where
        T: Copy + PartialEq + std::fmt::Debug + serde::Serialize,
    {
        for v in all {
            assert_eq!(serde_json::to_value(v).unwrap(), as_str(*v), "{v:?}");
            assert_eq!(parse(as_str(*v)), Some(*v));
        }
    }

    #[test]
    fn every_vocabulary_value_has_one_wire_name_in_serde_sql_and_logs() {
        assert_wire_names(Role::ALL, Role::as_str, Role::parse);
        assert_wire_names(PaymentMethod::ALL, PaymentMethod::as_str, PaymentMethod::parse);
        assert_wire_names(StockRejection::ALL, StockRejection::as_str, StockRejection::parse);
        assert_wire_names(PaymentDecline::ALL, PaymentDecline::as_str, PaymentDecline::parse);
        assert_wire_names(OrderFailure::ALL, OrderFailure::as_str, OrderFailure::parse);
        assert_wire_names(ReleaseReason::ALL, ReleaseReason::as_str, ReleaseReason::parse);
        assert_eq!(Role::parse("admin"), None, "wire names are exact");
    }
}
