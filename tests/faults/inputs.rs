//! owned by h-inputs
