//! The SQLite sidecar (DESIGN §6): what must survive between ticks.
