//! Local control plane and end-to-end suite.
