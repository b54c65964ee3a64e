//! JSON logs (tracing).
