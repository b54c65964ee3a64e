//! Services: the behaviour, written against the ports. Functions and the CLI call these.
