use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::TimeZone as _;
use futures_util::future::BoxFuture;

use super::*;
use crate::channel::Channel;
use crate::mail::payload::{self, MailPayload};
use crate::mail::transport::TransportSettings;
use crate::mail::MailChannel;
use crate::state::{Counters, NewRow};

fn file_channels(dir: &std::path::Path) -> Arc<Channels> {
    let from = "tokenwatch <tw@example.com>".parse().unwrap();
    let mail = MailChannel::from_settings(
        from,
        &TransportSettings::File {
            dir: dir.to_path_buf(),
        },
    )
    .unwrap();
    Arc::new([Arc::new(mail) as Arc<dyn Channel>].into_iter().collect())
}

fn eml_count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

/// Regression: a reload that changed the mail settings while the
/// sender's order queue was full lost the new settings silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_mail_settings_are_not_lost_when_orders_pile_up() {
    let tmp = tempfile::tempdir().unwrap();
    let (old_dir, new_dir) = (tmp.path().join("old"), tmp.path().join("new"));
    std::fs::create_dir_all(&old_dir).unwrap();
    std::fs::create_dir_all(&new_dir).unwrap();
    let state = tmp.path().join("state");
    let mut store = StateStore::open(&state).unwrap();
    let now = Utc::now();
    store
        .commit_alerts(
            now,
            &[],
            &[NewRow {
                message_id: "<m1@tokenwatch>".into(),
                alert_keys: vec![],
                channel: payload::CHANNEL.into(),
                recipients: vec!["ops@example.com".into()],
                title: "s".into(),
                payload: MailPayload {
                    from: "tokenwatch <tw@example.com>".into(),
                    subject: "s".into(),
                    text: "t".into(),
                    html: "h".into(),
                    calendar: None,
                }
                .to_json(),
                date: now,
            }],
        )
        .unwrap();
    let cancel = CancellationToken::new();
    let (sender, handle) = sender(
        StateStore::open(&state).unwrap(),
        file_channels(&old_dir),
        Arc::new(crate::daemon::SystemClock),
        Timing::default(),
        cancel.clone(),
    );
    // The sender is not running yet: every order waits for it.
    for _ in 0..1000 {
        handle.wake();
    }
    handle.use_channels(file_channels(&new_dir));
    let task = tokio::spawn(sender.run());
    let deadline = std::time::Instant::now() + StdDuration::from_secs(30);
    while store.counters().unwrap().sent == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the mail was never sent"
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    cancel.cancel();
    task.await.unwrap();
    assert_eq!(
        (eml_count(&old_dir), eml_count(&new_dir)),
        (0, 1),
        "the mail must go out with the new settings"
    );
}

#[test]
fn backoff_doubles_from_5_seconds_and_caps_at_an_hour() {
    assert_eq!(backoff(1, 0.0), Duration::seconds(5));
    assert_eq!(backoff(2, 0.0), Duration::seconds(10));
    assert_eq!(backoff(3, 0.0), Duration::seconds(20));
    assert_eq!(backoff(20, 0.0), Duration::seconds(3600));
    assert_eq!(backoff(1, 0.2), Duration::seconds(6));
    assert_eq!(backoff(1, -0.9), Duration::seconds(4));
}

#[test]
fn a_shorter_test_base_scales_the_doubling_and_the_cap() {
    let backoff_from = |first_secs: f64, attempts, jitter| {
        let first = StdDuration::from_secs_f64(first_secs);
        millis(
            Timing::default()
                .send_retry
                .scaled(first)
                .nth_jittered(attempts, jitter),
        )
    };
    assert_eq!(backoff_from(0.1, 1, 0.0), Duration::milliseconds(100));
    assert_eq!(backoff_from(0.1, 3, 0.0), Duration::milliseconds(400));
    assert_eq!(backoff_from(0.1, 30, 0.0), Duration::seconds(72));
}

/// A channel that is not mail, answering from a script: proof that the
/// sender's rules hold for any channel. What it was asked is kept.
#[derive(Debug)]
struct Fake {
    name: &'static str,
    /// Answers in order; once empty, `then` every time.
    script: Mutex<VecDeque<Result<String, DeliveryError>>>,
    then: Result<String, DeliveryError>,
    seen: Mutex<Vec<Seen>>,
}

#[derive(Debug, Clone, PartialEq)]
struct Seen {
    id: i64,
    message_id: String,
    recipients: Vec<String>,
    payload: String,
    date: chrono::DateTime<Utc>,
}

impl Fake {
    fn new(
        name: &'static str,
        script: impl IntoIterator<Item = Result<String, DeliveryError>>,
        then: Result<String, DeliveryError>,
    ) -> Arc<Fake> {
        Arc::new(Fake {
            name,
            script: Mutex::new(script.into_iter().collect()),
            then,
            seen: Mutex::new(Vec::new()),
        })
    }

    fn attempts(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Channel for Fake {
    fn name(&self) -> &'static str {
        self.name
    }

    fn render(
        &self,
        _: &crate::render::Input<'_>,
        _: &[&crate::alerts::Member],
        _: &crate::render::Context<'_>,
    ) -> Vec<crate::channel::Draft> {
        unreachable!("the sender only delivers")
    }

    fn deliver<'a>(&'a self, d: Delivery<'a>) -> BoxFuture<'a, Result<String, DeliveryError>> {
        self.seen.lock().unwrap().push(Seen {
            id: d.id,
            message_id: d.message_id.to_owned(),
            recipients: d.recipients.to_vec(),
            payload: d.payload.to_owned(),
            date: d.date,
        });
        let answer = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| self.then.clone());
        Box::pin(async move { answer })
    }
}

fn only(fake: &Arc<Fake>) -> Arc<Channels> {
    Arc::new([fake.clone() as Arc<dyn Channel>].into_iter().collect())
}

/// A store with one due row of `channel`; returns the store, the row's
/// id and the row as queued.
fn queued(dir: &std::path::Path, channel: &str) -> (StateStore, i64, NewRow) {
    let mut store = StateStore::open(dir).unwrap();
    let row = NewRow {
        message_id: "<alert-1@tokenwatch>".into(),
        alert_keys: vec!["k1".into()],
        channel: channel.into(),
        recipients: vec!["#ops".into(), "#oncall".into()],
        title: "Content token expires in 3 days".into(),
        payload: r#"{"text":"expires in 3 days"}"#.into(),
        // Whole seconds: the outbox keeps microseconds.
        date: Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).unwrap(),
    };
    let ids = store
        .commit_alerts(Utc::now(), &[], std::slice::from_ref(&row))
        .unwrap();
    (store, ids[0], row)
}

/// Runs a sender over `channels` (retries after about a millisecond)
/// until `done` holds for the outbox counters, then stops it.
async fn run_until(dir: &std::path::Path, channels: Arc<Channels>, done: fn(Counters) -> bool) {
    let cancel = CancellationToken::new();
    let timing = Timing {
        send_retry: Timing::default()
            .send_retry
            .scaled(StdDuration::from_millis(1)),
        ..Timing::default()
    };
    let (sender, handle) = sender(
        StateStore::open(dir).unwrap(),
        channels,
        Arc::new(crate::daemon::SystemClock),
        timing,
        cancel.clone(),
    );
    let task = tokio::spawn(sender.run());
    let store = StateStore::open(dir).unwrap();
    let deadline = std::time::Instant::now() + StdDuration::from_secs(30);
    loop {
        let counters = store.counters().unwrap();
        if done(counters) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stuck at {counters:?}: {:?}",
            store.outbox()
        );
        handle.wake();
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
    cancel.cancel();
    task.await.unwrap();
}

fn sent(c: Counters) -> bool {
    c.sent == 1
}

fn parked(c: Counters) -> bool {
    c.parked == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivered_message_is_marked_sent_and_got_the_row_as_queued() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, id, queued) = queued(tmp.path(), "pager");
    let fake = Fake::new("pager", [], Ok("accepted as 42".into()));

    run_until(tmp.path(), only(&fake), sent).await;

    assert_eq!(
        *fake.seen.lock().unwrap(),
        [Seen {
            id,
            message_id: queued.message_id,
            recipients: queued.recipients,
            payload: queued.payload,
            date: queued.date,
        }],
        "the channel gets the row as it was queued"
    );
    assert_eq!(store.counters().unwrap().pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_retried_later_with_backoff() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _, _) = queued(tmp.path(), "pager");
    let fake = Fake::new(
        "pager",
        [],
        Err(DeliveryError::transient("pager service: 503 busy")),
    );
    let cancel = CancellationToken::new();
    let (mut sender, _handle) = sender(
        StateStore::open(tmp.path()).unwrap(),
        only(&fake),
        Arc::new(crate::daemon::SystemClock),
        Timing::default(),
        cancel,
    );
    let before = Utc::now();
    assert!(sender.deliver_due().await.is_empty());

    let row = store.outbox().unwrap().remove(0);
    assert_eq!(fake.attempts(), 1, "one attempt per due row");
    assert_eq!(row.attempts, 1);
    assert!(!row.parked);
    assert_eq!(row.last_error.as_deref(), Some("pager service: 503 busy"));
    let wait = row.next_try_at.expect("still pending") - before;
    assert!(
        wait >= Duration::seconds(4) && wait <= Duration::seconds(7),
        "the first retry waits about 5 s, not {wait}"
    );
}

/// The retry comes from the `Timing` the sender was built with, not from
/// a built-in 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_send_retry_is_the_one_used() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _, _) = queued(tmp.path(), "pager");
    let fake = Fake::new("pager", [], Err(DeliveryError::transient("busy")));
    let first = StdDuration::from_secs(60);
    let timing = Timing {
        send_retry: crate::backoff::Backoff::new(first, first * 4),
        ..Timing::default()
    };
    let (mut sender, _handle) = sender(
        StateStore::open(tmp.path()).unwrap(),
        only(&fake),
        Arc::new(crate::daemon::SystemClock),
        timing,
        CancellationToken::new(),
    );
    let before = Utc::now();
    assert!(sender.deliver_due().await.is_empty());

    let row = store.outbox().unwrap().remove(0);
    let wait = row.next_try_at.expect("still pending") - before;
    assert!(
        wait >= Duration::seconds(47) && wait <= Duration::seconds(73),
        "the first retry waits about the injected 60 s, not {wait}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_never_park() {
    let tmp = tempfile::tempdir().unwrap();
    queued(tmp.path(), "pager");
    let fake = Fake::new(
        "pager",
        (0..2 * PERMANENT_ATTEMPTS).map(|_| Err(DeliveryError::transient("busy"))),
        Ok("accepted".into()),
    );

    run_until(tmp.path(), only(&fake), sent).await;

    assert_eq!(fake.attempts(), 2 * PERMANENT_ATTEMPTS as usize + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_parks_after_the_permanent_attempts() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _, _) = queued(tmp.path(), "pager");
    let fake = Fake::new(
        "pager",
        [],
        Err(DeliveryError::permanent("pager service: 403 unknown team")),
    );

    run_until(tmp.path(), only(&fake), parked).await;

    let row = store.outbox().unwrap().remove(0);
    assert_eq!(row.attempts, PERMANENT_ATTEMPTS);
    assert_eq!(fake.attempts(), PERMANENT_ATTEMPTS as usize);
    assert_eq!(row.next_try_at, None);
    assert_eq!(
        row.last_error.as_deref(),
        Some("pager service: 403 unknown team")
    );
}

/// A row whose channel the config no longer names parks like any
/// permanent failure, and `outbox retry` sends it once the channel is
/// configured again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_of_an_unconfigured_channel_parks_and_retry_sends_it_once_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut store, id, _) = queued(tmp.path(), "pager");
    let other = Fake::new("chat", [], Ok("accepted".into()));

    run_until(tmp.path(), only(&other), parked).await;

    let row = store.outbox().unwrap().remove(0);
    assert_eq!(row.attempts, PERMANENT_ATTEMPTS);
    assert_eq!(
        row.last_error.as_deref(),
        Some(r#"channel "pager" is not configured"#)
    );
    assert_eq!(other.attempts(), 0, "another channel never gets the row");

    assert!(store.retry_mail(id, Utc::now()).unwrap());
    let pager = Fake::new("pager", [], Ok("accepted".into()));
    run_until(tmp.path(), only(&pager), sent).await;
    assert_eq!(pager.attempts(), 1);
}

/// What is due, when an attempt was made and when it is retried all come
/// from the injected clock: a clock before the row was queued sends
/// nothing, one a day later sends it and times the retry from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_injected_clock_decides_what_is_due_and_times_the_retry() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _, _) = queued(tmp.path(), "pager");
    let queued_at = store.outbox().unwrap()[0].created_at;
    let fake = Fake::new("pager", [], Err(DeliveryError::transient("busy")));
    let clock = crate::daemon::deps::FakeClock::at(queued_at - Duration::days(1));
    let (mut sender, _handle) = sender(
        StateStore::open(tmp.path()).unwrap(),
        only(&fake),
        clock.clone(),
        Timing::default(),
        CancellationToken::new(),
    );
    assert!(sender.deliver_due().await.is_empty());
    assert_eq!(fake.attempts(), 0, "not due yet by the injected clock");

    clock.advance(Duration::days(2));
    assert!(sender.deliver_due().await.is_empty());
    assert_eq!(fake.attempts(), 1);
    let row = store.outbox().unwrap().remove(0);
    let wait = row.next_try_at.expect("still pending") - clock.now();
    assert!(
        wait >= Duration::seconds(4) && wait <= Duration::seconds(6),
        "the retry is about 5 s after the injected now, not {wait}"
    );
}

fn queued_row(attempts: u32) -> OutboxRow {
    let now = Utc::now();
    OutboxRow {
        id: 7,
        row: NewRow {
            message_id: "<w@tokenwatch>".into(),
            alert_keys: vec![],
            channel: "webhook".into(),
            recipients: vec!["ops-chat".into()],
            title: "s".into(),
            payload: "{}".into(),
            date: now,
        },
        created_at: now,
        attempts,
        next_try_at: Some(now),
        last_error: None,
        parked: false,
    }
}

#[test]
fn a_receiver_that_asks_to_wait_is_not_tried_again_sooner() {
    let now = Utc.with_ymd_and_hms(2027, 1, 1, 8, 0, 0).unwrap();
    let quick =
        crate::backoff::Backoff::new(StdDuration::from_millis(10), StdDuration::from_millis(10));
    let failure = DeliveryError::transient("429").wait_at_least(Some(StdDuration::from_secs(120)));
    let a = attempt_of(&queued_row(0), Err(failure), quick, now);
    let Outcome::Failed { next: Some(at), .. } = a.outcome else {
        panic!("{:?}", a.outcome)
    };
    assert!(at >= now + Duration::seconds(120), "{at}");
    let a = attempt_of(
        &queued_row(0),
        Err(DeliveryError::transient("503")),
        quick,
        now,
    );
    let Outcome::Failed { next: Some(at), .. } = a.outcome else {
        panic!("{:?}", a.outcome)
    };
    assert!(at < now + Duration::seconds(1), "{at}");
}
