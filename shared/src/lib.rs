//! Seatkeeper's shared crate: everything the Lambda functions and the CLI have in common.
//!
//! - [`domain`]: the types and pure rules (no I/O, no AWS, no HTTP).
//! - [`store`], [`secrets`], [`provider`]: ports (small traits) with their adapters.
//! - [`services`]: the behaviour (connect, license sync, reports) written against the ports.

pub mod clock;
pub mod config;
pub mod domain;
pub mod logging;
pub mod notify;
pub mod provider;
pub mod secrets;
pub mod services;
pub mod store;
pub mod trigger;
pub mod workflow;
