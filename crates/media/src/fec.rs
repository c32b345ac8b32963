//! How much loss the Opus encoder's in-band FEC should plan for, from the loss the other side
//! reports about our stream (RTCP receiver reports, about one a second).
//!
//! Opus only adds FEC (a coarse copy of the previous frame, SILK's LBRR) when told of loss, and
//! pays for it twice: the copy takes bitrate from the frame itself, and encoding it runs the
//! noise-shaping quantizer a second time. So a clean network gets none, and the setting follows
//! what the network does, as libwebrtc does: the reported fractions are smoothed (a loss burst
//! raises protection within about two reports, a quiet network lowers it over tens of seconds)
//! and snapped to a few steps with hysteresis, so one unlucky second does not retune the
//! encoder back and forth.

/// Smoothing time constants: rising fast enough that protection starts while the loss goes on,
/// falling slowly enough that a loss pattern with quiet seconds in between stays protected.
const RISE_MS: f64 = 2_000.0;
const FALL_MS: f64 = 10_000.0;

/// The steps the encoder is set to, in percent (libwebrtc's steps for Opus): each is taken when
/// the smoothed loss reaches its first figure and left when it falls below the second, so loss
/// hovering near a step does not retune the encoder back and forth.
const STEPS: [(i32, f64, f64); 4] = [(20, 18.0, 15.0), (10, 9.0, 7.0), (5, 4.5, 3.5), (1, 0.5, 0.25)];

/// The FEC plan of one call's sending direction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FecPlan {
    smoothed_percent: f64,
    last_report_ms: Option<u64>,
    percent: i32,
}

impl FecPlan {
    /// No loss known yet: no FEC.
    pub fn new() -> Self {
        Self::default()
    }

    /// The loss, in percent, the encoder is told to plan for.
    pub fn percent(&self) -> i32 {
        self.percent
    }

    /// A receiver report at `now_ms`: the fraction (0–1) of our packets the other side lost
    /// since its previous report. Returns the new setting when it changes.
    pub fn report(&mut self, now_ms: u64, fraction_lost: f64) -> Option<i32> {
        let sample = if fraction_lost.is_finite() { fraction_lost.clamp(0.0, 1.0) * 100.0 } else { 0.0 };
        // The first report counts as one report interval's worth.
        let elapsed = self.last_report_ms.map_or(1_000, |last| now_ms.saturating_sub(last)) as f64;
        self.last_report_ms = Some(now_ms);
        let tau = if sample > self.smoothed_percent { RISE_MS } else { FALL_MS };
        let keep = (-elapsed / tau).exp();
        self.smoothed_percent = keep * self.smoothed_percent + (1.0 - keep) * sample;
        let step = self.step_for(self.smoothed_percent);
        (step != self.percent).then(|| {
            self.percent = step;
            step
        })
    }

    /// The highest step the smoothed loss holds: steps above the current setting by their
    /// upper edge, the current one and those below by their lower edge.
    fn step_for(&self, smoothed: f64) -> i32 {
        STEPS
            .into_iter()
            .find(|&(step, up, down)| smoothed >= if step > self.percent { up } else { down })
            .map_or(0, |(step, _, _)| step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reports once a second of `fraction` for `seconds`, from `start_ms`; the setting after.
    fn reports(plan: &mut FecPlan, start_ms: u64, seconds: u64, fraction: f64) -> i32 {
        for s in 0..seconds {
            plan.report(start_ms + s * 1_000, fraction);
        }
        plan.percent()
    }

    #[test]
    fn a_clean_network_gets_no_fec() {
        let mut plan = FecPlan::new();
        assert_eq!(plan.percent(), 0);
        assert_eq!(reports(&mut plan, 0, 60, 0.0), 0);
    }

    #[test]
    fn steady_loss_is_planned_for_at_its_step() {
        for (fraction, step) in [(0.02, 1), (0.05, 5), (0.07, 5), (0.12, 10), (0.30, 20)] {
            let mut plan = FecPlan::new();
            assert_eq!(reports(&mut plan, 0, 30, fraction), step, "{fraction}");
        }
    }

    #[test]
    fn protection_starts_within_a_few_reports_of_loss() {
        let mut plan = FecPlan::new();
        reports(&mut plan, 0, 10, 0.0);
        // 10 % from t = 10 s: some FEC after two reports, 5 % or more after five.
        let changes: Vec<(u64, i32)> =
            (10..20).filter_map(|s| plan.report(s * 1_000, 0.10).map(|p| (s - 9, p))).collect();
        assert!(changes.first().is_some_and(|&(after, p)| after <= 2 && p >= 1), "{changes:?}");
        assert!(changes.iter().any(|&(after, p)| after <= 5 && p >= 5), "{changes:?}");
    }

    #[test]
    fn protection_winds_down_slowly_once_the_loss_stops() {
        let mut plan = FecPlan::new();
        assert_eq!(reports(&mut plan, 0, 30, 0.12), 10);
        // A few clean seconds keep it on (a bursty network has quiet seconds too)…
        assert!(reports(&mut plan, 30_000, 5, 0.0) >= 5, "{plan:?}");
        // …a minute of them turns it off.
        assert_eq!(reports(&mut plan, 35_000, 60, 0.0), 0, "{plan:?}");
    }

    #[test]
    fn loss_hovering_at_a_step_does_not_flap() {
        let mut plan = FecPlan::new();
        reports(&mut plan, 0, 30, 0.05);
        assert_eq!(plan.percent(), 5);
        // Alternating 4 % and 6 %: the smoothed loss wanders around 5 % and stays within the
        // margins, so the encoder is not retuned.
        let changes = (0..60).filter_map(|s| plan.report(30_000 + s * 1_000, if s % 2 == 0 { 0.04 } else { 0.06 }));
        assert_eq!(changes.count(), 0);
    }

    #[test]
    fn nonsense_from_the_network_is_clamped() {
        let mut plan = FecPlan::new();
        for (s, fraction) in [f64::NAN, f64::INFINITY, -3.0, 7.0].into_iter().enumerate() {
            plan.report(s as u64 * 1_000, fraction);
            assert!((0..=20).contains(&plan.percent()), "{plan:?}");
        }
        // A clock that went backwards counts as no time.
        plan.report(0, 0.0);
        assert!((0..=20).contains(&plan.percent()));
    }
}
