//! The Troupe operator (see docs/architecture.md). Controllers land with issue 5.
