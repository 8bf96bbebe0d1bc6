//! View models: what each page shows, built from the typed objects of the shared stores by pure
//! functions, so that every rule (what counts as a rollback, which step is current, which
//! config values are hidden, how old a lease is) is unit-tested without a server or a browser.
//! The pages (`crate::pages`) only lay these out.

pub mod actor;
pub mod event;
pub mod phase;
pub mod pool;
pub mod time;
pub mod worker;

/// Contains `needle`, ignoring ASCII case; an empty needle matches everything. The search box
/// and the name filters use this.
pub fn matches(haystack: &str, needle: &str) -> bool {
    let needle = needle.trim();
    needle.is_empty()
        || haystack
            .to_ascii_lowercase()
            .contains(&needle.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_search_matches_any_part_of_a_name_ignoring_case_and_an_empty_one_matches_all() {
        assert!(super::matches("Payments-EU", "ments-eu"));
        assert!(super::matches("anything", "  "));
        assert!(!super::matches("payments", "orders"));
    }
}
