//! View models: what each page shows, built from the typed objects of the shared stores by pure
//! functions, so that every rule (what counts as a rollback, which step is current, which
//! config values are hidden, how old a lease is) is unit-tested without a server or a browser.
//! The pages (`crate::pages`) only lay these out.

pub mod actor;
pub mod chart;
pub mod event;
pub mod phase;
pub mod pool;
pub mod time;
pub mod worker;

/// Contains `needle`, ignoring ASCII case; an empty needle matches everything. The search box
/// and the name filters use this.
pub fn matches(haystack: &str, needle: &str) -> bool {
    let needle = needle.trim().as_bytes();
    // Compared byte window by byte window, allocating nothing: the actors table runs this on
    // every actor of the store for every request.
    needle.is_empty()
        || haystack
            .as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_search_matches_any_part_of_a_name_ignoring_case_and_an_empty_one_matches_all() {
        assert!(super::matches("Payments-EU", "ments-eu"));
        assert!(super::matches("anything", "  "));
        assert!(!super::matches("payments", "orders"));
        assert!(
            !super::matches("pay", "payments"),
            "a needle longer than the name"
        );
        // Only ASCII letters fold, as `to_ascii_lowercase` did: ü is not Ü.
        assert!(super::matches("grüße-eu", "GRü"));
        assert!(!super::matches("grüße-eu", "GRÜ"));
    }
}
