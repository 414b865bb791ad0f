//! owned by h-channels
