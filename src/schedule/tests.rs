use super::*;
use chrono::{Datelike, NaiveDate, TimeZone, Timelike, Weekday};
use chrono_tz::America::New_York;
use chrono_tz::Europe::Berlin;
use chrono_tz::Tz;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .expect("valid UTC time")
}

fn parse(expr: &str, tz: Tz) -> CronSchedule {
    CronSchedule::parse(expr, tz).unwrap_or_else(|e| panic!("{expr:?}: {e}"))
}

/// The next `n` fires after `after`, each computed from the previous one.
fn fires(expr: &str, tz: Tz, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    let schedule = parse(expr, tz);
    let mut out = Vec::new();
    let mut at = after;
    for _ in 0..n {
        at = schedule.next_after(at).expect("schedule fires");
        out.push(at);
    }
    out
}

fn local(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

#[test]
fn daily_time_skipped_by_spring_change_fires_right_after_the_gap() {
    // Berlin 2027-03-28: 02:00 CET jumps to 03:00 CEST at 01:00 UTC.
    let got = fires("0 30 2 * * *", Berlin, utc(2027, 3, 26, 0, 0, 0), 4);
    assert_eq!(
        got,
        [
            utc(2027, 3, 26, 1, 30, 0),
            utc(2027, 3, 27, 1, 30, 0),
            utc(2027, 3, 28, 1, 0, 0),
            utc(2027, 3, 29, 0, 30, 0),
        ]
    );
    assert_eq!(local(got[2], Berlin), "2027-03-28 03:00:00 CEST");
    assert_eq!(local(got[3], Berlin), "2027-03-29 02:30:00 CEST");

    // New York 2027-03-14: 02:00 EST jumps to 03:00 EDT at 07:00 UTC.
    let got = fires("0 30 2 * * *", New_York, utc(2027, 3, 13, 12, 0, 0), 2);
    assert_eq!(got, [utc(2027, 3, 14, 7, 0, 0), utc(2027, 3, 15, 6, 30, 0)]);
    assert_eq!(local(got[0], New_York), "2027-03-14 03:00:00 EDT");
}

#[test]
fn daily_time_repeated_by_autumn_change_fires_once_at_the_first() {
    // Berlin 2027-10-31: 03:00 CEST falls back to 02:00 CET at 01:00 UTC,
    // so 02:30 happens at 00:30 UTC and again at 01:30 UTC.
    let got = fires("0 30 2 * * *", Berlin, utc(2027, 10, 29, 12, 0, 0), 3);
    assert_eq!(
        got,
        [
            utc(2027, 10, 30, 0, 30, 0),
            utc(2027, 10, 31, 0, 30, 0),
            utc(2027, 11, 1, 1, 30, 0),
        ]
    );
    assert_eq!(local(got[1], Berlin), "2027-10-31 02:30:00 CEST");

    // New York 2027-11-07: 02:00 EDT falls back to 01:00 EST at 06:00 UTC.
    let got = fires("0 30 1 * * *", New_York, utc(2027, 11, 6, 12, 0, 0), 2);
    assert_eq!(
        got,
        [utc(2027, 11, 7, 5, 30, 0), utc(2027, 11, 8, 6, 30, 0)]
    );
    assert_eq!(local(got[0], New_York), "2027-11-07 01:30:00 EDT");
}

#[test]
fn repeated_hour_never_returns_a_fire_before_the_start() {
    // croner 3.0.1 returned 00:30 UTC here: the first 02:30 is already
    // past when the search starts in the second 02:10.
    let schedule = parse("0 30 2 * * *", Berlin);
    let second_0210 = utc(2027, 10, 31, 1, 10, 0);
    assert_eq!(local(second_0210, Berlin), "2027-10-31 02:10:00 CET");
    assert_eq!(
        schedule.next_after(second_0210),
        Some(utc(2027, 11, 1, 1, 30, 0))
    );
    let every_second = parse("* * * * * *", Berlin);
    assert_eq!(
        every_second.next_after(second_0210),
        Some(utc(2027, 10, 31, 2, 0, 0))
    );
}

#[test]
fn hourly_across_spring_change_fires_once_after_the_gap() {
    let got = fires("0 0 * * * *", Berlin, utc(2027, 3, 27, 23, 30, 0), 4);
    let locals: Vec<String> = got.iter().map(|&at| local(at, Berlin)).collect();
    assert_eq!(
        locals,
        [
            "2027-03-28 01:00:00 CET",
            "2027-03-28 03:00:00 CEST",
            "2027-03-28 04:00:00 CEST",
            "2027-03-28 05:00:00 CEST",
        ]
    );
    assert_eq!(got[1], utc(2027, 3, 28, 1, 0, 0));

    let got = fires("0 0 * * * *", New_York, utc(2027, 3, 14, 5, 30, 0), 3);
    assert_eq!(
        got,
        [
            utc(2027, 3, 14, 6, 0, 0),
            utc(2027, 3, 14, 7, 0, 0),
            utc(2027, 3, 14, 8, 0, 0)
        ]
    );
}

#[test]
fn hourly_across_autumn_change_fires_each_wall_clock_hour_once() {
    let got = fires("0 0 * * * *", Berlin, utc(2027, 10, 30, 22, 30, 0), 4);
    assert_eq!(
        got,
        [
            utc(2027, 10, 30, 23, 0, 0), // 01:00 CEST
            utc(2027, 10, 31, 0, 0, 0),  // 02:00 CEST; the 02:00 CET at 01:00 UTC is skipped
            utc(2027, 10, 31, 2, 0, 0),  // 03:00 CET
            utc(2027, 10, 31, 3, 0, 0),
        ]
    );
    let got = fires("0 0 * * * *", New_York, utc(2027, 11, 7, 3, 30, 0), 3);
    assert_eq!(
        got,
        [
            utc(2027, 11, 7, 4, 0, 0),
            utc(2027, 11, 7, 5, 0, 0),
            utc(2027, 11, 7, 7, 0, 0)
        ]
    );
}

#[test]
fn every_second_collapses_the_gap_into_one_fire() {
    let got = fires("* * * * * *", Berlin, utc(2027, 3, 28, 0, 59, 58), 3);
    assert_eq!(
        got,
        [
            utc(2027, 3, 28, 0, 59, 59),
            utc(2027, 3, 28, 1, 0, 0),
            utc(2027, 3, 28, 1, 0, 1)
        ]
    );
}

#[test]
fn half_hour_gap_fires_at_its_end() {
    // Lord Howe moves from +10:30 to +11:00 on 2027-10-03 at 02:00 local
    // (15:30 UTC the day before): 02:15 does not exist, 02:30 is the end.
    let tz = chrono_tz::Australia::Lord_Howe;
    let got = fires("0 15 2 * * *", tz, utc(2027, 10, 2, 12, 0, 0), 1);
    assert_eq!(got, [utc(2027, 10, 2, 15, 30, 0)]);
    assert_eq!(local(got[0], tz), "2027-10-03 02:30:00 +11");
}

#[test]
fn weekly_keeps_local_time_and_shifts_utc_across_both_changes() {
    let spring = fires("0 0 9 * * Mon", Berlin, utc(2027, 3, 20, 0, 0, 0), 2);
    assert_eq!(
        spring,
        [utc(2027, 3, 22, 8, 0, 0), utc(2027, 3, 29, 7, 0, 0)]
    );
    let autumn = fires("0 0 9 * * Mon", Berlin, utc(2027, 10, 23, 0, 0, 0), 2);
    assert_eq!(
        autumn,
        [utc(2027, 10, 25, 7, 0, 0), utc(2027, 11, 1, 8, 0, 0)]
    );
    for at in spring.into_iter().chain(autumn) {
        let local = at.with_timezone(&Berlin);
        assert_eq!(
            (local.weekday(), local.hour(), local.minute()),
            (Weekday::Mon, 9, 0)
        );
    }
}

#[test]
fn interval_near_follows_the_local_day_length() {
    let daily = parse("0 0 12 * * *", Berlin);
    assert_eq!(
        daily.interval_near(utc(2027, 3, 27, 0, 0, 0)),
        Some(chrono::Duration::hours(23))
    );
    assert_eq!(
        daily.interval_near(utc(2027, 10, 30, 0, 0, 0)),
        Some(chrono::Duration::hours(25))
    );
    let verify = parse("0 17 */6 * * *", Tz::UTC);
    assert_eq!(
        verify.interval_near(utc(2027, 1, 1, 0, 0, 0)),
        Some(chrono::Duration::hours(6))
    );
}

/// Days of 2027 on which `expr` fires, from midnight UTC fires.
fn fire_days_2027(expr: &str) -> Vec<NaiveDate> {
    let schedule = parse(expr, Tz::UTC);
    let mut days = Vec::new();
    let mut at = utc(2026, 12, 31, 23, 0, 0);
    while let Some(next) = schedule.next_after(at).filter(|n| n.year() == 2027) {
        days.push(next.date_naive());
        at = next;
    }
    days
}

fn days_2027(keep: impl Fn(NaiveDate) -> bool) -> Vec<NaiveDate> {
    let first = NaiveDate::from_ymd_opt(2027, 1, 1).expect("valid date");
    first
        .iter_days()
        .take_while(|d| d.year() == 2027)
        .filter(|&d| keep(d))
        .collect()
}

#[test]
fn day_of_month_and_weekday_combine_as_in_classic_cron() {
    let either = fire_days_2027("0 0 0 13 * Fri");
    assert_eq!(
        either,
        days_2027(|d| d.day() == 13 || d.weekday() == Weekday::Fri)
    );
    assert!(either.len() > 52 + 5, "every Friday and the other 13ths");
    assert_eq!(fire_days_2027("0 0 0 13 * *"), days_2027(|d| d.day() == 13));
    assert_eq!(
        fire_days_2027("0 0 0 * * Fri"),
        days_2027(|d| d.weekday() == Weekday::Fri)
    );
    // Restricted day-of-month makes `30 Feb` legal when a weekday is given.
    assert_eq!(
        fire_days_2027("0 0 0 30 Feb Mon"),
        days_2027(|d| d.month() == 2 && d.weekday() == Weekday::Mon)
    );
}

#[test]
fn ranges_lists_steps_and_names() {
    let t0 = utc(2027, 1, 4, 0, 0, 0); // a Monday
    let seconds = |expr: &str, n| -> Vec<u32> {
        fires(expr, Tz::UTC, t0, n)
            .iter()
            .map(|t| t.second())
            .collect()
    };
    assert_eq!(seconds("*/15 * * * * *", 4), [15, 30, 45, 0]);
    assert_eq!(seconds("5/20 * * * * *", 4), [5, 25, 45, 5]);
    assert_eq!(seconds("1,3,58-59 * * * * *", 5), [1, 3, 58, 59, 1]);

    let hm = |expr: &str, n| -> Vec<(u32, u32)> {
        fires(expr, Tz::UTC, t0, n)
            .iter()
            .map(|t| (t.hour(), t.minute()))
            .collect()
    };
    assert_eq!(
        hm("0 17 */6 * * *", 5),
        [(0, 17), (6, 17), (12, 17), (18, 17), (0, 17)]
    );
    assert_eq!(
        hm("0 0-30/10 8 * * *", 5),
        [(8, 0), (8, 10), (8, 20), (8, 30), (8, 0)]
    );

    let weekdays = |expr: &str, n| -> Vec<Weekday> {
        fires(expr, Tz::UTC, t0, n)
            .iter()
            .map(|t| t.weekday())
            .collect()
    };
    use Weekday::*;
    assert_eq!(
        weekdays("0 0 9 * * Mon-Fri", 6),
        [Mon, Tue, Wed, Thu, Fri, Mon]
    );
    assert_eq!(
        weekdays("0 0 9 * * mon-FRI", 6),
        [Mon, Tue, Wed, Thu, Fri, Mon]
    );
    assert_eq!(weekdays("0 0 9 * * 1-5", 6), [Mon, Tue, Wed, Thu, Fri, Mon]);
    assert_eq!(weekdays("0 0 12 * * Sat-Sun", 3), [Sat, Sun, Sat]);
    assert_eq!(weekdays("0 0 12 * * 5-7", 4), [Fri, Sat, Sun, Fri]);
    assert_eq!(weekdays("0 0 12 * * 7", 2), [Sun, Sun]);
    assert_eq!(weekdays("0 0 12 * * 0", 2), [Sun, Sun]);
    assert_eq!(weekdays("0 0 12 * * Sun-Sun", 2), [Sun, Sun]);
    assert_eq!(weekdays("0 0 12 * * Mon/2", 4), [Mon, Wed, Fri, Mon]);

    let months = |expr: &str, n| -> Vec<u32> {
        fires(expr, Tz::UTC, t0, n)
            .iter()
            .map(|t| t.month())
            .collect()
    };
    assert_eq!(months("0 0 0 1 Jan,jul *", 3), [7, 1, 7]);
    assert_eq!(months("0 0 0 1 MAR-May *", 4), [3, 4, 5, 3]);
    assert_eq!(months("0 0 0 1 */4 *", 4), [5, 9, 1, 5]);
}

#[test]
fn leap_day_is_found_across_a_century_without_one() {
    let got = fires("0 0 0 29 Feb *", Tz::UTC, utc(2096, 3, 1, 0, 0, 0), 1);
    assert_eq!(got, [utc(2104, 2, 29, 0, 0, 0)]);
}

#[test]
fn accessors_return_what_was_parsed() {
    let schedule = parse("  0 0 9 * * Mon ", Berlin);
    assert_eq!(schedule.expr(), "0 0 9 * * Mon");
    assert_eq!(schedule.timezone(), Berlin);
}

#[test]
fn every_parse_error_says_what_is_wrong() {
    let cases = [
        ("0 0 * * *", "expected 6 fields (sec min hour day-of-month month day-of-week), found 5"),
        ("", "expected 6 fields (sec min hour day-of-month month day-of-week), found 0"),
        ("0 0 0 1 1 * 2027", "expected 6 fields (sec min hour day-of-month month day-of-week), found 7"),
        ("60 * * * * *", "second 60 is out of range 0-59"),
        ("0 61 * * * *", "minute 61 is out of range 0-59"),
        ("0 0 24 * * *", "hour 24 is out of range 0-23"),
        ("0 0 0 0 * *", "day-of-month 0 is out of range 1-31"),
        ("0 0 0 * 13 *", "month 13 is out of range 1-12"),
        ("0 0 0 * * 8", "day-of-week 8 is out of range 0-7"),
        ("0 0 0 99999999999 * *", "day-of-month 99999999999 is out of range 1-31"),
        ("0 0 10-25 * * *", "hour 25 is out of range 0-23"),
        ("0 x * * * *", "minute \"x\" is not a number"),
        ("0 +5 * * * *", "minute \"+5\" is not a number"),
        ("0 0 9 Mon * *", "day-of-month \"Mon\" is not a number"),
        (
            "0 0 9 * * Mar",
            "day-of-week \"Mar\" is not a number or day name (Sun, Mon, Tue, Wed, Thu, Fri, Sat)",
        ),
        (
            "0 0 9 * * Monday",
            "day-of-week \"Monday\" is not a number or day name (Sun, Mon, Tue, Wed, Thu, Fri, Sat)",
        ),
        ("0 0 9 * Foo *", "month \"Foo\" is not a number or month name (Jan, Feb, ..., Dec)"),
        ("0 1,,2 * * * *", "minute \"1,,2\" is missing a value"),
        ("0 5, * * * *", "minute \"5,\" is missing a value"),
        ("0 -5 * * * *", "minute \"-5\" is missing a value"),
        ("0 0 20-4 * * *", "hour range \"20-4\" is backwards: its start is after its end"),
        ("0 0 9 * * Fri-Mon", "day-of-week range \"Fri-Mon\" is backwards: its start is after its end"),
        ("0 */0 * * * *", "minute step \"0\" is invalid: use a whole number from 1 to 59"),
        ("0 */90 * * * *", "minute step \"90\" is invalid: use a whole number from 1 to 59"),
        ("0 0 */x * * *", "hour step \"x\" is invalid: use a whole number from 1 to 23"),
        ("0 0 9 * * Mon/", "day-of-week step \"\" is invalid: use a whole number from 1 to 6"),
        ("0 0 0 30 Feb *", "the schedule never fires: day-of-month \"30\" does not occur in month \"Feb\""),
        (
            "0 0 0 31 Apr,Jun,Sep,Nov *",
            "the schedule never fires: day-of-month \"31\" does not occur in month \"Apr,Jun,Sep,Nov\"",
        ),
    ];
    for (expr, message) in cases {
        match CronSchedule::parse(expr, Tz::UTC) {
            Ok(_) => panic!("{expr:?} was accepted"),
            Err(error) => assert_eq!(error.to_string(), message, "for {expr:?}"),
        }
    }
}

const DEADLINE: StdDuration = StdDuration::from_secs(30);

async fn next_tick(rx: &mut mpsc::Receiver<Tick<&'static str>>) -> Tick<&'static str> {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("a tick before the deadline")
        .expect("the schedule task is still running")
}

fn assert_ticks_in_order(name: &str, ticks: &[Tick<&'static str>]) {
    for pair in ticks.windows(2) {
        assert!(
            pair[1].at > pair[0].at,
            "one tick per fire instant: {ticks:?}"
        );
    }
    for tick in ticks {
        assert_eq!(tick.job, name);
        assert_eq!(
            tick.at.timestamp_subsec_nanos(),
            0,
            "fire instants are whole seconds"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_schedule_ticks_every_second_and_stops_on_cancel() {
    let schedule = parse("* * * * * *", Tz::UTC);
    let (tx, mut rx) = mpsc::channel(8);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run_schedule(
        "every-second",
        schedule,
        AlarmClock::start().await,
        tx,
        cancel.clone(),
    ));
    let ticks = [next_tick(&mut rx).await, next_tick(&mut rx).await];
    assert!(
        Utc::now() >= ticks[1].at,
        "a tick is never delivered before its instant"
    );
    assert_ticks_in_order("every-second", &ticks);

    cancel.cancel();
    tokio::time::timeout(DEADLINE, task)
        .await
        .expect("the task ends after cancel")
        .expect("the task does not panic");
    // The task dropped its sender: after any buffered tick, the channel is closed.
    while let Some(tick) = rx.recv().await {
        assert!(tick.at > ticks[1].at);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_job_fires_without_the_fallback_timer() {
    // With a fallback an hour late, only the one-shot job can deliver.
    let scheduler = start_scheduler().await.expect("scheduler starts");
    let alarm = Alarm::Scheduler {
        scheduler,
        grace: StdDuration::from_secs(3600),
    };
    let schedule = parse("* * * * * *", Tz::UTC);
    let (tx, mut rx) = mpsc::channel(8);
    let cancel = CancellationToken::new();
    let run = run_with("job", &schedule, &tx, &cancel, &alarm);
    let collect = async {
        let ticks = [next_tick(&mut rx).await, next_tick(&mut rx).await];
        cancel.cancel();
        ticks
    };
    let ((), ticks) = tokio::join!(run, collect);
    assert_ticks_in_order("job", &ticks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_sharing_one_alarm_clock_each_get_their_ticks() {
    // With a fallback an hour late, only the shared scheduler's jobs can
    // deliver; each schedule's ticks reach its own receiver.
    let scheduler = start_scheduler().await.expect("scheduler starts");
    let clock = AlarmClock(Alarm::Scheduler {
        scheduler,
        grace: StdDuration::from_secs(3600),
    });
    let cancel = CancellationToken::new();
    let mut receivers = Vec::new();
    for name in ["first", "second"] {
        let (tx, rx) = mpsc::channel(8);
        let schedule = parse("* * * * * *", Tz::UTC);
        tokio::spawn(run_schedule(
            name,
            schedule,
            clock.clone(),
            tx,
            cancel.clone(),
        ));
        receivers.push((name, rx));
    }
    for (name, rx) in &mut receivers {
        let ticks = [next_tick(rx).await, next_tick(rx).await];
        assert_ticks_in_order(name, &ticks);
    }
    cancel.cancel();
    clock.shutdown().await;
}

#[tokio::test]
async fn timer_alone_delivers_each_fire_once_when_the_scheduler_fails() {
    let schedule = parse("* * * * * *", Tz::UTC);
    let (tx, mut rx) = mpsc::channel(8);
    let cancel = CancellationToken::new();
    let run = run_with("timer", &schedule, &tx, &cancel, &Alarm::TimerOnly);
    let collect = async {
        let ticks = [
            next_tick(&mut rx).await,
            next_tick(&mut rx).await,
            next_tick(&mut rx).await,
        ];
        cancel.cancel();
        ticks
    };
    let ((), ticks) = tokio::join!(run, collect);
    assert_ticks_in_order("timer", &ticks);
}

#[tokio::test]
async fn cancel_stops_a_schedule_waiting_for_a_far_fire() {
    let schedule = parse("0 0 0 1 1 *", Tz::UTC);
    let (tx, mut rx) = mpsc::channel(1);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run_schedule(
        "yearly",
        schedule,
        AlarmClock::start().await,
        tx,
        cancel.clone(),
    ));
    cancel.cancel();
    tokio::time::timeout(DEADLINE, task)
        .await
        .expect("the task ends after cancel")
        .expect("the task does not panic");
    assert_eq!(rx.recv().await, None);
}

#[tokio::test]
async fn closed_receiver_stops_the_schedule() {
    let schedule = parse("* * * * * *", Tz::UTC);
    let (tx, rx) = mpsc::channel(1);
    drop(rx);
    let task = tokio::spawn(run_schedule(
        "orphan",
        schedule,
        AlarmClock::start().await,
        tx,
        CancellationToken::new(),
    ));
    tokio::time::timeout(DEADLINE, task)
        .await
        .expect("the task ends once a tick cannot be sent")
        .expect("the task does not panic");
}
