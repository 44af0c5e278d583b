//! The `portcullis` binary (temporarily minimal while modules land).
fn main() {}
