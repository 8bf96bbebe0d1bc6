//! What Troupe's tests share: for every property test of the parsers (issue #14), the case
//! count and runner settings, and text strategies cheap enough for 100,000 cases in a debug
//! build; and test certificates ([`certs`]).

pub mod certs;

use proptest::{prelude::*, test_runner::RngAlgorithm};

/// Cases per property (issue #14 asks for at least 100,000); `PROPTEST_CASES` overrides it.
pub const CASES: u32 = 100_000;

/// The runner settings of every property test.
pub fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(CASES),
        // A failure is pinned as a named regression test instead of a file in the tree.
        failure_persistence: None,
        // ChaCha, the default, costs more than most parses in a debug build.
        rng_algorithm: RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    }
}

/// Text of `min..=max` chars drawn from `set` (cheaper than a regex strategy in a debug build).
pub fn text_of(set: &'static str, min: usize, max: usize) -> impl Strategy<Value = String> + Clone {
    prop::collection::vec(prop::sample::select(set.chars().collect::<Vec<_>>()), min..=max)
        .prop_map(|c| c.into_iter().collect())
}

/// Any text of up to `max` chars, control and unassigned ones included.
pub fn any_text(max: usize) -> impl Strategy<Value = String> + Clone {
    prop::collection::vec(any::<char>(), 0..=max).prop_map(|c| c.into_iter().collect())
}
