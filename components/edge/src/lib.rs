//! bindery-edge (being written).
