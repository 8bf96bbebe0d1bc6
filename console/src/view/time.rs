//! Times as the console shows them: an age in kubectl's style (`42s`, `5m`, `3h`, `2d`) next to
//! the RFC 3339 time, so a page reads at a glance and stays exact.

use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// How long before `now` `then` was, kubectl-style; a time in the future (clock skew) is `0s`.
pub fn age(now: Timestamp, then: Timestamp) -> String {
    let d = now.duration_since(then).max(SignedDuration::ZERO);
    short(d)
}

/// A duration in its largest whole unit, kubectl-style.
pub fn short(d: SignedDuration) -> String {
    let s = d.as_secs().max(0);
    match s {
        0..120 => format!("{s}s"),
        120..7_200 => format!("{}m", s / 60),
        7_200..172_800 => format!("{}h", s / 3_600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn an_age_is_shown_in_its_largest_whole_unit_like_kubectl() {
        assert_eq!(age(at(42), at(0)), "42s");
        assert_eq!(age(at(600), at(0)), "10m");
        assert_eq!(age(at(3 * 3600), at(0)), "3h");
        assert_eq!(age(at(5 * 86_400), at(0)), "5d");
    }

    #[test]
    fn a_time_in_the_future_from_a_skewed_clock_is_zero_seconds_old() {
        assert_eq!(age(at(0), at(30)), "0s");
    }
}
