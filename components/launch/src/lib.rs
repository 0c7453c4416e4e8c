//! launch component (being written).
