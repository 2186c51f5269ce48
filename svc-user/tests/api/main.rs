//! svc-user's integration tests: the real service, over HTTP, on a real nats-server.

mod admin;
mod console_login;
mod fuzz;
mod helpers;
mod instances;
mod keys;
mod log_in;
mod me;
mod openapi;
mod secrets;
mod sign_up;
mod throttle;
