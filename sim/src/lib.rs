//! Stateful provider simulators served over real HTTP, for tests, the demo and benchmarks.
//!
//! Only Box exists today ([`boxsim`]). It is written from `shared/reference/box-api.md`
//! and pinned by `docs/box-sim-contract.md`: both the simulator and the real client are
//! built from the same facts, so neither is a mirror of the other.

pub mod boxsim;

pub use boxsim::{
    AppScopes, BoxSim, BoxSimConfig, BoxTenantSpec, Faults, OAuthStats, SimHandle, SimStats,
    UserWrite, WriteKind,
};
