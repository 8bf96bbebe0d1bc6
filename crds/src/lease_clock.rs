//! A holder's proof that it still holds its lease, judged on its own clock: the worker's
//! membership lease and the operator's leadership lease both use it.
//!
//! A renewal that *started* at `t` and succeeded proves the lease until `t + duration` at the
//! earliest on any observer's clock: the operator cannot have seen the new `renewTime` before the
//! request was sent, and it waits `duration` (plus a grace) after it last saw a renewal before it
//! moves actors away. So the worker may run actors until `t + duration − margin` and not a moment
//! longer; the margin leaves time to stop them.
//!
//! Time is read from `CLOCK_BOOTTIME`: monotonic (wall-clock jumps and skew change nothing) and
//! counting time the machine was suspended. A process that was paused (SIGSTOP, a stalled VM)
//! finds on waking that its proof has run out, before it delivers a single message or tick: the
//! host asks [`LeaseClock::is_live`] at every delivery.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// A point on `CLOCK_BOOTTIME`, in nanoseconds since boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BootInstant(u64);

impl BootInstant {
    /// Now, on `CLOCK_BOOTTIME`.
    pub fn now() -> Self {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_BOOTTIME exists on every Linux since
        // 2.6.39. A failure (which cannot happen for this clock) leaves zero: "no proof".
        unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
        Self(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
    }

    pub fn saturating_add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(d.as_nanos().min(u64::MAX as u128) as u64))
    }

    pub fn saturating_sub(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(d.as_nanos().min(u64::MAX as u128) as u64))
    }

    pub fn duration_since(self, earlier: BootInstant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

/// Until when this worker may run actors. Starts with no proof.
#[derive(Debug, Default)]
pub struct LeaseClock {
    /// `BootInstant` nanoseconds; 0: no proof.
    valid_until: AtomicU64,
}

impl LeaseClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// A proof that never runs out, for a host without membership (tests, embedding).
    pub fn unbounded() -> Self {
        Self {
            valid_until: AtomicU64::new(u64::MAX),
        }
    }

    /// A renewal that started at `started` succeeded: the proof now runs to
    /// `started + duration − margin` (never backwards: a slow answer to an older request does not
    /// shorten a newer proof).
    pub fn renewed(&self, started: BootInstant, duration: Duration, margin: Duration) {
        let until = started.saturating_add(duration.saturating_sub(margin));
        self.valid_until.fetch_max(until.0, Ordering::SeqCst);
    }

    /// Withdraws the proof (the lease was released, or must be treated as lost).
    pub fn revoke(&self) {
        self.valid_until.store(0, Ordering::SeqCst);
    }

    /// Whether the worker may run actors now.
    pub fn is_live(&self) -> bool {
        self.is_live_at(BootInstant::now())
    }

    pub fn is_live_at(&self, now: BootInstant) -> bool {
        now.0 < self.valid_until.load(Ordering::SeqCst)
    }

    /// How long the proof still holds (zero when it does not).
    pub fn remaining(&self) -> Duration {
        let until = self.valid_until.load(Ordering::SeqCst);
        Duration::from_nanos(until.saturating_sub(BootInstant::now().0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(6);
    const MARGIN: Duration = Duration::from_secs(2);

    #[test]
    fn without_a_renewal_nothing_may_run() {
        assert!(!LeaseClock::new().is_live());
    }

    #[test]
    fn a_renewal_proves_the_lease_from_the_start_of_its_request_minus_the_margin() {
        let clock = LeaseClock::new();
        let sent = BootInstant::now();
        clock.renewed(sent, LEASE, MARGIN);
        assert!(clock.is_live_at(sent.saturating_add(Duration::from_millis(3999))));
        assert!(!clock.is_live_at(sent.saturating_add(Duration::from_secs(4))));
    }

    #[test]
    fn a_renewal_answered_after_the_proof_ran_out_proves_nothing() {
        // The request left 5 s ago and was answered only now (a pause, a slow network): the
        // operator may have seen its renewTime 5 s ago, so only 1 s of the lease is left, which
        // the margin eats.
        let clock = LeaseClock::new();
        let sent = BootInstant::now().saturating_sub(Duration::from_secs(5));
        clock.renewed(sent, LEASE, MARGIN);
        assert!(!clock.is_live());
    }

    #[test]
    fn a_late_answer_to_an_older_request_never_shortens_the_proof() {
        let clock = LeaseClock::new();
        let now = BootInstant::now();
        clock.renewed(now, LEASE, MARGIN);
        clock.renewed(now.saturating_sub(Duration::from_secs(3)), LEASE, MARGIN);
        assert!(clock.is_live_at(now.saturating_add(Duration::from_millis(3500))));
        clock.revoke();
        assert!(!clock.is_live());
    }

    #[test]
    fn the_boot_clock_moves_forward() {
        let a = BootInstant::now();
        std::thread::sleep(Duration::from_millis(2));
        assert!(BootInstant::now().duration_since(a) >= Duration::from_millis(2));
    }
}
