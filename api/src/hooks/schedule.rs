//! When a failed delivery is tried again: after each delay of the schedule
//! in turn (`INBOXLINK_WEBHOOK_RETRY_SCHEDULE`, default
//! `5s,5m,30m,2h,5h,10h,10h`: eight attempts in about 28 hours), each
//! spread by up to a tenth either way so that many failures do not come
//! back at the same instant.

use std::time::Duration;

/// The default schedule.
pub const DEFAULT: &str = "5s,5m,30m,2h,5h,10h,10h";

/// The delays between attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule(Vec<Duration>);

impl Schedule {
    /// Reads a comma-separated list of durations (`5s`, `5m`, `2h`, ...).
    pub fn parse(text: &str) -> Result<Self, String> {
        let delays = text
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| humantime::parse_duration(d).map_err(|e| format!("`{d}`: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        if delays.is_empty() {
            return Err("give at least one delay, e.g. 5s,5m,30m".into());
        }
        if delays.len() > 50
            || delays
                .iter()
                .any(|d| *d > Duration::from_secs(7 * 24 * 3600))
        {
            return Err("at most 50 delays of at most 7 days each".into());
        }
        Ok(Self(delays))
    }

    /// How many attempts a delivery gets in all.
    pub fn attempts(&self) -> u32 {
        u32::try_from(self.0.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1)
    }

    /// The wait after the `attempt`-th attempt (1 = the first) failed, or
    /// `None` when it was the last.
    pub fn after(&self, attempt: u32) -> Option<Duration> {
        let base = *self.0.get(usize::try_from(attempt).ok()?.checked_sub(1)?)?;
        let tenth = base.as_millis() / 10;
        let jitter = if tenth == 0 {
            0
        } else {
            rand::random_range(0..=2 * tenth)
        };
        let millis = (base.as_millis() + jitter).saturating_sub(tenth);
        Some(Duration::from_millis(
            u64::try_from(millis).unwrap_or(u64::MAX),
        ))
    }
}

impl Default for Schedule {
    fn default() -> Self {
        Self::parse(DEFAULT).expect("the default schedule parses")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule() {
        let s = Schedule::default();
        assert_eq!(s.attempts(), 8);
        let first = s.after(1).unwrap();
        assert!(first >= Duration::from_millis(4500) && first <= Duration::from_millis(5500));
        assert!(s.after(7).unwrap() >= Duration::from_secs(9 * 3600));
        assert_eq!(s.after(8), None);
        assert_eq!(s.after(0), None);
    }

    #[test]
    fn bad_schedules_are_refused() {
        for bad in ["", "5x", "1s,,nope", "8d"] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Schedule::parse("100ms, 1s").unwrap().attempts(), 3);
    }
}
