//! The Box simulator over real HTTP, as a client sees it. One test binary.

mod as_user;
mod binary;
mod control;
mod events;
mod faults;
mod memberships;
mod oauth;
mod support;
mod tenant;
mod token;
mod users;
mod writes;
