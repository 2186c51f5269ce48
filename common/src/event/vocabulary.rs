//! The closed vocabularies of the contract (roles, methods, reasons) and money.

use serde::{Deserialize, Serialize};

/// Declares a closed vocabulary of the contract: an enum whose variants travel as fixed wire
/// names, the same in JSON (serde), in the database and in logs, each written once here.
macro_rules! vocabulary {
    ($( $(#[$doc:meta])* $name:ident { $( $(#[$vdoc:meta])* $variant:ident = $wire:literal, )* } )*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$vdoc])* #[serde(rename = $wire)] $variant, )*
        }

        // By hand, not derived: utoipa's derive does not see a `serde(rename)` whose name comes
        // through a macro, and would document the variants' Rust names.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($wire),*]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &[$name] = &[$($name::$variant),*];

            /// The wire name, e.g. `OUT_OF_STOCK`.
            pub fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $wire, )* }
            }

            /// The value with this wire name, if any.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $( $wire => Some($name::$variant), )* _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}

vocabulary! {
    /// Roles are part of the contract because `user.registered` carries one.
    Role {
        Customer = "CUSTOMER",
        Seller = "SELLER",
        Admin = "ADMIN",
    }

    /// How an order is paid.
    PaymentMethod {
        Card = "CARD",
        BankTransfer = "BANK_TRANSFER",
    }

    /// Why svc-product could not reserve stock.
    StockRejection {
        OutOfStock = "OUT_OF_STOCK",
        ProductNotFound = "PRODUCT_NOT_FOUND",
    }

    /// Why the simulated gateway declined a payment.
    PaymentDecline {
        /// The amount is above the per-payment limit.
        LimitExceeded = "LIMIT_EXCEEDED",
        /// The gateway's (seeded, configurable) random decline.
        Declined = "DECLINED",
    }

    /// Why an order failed, as its owner sees it.
    OrderFailure {
        OutOfStock = "OUT_OF_STOCK",
        ProductNotFound = "PRODUCT_NOT_FOUND",
        PaymentDeclined = "PAYMENT_DECLINED",
    }

    /// Why reserved stock went back on the shelf.
    ReleaseReason {
        PaymentFailed = "PAYMENT_FAILED",
        PaymentCancelled = "PAYMENT_CANCELLED",
        /// The order failed (`order.failed`) while its stock was held.
        OrderFailed = "ORDER_FAILED",
        /// The order passed its deadline (`order.expired`) while its stock was held.
        OrderExpired = "ORDER_EXPIRED",
    }
}

/// Won, the Korean currency. It has no minor unit, so amounts are whole numbers: never floats.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(transparent)]
#[schema(value_type = i64, example = 15000)]
pub struct Won(pub i64);

impl Won {
    /// `self * quantity`, or `None` on overflow.
    pub fn times(self, quantity: u32) -> Option<Won> {
        self.0.checked_mul(i64::from(quantity)).map(Won)
    }
}

impl std::fmt::Display for Won {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} KRW", self.0)
    }
}

/// A positive number of units: what an order asks for, what is reserved, what a restock adds.
/// No order, reservation or restock is for zero units, so no `Quantity` is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = u32, minimum = 1)]
pub struct Quantity(u32);

impl Quantity {
    /// `None` for zero.
    pub fn new(units: u32) -> Option<Self> {
        (units > 0).then_some(Quantity(units))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}
