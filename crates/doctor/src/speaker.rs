//! The speaker check. (Being written: placeholder so the crate builds while it is.)

use serde::Serialize;

use crate::microphone::MicSource;
use crate::{Check, CheckResult, Verdict};

#[derive(Debug, Clone, Default)]
pub struct SpeakerPlan;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpeakerFigures;

pub fn run(_plan: &SpeakerPlan, _mic: &MicSource) -> CheckResult {
    CheckResult::problem(Check::Speaker, Verdict::Warn, "speaker_unchecked", "not built yet".into(), "wait".into(), None)
}
