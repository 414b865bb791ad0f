//! The model-based test of the delivery state machine (below).
