//! Proptests.
