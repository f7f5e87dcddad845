//! Dates as ranges of UTC milliseconds, the R4 search prefixes over them, and the calendar
//! units (year, month, day) the blind index stores so that a range query is a union of tokens.
//!
//! Every FHIR date, dateTime and instant is the range its precision spans: `2020` is the whole
//! year, `2020-03-15` the whole day, `2020-03-15T10:00:00Z` that second, with milliseconds a
//! point. Values without a zone are taken as UTC. A Period is the range from its start to its
//! end; an absent end is open (an ongoing period).

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// An inclusive range of UTC milliseconds since the Unix epoch; `i64::MIN`/`i64::MAX` are open
/// ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First millisecond.
    pub start: i64,
    /// Last millisecond.
    pub end: i64,
}

/// An R4 search prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    /// `eq`: the value's range lies within the parameter's.
    Eq,
    /// `ne`: not `eq`.
    Ne,
    /// `gt`: the value extends after the parameter's range.
    Gt,
    /// `lt`: the value extends before the parameter's range.
    Lt,
    /// `ge`: `gt` or `eq`.
    Ge,
    /// `le`: `lt` or `eq`.
    Le,
    /// `sa`: the value starts after the parameter's range ends.
    Sa,
    /// `eb`: the value ends before the parameter's range starts.
    Eb,
    /// `ap`: the value overlaps the parameter's range widened by a tenth of its distance from
    /// now (at least a day).
    Ap,
}

impl Prefix {
    /// Splits a prefix off a search value (`eq` when there is none).
    pub fn split(value: &str) -> (Prefix, &str) {
        let p = match value.get(..2) {
            Some("eq") => Prefix::Eq,
            Some("ne") => Prefix::Ne,
            Some("gt") => Prefix::Gt,
            Some("lt") => Prefix::Lt,
            Some("ge") => Prefix::Ge,
            Some("le") => Prefix::Le,
            Some("sa") => Prefix::Sa,
            Some("eb") => Prefix::Eb,
            Some("ap") => Prefix::Ap,
            _ => return (Prefix::Eq, value),
        };
        (p, &value[2..])
    }
}

/// One date comparison from a request: a prefix and the parameter's range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTest {
    /// The prefix.
    pub prefix: Prefix,
    /// The parameter value's range.
    pub range: Range,
}

const DAY: i64 = 86_400_000;

impl DateTest {
    /// Whether a value of range `v` satisfies this test (R4 §3.1.1.5.6, "search prefixes").
    pub fn matches(&self, v: Range) -> bool {
        let q = self.range;
        let within = v.start >= q.start && v.end <= q.end;
        match self.prefix {
            Prefix::Eq => within,
            Prefix::Ne => !within,
            Prefix::Gt => v.end > q.end,
            Prefix::Lt => v.start < q.start,
            Prefix::Ge => v.end > q.end || within,
            Prefix::Le => v.start < q.start || within,
            Prefix::Sa => v.start > q.end,
            Prefix::Eb => v.end < q.start,
            Prefix::Ap => {
                let w = self.approximate();
                v.start <= w.end && v.end >= w.start
            }
        }
    }

    fn approximate(&self) -> Range {
        let now = now_ms();
        let q = self.range;
        let distance = (now - q.start).abs().max((now - q.end).abs());
        let slack = (distance / 10).max(DAY);
        Range {
            start: q.start.saturating_sub(slack),
            end: q.end.saturating_add(slack),
        }
    }

    /// The times some part of a matching value must fall in: the window the index looks up.
    /// `None` for `ne`, which any value may satisfy.
    pub fn window(&self) -> Option<Range> {
        let q = self.range;
        Some(match self.prefix {
            Prefix::Eq => q,
            Prefix::Ne => return None,
            Prefix::Gt | Prefix::Sa => Range {
                start: q.end.saturating_add(1),
                end: i64::MAX,
            },
            Prefix::Ge => Range {
                start: q.start,
                end: i64::MAX,
            },
            Prefix::Lt | Prefix::Eb => Range {
                start: i64::MIN,
                end: q.start.saturating_sub(1),
            },
            Prefix::Le => Range {
                start: i64::MIN,
                end: q.end,
            },
            Prefix::Ap => self.approximate(),
        })
    }
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Why a date could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a FHIR date, dateTime or instant")]
pub struct BadDate(pub String);

/// The range a FHIR date, dateTime or instant (or a search value of that form, which may stop
/// at minutes) spans.
pub fn parse_value(s: &str) -> Result<Range, BadDate> {
    let bad = || BadDate(s.to_owned());
    let num = |t: &str| -> Result<u32, BadDate> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        t.parse().map_err(|_| bad())
    };
    let (date_part, time_part) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut fields = date_part.split('-');
    let year = fields.next().ok_or_else(bad)?;
    if year.len() != 4 {
        return Err(bad());
    }
    let year = num(year)? as i32;
    let month = fields.next().map(num).transpose()?;
    let day = fields.next().map(num).transpose()?;
    if fields.next().is_some() {
        return Err(bad());
    }
    let month_of = |m: u32| Month::try_from(m as u8).map_err(|_| bad());
    let first =
        Date::from_calendar_date(year, month_of(month.unwrap_or(1))?, day.unwrap_or(1) as u8)
            .map_err(|_| bad())?;
    let Some(time_part) = time_part else {
        // A date: the whole year, month or day.
        let next = match (month, day) {
            (None, _) => Date::from_calendar_date(year + 1, Month::January, 1).ok(),
            (Some(_), None) => Some(next_month(first)),
            (Some(_), Some(_)) => first.next_day(),
        }
        .ok_or_else(bad)?;
        return Ok(Range {
            start: ms_of(first.midnight().assume_utc()),
            end: ms_of(next.midnight().assume_utc()) - 1,
        });
    };
    if day.is_none() {
        return Err(bad());
    }
    // hh:mm[:ss[.fff]] then Z, ±hh:mm or nothing (UTC).
    let (clock, offset) = split_zone(time_part).ok_or_else(bad)?;
    let mut parts = clock.split(':');
    let hour = num(parts.next().ok_or_else(bad)?)?;
    let minute = num(parts.next().ok_or_else(bad)?)?;
    let (second, fraction, span) = match parts.next() {
        None => (0, 0, 60_000),
        Some(sec) => match sec.split_once('.') {
            None => (num(sec)?, 0, 1000),
            Some((s, f)) => {
                num(f)?;
                let ms: u32 = format!("{f:0<3}")[..3].parse().map_err(|_| bad())?;
                (num(s)?, ms, 1)
            }
        },
    };
    if parts.next().is_some() {
        return Err(bad());
    }
    let time = Time::from_hms_milli(hour as u8, minute as u8, second as u8, fraction as u16)
        .map_err(|_| bad())?;
    let at = PrimitiveDateTime::new(first, time).assume_offset(offset);
    let start = ms_of(at);
    Ok(Range {
        start,
        end: start + span - 1,
    })
}

fn split_zone(t: &str) -> Option<(&str, UtcOffset)> {
    if let Some(clock) = t.strip_suffix('Z') {
        return Some((clock, UtcOffset::UTC));
    }
    if let Some(i) = t.rfind(['+', '-']) {
        let (clock, zone) = t.split_at(i);
        let sign: i8 = if zone.starts_with('-') { -1 } else { 1 };
        let (h, m) = zone[1..].split_once(':')?;
        let off = UtcOffset::from_hms(
            sign * h.parse::<i8>().ok()?,
            sign * m.parse::<i8>().ok()?,
            0,
        )
        .ok()?;
        return Some((clock, off));
    }
    Some((t, UtcOffset::UTC))
}

fn ms_of(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The first year the calendar units cover; values before it (or open towards it) are stored
/// as [`OUTSIDE`].
const FIRST_YEAR: i32 = 1800;
/// The last year the calendar units cover.
const LAST_YEAR: i32 = 2200;
/// Periods up to this many days are stored as days; longer ones as months.
const MAX_DAYS: i64 = 92;
/// Periods up to this many days are stored as months; longer ones as years.
const MAX_MONTHS_SPAN: i64 = 3660;

/// The label of the unit that stands for values outside the calendar the units cover (before
/// 1800, after 2200, or open-ended): every date lookup includes it, and the exact test decides.
pub const OUTSIDE: &str = "out";

fn date_of(ms: i64) -> Date {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(OffsetDateTime::date)
        .unwrap_or(Date::MIN)
}

fn bounds() -> Range {
    let first = Date::from_calendar_date(FIRST_YEAR, Month::January, 1).unwrap_or(Date::MIN);
    let after = Date::from_calendar_date(LAST_YEAR + 1, Month::January, 1).unwrap_or(Date::MAX);
    Range {
        start: ms_of(first.midnight().assume_utc()),
        end: ms_of(after.midnight().assume_utc()) - 1,
    }
}

fn year_label(d: Date) -> String {
    format!("y{:04}", d.year())
}
fn month_label(d: Date) -> String {
    format!("m{:04}-{:02}", d.year(), d.month() as u8)
}
fn day_label(d: Date) -> String {
    format!("d{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day())
}
/// A period too long for days, standing for all days of this month.
fn coarse_month_label(d: Date) -> String {
    format!("cm{:04}-{:02}", d.year(), d.month() as u8)
}
/// A period too long for months, standing for all months and days of this year.
fn coarse_year_label(d: Date) -> String {
    format!("cy{:04}", d.year())
}

fn first_of_month(d: Date) -> Date {
    d.replace_day(1).unwrap_or(d)
}
fn next_month(d: Date) -> Date {
    let d = first_of_month(d);
    let (y, m) = if d.month() == Month::December {
        (d.year() + 1, Month::January)
    } else {
        (d.year(), d.month().next())
    };
    Date::from_calendar_date(y, m, 1).unwrap_or(Date::MAX)
}
fn next_year(d: Date) -> Date {
    Date::from_calendar_date(d.year() + 1, Month::January, 1).unwrap_or(Date::MAX)
}

/// The calendar units a stored value's range is filed under.
pub fn units_of(v: Range) -> Vec<String> {
    let b = bounds();
    if v.start < b.start || v.end > b.end {
        return vec![OUTSIDE.to_owned()];
    }
    let (first, last) = (date_of(v.start), date_of(v.end));
    let span = (v.end - v.start) / DAY;
    let mut out = Vec::new();
    let mut y = Date::from_calendar_date(first.year(), Month::January, 1).unwrap_or(first);
    while y <= last {
        out.push(year_label(y));
        if span > MAX_MONTHS_SPAN {
            out.push(coarse_year_label(y));
        }
        y = next_year(y);
    }
    if span <= MAX_MONTHS_SPAN {
        let mut m = first_of_month(first);
        while m <= last {
            out.push(month_label(m));
            if span > MAX_DAYS {
                out.push(coarse_month_label(m));
            }
            m = next_month(m);
        }
    }
    if span <= MAX_DAYS {
        let mut d = first;
        while d <= last {
            out.push(day_label(d));
            match d.next_day() {
                Some(n) => d = n,
                None => break,
            }
        }
    }
    out
}

/// The units whose union holds every stored value that has some time inside `w`: whole years
/// as years, whole months as months (or the coarse year of a long period), the rest as days
/// (or the coarse month or year of a long period), and [`OUTSIDE`].
pub fn cover(w: Range) -> Vec<String> {
    let b = bounds();
    let mut out = vec![OUTSIDE.to_owned()];
    let start = w.start.max(b.start);
    let end = w.end.min(b.end);
    if start > end {
        return out;
    }
    let (first, last) = (date_of(start), date_of(end));
    let mut d = first;
    while d <= last {
        let year_start = d.month() == Month::January && d.day() == 1;
        let year_end = next_year(d).previous_day().unwrap_or(d);
        let month_start = d.day() == 1;
        let month_end = next_month(d).previous_day().unwrap_or(d);
        if year_start && year_end <= last {
            out.push(year_label(d));
            d = next_year(d);
        } else if month_start && month_end <= last {
            out.push(month_label(d));
            out.push(coarse_year_label(d));
            d = next_month(d);
        } else {
            out.push(day_label(d));
            out.push(coarse_month_label(d));
            out.push(coarse_year_label(d));
            match d.next_day() {
                Some(n) => d = n,
                None => break,
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Range {
        parse_value(s).expect(s)
    }

    #[test]
    fn precision_sets_the_range() {
        let y = r("2020");
        assert_eq!(y.start, r("2020-01-01").start);
        assert_eq!(y.end, r("2020-12-31").end);
        assert_eq!(r("2020-02").end + 1, r("2020-03-01").start);
        assert_eq!(
            r("2020-03-15T10:00").end - r("2020-03-15T10:00").start,
            59_999
        );
        assert_eq!(
            r("2020-03-15T10:00:00.5Z").start,
            r("2020-03-15T10:00:00.500Z").end
        );
        assert_eq!(
            r("2020-03-15T05:00:00-05:00").start,
            r("2020-03-15T10:00:00Z").start
        );
        for bad in [
            "20",
            "2020-13",
            "2020-02-30",
            "2020-01-01T25:00",
            "x",
            "2020-01-01Tab",
        ] {
            assert!(parse_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefixes_follow_r4() {
        let t = |p, q: &str| DateTest {
            prefix: p,
            range: r(q),
        };
        let v = r("2020-03-15T10:00:00Z");
        assert!(t(Prefix::Eq, "2020-03").matches(v));
        assert!(t(Prefix::Eq, "2020-03-15").matches(v));
        assert!(!t(Prefix::Eq, "2020-03-16").matches(v));
        assert!(t(Prefix::Ne, "2020-03-16").matches(v));
        assert!(t(Prefix::Gt, "2020-03-14").matches(v));
        assert!(!t(Prefix::Gt, "2020-03-15").matches(v));
        assert!(t(Prefix::Ge, "2020-03-15").matches(v));
        assert!(t(Prefix::Lt, "2020-03-16").matches(v));
        assert!(!t(Prefix::Lt, "2020-03-15").matches(v));
        assert!(t(Prefix::Le, "2020-03-15").matches(v));
        assert!(t(Prefix::Sa, "2020-03-14").matches(v));
        assert!(t(Prefix::Eb, "2020-03-16").matches(v));
        assert!(t(Prefix::Ap, "2020-03-14").matches(v));
        assert!(!t(Prefix::Ap, "2010-03-14").matches(v));
        // A period overlapping the parameter's day is neither inside it nor before it.
        let p = Range {
            start: r("2020-03-14").start,
            end: r("2020-03-15").end,
        };
        assert!(!t(Prefix::Eq, "2020-03-15").matches(p));
        assert!(t(Prefix::Lt, "2020-03-15").matches(p));
        assert!(!t(Prefix::Gt, "2020-03-15").matches(p));
    }

    /// Whatever the value's length and the window, a value with time in the window shares a
    /// unit with the window's cover: the index never misses a match.
    #[test]
    fn cover_meets_every_value_with_time_in_the_window() {
        let values = [
            r("2020-03-15T10:00:00Z"),
            r("2020-03"),
            Range {
                start: r("2019-12-20").start,
                end: r("2020-02-10").end,
            },
            Range {
                start: r("2018-01-05").start,
                end: r("2021-07-01").end,
            },
            Range {
                start: r("1990-06-01").start,
                end: r("2030-01-01").end,
            },
            Range {
                start: r("2020-01-01").start,
                end: i64::MAX,
            },
            r("1700-01-01"),
        ];
        let windows = [
            r("2020-03-15"),
            r("2020-03"),
            r("2020"),
            Range {
                start: r("2020-02-28").start,
                end: r("2021-01-03").end,
            },
            Range {
                start: r("2020-03-15T09:00Z").start,
                end: i64::MAX,
            },
            Range {
                start: i64::MIN,
                end: r("2020-01-01").end,
            },
        ];
        for v in values {
            let units = units_of(v);
            for w in windows {
                let overlaps = v.start <= w.end && v.end >= w.start;
                let hit = cover(w).iter().any(|u| units.contains(u));
                if overlaps {
                    assert!(hit, "value {v:?} window {w:?}");
                }
            }
        }
        // Disjoint short values share nothing.
        assert!(
            !cover(r("2020-03-16"))
                .iter()
                .any(|u| units_of(r("2020-03-15T10:00:00Z")).contains(u))
        );
    }
}
