//! svc-order's API and saga against a real nats-server, with the other services' parts played by
//! hand-published events.

mod admin;
mod create_order;
mod fuzz;
mod helpers;
mod idempotency;
mod openapi;
mod read;
mod saga;
mod wait;
