//! Where an SLO's period lies at a given moment: the last `length` for a rolling window, the
//! calendar period holding the moment for a calendar window.
//!
//! Time is counted in whole minutes (the buckets' resolution): a rolling period ends with the
//! minute that holds "now" and starts `length` before that minute's end. Calendar periods
//! follow the wall clock of their zone: `1M` from `2026-01-31 00:00` is Feb 28 (the month is
//! clamped, as `chrono` adds months), each period counted from the start time again so the
//! clamping does not creep; a start that falls into a daylight-saving gap moves to the first
//! valid local time after it, an ambiguous one takes the earlier instant.

use chrono::{Months, NaiveDateTime, TimeDelta, TimeZone};

use super::definition::Window;

pub const MINUTE_US: i64 = 60_000_000;

/// A span of time `[start_us, end_us)` in microseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start_us: i64,
    pub end_us: i64,
}

impl Span {
    pub fn len_us(&self) -> i64 {
        self.end_us - self.start_us
    }
}

/// The start of the minute holding `t`.
pub fn minute_floor(t: i64) -> i64 {
    t.div_euclid(MINUTE_US) * MINUTE_US
}

/// The last `len_us` up to the end of the minute holding `now_us`.
pub fn trailing(len_us: i64, now_us: i64) -> Span {
    let end_us = minute_floor(now_us) + MINUTE_US;
    Span {
        start_us: end_us - len_us,
        end_us,
    }
}

/// The whole period holding `now_us`: for a rolling window the trailing `length`, for a
/// calendar window the calendar period (which may end after `now_us`).
pub fn period_at(window: &Window, now_us: i64) -> Span {
    match window {
        Window::Rolling(length) => trailing(length.micros(), now_us),
        Window::Calendar {
            length,
            start,
            zone,
        } => {
            let at = |k: i64| calendar_start(*start, *length, *zone, k);
            // an estimate from the nominal length, then corrected by stepping
            let mut k = (now_us - at(0)).div_euclid(length.micros());
            while at(k) > now_us {
                k -= 1;
            }
            while at(k + 1) <= now_us {
                k += 1;
            }
            Span {
                start_us: at(k),
                end_us: at(k + 1),
            }
        }
    }
}

/// The start of the `k`-th calendar period after `start` (negative: before it), in µs.
fn calendar_start(
    start: NaiveDateTime,
    length: super::duration::Shorthand,
    zone: chrono_tz::Tz,
    k: i64,
) -> i64 {
    let local = match length.months() {
        Some(m) => {
            let months = i64::from(m) * k;
            let step = Months::new(months.unsigned_abs().min(u64::from(u32::MAX)) as u32);
            if months >= 0 {
                start.checked_add_months(step)
            } else {
                start.checked_sub_months(step)
            }
        }
        None => start.checked_add_signed(TimeDelta::microseconds(length.micros() * k)),
    }
    .unwrap_or(start);
    // buckets are whole minutes: a start time with seconds counts from its minute
    minute_floor(to_utc(local, zone))
}

/// A wall-clock time in `zone` as µs since the epoch.
fn to_utc(local: NaiveDateTime, zone: chrono_tz::Tz) -> i64 {
    let mut t = local;
    // the first valid minute after a daylight-saving gap (a few hours wide at most)
    for _ in 0..(6 * 60) {
        if let Some(dt) = zone.from_local_datetime(&t).earliest() {
            return dt.timestamp_micros();
        }
        t += TimeDelta::minutes(1);
    }
    local.and_utc().timestamp_micros()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slo::duration::Shorthand;
    use chrono::NaiveDate;

    fn utc(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_micros()
    }

    fn calendar(length: &str, start: &str, zone: &str) -> Window {
        Window::Calendar {
            length: Shorthand::parse(length, false).unwrap(),
            start: NaiveDateTime::parse_from_str(start, "%Y-%m-%d %H:%M:%S").unwrap(),
            zone: zone.parse().unwrap(),
        }
    }

    #[test]
    fn rolling_periods_end_with_the_current_minute() {
        let w = Window::Rolling(Shorthand::parse("1h", false).unwrap());
        let p = period_at(&w, utc("2026-12-04T10:15:30Z"));
        assert_eq!(p.start_us, utc("2026-12-04T09:16:00Z"));
        assert_eq!(p.end_us, utc("2026-12-04T10:16:00Z"));
    }

    #[test]
    fn calendar_months_follow_the_zone_and_clamp_without_creeping() {
        let w = calendar("1M", "2026-01-01 00:00:00", "Europe/Berlin");
        // 15 March in Berlin: March, from local midnight (UTC+1) to 1 April (UTC+2 by then)
        let p = period_at(&w, utc("2026-03-15T12:00:00Z"));
        assert_eq!(p.start_us, utc("2026-02-28T23:00:00Z"));
        assert_eq!(p.end_us, utc("2026-03-31T22:00:00Z"));
        // the first hour of April in Berlin is already April's period
        let p = period_at(&w, utc("2026-03-31T22:30:00Z"));
        assert_eq!(p.start_us, utc("2026-03-31T22:00:00Z"));
        // from the 31st: February is clamped to the 28th, March starts on the 31st again
        let w = calendar("1M", "2026-01-31 00:00:00", "UTC");
        let p = period_at(&w, utc("2026-03-01T00:00:00Z"));
        assert_eq!(p.start_us, utc("2026-02-28T00:00:00Z"));
        assert_eq!(p.end_us, utc("2026-03-31T00:00:00Z"));
        // quarters, and a moment before the start time (periods extend backwards)
        let w = calendar("1Q", "2026-01-01 00:00:00", "UTC");
        let p = period_at(&w, utc("2025-12-31T23:59:00Z"));
        assert_eq!(p.start_us, utc("2025-10-01T00:00:00Z"));
        assert_eq!(p.end_us, utc("2026-01-01T00:00:00Z"));
    }

    #[test]
    fn calendar_days_are_local_days_across_daylight_saving() {
        // New York's clocks go forward on 8 March 2026: that local day is 23 hours long
        let w = calendar("1d", "2026-03-01 00:00:00", "America/New_York");
        let p = period_at(&w, utc("2026-03-08T12:00:00Z"));
        assert_eq!(p.start_us, utc("2026-03-08T05:00:00Z"));
        assert_eq!(p.end_us, utc("2026-03-09T04:00:00Z"));
        assert_eq!(p.len_us(), 23 * 3_600_000_000);
        // a start inside the gap (02:15 does not exist that day) moves to its end, 03:00
        let gap = NaiveDate::from_ymd_opt(2026, 3, 8)
            .unwrap()
            .and_hms_opt(2, 15, 0)
            .unwrap();
        assert_eq!(
            to_utc(gap, "America/New_York".parse().unwrap()),
            utc("2026-03-08T07:00:00Z")
        );
    }
}
