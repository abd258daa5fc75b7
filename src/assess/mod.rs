//! Each credential assessed against the rules and what Apple said: the one
//! shape that reports, alerts and mails are built from (pure).

mod apple;

use std::collections::HashMap;

pub use apple::{AppleAssessment, AppleRecord};

/// Apple's verdicts by full fingerprint.
pub type Verdicts = HashMap<String, AppleRecord>;
