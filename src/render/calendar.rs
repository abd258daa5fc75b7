//! Renewal reminders as iCalendar (RFC 5545): one all-day event per
//! credential on the day it should be renewed by, for the invite in the
//! first mail about it and for `tokenwatch calendar`.
//!
//! Pure like the rest of `render`: the stamp is the context's `now`, never
//! the clock, so a retried mail carries the same bytes.
//!
//! `UID` is `<fingerprint>@tokenwatch`: a second invite for the same
//! credential updates its event instead of adding one, and a renewed file (new
//! content, new fingerprint) gets an event of its own. `SEQUENCE` must rise
//! whenever the event changes, but nothing remembers what was sent before; so
//! it is derived from what changes: the renew-by day, counted in days since
//! 1970-01-01. A later renew-by day always has a higher number. (The title
//! and dates follow from the file's content, which the fingerprint pins; a
//! description that changes alone, say a new account name in the config,
//! keeps its number, and a client may keep the older text.)

use chrono::{Datelike, Days, NaiveDate};
use icalendar::{Alarm, Calendar, Component, Event, EventLike, Trigger};

use super::Context;
use crate::assess::Assessment;
use crate::evaluate::Status;
use crate::show::{clean, local};
use crate::token;

/// How long before expiry a credential should be renewed: the renew-by day
/// is this many days before the expiry day (or today, when that has passed).
pub const RENEW_DAYS_BEFORE: u64 = 14;

/// The calendar's `Content-Type` as a mail attachment.
pub const CONTENT_TYPE: &str = "text/calendar; method=PUBLISH; charset=UTF-8";

/// The invite attached to the first mail about `token` expiring: a calendar
/// with its one event, or `None` for a credential without an expiry date.
pub fn invite(token: &Assessment, ctx: &Context) -> Option<String> {
    let event = event(token, ctx)?;
    let mut cal = calendar();
    cal.push(event);
    Some(cal.to_string())
}

/// One calendar with an event per credential that can be renewed: every
/// one with an expiry date except files already replaced by a newer one.
pub fn calendar_of(tokens: &[&Assessment], ctx: &Context) -> String {
    let mut cal = calendar();
    cal.name("tokenwatch renewals");
    for t in tokens {
        if t.status == Status::Superseded {
            continue;
        }
        if let Some(e) = event(t, ctx) {
            cal.push(e);
        }
    }
    cal.to_string()
}

/// The file name the attachment is offered under.
pub fn file_name(token: &Assessment) -> String {
    format!("renew-{}.ics", uid_stem(token))
}

fn calendar() -> Calendar {
    // `Calendar::new` names the crate as PRODID; properties are a list, so
    // they are written from empty rather than replaced.
    let mut cal = Calendar::empty();
    cal.append_property(("VERSION", "2.0"))
        .append_property(("PRODID", "-//tokenwatch//tokenwatch//EN"))
        .append_property(("CALSCALE", "GREGORIAN"))
        .append_property(("METHOD", "PUBLISH"));
    cal
}

/// The day `token` should be renewed by, in the configured zone.
pub fn renew_by(token: &Assessment, ctx: &Context) -> Option<NaiveDate> {
    let expires = token.expires_at?.with_timezone(&ctx.tz).date_naive();
    let today = ctx.now.with_timezone(&ctx.tz).date_naive();
    let day = expires.checked_sub_days(Days::new(RENEW_DAYS_BEFORE))?;
    Some(day.max(today))
}

/// `SEQUENCE`: the renew-by day as days since 1970-01-01 (see the module
/// comment). Days before 1970 cannot come from a real file; they count as 0.
pub fn sequence(day: NaiveDate) -> u32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    u32::try_from(day.num_days_from_ce() - epoch.num_days_from_ce()).unwrap_or(0)
}

fn uid_stem(token: &Assessment) -> String {
    token
        .fingerprint
        .clone()
        .filter(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| {
            token
                .identity
                .chars()
                .filter(char::is_ascii_hexdigit)
                .take(12)
                .collect()
        })
}

/// The event's title: "Renew content token for Acme Corp".
pub fn title(token: &Assessment) -> String {
    let noun = token::kind(token.kind).noun();
    let mut chars = noun.chars();
    // "Content token" reads "content token" mid-sentence; an acronym
    // ("APNs ...") keeps its capitals.
    let noun = match (chars.next(), chars.next()) {
        (Some(first), Some(second)) if second.is_lowercase() => {
            format!("{}{}", first.to_lowercase(), &noun[first.len_utf8()..])
        }
        _ => noun.to_owned(),
    };
    format!(
        "Renew {noun} for {}",
        clean(
            token.org_name.as_deref().unwrap_or("unknown organisation"),
            60
        )
    )
}

fn event(token: &Assessment, ctx: &Context) -> Option<Event> {
    let day = renew_by(token, ctx)?;
    let expires = token.expires_at?;
    let title = title(token);
    let uid = format!("{}@tokenwatch", uid_stem(token));
    let mut description = format!(
        "{title} by {day}.\n\nFile: {}\nExpires: {}\n",
        clean(&token.path, 400),
        local(expires, ctx.tz)
    );
    if let Some(a) = &token.account {
        description.push_str(&format!("Managed Apple Account: {}\n", clean(a, 200)));
    }
    for p in token::kind(token.kind).renewal_advice() {
        description.push('\n');
        description.push_str(p);
        description.push('\n');
    }
    description.push_str(&format!(
        "\nSent by tokenwatch on {}\n",
        clean(ctx.host, 200)
    ));
    // The crate stamps a component without DTSTAMP and UID with the clock and
    // a random UUID; the alarm gets both from the event so the bytes are
    // the same on every render.
    let alarm = Alarm::display(
        &format!("{title}: due tomorrow"),
        Trigger::before_start(chrono::Duration::days(1)),
    )
    .timestamp(ctx.now)
    .uid(&format!("reminder-{uid}"))
    .done();
    Some(
        Event::new()
            .uid(&uid)
            .timestamp(ctx.now)
            .sequence(sequence(day))
            .summary(&title)
            .description(&description)
            .starts(day)
            .ends(day.checked_add_days(Days::new(1))?)
            .alarm(alarm)
            .done(),
    )
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use icalendar::parser::{read_calendar, unfold};

    use super::*;
    use crate::render::testing::{ctx, subject};

    /// A component's properties: `(name, value)`.
    type Props = Vec<(String, String)>;

    /// The one event's and its alarm's properties, read back by the
    /// crate's parser.
    fn parsed_event(ics: &str) -> (Props, Props) {
        let unfolded = unfold(ics);
        let cal = read_calendar(&unfolded).unwrap();
        assert_eq!(cal.components.len(), 1, "{ics}");
        let event = &cal.components[0];
        assert_eq!(event.name.as_str(), "VEVENT");
        let props = |c: &icalendar::parser::Component| {
            c.properties
                .iter()
                .map(|p| (p.name.as_str().to_owned(), p.val.as_str().to_owned()))
                .collect::<Vec<_>>()
        };
        let [alarm] = &event.components[..] else {
            panic!("one alarm: {ics}")
        };
        assert_eq!(alarm.name.as_str(), "VALARM");
        (props(event), props(alarm))
    }

    fn get<'a>(props: &'a [(String, String)], name: &str) -> &'a str {
        props
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{name} missing in {props:?}"))
    }

    #[test]
    fn the_invite_is_an_all_day_event_14_days_before_expiry_with_a_reminder_a_day_before() {
        let ics = invite(&subject(), &ctx()).unwrap();
        assert!(ics.contains("METHOD:PUBLISH\r\n"), "{ics}");
        assert!(ics.contains("DTSTART;VALUE=DATE:20261227\r\n"), "{ics}");
        assert!(ics.contains("DTEND;VALUE=DATE:20261228\r\n"), "{ics}");
        let (event, alarm) = parsed_event(&ics);
        assert_eq!(get(&event, "UID"), "3f2a9c1b7d4e@tokenwatch");
        assert_eq!(get(&event, "SUMMARY"), "Renew content token for Acme Corp");
        assert_eq!(get(&event, "DTSTAMP"), "20261227T080000Z");
        assert_eq!(get(&event, "SEQUENCE"), "20814");
        let description = get(&event, "DESCRIPTION");
        for p in token::kind(subject().kind).renewal_advice() {
            let start: String = p.chars().take(40).collect();
            assert!(description.contains(&start), "{description}");
        }
        assert_eq!(get(&alarm, "ACTION"), "DISPLAY");
        // The crate writes one day as seconds.
        assert_eq!(get(&alarm, "TRIGGER"), "-PT86400S");
    }

    #[test]
    fn the_title_names_each_kind_mid_sentence_and_keeps_acronyms() {
        let of = |kind| title(&Assessment { kind, ..subject() });
        assert_eq!(of(token::KindId::Vpp), "Renew content token for Acme Corp");
        assert_eq!(
            of(token::KindId::Apns),
            "Renew APNs push certificate for Acme Corp"
        );
        assert_eq!(
            of(token::KindId::Ade),
            "Renew ADE server token for Acme Corp"
        );
    }

    #[test]
    fn renders_the_same_bytes_every_time() {
        assert_eq!(invite(&subject(), &ctx()), invite(&subject(), &ctx()));
    }

    #[test]
    fn a_renew_by_day_already_past_is_today_in_the_configured_zone() {
        let mut c = ctx();
        // 23:30 UTC on 2027-01-05 is already the 6th in Berlin.
        c.now = Utc.with_ymd_and_hms(2027, 1, 5, 23, 30, 0).unwrap();
        assert_eq!(
            renew_by(&subject(), &c),
            NaiveDate::from_ymd_opt(2027, 1, 6)
        );
    }

    #[test]
    fn a_later_renew_by_day_has_a_higher_sequence() {
        let early = subject();
        let mut late = subject();
        late.expires_at = early.expires_at.map(|e| e + chrono::Duration::days(1));
        let seq = |t: &Assessment| sequence(renew_by(t, &ctx()).unwrap());
        assert!(seq(&late) > seq(&early));
        assert_eq!(sequence(NaiveDate::from_ymd_opt(1970, 1, 2).unwrap()), 1);
    }

    #[test]
    fn no_expiry_no_event_and_replaced_files_are_left_out_of_the_calendar() {
        let mut unreadable = subject();
        unreadable.expires_at = None;
        assert_eq!(invite(&unreadable, &ctx()), None);
        let mut replaced = subject();
        replaced.status = Status::Superseded;
        let cal = calendar_of(&[&subject(), &replaced, &unreadable], &ctx());
        assert_eq!(cal.matches("BEGIN:VEVENT").count(), 1, "{cal}");
    }
}
