//! OpenSLO's duration shorthand: a positive integer and one case-sensitive unit, `m` minutes,
//! `h` hours, `d` days, `w` weeks, `M` months, `Q` quarters, `Y` years (OpenSLO v1,
//! "duration-shorthand"; no seconds, no compound values such as `1h30m`).
//!
//! The spec leaves the length of a month, quarter and year to implementations. In a rolling
//! window loupe reads them as the OpenSLO Go SDK does, 30, 90 and 365 days; in a calendar
//! window they are calendar months, quarters and years (see [`super::window`]).

use std::fmt;

/// A parsed shorthand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shorthand {
    pub count: u32,
    pub unit: Unit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Unit {
    fn letter(self) -> char {
        match self {
            Unit::Minute => 'm',
            Unit::Hour => 'h',
            Unit::Day => 'd',
            Unit::Week => 'w',
            Unit::Month => 'M',
            Unit::Quarter => 'Q',
            Unit::Year => 'Y',
        }
    }

    /// Seconds in one unit; months, quarters and years at 30, 90 and 365 days.
    fn seconds(self) -> i64 {
        match self {
            Unit::Minute => 60,
            Unit::Hour => 3_600,
            Unit::Day => 86_400,
            Unit::Week => 7 * 86_400,
            Unit::Month => 30 * 86_400,
            Unit::Quarter => 90 * 86_400,
            Unit::Year => 365 * 86_400,
        }
    }
}

impl Shorthand {
    /// Parses `28d`, `1M`, `5m`. With `bare_minutes`, a bare number is minutes (the spec
    /// allows it for `timeSliceWindow`).
    pub fn parse(s: &str, bare_minutes: bool) -> Result<Shorthand, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let bad = || {
            format!(
                "{s:?} is not a duration: expected a positive whole number and one of \
                 m, h, d, w, M, Q, Y (5m, 1h, 28d, 1M)"
            )
        };
        let count: u32 = digits.parse().map_err(|_| bad())?;
        if count == 0 {
            return Err(format!("{s:?}: a duration must be positive"));
        }
        let unit = match unit {
            "m" => Unit::Minute,
            "" if bare_minutes => Unit::Minute,
            "h" => Unit::Hour,
            "d" => Unit::Day,
            "w" => Unit::Week,
            "M" => Unit::Month,
            "Q" => Unit::Quarter,
            "Y" => Unit::Year,
            _ => return Err(bad()),
        };
        // Ten years is longer than any SLO period or window; past it the arithmetic in
        // microseconds would overflow.
        if i64::from(count) * unit.seconds() > 10 * 366 * 86_400 {
            return Err(format!("{s:?}: longer than ten years"));
        }
        Ok(Shorthand { count, unit })
    }

    /// The length in microseconds, months, quarters and years at 30, 90 and 365 days.
    pub fn micros(self) -> i64 {
        i64::from(self.count) * self.unit.seconds() * 1_000_000
    }

    /// Whether the unit is a calendar unit of variable length (M, Q, Y).
    pub fn is_calendar(self) -> bool {
        matches!(self.unit, Unit::Month | Unit::Quarter | Unit::Year)
    }

    /// The length in whole months for M, Q and Y.
    pub fn months(self) -> Option<u32> {
        match self.unit {
            Unit::Month => Some(self.count),
            Unit::Quarter => Some(3 * self.count),
            Unit::Year => Some(12 * self.count),
            _ => None,
        }
    }
}

impl fmt::Display for Shorthand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.count, self.unit.letter())
    }
}

impl<'de> serde::Deserialize<'de> for Shorthand {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A string, or (for timeSliceWindow) a bare number of minutes.
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Minutes(u32),
        }
        match Raw::deserialize(d)? {
            Raw::Text(s) => Shorthand::parse(&s, true).map_err(serde::de::Error::custom),
            Raw::Minutes(n) => {
                Shorthand::parse(&n.to_string(), true).map_err(serde::de::Error::custom)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorthands_parse_and_print_back() {
        for (text, count, unit, minutes) in [
            ("5m", 5, Unit::Minute, 5),
            ("1h", 1, Unit::Hour, 60),
            ("28d", 28, Unit::Day, 28 * 1440),
            ("4w", 4, Unit::Week, 28 * 1440),
            ("1M", 1, Unit::Month, 30 * 1440),
            ("1Q", 1, Unit::Quarter, 90 * 1440),
            ("1Y", 1, Unit::Year, 365 * 1440),
        ] {
            let d = Shorthand::parse(text, false).unwrap();
            assert_eq!((d.count, d.unit), (count, unit), "{text}");
            assert_eq!(d.micros(), minutes * 60_000_000, "{text}");
            assert_eq!(d.to_string(), text);
        }
        assert_eq!(
            Shorthand::parse("15", true).unwrap().micros(),
            15 * 60_000_000
        );
    }

    #[test]
    fn bad_shorthands_are_refused_with_the_text() {
        for bad in [
            "",
            "5",
            "1h30m",
            "5s",
            "0d",
            "-1d",
            "d",
            "1.5h",
            "5 m",
            "5D",
            "213503983d",
            "11Y",
        ] {
            let err = Shorthand::parse(bad, false).unwrap_err();
            assert!(err.contains(&format!("{:?}", bad.trim())), "{bad}: {err}");
        }
    }
}
