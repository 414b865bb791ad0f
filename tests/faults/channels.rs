//! Channels against the lying provider (issue #12): accepted answers, secrets.
