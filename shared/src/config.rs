//! Settings from the environment (design §9).
