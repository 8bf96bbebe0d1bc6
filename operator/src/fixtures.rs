//! Test fixtures shared by the operator's tests (builders, a mock API server).
