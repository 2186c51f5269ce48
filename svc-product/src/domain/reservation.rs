//! How svc-product answers an order's request for stock, and the life of a reservation:
//!
//! ```text
//! order.created ──▶ RESERVED ──(payment.failed | payment.cancelled)──▶ RELEASED
//!        └────────▶ REJECTED   (no such product, or not enough stock)
//! ```
//!
//! Every order ends up with exactly one reservation row, so a repeated `order.created` finds it and
//! changes nothing, and a release can only happen once.

use common::{Quantity, Won, event::StockRejection};
use uuid::Uuid;

use super::{InvalidInput, Product};

/// The most one restock may add.
pub const MAX_RESTOCK: u32 = 1_000_000;

/// A restock request's `quantity`: 1 to [`MAX_RESTOCK`].
pub fn restock_quantity(raw: Option<i64>) -> Result<Quantity, InvalidInput> {
    raw.and_then(|units| u32::try_from(units).ok())
        .filter(|units| *units <= MAX_RESTOCK)
        .and_then(Quantity::new)
        .ok_or(InvalidInput::Quantity("quantity must be a whole number from 1 to 1000000"))
}

/// Where a reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationStatus {
    /// Stock is held for the order.
    Reserved,
    /// The held stock went back on the shelf (compensation); final.
    Released,
    /// No stock was held; final. Kept so a repeated `order.created` cannot reserve later.
    Rejected,
}

impl ReservationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Reserved => "RESERVED",
            ReservationStatus::Released => "RELEASED",
            ReservationStatus::Rejected => "REJECTED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RESERVED" => Some(ReservationStatus::Reserved),
            "RELEASED" => Some(ReservationStatus::Released),
            "REJECTED" => Some(ReservationStatus::Rejected),
            _ => None,
        }
    }

    /// Only held stock can be given back, and only once.
    pub fn can_release(self) -> bool {
        self == ReservationStatus::Reserved
    }
}

/// An order's reservation as stored: one per order, whatever the answer was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub order_id: Uuid,
    pub product_id: Uuid,
    pub quantity: Quantity,
    pub status: ReservationStatus,
}

/// The answer to an order's request for stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Take the units of `product` from stock at today's price.
    Reserve {
        product: &'a Product,
        unit_price: Won,
        amount: Won,
    },
    Reject(StockRejection),
}

/// `unit price * quantity` does not fit in [`Won`]: the event is nonsense, not a shortage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unit price times quantity overflows")]
pub struct AmountOverflow;

/// Decides an order for `quantity` units of `product` (`None` when no such product exists). The
/// price is fixed here, at reservation time, and travels on in `stock.reserved`.
pub fn decide(product: Option<&Product>, quantity: Quantity) -> Result<Decision<'_>, AmountOverflow> {
    let Some(product) = product else {
        return Ok(Decision::Reject(StockRejection::ProductNotFound));
    };
    if product.stock < i64::from(quantity.get()) {
        return Ok(Decision::Reject(StockRejection::OutOfStock));
    }
    let amount = product.price.times(quantity.get()).ok_or(AmountOverflow)?;
    Ok(Decision::Reserve { product, unit_price: product.price, amount })
}

#[cfg(test)]
mod tests {
    use common::http::Code;
    use time::OffsetDateTime;

    use super::*;

    fn product(price: i64, stock: i64) -> Product {
        Product {
            id: Uuid::now_v7(),
            seller_id: Uuid::now_v7(),
            name: "Beans".into(),
            category: "coffee".into(),
            price: Won(price),
            stock,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn qty(units: u32) -> Quantity {
        Quantity::new(units).unwrap()
    }

    #[test]
    fn an_order_for_a_quantity_of_zero_is_not_a_quantity() {
        assert_eq!(Quantity::new(0), None);
        assert_eq!(Quantity::new(1).map(Quantity::get), Some(1));
    }

    #[test]
    fn a_restock_adds_from_1_to_1_million_units() {
        assert_eq!(restock_quantity(Some(1)).unwrap().get(), 1);
        assert_eq!(restock_quantity(Some(1_000_000)).unwrap().get(), 1_000_000);
        for raw in [None, Some(0), Some(-5), Some(1_000_001)] {
            assert_eq!(restock_quantity(raw).unwrap_err().code(), Code::InvalidQuantity, "{raw:?} was accepted");
        }
    }

    #[test]
    fn an_order_within_stock_is_reserved_at_the_current_price() {
        let product = product(15_000, 5);
        let decision = decide(Some(&product), qty(3)).unwrap();
        assert_eq!(decision, Decision::Reserve { product: &product, unit_price: Won(15_000), amount: Won(45_000) });
    }

    #[test]
    fn an_order_may_take_the_last_unit() {
        assert!(matches!(decide(Some(&product(15_000, 3)), qty(3)), Ok(Decision::Reserve { .. })));
    }

    #[test]
    fn an_order_for_more_than_the_stock_is_rejected_as_out_of_stock() {
        assert_eq!(decide(Some(&product(15_000, 2)), qty(3)), Ok(Decision::Reject(StockRejection::OutOfStock)));
        assert_eq!(decide(Some(&product(15_000, 0)), qty(1)), Ok(Decision::Reject(StockRejection::OutOfStock)));
    }

    #[test]
    fn an_order_for_an_unknown_product_is_rejected_as_not_found() {
        assert_eq!(decide(None, qty(1)), Ok(Decision::Reject(StockRejection::ProductNotFound)));
    }

    #[test]
    fn an_amount_that_overflows_is_an_error_not_a_wrapped_number() {
        assert_eq!(decide(Some(&product(i64::MAX, i64::MAX)), qty(2)), Err(AmountOverflow));
    }

    #[test]
    fn only_a_held_reservation_can_be_released() {
        assert!(ReservationStatus::Reserved.can_release());
        assert!(!ReservationStatus::Released.can_release());
        assert!(!ReservationStatus::Rejected.can_release());
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for s in [ReservationStatus::Reserved, ReservationStatus::Released, ReservationStatus::Rejected] {
            assert_eq!(ReservationStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(ReservationStatus::parse("reserved"), None);
    }
}
