//! svc-product against a real nats-server: the REST API with real tokens, and its saga reactions
//! driven by events published by hand on JetStream.

mod admin;
mod fuzz;
mod helpers;
mod openapi;
mod products;
mod restock;
mod saga;
mod seed;
