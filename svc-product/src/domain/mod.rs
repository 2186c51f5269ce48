//! Pure catalogue types: what a valid product listing is, and how an order's request for stock is
//! answered. No I/O; the clock and the database are the callers' business.
//!
//! - [`new_product`]: [`ProductName`], [`Price`], [`Stock`], [`Category`] and [`NewProduct::parse`].
//! - [`reservation`]: [`Quantity`], [`ReservationStatus`] and the [`decide`] rule for `order.created`.

pub mod new_product;
pub mod reservation;

use common::{Won, http::Code};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

pub use common::Quantity;
pub use new_product::{Category, NewProduct, Price, ProductName, Stock};
pub use reservation::{
    AmountOverflow, Decision, MAX_RESTOCK, Reservation, ReservationStatus, decide, restock_quantity,
};

/// Why a request was refused. Each variant is the request field at fault; the text says what the
/// rule is, never what was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    #[error("{0}")]
    Name(&'static str),
    #[error("{0}")]
    Price(&'static str),
    #[error("{0}")]
    Stock(&'static str),
    #[error("{0}")]
    Category(&'static str),
    #[error("{0}")]
    Quantity(&'static str),
}

impl InvalidInput {
    /// The name of the request field (or query parameter) at fault.
    pub fn field(&self) -> &'static str {
        match self {
            InvalidInput::Name(_) => "name",
            InvalidInput::Price(_) => "price",
            InvalidInput::Stock(_) => "stock",
            InvalidInput::Category(_) => "category",
            InvalidInput::Quantity(_) => "quantity",
        }
    }

    /// The stable problem code for the field, e.g. `INVALID_PRICE`.
    pub fn code(&self) -> Code {
        match self {
            InvalidInput::Name(_) => Code::InvalidName,
            InvalidInput::Price(_) => Code::InvalidPrice,
            InvalidInput::Stock(_) => Code::InvalidStock,
            InvalidInput::Category(_) => Code::InvalidCategory,
            InvalidInput::Quantity(_) => Code::InvalidQuantity,
        }
    }
}

/// A product as stored and shown: the wire shape of `GET /products/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    pub id: Uuid,
    pub seller_id: Uuid,
    pub name: String,
    pub category: String,
    pub price: Won,
    /// Units that can still be reserved.
    pub stock: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl Product {
    /// Whether `user` may manage (restock) this product: its seller, or an admin. Everyone else
    /// is told it does not exist.
    pub fn is_managed_by(&self, user: Uuid, is_admin: bool) -> bool {
        is_admin || self.seller_id == user
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(seller_id: Uuid) -> Product {
        Product {
            id: Uuid::now_v7(),
            seller_id,
            name: "Beans".into(),
            category: "coffee".into(),
            price: Won(18_000),
            stock: 3,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_product_is_managed_by_its_seller_and_by_admins_only() {
        let (seller, other) = (Uuid::now_v7(), Uuid::now_v7());
        let p = product(seller);
        assert!(p.is_managed_by(seller, false));
        assert!(p.is_managed_by(other, true));
        assert!(!p.is_managed_by(other, false));
    }

    #[test]
    fn every_field_error_has_a_field_and_an_invalid_code() {
        let errors = [
            InvalidInput::Name(""),
            InvalidInput::Price(""),
            InvalidInput::Stock(""),
            InvalidInput::Category(""),
            InvalidInput::Quantity(""),
        ];
        for e in errors {
            assert_eq!(e.code().as_str(), format!("INVALID_{}", e.field().to_uppercase()));
        }
    }

    #[test]
    fn the_wire_shape_is_camel_case_with_rfc3339_times() {
        let json = serde_json::to_value(product(Uuid::nil())).unwrap();
        assert_eq!(json["sellerId"], Uuid::nil().to_string());
        assert_eq!(json["price"], 18_000);
        assert_eq!(json["createdAt"], "1970-01-01T00:00:00Z");
    }
}
