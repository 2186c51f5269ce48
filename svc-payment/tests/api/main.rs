//! svc-payment's integration tests: the real service against a real nats-server.

mod cancel;
mod end_check;
mod fuzz;
mod helpers;
mod openapi;
mod payments;
mod saga;
