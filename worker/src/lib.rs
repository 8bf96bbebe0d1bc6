//! The Troupe worker: Ractor host for worker pods. Lands with issue 4.
