//! The order saga end to end: svc-product, svc-order, svc-payment and svc-settlement against one
//! real nats-server, driven through their HTTP APIs (and by hand-published events where a person
//! with the `nats` CLI would). Each scenario snapshots the saga's normalised event transcript, the
//! final order and the stock; every snapshot is the same run after run.

mod broker;
mod console;
mod helpers;
mod observability;
mod scale;
mod scenarios;
mod stampede;
