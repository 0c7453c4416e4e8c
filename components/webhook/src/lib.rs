//! webhook component (being written).
