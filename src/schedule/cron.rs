//! Cron expressions: parsing with errors that name the field and the value,
//! and the next fire instant on the local wall clock of a time zone (the
//! rules are in the parent module's documentation).
//!
//! Why not `croner` (what `tokio-cron-scheduler` 0.15 parses with): its
//! 3.0.1 parser silently accepts names in the wrong field (`Mar` as a weekday
//! is Wednesday, `Mon` as a day of month is the 1st), accepts `0 0 0 30 Feb *`,
//! and reports `Number out of bounds.` without the field or the value; its
//! search skips interval jobs' times that fall into a spring gap instead of
//! firing after the gap, and inside a repeated hour it can return an instant
//! *before* the start time. The grammar is small enough to parse here.

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};
use chrono::{TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// Enough days to find the next 29 February across a century year that is
/// not a leap year (2096 → 2104); every schedule that `parse` accepts fires
/// within this window.
const SEARCH_DAYS: u64 = 9 * 366;

/// Longest run of skipped local time to look past. Real gaps are an hour or
/// less, except whole skipped days such as Pacific/Apia on 2011-12-30.
const MAX_GAP_MINUTES: u32 = 48 * 60;

/// One of the six fields of an expression, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronField {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

const FIELDS: [CronField; 6] = [
    CronField::Second,
    CronField::Minute,
    CronField::Hour,
    CronField::DayOfMonth,
    CronField::Month,
    CronField::DayOfWeek,
];

const MONTH_NAMES: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Longest month length per month, February counting its leap day.
const MONTH_MAX_DAYS: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

impl CronField {
    /// Smallest and largest value accepted; weekday 7 is Sunday again.
    fn bounds(self) -> (u32, u32) {
        match self {
            CronField::Second | CronField::Minute => (0, 59),
            CronField::Hour => (0, 23),
            CronField::DayOfMonth => (1, 31),
            CronField::Month => (1, 12),
            CronField::DayOfWeek => (0, 7),
        }
    }

    /// Last value of `*` and of an open `N/step`: weekdays stop at Saturday so
    /// that Sunday is not counted twice.
    fn wildcard_max(self) -> u32 {
        match self {
            CronField::DayOfWeek => 6,
            other => other.bounds().1,
        }
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            CronField::Month => &MONTH_NAMES,
            CronField::DayOfWeek => &DAY_NAMES,
            _ => &[],
        }
    }

    fn expected(self) -> &'static str {
        match self {
            CronField::Month => "a number or month name (Jan, Feb, ..., Dec)",
            CronField::DayOfWeek => "a number or day name (Sun, Mon, Tue, Wed, Thu, Fri, Sat)",
            _ => "a number",
        }
    }
}

impl std::fmt::Display for CronField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CronField::Second => "second",
            CronField::Minute => "minute",
            CronField::Hour => "hour",
            CronField::DayOfMonth => "day-of-month",
            CronField::Month => "month",
            CronField::DayOfWeek => "day-of-week",
        })
    }
}

/// Why an expression was rejected. The message names the field and the
/// offending text but not the config key: the config loader adds file, line
/// and key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("expected 6 fields (sec min hour day-of-month month day-of-week), found {found}")]
    FieldCount { found: usize },
    #[error("{field} {value} is out of range {min}-{max}")]
    OutOfRange {
        field: CronField,
        value: String,
        min: u32,
        max: u32,
    },
    #[error("{field} {text:?} is not {expected}", expected = .field.expected())]
    NotAValue { field: CronField, text: String },
    #[error("{field} {text:?} is missing a value")]
    MissingValue { field: CronField, text: String },
    #[error("{field} range {text:?} is backwards: its start is after its end")]
    BackwardsRange { field: CronField, text: String },
    #[error("{field} step {text:?} is invalid: use a whole number from 1 to {max}")]
    BadStep {
        field: CronField,
        text: String,
        max: u32,
    },
    #[error("the schedule never fires: day-of-month {dom:?} does not occur in month {month:?}")]
    NeverFires { dom: String, month: String },
}

/// A parsed cron expression in a time zone.
///
/// Each field is a bit set of the values it allows (bit `n` = value `n`);
/// weekday 7 is stored as 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    expr: String,
    tz: Tz,
    seconds: u64,
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    /// Day-of-month was not `*`: it takes part in the classic-cron day rule.
    dom_restricted: bool,
    /// Day-of-week was not `*`.
    dow_restricted: bool,
}

impl CronSchedule {
    pub fn parse(expr: &str, tz: Tz) -> Result<CronSchedule, ScheduleError> {
        let parts: Vec<&str> = expr.split_whitespace().collect();
        let [sec, min, hour, dom, month, dow] = parts[..] else {
            return Err(ScheduleError::FieldCount { found: parts.len() });
        };
        let texts = [sec, min, hour, dom, month, dow];
        let mut masks = [0u64; 6];
        for ((mask, field), text) in masks.iter_mut().zip(FIELDS).zip(texts) {
            *mask = parse_field(field, text)?;
        }
        let [seconds, minutes, hours, days_of_month, months, mut days_of_week] = masks;
        if days_of_week & (1 << 7) != 0 {
            days_of_week = (days_of_week & !(1 << 7)) | 1;
        }
        let schedule = CronSchedule {
            expr: expr.trim().to_string(),
            tz,
            seconds,
            minutes,
            hours,
            days_of_month,
            months,
            days_of_week,
            dom_restricted: dom != "*",
            dow_restricted: dow != "*",
        };
        // With the weekday unrestricted, the days of the month alone decide;
        // `30 Feb` would make a schedule that silently never runs.
        if schedule.dom_restricted && !schedule.dow_restricted {
            let occurs = (1..=12u32).any(|m| {
                has_bit(months, m)
                    && (1..=MONTH_MAX_DAYS[m as usize - 1]).any(|d| has_bit(days_of_month, d))
            });
            if !occurs {
                return Err(ScheduleError::NeverFires {
                    dom: dom.to_string(),
                    month: month.to_string(),
                });
            }
        }
        Ok(schedule)
    }

    /// First fire instant strictly after `after`. `None` only if nothing
    /// fires within the search window, which `parse` rules out.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Local wall-clock times map to instants in order (a skipped time to
        // the end of its gap, a repeated time to its first occurrence), so
        // the first matching local time whose instant is after `after` is the
        // answer. Local times before `after`'s own local time map to earlier
        // instants and can be skipped.
        let local = after.with_timezone(&self.tz).naive_local();
        let start = local
            .with_nanosecond(0)?
            .checked_add_signed(TimeDelta::seconds(1))?;
        let last_day = start.date().checked_add_days(Days::new(SEARCH_DAYS))?;
        let mut date = start.date();
        let mut from = start.time();
        while date <= last_day {
            if self.day_matches(date) {
                let mut time = from;
                while let Some(fire) = self.next_time_of_day(time) {
                    if let Some(instant) = self.resolve(date.and_time(fire)) {
                        if instant > after {
                            return Some(instant);
                        }
                    }
                    // Only inside a repeated hour (the first occurrence lies
                    // before `after`) does the search go on within the day.
                    match fire.overflowing_add_signed(TimeDelta::seconds(1)) {
                        (next, 0) => time = next,
                        _ => break,
                    }
                }
            }
            date = date.succ_opt()?;
            from = NaiveTime::MIN;
        }
        None
    }

    pub fn expr(&self) -> &str {
        &self.expr
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The interval between the next two fires after `now`, e.g. for
    /// "verified within the last schedule interval". It varies for
    /// irregular schedules (`0 0 9 * * Mon,Tue`) and on DST change days.
    pub fn interval_near(&self, now: DateTime<Utc>) -> Option<chrono::Duration> {
        let first = self.next_after(now)?;
        let second = self.next_after(first)?;
        Some(second - first)
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        if !has_bit(self.months, date.month()) {
            return false;
        }
        let dom = has_bit(self.days_of_month, date.day());
        let dow = has_bit(self.days_of_week, date.weekday().num_days_from_sunday());
        match (self.dom_restricted, self.dow_restricted) {
            (true, true) => dom || dow,
            (true, false) => dom,
            (false, true) => dow,
            (false, false) => true,
        }
    }

    /// The earliest matching time of day at or after `from`.
    fn next_time_of_day(&self, from: NaiveTime) -> Option<NaiveTime> {
        let (h0, m0, s0) = (from.hour(), from.minute(), from.second());
        for hour in (h0..24).filter(|&h| has_bit(self.hours, h)) {
            let first_minute = if hour == h0 { m0 } else { 0 };
            for minute in (first_minute..60).filter(|&m| has_bit(self.minutes, m)) {
                let first_second = if hour == h0 && minute == m0 { s0 } else { 0 };
                if let Some(second) = first_bit_from(self.seconds, first_second) {
                    return NaiveTime::from_hms_opt(hour, minute, second);
                }
            }
        }
        None
    }

    /// The instant a local wall-clock time fires at.
    fn resolve(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.tz.from_local_datetime(&local).earliest() {
            Some(at) => Some(at.to_utc()),
            None => self.end_of_gap(local),
        }
    }

    /// For a local time skipped by a forward change, the first instant after
    /// the gap: step by minutes to a valid local time, then bisect to the
    /// second (zone offsets are whole seconds, not always whole minutes).
    fn end_of_gap(&self, skipped: NaiveDateTime) -> Option<DateTime<Utc>> {
        let valid = |t: NaiveDateTime| self.tz.from_local_datetime(&t).earliest();
        let mut invalid = skipped;
        let mut later = skipped;
        let mut minutes = 0;
        loop {
            later = later.checked_add_signed(TimeDelta::minutes(1))?;
            if valid(later).is_some() {
                break;
            }
            invalid = later;
            minutes += 1;
            if minutes > MAX_GAP_MINUTES {
                return None;
            }
        }
        while later - invalid > TimeDelta::seconds(1) {
            let mid = invalid + TimeDelta::seconds((later - invalid).num_seconds() / 2);
            if valid(mid).is_some() {
                later = mid;
            } else {
                invalid = mid;
            }
        }
        valid(later).map(|at| at.to_utc())
    }
}

fn has_bit(mask: u64, value: u32) -> bool {
    value < 64 && mask & (1 << value) != 0
}

fn first_bit_from(mask: u64, from: u32) -> Option<u32> {
    let rest = mask.checked_shr(from)?;
    (rest != 0).then(|| from + rest.trailing_zeros())
}

/// One field into a bit set of allowed values.
fn parse_field(field: CronField, text: &str) -> Result<u64, ScheduleError> {
    let mut mask = 0u64;
    for item in text.split(',') {
        let missing = || ScheduleError::MissingValue {
            field,
            text: text.to_string(),
        };
        if item.is_empty() {
            return Err(missing());
        }
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => (base, Some(parse_step(field, step)?)),
            None => (item, None),
        };
        let (first, last) = if base == "*" {
            (field.bounds().0, field.wildcard_max())
        } else if let Some((start, end)) = base.split_once('-') {
            let first = parse_value(field, start).ok_or_else(missing)??;
            let mut last = parse_value(field, end).ok_or_else(missing)??;
            // `Sat-Sun` means Saturday and Sunday, `Sun-Sun` only Sunday.
            if field == CronField::DayOfWeek && last == 0 && first > 0 && is_name(end) {
                last = 7;
            }
            if first > last {
                return Err(ScheduleError::BackwardsRange {
                    field,
                    text: base.to_string(),
                });
            }
            (first, last)
        } else {
            let value = parse_value(field, base).ok_or_else(missing)??;
            // `5/20` runs from 5 to the end of the field.
            (
                value,
                if step.is_some() {
                    field.wildcard_max().max(value)
                } else {
                    value
                },
            )
        };
        let step = step.unwrap_or(1) as usize;
        for value in (first..=last).step_by(step) {
            mask |= 1 << value;
        }
    }
    Ok(mask)
}

fn is_name(text: &str) -> bool {
    text.chars().all(|c| c.is_ascii_alphabetic())
}

/// A number or a name within the field's bounds; `None` for empty text.
fn parse_value(field: CronField, text: &str) -> Option<Result<u32, ScheduleError>> {
    if text.is_empty() {
        return None;
    }
    let (min, max) = field.bounds();
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let out_of_range = || ScheduleError::OutOfRange {
            field,
            value: text.to_string(),
            min,
            max,
        };
        return Some(match text.parse::<u32>() {
            Ok(value) if (min..=max).contains(&value) => Ok(value),
            _ => Err(out_of_range()),
        });
    }
    let lower = text.to_ascii_lowercase();
    let offset = if field == CronField::Month { 1 } else { 0 };
    Some(match field.names().iter().position(|name| *name == lower) {
        Some(index) => Ok(index as u32 + offset),
        None => Err(ScheduleError::NotAValue {
            field,
            text: text.to_string(),
        }),
    })
}

/// A step from 1 to the span of the field: a larger one (`*/90` minutes)
/// selects a single value, which is never what was meant.
fn parse_step(field: CronField, text: &str) -> Result<u32, ScheduleError> {
    let max = field.wildcard_max() - field.bounds().0;
    match text.parse::<u32>() {
        Ok(step) if text.bytes().all(|b| b.is_ascii_digit()) && (1..=max).contains(&step) => {
            Ok(step)
        }
        _ => Err(ScheduleError::BadStep {
            field,
            text: text.to_string(),
            max,
        }),
    }
}
