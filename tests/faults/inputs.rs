//! owned by another helper (issue #12)
