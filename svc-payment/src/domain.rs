//! Pure payment types: what a chargeable `stock.reserved` is, what a payment row holds, the event
//! it announces and who may see it. No I/O; ids and clocks come from the callers.

use common::{
    PaymentMethod, Won,
    auth::AuthUser,
    event::{Event, PaymentCancelled, PaymentCompleted, PaymentDecline, PaymentFailed, StockReserved},
};
use uuid::Uuid;

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    /// The gateway accepted the charge.
    Completed,
    /// The gateway declined; nothing was charged. Final.
    Failed,
    /// A completed payment refunded in full (`POST /payments/{id}/cancel`). Final.
    Cancelled,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Completed => "COMPLETED",
            PaymentStatus::Failed => "FAILED",
            PaymentStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "COMPLETED" => Some(PaymentStatus::Completed),
            "FAILED" => Some(PaymentStatus::Failed),
            "CANCELLED" => Some(PaymentStatus::Cancelled),
            _ => None,
        }
    }
}

/// What charging a reserved order means: its amount (unit price x quantity), its payer and method,
/// and what settlement needs to book it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub order_id: Uuid,
    pub user_id: Uuid,
    pub amount: Won,
    pub method: PaymentMethod,
    pub seller_id: Uuid,
    pub category: String,
    pub product_id: Uuid,
    pub quantity: u32,
}

impl From<&StockReserved> for Charge {
    /// Decoding already checked the contract (quantity at least 1, a positive unit price, amount =
    /// unit price x quantity: `Event::validate`), so every `stock.reserved` a consumer sees is
    /// chargeable as it is.
    fn from(reserved: &StockReserved) -> Self {
        let StockReserved {
            order_id,
            product_id,
            quantity,
            unit_price: _,
            amount,
            seller_id,
            category,
            user_id,
            payment_method,
        } = reserved.clone();
        Charge { order_id, user_id, amount, method: payment_method, seller_id, category, product_id, quantity }
    }
}

/// A payment as stored: the charge, the gateway's verdict and its times (unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: Uuid,
    pub charge: Charge,
    pub status: PaymentStatus,
    /// Set exactly when the status is [`PaymentStatus::Failed`].
    pub decline_reason: Option<PaymentDecline>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Set exactly when the status is [`PaymentStatus::Cancelled`].
    pub cancelled_at_ms: Option<i64>,
}

/// Why a payment cannot be cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CancelRefused {
    #[error("the payment is already cancelled")]
    AlreadyCancelled,
    #[error("the payment failed, so nothing was charged and nothing can be refunded")]
    NotCompleted,
}

impl Payment {
    /// The payment `id` recording the gateway's `verdict` on `charge` at `now_ms`, and the event
    /// announcing it: `payment.completed` (forwarding what settlement books) or `payment.failed`
    /// with the reason.
    pub fn settle(id: Uuid, charge: Charge, verdict: Result<(), PaymentDecline>, now_ms: i64) -> (Self, Event) {
        let c = &charge;
        let (status, decline_reason, event) = match verdict {
            Ok(()) => {
                let event = Event::PaymentCompleted(PaymentCompleted {
                    payment_id: id,
                    order_id: c.order_id,
                    user_id: c.user_id,
                    amount: c.amount,
                    method: c.method,
                    seller_id: c.seller_id,
                    category: c.category.clone(),
                    product_id: c.product_id,
                    quantity: c.quantity,
                });
                (PaymentStatus::Completed, None, event)
            }
            Err(reason) => {
                let event = Event::PaymentFailed(PaymentFailed {
                    payment_id: id,
                    order_id: c.order_id,
                    user_id: c.user_id,
                    amount: c.amount,
                    method: c.method,
                    reason,
                });
                (PaymentStatus::Failed, Some(reason), event)
            }
        };
        let payment = Payment {
            id,
            charge,
            status,
            decline_reason,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            cancelled_at_ms: None,
        };
        (payment, event)
    }

    /// Refunds a completed payment in full at `now_ms`: the cancelled payment and the
    /// `payment.cancelled` event forwarding what product (stock) and settlement (refund) need.
    pub fn cancel(&self, now_ms: i64) -> Result<(Self, Event), CancelRefused> {
        match self.status {
            PaymentStatus::Completed => {}
            PaymentStatus::Cancelled => return Err(CancelRefused::AlreadyCancelled),
            PaymentStatus::Failed => return Err(CancelRefused::NotCompleted),
        }
        let c = &self.charge;
        let event = Event::PaymentCancelled(PaymentCancelled {
            payment_id: self.id,
            order_id: c.order_id,
            user_id: c.user_id,
            amount: c.amount,
            seller_id: c.seller_id,
            category: c.category.clone(),
            product_id: c.product_id,
            quantity: c.quantity,
        });
        let cancelled = Payment {
            status: PaymentStatus::Cancelled,
            updated_at_ms: now_ms,
            cancelled_at_ms: Some(now_ms),
            ..self.clone()
        };
        Ok((cancelled, event))
    }

    /// The payer and admins see a payment; for anyone else it does not exist.
    pub fn visible_to(&self, user: &AuthUser) -> bool {
        user.is_admin() || user.id == self.charge.user_id
    }
}

#[cfg(test)]
mod tests {
    use common::Role;

    use super::*;

    fn reserved(unit_price: i64, quantity: u32, amount: i64) -> StockReserved {
        StockReserved {
            order_id: Uuid::now_v7(),
            product_id: Uuid::now_v7(),
            quantity,
            unit_price: Won(unit_price),
            amount: Won(amount),
            seller_id: Uuid::now_v7(),
            category: "books".into(),
            user_id: Uuid::now_v7(),
            payment_method: PaymentMethod::Card,
        }
    }

    fn settle(verdict: Result<(), PaymentDecline>) -> (Payment, Event) {
        let charge = Charge::from(&reserved(15_000, 3, 45_000));
        Payment::settle(Uuid::now_v7(), charge, verdict, 1_000)
    }

    #[test]
    fn a_consistent_reservation_is_a_charge_of_its_amount() {
        let event = reserved(15_000, 3, 45_000);
        let charge = Charge::from(&event);
        assert_eq!((charge.amount, charge.quantity, charge.order_id), (Won(45_000), 3, event.order_id));
    }

    #[test]
    fn an_accepted_charge_completes_and_forwards_what_settlement_needs() {
        let (p, event) = settle(Ok(()));
        assert_eq!((p.status, p.decline_reason), (PaymentStatus::Completed, None));
        let Event::PaymentCompleted(e) = event else { panic!("not completed: {event:?}") };
        assert_eq!((e.payment_id, e.amount, e.seller_id), (p.id, Won(45_000), p.charge.seller_id));
        assert_eq!((e.category.as_str(), e.product_id, e.quantity), ("books", p.charge.product_id, 3));
    }

    #[test]
    fn a_declined_charge_fails_with_its_reason() {
        let (p, event) = settle(Err(PaymentDecline::LimitExceeded));
        assert_eq!((p.status, p.decline_reason), (PaymentStatus::Failed, Some(PaymentDecline::LimitExceeded)));
        let Event::PaymentFailed(e) = event else { panic!("not failed: {event:?}") };
        assert_eq!((e.reason, e.payment_id, e.order_id), (PaymentDecline::LimitExceeded, p.id, p.charge.order_id));
    }

    #[test]
    fn a_completed_payment_cancels_into_a_full_refund() {
        let (p, _) = settle(Ok(()));
        let (cancelled, event) = p.cancel(2_000).unwrap();
        assert_eq!(
            (cancelled.status, cancelled.cancelled_at_ms, cancelled.updated_at_ms),
            (PaymentStatus::Cancelled, Some(2_000), 2_000)
        );
        let Event::PaymentCancelled(e) = event else { panic!("not cancelled: {event:?}") };
        assert_eq!((e.payment_id, e.amount, e.seller_id, e.quantity), (p.id, p.charge.amount, p.charge.seller_id, 3));
    }

    #[test]
    fn a_payment_cancels_once() {
        let (p, _) = settle(Ok(()));
        let (cancelled, _) = p.cancel(2_000).unwrap();
        assert_eq!(cancelled.cancel(3_000).unwrap_err(), CancelRefused::AlreadyCancelled);
    }

    #[test]
    fn a_failed_payment_cannot_be_cancelled() {
        let (p, _) = settle(Err(PaymentDecline::Declined));
        assert_eq!(p.cancel(2_000).unwrap_err(), CancelRefused::NotCompleted);
    }

    #[test]
    fn the_payer_and_admins_see_a_payment_and_no_one_else() {
        let (p, _) = settle(Ok(()));
        let as_user = |id, role| AuthUser { id, role };
        assert!(p.visible_to(&as_user(p.charge.user_id, Role::Customer)));
        assert!(p.visible_to(&as_user(Uuid::now_v7(), Role::Admin)));
        assert!(!p.visible_to(&as_user(Uuid::now_v7(), Role::Customer)));
        assert!(!p.visible_to(&as_user(p.charge.seller_id, Role::Seller)));
    }

    #[test]
    fn stored_names_round_trip() {
        for s in [PaymentStatus::Completed, PaymentStatus::Failed, PaymentStatus::Cancelled] {
            assert_eq!(PaymentStatus::parse(s.as_str()), Some(s));
        }
        for r in [PaymentDecline::LimitExceeded, PaymentDecline::Declined] {
            assert_eq!(PaymentDecline::parse(r.as_str()), Some(r));
        }
        for m in [PaymentMethod::Card, PaymentMethod::BankTransfer] {
            assert_eq!(PaymentMethod::parse(m.as_str()), Some(m));
        }
    }
}
