//! owned by another engineer (placeholder so the target compiles)
