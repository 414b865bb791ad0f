//! Hostile input (issue #12 classes 5-9): owned by h-inputs.
