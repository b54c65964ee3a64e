//! HTTP client with retry (being written).
