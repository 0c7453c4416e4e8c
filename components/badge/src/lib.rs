//! badge component (being written).
