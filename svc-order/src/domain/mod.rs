//! Pure order types: what a valid order request is, the order's state machine, the `Prefer: wait`
//! preference and the causal order of a saga's events. No I/O; the clock and the database are the
//! callers' business.
//!
//! - [`new_order`]: [`NewOrder::parse`], the request's quantity limit and [`IdempotencyKey`].
//! - [`order`]: [`Order`], [`OrderStatus`] and the transitions saga events cause.
//! - [`prefer`]: [`Wait`], parsed from RFC 7240 `Prefer` headers.
//! - [`trace`]: [`TraceEvent`] and [`causal_order`].

pub mod new_order;
pub mod order;
pub mod prefer;
pub mod trace;

pub use common::Quantity;
pub use new_order::{IdempotencyKey, MAX_QUANTITY_PER_REQUEST, NewOrder};
pub use order::{Change, Order, OrderStatus, Transition};
pub use prefer::Wait;
pub use trace::{TraceEvent, causal_order};

use common::http::Code;

/// Why a request was refused. Each variant names the input at fault; the text says what the rule
/// is, never what was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    #[error("{0}")]
    ProductId(&'static str),
    #[error("{0}")]
    Quantity(&'static str),
    #[error("{0}")]
    PaymentMethod(&'static str),
    #[error("{0}")]
    IdempotencyKey(&'static str),
}

impl InvalidInput {
    /// The name of the request field (or header) at fault.
    pub fn field(&self) -> &'static str {
        match self {
            InvalidInput::ProductId(_) => "productId",
            InvalidInput::Quantity(_) => "quantity",
            InvalidInput::PaymentMethod(_) => "paymentMethod",
            InvalidInput::IdempotencyKey(_) => "Idempotency-Key",
        }
    }

    /// The stable problem code the API reports.
    pub fn code(&self) -> Code {
        match self {
            InvalidInput::ProductId(_) => Code::InvalidProductId,
            InvalidInput::Quantity(_) => Code::InvalidQuantity,
            InvalidInput::PaymentMethod(_) => Code::InvalidPaymentMethod,
            InvalidInput::IdempotencyKey(_) => Code::InvalidIdempotencyKey,
        }
    }
}
