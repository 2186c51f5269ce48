//! Request input turned into domain types, or the first input that breaks a rule.

use common::{PaymentMethod, Quantity};
use uuid::Uuid;

use super::{InvalidInput, Order};

/// The most units one `POST /orders` may ask for. That limit is the REST entry's rule, not the
/// saga's: an order published by hand (`order.created`) may be for more ([`Quantity`] is any
/// positive number), as svc-product and svc-payment accept.
pub const MAX_QUANTITY_PER_REQUEST: u32 = 100;

/// A quantity as it came in a request's JSON body: 1 to [`MAX_QUANTITY_PER_REQUEST`]. Taken as a
/// raw JSON value so that `"2"`, `1.5` or `null` are reported as a bad quantity, like `0` is,
/// rather than as an unreadable body.
pub fn quantity_from_json(raw: &serde_json::Value) -> Result<Quantity, InvalidInput> {
    raw.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n <= MAX_QUANTITY_PER_REQUEST)
        .and_then(Quantity::new)
        .ok_or(InvalidInput::Quantity("quantity must be a whole number from 1 to 100"))
}

/// `CARD` or `BANK_TRANSFER`, exactly (the wire spelling of [`PaymentMethod`]).
pub fn parse_payment_method(raw: &str) -> Result<PaymentMethod, InvalidInput> {
    PaymentMethod::parse(raw).ok_or(InvalidInput::PaymentMethod("paymentMethod must be CARD or BANK_TRANSFER"))
}

/// What a customer asks for when placing an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewOrder {
    pub product_id: Uuid,
    pub quantity: Quantity,
    pub payment_method: PaymentMethod,
}

impl NewOrder {
    /// Parses a request's fields in request order; the first one at fault is reported.
    pub fn parse(product_id: &str, quantity: &serde_json::Value, payment_method: &str) -> Result<Self, InvalidInput> {
        Ok(NewOrder {
            product_id: Uuid::parse_str(product_id).map_err(|_| InvalidInput::ProductId("productId must be a UUID"))?,
            quantity: quantity_from_json(quantity)?,
            payment_method: parse_payment_method(payment_method)?,
        })
    }

    /// Whether `order` is what this request asks for: an idempotent retry must ask for the same.
    pub fn matches(&self, order: &Order) -> bool {
        (self.product_id, self.quantity, self.payment_method)
            == (order.product_id, order.quantity, order.payment_method)
    }
}

/// A client's `Idempotency-Key`: 1 to 100 printable ASCII characters (space included, as
/// keys such as "order 42 retry" are harmless).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub const MAX_LEN: usize = 100;

    /// Parses a header value's raw bytes (header values need not be UTF-8).
    pub fn parse(raw: &[u8]) -> Result<Self, InvalidInput> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(InvalidInput::IdempotencyKey("Idempotency-Key must have 1 to 100 characters"));
        }
        if !raw.iter().all(|b| (b' '..=b'~').contains(b)) {
            return Err(InvalidInput::IdempotencyKey("Idempotency-Key must be printable ASCII"));
        }
        // Printable ASCII is valid UTF-8.
        Ok(IdempotencyKey(String::from_utf8_lossy(raw).into_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use common::http::Code;
    use serde_json::json;

    use super::*;

    const PRODUCT: &str = "0193a000-0000-7000-8000-000000000001";

    #[test]
    fn a_quantity_from_1_to_100_is_accepted() {
        for n in [1, 2, 99, 100] {
            assert_eq!(quantity_from_json(&json!(n)).unwrap().get(), n);
        }
    }

    #[test]
    fn a_quantity_of_0_or_101_is_refused() {
        for n in [json!(0), json!(101), json!(-1), json!(u64::MAX)] {
            assert_eq!(quantity_from_json(&n).unwrap_err().field(), "quantity", "{n} was accepted");
        }
    }

    #[test]
    fn an_order_created_may_be_for_more_than_a_request_may_ask_but_not_for_0() {
        assert_eq!(Quantity::new(101).unwrap().get(), 101);
        assert_eq!(Quantity::new(u32::MAX).unwrap().get(), u32::MAX);
        assert_eq!(Quantity::new(0), None);
    }

    #[test]
    fn a_quantity_that_is_not_a_whole_number_is_a_bad_quantity() {
        for n in [json!("2"), json!(1.5), json!(null), json!([1])] {
            assert_eq!(quantity_from_json(&n).unwrap_err().code(), Code::InvalidQuantity, "{n} was accepted");
        }
    }

    #[test]
    fn payment_methods_are_spelled_as_on_the_wire() {
        assert_eq!(parse_payment_method("CARD"), Ok(PaymentMethod::Card));
        assert_eq!(parse_payment_method("BANK_TRANSFER"), Ok(PaymentMethod::BankTransfer));
        for raw in ["card", "PAYPAL", ""] {
            assert_eq!(parse_payment_method(raw).unwrap_err().field(), "paymentMethod");
        }
    }

    #[test]
    fn an_order_request_parses_into_domain_types() {
        let new = NewOrder::parse(PRODUCT, &json!(3), "CARD").unwrap();
        assert_eq!(new.product_id.to_string(), PRODUCT);
        assert_eq!((new.quantity.get(), new.payment_method), (3, PaymentMethod::Card));
    }

    #[test]
    fn the_first_field_at_fault_is_the_one_reported() {
        assert_eq!(NewOrder::parse("nope", &json!(0), "X").unwrap_err().field(), "productId");
        assert_eq!(NewOrder::parse(PRODUCT, &json!(0), "X").unwrap_err().field(), "quantity");
        assert_eq!(NewOrder::parse(PRODUCT, &json!(1), "X").unwrap_err().field(), "paymentMethod");
    }

    #[test]
    fn an_idempotency_key_is_1_to_100_printable_ascii_characters() {
        assert_eq!(IdempotencyKey::parse(b"order 42 / retry").unwrap().as_str(), "order 42 / retry");
        assert!(IdempotencyKey::parse(&[b'k'; 100]).is_ok());
        for raw in [&b""[..], &[b'k'; 101], b"tab\there", "caf\u{e9}".as_bytes(), b"nul\0"] {
            assert_eq!(IdempotencyKey::parse(raw).unwrap_err().code(), Code::InvalidIdempotencyKey, "{raw:?}");
        }
    }
}
