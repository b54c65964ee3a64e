//! The Box simulator over real HTTP, as a client sees it. One test binary.

mod binary;
mod control;
mod events;
mod faults;
mod oauth;
mod support;
mod tenant;
mod token;
mod users;
