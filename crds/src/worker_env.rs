//! The worker settings a pod's env carries, with their defaults and the ranges a worker can run
//! with. Checked twice: by the worker at start (it refuses to run outside them, naming the
//! variable) and by the operator before it deploys a pool's template, so that a template whose
//! env sets one out of range is a pool condition with the reason, not a crash-looping worker.

use std::time::Duration;

use crate::duration::parse_duration;

/// The env settings of a worker that bound its timers and queues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerTimings {
    pub lease_duration: Duration,
    pub lease_renew: Duration,
    pub status_every: Duration,
    pub status_counters_every: Duration,
    pub passivate_after: Duration,
    pub stop_deadline: Duration,
    pub drain_timeout: Duration,
    pub leave_timeout: Duration,
    pub mailbox_block_timeout: Duration,
    pub mailbox_capacity: usize,
}

/// The defaults, as the worker's flags have them (a worker test checks they agree).
impl Default for WorkerTimings {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(10),
            lease_renew: Duration::from_secs(2),
            status_every: Duration::from_millis(500),
            status_counters_every: Duration::from_secs(10),
            passivate_after: Duration::from_secs(60),
            stop_deadline: Duration::from_millis(500),
            drain_timeout: Duration::from_secs(10),
            leave_timeout: Duration::from_secs(15),
            mailbox_block_timeout: Duration::from_secs(1),
            mailbox_capacity: 1000,
        }
    }
}

impl WorkerTimings {
    /// The settings `env` (name, value pairs in order; a later one wins) gives over the
    /// defaults. Variables that are not settings are ignored; one that does not parse is refused
    /// by name.
    pub fn from_env<'a>(env: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, String> {
        let mut t = Self::default();
        for (name, value) in env {
            let duration = |slot: &mut Duration| -> Result<(), String> {
                *slot = parse_duration(value).map_err(|e| format!("{name}={value:?}: {e}"))?;
                Ok(())
            };
            match name {
                "TROUPE_LEASE_DURATION" => duration(&mut t.lease_duration)?,
                "TROUPE_LEASE_RENEW" => duration(&mut t.lease_renew)?,
                "TROUPE_STATUS_EVERY" => duration(&mut t.status_every)?,
                "TROUPE_STATUS_COUNTERS_EVERY" => duration(&mut t.status_counters_every)?,
                "TROUPE_PASSIVATE_AFTER" => duration(&mut t.passivate_after)?,
                "TROUPE_STOP_DEADLINE" => duration(&mut t.stop_deadline)?,
                "TROUPE_DRAIN_TIMEOUT" => duration(&mut t.drain_timeout)?,
                "TROUPE_LEAVE_TIMEOUT" => duration(&mut t.leave_timeout)?,
                "TROUPE_MAILBOX_BLOCK_TIMEOUT" => duration(&mut t.mailbox_block_timeout)?,
                "TROUPE_MAILBOX_CAPACITY" => {
                    t.mailbox_capacity = value
                        .parse()
                        .map_err(|_| format!("{name}={value:?} is not a whole number"))?;
                }
                _ => {}
            }
        }
        Ok(t)
    }

    /// Refuses settings a worker cannot run with, naming the variable and the allowed range: a
    /// zero period would panic a timer, and a renew period as long as the lease would leave no
    /// proof of the lease.
    pub fn check(&self) -> Result<(), String> {
        let secs = Duration::from_secs;
        let ms = Duration::from_millis;
        let within = |name: &str, v: Duration, min: Duration, max: Duration| {
            if v < min || v > max {
                Err(format!(
                    "{name}={v:?} is out of range: it must be between {min:?} and {max:?}"
                ))
            } else {
                Ok(())
            }
        };
        within("TROUPE_LEASE_DURATION", self.lease_duration, secs(2), secs(600))?;
        // The proof ends `renew + 1 s` before the lease: at least a second of it must remain.
        let renew_max = self.lease_duration.saturating_sub(secs(2)).max(ms(100));
        within("TROUPE_LEASE_RENEW", self.lease_renew, ms(100), renew_max)?;
        within("TROUPE_STATUS_EVERY", self.status_every, ms(10), secs(60))?;
        within(
            "TROUPE_STATUS_COUNTERS_EVERY",
            self.status_counters_every,
            ms(100),
            secs(3600),
        )?;
        within(
            "TROUPE_PASSIVATE_AFTER",
            self.passivate_after,
            Duration::ZERO,
            secs(86_400),
        )?;
        // Fencing stops every actor within the margin (renew + 1 s).
        within(
            "TROUPE_STOP_DEADLINE",
            self.stop_deadline,
            ms(1),
            self.lease_renew + secs(1),
        )?;
        within(
            "TROUPE_DRAIN_TIMEOUT",
            self.drain_timeout,
            Duration::ZERO,
            secs(600),
        )?;
        within(
            "TROUPE_LEAVE_TIMEOUT",
            self.leave_timeout,
            Duration::ZERO,
            secs(3600),
        )?;
        within(
            "TROUPE_MAILBOX_BLOCK_TIMEOUT",
            self.mailbox_block_timeout,
            Duration::ZERO,
            secs(600),
        )?;
        if !(1..=1_000_000).contains(&self.mailbox_capacity) {
            return Err(format!(
                "TROUPE_MAILBOX_CAPACITY={} is out of range: it must be between 1 and 1000000",
                self.mailbox_capacity
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_env_override_the_defaults_in_order_and_ignore_other_variables() {
        let t = WorkerTimings::from_env([
            ("TROUPE_LEASE_DURATION", "20s"),
            ("HOME", "/"),
            ("TROUPE_MAILBOX_CAPACITY", "5"),
            ("TROUPE_LEASE_DURATION", "30s"),
        ])
        .unwrap();
        assert_eq!(t.lease_duration, Duration::from_secs(30));
        assert_eq!(t.mailbox_capacity, 5);
        assert_eq!(t.lease_renew, WorkerTimings::default().lease_renew);
        assert_eq!(WorkerTimings::default().check(), Ok(()));
    }

    #[test]
    fn settings_that_do_not_parse_or_are_out_of_range_are_refused_by_name() {
        let why = WorkerTimings::from_env([("TROUPE_STATUS_EVERY", "often")]).unwrap_err();
        assert!(why.starts_with("TROUPE_STATUS_EVERY=\"often\""), "{why}");
        let why = WorkerTimings::from_env([("TROUPE_MAILBOX_CAPACITY", "-1")]).unwrap_err();
        assert!(why.contains("not a whole number"), "{why}");
        let zero = WorkerTimings::from_env([("TROUPE_LEASE_RENEW", "0s")]).unwrap();
        assert!(zero.check().unwrap_err().starts_with("TROUPE_LEASE_RENEW=0ns"));
    }
}
