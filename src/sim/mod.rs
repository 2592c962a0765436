//! The loopback simulator of the three peers (DESIGN §10).
