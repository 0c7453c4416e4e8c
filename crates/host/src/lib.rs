//! bindery-host (being written).
