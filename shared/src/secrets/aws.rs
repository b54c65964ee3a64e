//! Secrets Manager adapter of the [`Secrets`](super::Secrets) port (being written).
