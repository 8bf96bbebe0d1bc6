//! Actor schedules: `every <n><unit>`, cron macros, and cron expressions (UTC).

use std::{str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use croner::{Cron, parser::CronParser, parser::Seconds};

/// A parsed `spec.schedule`.
#[derive(Debug, Clone)]
pub enum Schedule {
    Every(Duration),
    Cron(Box<Cron>),
}

impl FromStr for Schedule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("every ") {
            let unit_at = rest
                .find(|c: char| !c.is_ascii_digit())
                .ok_or("every: missing unit")?;
            let (n, unit) = rest.split_at(unit_at);
            let n: u64 = n.parse().map_err(|_| format!("every: bad number in {s:?}"))?;
            let unit_ms: u64 = match unit {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return Err(format!("every: unknown unit {unit:?} in {s:?}")),
            };
            if n == 0 {
                return Err("every: the interval must be positive".into());
            }
            let ms = n.checked_mul(unit_ms).ok_or("every: interval too large")?;
            return Ok(Schedule::Every(Duration::from_millis(ms)));
        }
        CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(s)
            .map(|c| Schedule::Cron(Box::new(c)))
            .map_err(|e| format!("cron expression {s:?}: {e}"))
    }
}

impl Schedule {
    /// The first tick strictly after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            // Checked: an interval of millions of years (`every 100000000000d`) has no next tick
            // on the calendar, and `+` would panic the schedule's task.
            Schedule::Every(d) => chrono::Duration::from_std(*d)
                .ok()
                .and_then(|d| now.checked_add_signed(d)),
            Schedule::Cron(c) => c.find_next_occurrence(&now, false).ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, h, m, 0).unwrap()
    }

    #[test]
    fn intervals_tick_every_n_units() {
        let s: Schedule = "every 30s".parse().unwrap();
        assert_eq!(
            s.next_after(at(0, 0)).unwrap(),
            at(0, 0) + chrono::Duration::seconds(30)
        );
        assert!(
            matches!("every 2d".parse::<Schedule>().unwrap(), Schedule::Every(d) if d == Duration::from_secs(172_800))
        );
        assert!(
            matches!("every 250ms".parse::<Schedule>().unwrap(), Schedule::Every(d) if d == Duration::from_millis(250))
        );
    }

    #[test]
    fn the_pipeline_schedules_tick_when_expected() {
        let every_2h: Schedule = "0 */2 * * *".parse().unwrap();
        assert_eq!(every_2h.next_after(at(1, 5)).unwrap(), at(2, 0));
        let every_4h: Schedule = "0 */4 * * *".parse().unwrap();
        assert_eq!(every_4h.next_after(at(4, 0)).unwrap(), at(8, 0));
        let hourly: Schedule = "@hourly".parse().unwrap();
        assert_eq!(hourly.next_after(at(3, 59)).unwrap(), at(4, 0));
    }

    #[test]
    fn an_interval_past_the_end_of_the_calendar_has_no_next_tick_instead_of_a_panic() {
        let s: Schedule = "every 100000000000d".parse().unwrap();
        assert_eq!(s.next_after(at(0, 0)), None);
    }

    #[test]
    fn what_the_schema_pattern_lets_through_but_cron_cannot_read_is_refused() {
        assert!("99 * * * *".parse::<Schedule>().is_err(), "minute 99");
        assert!("every 0s".parse::<Schedule>().is_err());
        assert!("every 5y".parse::<Schedule>().is_err());
    }
}
