//! Cron schedules evaluated in the configured IANA time zone, and the task
//! that turns them into [`Tick`] messages.
//!
//! Expressions have six fields, seconds first: `sec min hour dom month dow`.
//! Each field takes `*`, numbers, lists (`1,15`), ranges (`Mon-Fri`), steps
//! (`*/15`, `0-30/10`, `5/20` = from 5 to the end in steps of 20), month
//! names (`Jan`..`Dec`) and weekday names (`Sun`..`Sat`), case-insensitive;
//! weekday 0 and 7 both mean Sunday. Day-of-month and day-of-week combine as
//! in classic cron: when both are restricted (neither is `*`), a day matches
//! if either matches; when one is `*`, only the other restricts.
//!
//! Fire times are computed on the local wall clock of the schedule's zone:
//! - a local time skipped by a spring change fires at the first instant
//!   after the gap (Europe/Berlin 02:30 on the change day fires at 03:00
//!   local); several skipped times collapse into that one fire;
//! - a local time repeated by an autumn change fires once, at its first
//!   occurrence. This holds for wildcard hours too: `0 0 * * * *` fires at
//!   the first 02:00 and not at the second, so that hour has no fire (classic
//!   vixie cron would fire it twice). Every fire is one local wall-clock time.
//!
//! [`run_schedule`] uses `tokio-cron-scheduler` only as an alarm clock: it
//! arms a one-shot job at the UTC instant computed here and re-arms after each
//! fire, which avoids the upstream time-zone jobs that keep a fixed UTC offset
//! across DST changes (#87, #107). A tokio timer shortly after each instant
//! backs the job up (upstream #113: jobs that never fire).

use std::fmt;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, Notify};
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;

mod cron;

pub use cron::{CronField, CronSchedule, ScheduleError};

/// How long after a fire instant the tokio timer delivers the tick when the
/// scheduler job has not fired. The scheduler checks its jobs every 500 ms.
const FALLBACK_GRACE: StdDuration = StdDuration::from_secs(3);

/// Sent when a schedule comes due. `J` says which job the schedule is for
/// (the daemon's `Job`); its `Display` names the schedule in log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick<J> {
    pub job: J,
    /// The fire instant the tick stands for (not when it was delivered).
    pub at: DateTime<Utc>,
}

/// What wakes schedules at their fire instants. Make one per process and
/// give every schedule a clone: a `tokio-cron-scheduler` wakes twice a
/// second whatever it has to do, so each scheduler costs an idle daemon CPU
/// time (four schedules with a scheduler each woke it eight times a
/// second).
#[derive(Clone)]
pub struct AlarmClock(Alarm);

impl AlarmClock {
    /// Starts the scheduler; when it cannot start, schedules are woken by
    /// tokio timers alone (logged).
    pub async fn start() -> AlarmClock {
        match start_scheduler().await {
            Ok(scheduler) => AlarmClock(Alarm::Scheduler {
                scheduler,
                grace: FALLBACK_GRACE,
            }),
            Err(error) => {
                tracing::warn!(%error, "cannot start the cron scheduler; using timers only");
                AlarmClock(Alarm::TimerOnly)
            }
        }
    }

    /// Stops the scheduler's ticker. Its idle actor tasks stay parked until
    /// the runtime ends (upstream has no way to stop them), which is why a
    /// process makes one clock, not one per schedule or reload.
    pub async fn shutdown(self) {
        if let Alarm::Scheduler { mut scheduler, .. } = self.0 {
            if let Err(error) = scheduler.shutdown().await {
                tracing::warn!(%error, "cannot shut the cron scheduler down");
            }
        }
    }
}

/// What wakes the loop at a fire instant.
#[derive(Clone)]
enum Alarm {
    /// A one-shot `tokio-cron-scheduler` job per fire, backed by a timer
    /// that delivers the tick `grace` after the instant if the job did not.
    Scheduler {
        scheduler: JobScheduler,
        grace: StdDuration,
    },
    /// Timer only: when the scheduler cannot start.
    TimerOnly,
}

/// Runs until `cancel` fires: computes the next local fire time with
/// [`CronSchedule::next_after`], arms a one-shot `tokio-cron-scheduler` job at
/// that UTC instant, sends a [`Tick`] on `tx` when it fires, then re-arms, so
/// a DST change never shifts it. If the job does not fire within a few
/// seconds of the instant, a tokio timer delivers the tick instead; each fire
/// instant is delivered at most once. Fires missed while the process was
/// stopped or suspended are not caught up beyond one late tick. Also returns
/// when `tx` is closed. Errors are logged, never panics.
///
/// `alarm` is shared by every schedule of the process (see
/// [`AlarmClock`]); the one-shot jobs this call arms are removed when it
/// stops waiting for them.
pub async fn run_schedule<J>(
    job: J,
    schedule: CronSchedule,
    alarm: AlarmClock,
    tx: mpsc::Sender<Tick<J>>,
    cancel: CancellationToken,
) where
    J: Copy + Send + fmt::Display + 'static,
{
    run_with(job, &schedule, &tx, &cancel, &alarm.0).await;
}

async fn start_scheduler() -> Result<JobScheduler, tokio_cron_scheduler::JobSchedulerError> {
    let scheduler = JobScheduler::new().await?;
    scheduler.start().await?;
    Ok(scheduler)
}

async fn run_with<J: Copy + fmt::Display>(
    job: J,
    schedule: &CronSchedule,
    tx: &mpsc::Sender<Tick<J>>,
    cancel: &CancellationToken,
    alarm: &Alarm,
) {
    let name = job.to_string();
    let name = name.as_str();
    let mut last_fire: Option<DateTime<Utc>> = None;
    loop {
        // Counting from the last fire as well as from now keeps a clock set
        // back from repeating a fire; counting from now skips fires missed
        // during a long stop instead of replaying them.
        let now = Utc::now();
        let from = last_fire.map_or(now, |last| last.max(now));
        let Some(at) = schedule.next_after(from) else {
            tracing::error!(
                schedule = name,
                expr = schedule.expr(),
                "schedule has no next fire time; it is stopped"
            );
            return;
        };
        tracing::debug!(schedule = name, %at, "next fire");
        if !wait_for_fire(name, alarm, at, cancel).await {
            return;
        }
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            sent = tx.send(Tick { job, at }) => {
                if sent.is_err() {
                    tracing::debug!(schedule = name, "tick receiver closed; schedule stops");
                    return;
                }
            }
        }
        last_fire = Some(at);
    }
}

/// Waits until `at` has passed on the wall clock, woken by the scheduler job
/// or the fallback timer, whichever comes first. False when cancelled.
async fn wait_for_fire(
    name: &str,
    alarm: &Alarm,
    at: DateTime<Utc>,
    cancel: &CancellationToken,
) -> bool {
    let fired = Arc::new(Notify::new());
    let mut job_id = None;
    let mut grace = StdDuration::ZERO;
    if let Alarm::Scheduler {
        scheduler,
        grace: job_grace,
    } = alarm
    {
        grace = *job_grace;
        if let Some(job) = one_shot_job(name, at, fired.clone()) {
            let id = job.guid();
            match scheduler.add(job).await {
                Ok(_) => job_id = Some(id),
                Err(error) => {
                    tracing::warn!(schedule = name, %at, %error, "cannot arm a cron scheduler job")
                }
            }
        }
    }
    if job_id.is_none() {
        grace = StdDuration::ZERO;
    }
    let fallback = tokio::time::Instant::now() + until(at) + grace;
    let woken = tokio::select! {
        _ = cancel.cancelled() => None,
        _ = fired.notified() => Some(true),
        _ = tokio::time::sleep_until(fallback) => Some(false),
    };
    if let (Alarm::Scheduler { scheduler, .. }, Some(id)) = (alarm, job_id) {
        if woken == Some(false) {
            tracing::warn!(schedule = name, %at, "cron scheduler job did not fire; the fallback timer delivers the tick");
        }
        if woken != Some(true) {
            // A late fire of this job only wakes a `Notify` nobody waits on.
            if let Err(error) = scheduler.remove(&id).await {
                tracing::debug!(schedule = name, %error, "cannot remove the one-shot job");
            }
        }
    }
    if woken.is_none() {
        return false;
    }
    // The scheduler stores whole seconds and may fire up to a second early;
    // a timer may run ahead of a wall clock that was set back.
    loop {
        let left = until(at);
        if left.is_zero() {
            return true;
        }
        tokio::select! {
            _ = cancel.cancelled() => return false,
            _ = tokio::time::sleep(left) => {}
        }
    }
}

/// A one-shot job at `at` that wakes `fired`; `None` (logged) if it cannot
/// be made, leaving the fallback timer to deliver the tick.
fn one_shot_job(name: &str, at: DateTime<Utc>, fired: Arc<Notify>) -> Option<Job> {
    let Some(instant) = std::time::Instant::now().checked_add(until(at)) else {
        tracing::warn!(schedule = name, %at, "fire time too far ahead for the cron scheduler");
        return None;
    };
    let job = Job::new_one_shot_at_instant_async(instant, move |_, _| {
        let fired = fired.clone();
        Box::pin(async move { fired.notify_one() })
    });
    match job {
        Ok(job) => Some(job),
        Err(error) => {
            tracing::warn!(schedule = name, %at, %error, "cannot make a cron scheduler job");
            None
        }
    }
}

/// Wall-clock time left until `at`, zero if it has passed.
fn until(at: DateTime<Utc>) -> StdDuration {
    (at - Utc::now()).to_std().unwrap_or(StdDuration::ZERO)
}

#[cfg(test)]
mod tests;
