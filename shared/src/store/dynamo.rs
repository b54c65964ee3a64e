//! DynamoDB adapter of the [`Store`](super::Store) port (being written).
