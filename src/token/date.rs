//! The `expDate` reader. Apple writes `2027-08-15T18:13:52-0700`: seconds
//! precision and a numeric offset without a colon. Peers also take `Z`; a
//! colon in the offset and fractional seconds are accepted with a warning.
//! Hand-written rather than `chrono`'s format parser so it can tell a
//! malformed value from an impossible date and report which variant applied.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone};

use super::{DateText, TokenError, Variant};

pub(super) struct Parsed {
    /// In the offset written in the file.
    pub(super) at: DateTime<FixedOffset>,
    z: bool,
    colon: bool,
    fraction: bool,
}

impl Parsed {
    /// In [`Variant`] declaration order.
    pub(super) fn variants(&self) -> impl Iterator<Item = Variant> {
        [
            (self.z, Variant::OffsetZ),
            (self.colon, Variant::OffsetWithColon),
            (self.fraction, Variant::FractionalSeconds),
        ]
        .into_iter()
        .filter_map(|(applies, v)| applies.then_some(v))
    }
}

pub(super) fn parse(value: &str) -> Result<Parsed, TokenError> {
    let fields = read_fields(value.as_bytes()).ok_or_else(|| TokenError::UnparseableDate {
        value: quote(value),
    })?;
    fields.resolve().ok_or_else(|| TokenError::ImpossibleDate {
        value: quote(value),
    })
}

/// The numbers as written, not yet checked against the calendar.
struct Fields {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nano: u32,
    offset_secs: i32,
    offset_too_big: bool,
    z: bool,
    colon: bool,
    fraction: bool,
}

impl Fields {
    fn resolve(self) -> Option<Parsed> {
        if self.offset_too_big {
            return None;
        }
        let date = NaiveDate::from_ymd_opt(self.year, self.month, self.day)?;
        // Rejects second 60: Apple does not write leap seconds.
        let time = NaiveTime::from_hms_nano_opt(self.hour, self.minute, self.second, self.nano)?;
        let offset = FixedOffset::east_opt(self.offset_secs)?;
        let at = offset.from_local_datetime(&date.and_time(time)).single()?;
        Some(Parsed {
            at,
            z: self.z,
            colon: self.colon,
            fraction: self.fraction,
        })
    }
}

fn read_fields(b: &[u8]) -> Option<Fields> {
    let mut c = Cursor { b, i: 0 };
    let year = c.number(4)?;
    c.expect(b'-')?;
    let month = c.number(2)?;
    c.expect(b'-')?;
    let day = c.number(2)?;
    c.expect(b'T')?;
    let hour = c.number(2)?;
    c.expect(b':')?;
    let minute = c.number(2)?;
    c.expect(b':')?;
    let second = c.number(2)?;

    let mut nano = 0;
    let fraction = c.eat(b'.');
    if fraction {
        let start = c.i;
        let mut scale = 100_000_000;
        while let Some(d) = c.digit() {
            // Digits past nanoseconds are read and dropped.
            nano += d * scale;
            scale /= 10;
        }
        if c.i == start {
            return None;
        }
    }

    let (mut offset_secs, mut offset_too_big, mut z, mut colon) = (0, false, false, false);
    match c.next()? {
        b'Z' => z = true,
        sign @ (b'+' | b'-') => {
            let hours = c.number(2)?;
            colon = c.eat(b':');
            let minutes = c.number(2)?;
            offset_too_big = hours > 23 || minutes > 59;
            let secs = (hours * 3600 + minutes * 60) as i32;
            offset_secs = if sign == b'-' { -secs } else { secs };
        }
        _ => return None,
    }
    if c.i != b.len() {
        return None;
    }
    Some(Fields {
        year: year as i32,
        month,
        day,
        hour,
        minute,
        second,
        nano,
        offset_secs,
        offset_too_big,
        z,
        colon,
        fraction,
    })
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn next(&mut self) -> Option<u8> {
        let byte = *self.b.get(self.i)?;
        self.i += 1;
        Some(byte)
    }

    fn eat(&mut self, want: u8) -> bool {
        let hit = self.b.get(self.i) == Some(&want);
        self.i += usize::from(hit);
        hit
    }

    fn expect(&mut self, want: u8) -> Option<()> {
        self.eat(want).then_some(())
    }

    fn digit(&mut self) -> Option<u32> {
        let byte = *self.b.get(self.i)?;
        byte.is_ascii_digit().then(|| {
            self.i += 1;
            u32::from(byte - b'0')
        })
    }

    /// Exactly `width` decimal digits (at most 4, so no overflow).
    fn number(&mut self, width: usize) -> Option<u32> {
        (0..width).try_fold(0, |n, _| Some(n * 10 + self.digit()?))
    }
}

/// A date value as it may appear in an error: quoted only if it cannot be
/// anything but a date, so a secret pasted into `expDate` stays hidden and a
/// garbled file cannot flood a log line.
fn quote(value: &str) -> DateText {
    const MAX_CHARS: usize = 40;
    let date_like = |c: char| c.is_ascii_digit() || " -+:./,TZtz".contains(c);
    if value.len() <= MAX_CHARS && value.chars().all(date_like) {
        DateText::Shown(value.to_owned())
    } else {
        DateText::Hidden {
            chars: value.chars().count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(value: &str) -> (String, Vec<Variant>) {
        let parsed = parse(value).unwrap_or_else(|e| panic!("{value}: {e}"));
        (parsed.at.to_rfc3339(), parsed.variants().collect())
    }

    fn err(value: &str) -> TokenError {
        match parse(value) {
            Ok(p) => panic!("{value} parsed as {}", p.at),
            Err(e) => e,
        }
    }

    #[test]
    fn apple_offsets_parse_without_variants() {
        assert_eq!(
            ok("2014-08-15T18:13:52-0700"),
            ("2014-08-15T18:13:52-07:00".into(), vec![])
        );
        assert_eq!(
            ok("2030-11-08T22:33:22+0000"),
            ("2030-11-08T22:33:22+00:00".into(), vec![])
        );
        assert_eq!(
            ok("2030-11-08T22:33:22+0530"),
            ("2030-11-08T22:33:22+05:30".into(), vec![])
        );
        assert_eq!(
            ok("2030-11-08T22:33:22-0000"),
            ("2030-11-08T22:33:22+00:00".into(), vec![])
        );
    }

    #[test]
    fn lenient_forms_are_flagged() {
        assert_eq!(
            ok("2030-11-08T22:33:22Z"),
            ("2030-11-08T22:33:22+00:00".into(), vec![Variant::OffsetZ])
        );
        assert_eq!(
            ok("2030-11-08T22:33:22+05:30"),
            (
                "2030-11-08T22:33:22+05:30".into(),
                vec![Variant::OffsetWithColon]
            )
        );
        assert_eq!(
            ok("2030-11-08T22:33:22.5Z"),
            (
                "2030-11-08T22:33:22.500+00:00".into(),
                vec![Variant::OffsetZ, Variant::FractionalSeconds]
            )
        );
        // More than nanosecond precision: extra digits are dropped.
        assert_eq!(
            ok("2030-11-08T22:33:22.1234567891-0100").0,
            "2030-11-08T22:33:22.123456789-01:00"
        );
    }

    #[test]
    fn impossible_dates_quote_the_value() {
        for value in [
            "2026-02-30T00:00:00+0000",
            "2027-02-29T00:00:00+0000",
            "2026-13-01T00:00:00+0000",
            "2026-00-10T00:00:00+0000",
            "2026-04-31T00:00:00+0000",
            "2026-01-01T24:00:00+0000",
            "2026-01-01T23:60:00+0000",
            "2026-12-31T23:59:60+0000",
            "2026-01-01T00:00:00+2400",
            "2026-01-01T00:00:00+0160",
        ] {
            assert_eq!(
                err(value),
                TokenError::ImpossibleDate {
                    value: DateText::Shown(value.into())
                },
                "{value}"
            );
        }
        assert_eq!(
            err("2026-02-30T00:00:00+0000").to_string(),
            "expDate \"2026-02-30T00:00:00+0000\" is not a valid date"
        );
    }

    #[test]
    fn malformed_values_are_unparseable() {
        for value in [
            "",
            "2026-01-01",
            "2026-01-01T00:00:00",
            "2026-01-01 00:00:00+0000",
            "2026-01-01t00:00:00+0000",
            "2026-01-01T00:00:00z",
            "2026-1-01T00:00:00+0000",
            "2026-01-01T00:00:00.+0000",
            "2026-01-01T00:00:00+000",
            "2026-01-01T00:00:00+00000",
            "2026-01-01T00:00:00+0000 ",
            " 2026-01-01T00:00:00+0000",
            "+2026-01-01T00:00:00+0000",
            "２０２６-01-01T00:00:00+0000",
            "next Tuesday",
        ] {
            assert!(
                matches!(err(value), TokenError::UnparseableDate { .. }),
                "{value}"
            );
        }
    }

    #[test]
    fn only_date_like_values_are_quoted() {
        let shown = |v: &str| DateText::Shown(v.into());
        assert_eq!(quote("15/08/2033 18:13"), shown("15/08/2033 18:13"));
        assert_eq!(
            quote("2026-02-30T00:00:00.5+00:00"),
            shown("2026-02-30T00:00:00.5+00:00")
        );
        assert_eq!(quote(""), shown(""));
        // Letters beyond T and Z could be a secret pasted into the wrong key.
        assert_eq!(quote("next Tuesday"), DateText::Hidden { chars: 12 });
        assert_eq!(quote("dG9rZW4="), DateText::Hidden { chars: 8 });
        assert_eq!(quote("2026-01-01\n"), DateText::Hidden { chars: 11 });
        assert_eq!(quote(&"1".repeat(41)), DateText::Hidden { chars: 41 });
        assert_eq!(quote("Köln"), DateText::Hidden { chars: 4 });
        assert_eq!(
            err("next Tuesday").to_string(),
            "expDate (a text of 12 characters, not shown) is not a date like 2027-08-15T18:13:52-0700"
        );
    }
}
