//! The API function's handler tests: API Gateway HTTP API v2 events through `lambda_http`
//! and the router, over the embedded store, file secrets and the Box simulator.

mod connect;
mod hygiene;
mod manage;
mod openapi;
mod reads;
mod reclaim;
mod schema;
mod secrets;
mod support;
