//! svc-settlement's integration tests: the real service against a real nats-server, events
//! published by hand, time moved by a manual clock.

mod admin;
mod booking;
mod closing;
mod fuzz;
mod helpers;
mod openapi;
mod rebuild;
mod reconciliation;
mod reports;
