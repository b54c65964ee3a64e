//! Box API client (being written).
