//! The write sequence of a pool reconcile, checked against a mock API server.
