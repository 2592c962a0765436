//! Timestamps (DESIGN §5.4): parse what peers send, format what we write.
