//! Durations as Kubernetes manifests write them (`30s`, `1m30s`, `500ms`, `2h`).
//!
//! The schema's [`DURATION_PATTERN`](crate::common::DURATION_PATTERN) refuses malformed values at
//! apply time; this parser is what the controllers use to read them, and it accepts exactly the
//! language of that pattern.

use std::time::Duration;

/// Why a duration string could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("duration {0:?}: expected number+unit pairs such as 30s, 1m30s or 500ms")]
    Malformed(String),
    #[error("duration {0:?} is too large")]
    Overflow(String),
}

/// Parses a Kubernetes-style duration: one or more `<digits><unit>` pairs, units `ms`, `s`, `m`, `h`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let malformed = || DurationError::Malformed(text.to_string());
    let overflow = || DurationError::Overflow(text.to_string());
    let bytes = text.as_bytes();
    let mut total_ms: u64 = 0;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(malformed());
        }
        let n: u64 = text[start..i].parse().map_err(|_| overflow())?;
        let unit_ms = if text[i..].starts_with("ms") {
            i += 2;
            1
        } else {
            let unit = match bytes.get(i) {
                Some(b's') => 1_000,
                Some(b'm') => 60_000,
                Some(b'h') => 3_600_000,
                _ => return Err(malformed()),
            };
            i += 1;
            unit
        };
        total_ms = n
            .checked_mul(unit_ms)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(overflow)?;
    }
    Ok(Duration::from_millis(total_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_single_and_compound_durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1h1m1s1ms"), Ok(Duration::from_millis(3_661_001)));
    }

    #[test]
    fn refuses_what_the_schema_pattern_refuses() {
        for bad in ["", "s", "10", "10x", "1.5s", "-1s", "10 s", "1m30"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn refuses_durations_that_overflow() {
        assert!(matches!(
            parse_duration("99999999999999999999h"),
            Err(DurationError::Overflow(_))
        ));
    }
}
