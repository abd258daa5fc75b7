// placeholder until the schedule branch merges
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expr: String,
}
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad cron")]
pub struct ScheduleError;
impl CronSchedule {
    pub fn parse(expr: &str, _tz: chrono_tz::Tz) -> Result<CronSchedule, ScheduleError> {
        Ok(CronSchedule { expr: expr.into() })
    }
    pub fn expr(&self) -> &str {
        &self.expr
    }
}
