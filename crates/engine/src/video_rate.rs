//! How much of a video call's bandwidth estimate goes to video, and when video stops (SPEC §5:
//! adapt to bandwidth, fall back to audio only when the estimate cannot carry video, say so).
//!
//! Pure: the estimate and the time are inputs, so the policy is tested on simulated time. The
//! media session feeds it the congestion controller's estimate a few times a second and applies
//! what it says to the encoder.

use std::time::Duration;

/// What audio takes of the estimate, kbit/s: Opus at up to 32 kbit/s with in-band FEC, and
/// RTP/SRTP/UDP/IP overhead on 50 packets a second.
pub const AUDIO_KBPS: f64 = 50.0;
/// The share of the estimate spent at all: the estimate is what the path carried lately, not a
/// promise, and a queue that fills costs audio delay first.
const HEADROOM: f64 = 0.85;
/// The most video is given, kbit/s: 640×480 at 30 fps looks no better above it.
pub const MAX_VIDEO_KBPS: u32 = 1500;
/// Below this video is more block than picture: stop sending it.
pub const PAUSE_BELOW_KBPS: u32 = 100;
/// Video comes back only with clearly more room than it stopped at, so that an estimate
/// hovering around the line does not switch it on and off.
pub const RESUME_AT_KBPS: u32 = 180;
/// How long the estimate must stay low before video stops (a short dip is the pacer's to ride
/// out), and how long it must stay good before video comes back.
pub const PAUSE_AFTER: Duration = Duration::from_secs(2);
pub const RESUME_AFTER: Duration = Duration::from_secs(4);
/// With video stopped only audio flows, and an estimate measured on audio alone may never grow
/// enough to bring video back: after this long paused, video is tried again at the resume
/// rate, and the estimate measured on it decides (2 s later at most, it stops again).
pub const TRY_AGAIN_AFTER: Duration = Duration::from_secs(15);

/// The video's share now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoRate {
    /// The encoder's target, kbit/s (kept while paused, for when video comes back).
    pub target_kbps: u32,
    /// No video is sent: the path cannot carry it.
    pub paused: bool,
}

/// Follows the estimate. `now` is any monotonic time (the session's clock, or a test's).
#[derive(Debug, Clone)]
pub struct VideoRatePolicy {
    rate: VideoRate,
    /// Since when the estimate has been on the other side of the line (below it while sending,
    /// above the resume mark while paused).
    crossed_since: Option<Duration>,
    /// When video last stopped.
    paused_at: Option<Duration>,
}

impl VideoRatePolicy {
    /// Starting at `initial_kbps` of video.
    pub fn new(initial_kbps: u32) -> Self {
        Self { rate: VideoRate { target_kbps: initial_kbps, paused: false }, crossed_since: None, paused_at: None }
    }

    pub fn rate(&self) -> VideoRate {
        self.rate
    }

    /// The video's share of an estimate of `estimate_bps`, before pausing is considered.
    pub fn share_kbps(estimate_bps: f64) -> u32 {
        let kbps = estimate_bps.max(0.0) * HEADROOM / 1000.0 - AUDIO_KBPS;
        (kbps.max(0.0) as u32).min(MAX_VIDEO_KBPS)
    }

    /// Takes a new estimate; returns the video's share as it now stands.
    pub fn update(&mut self, now: Duration, estimate_bps: f64) -> VideoRate {
        let share = Self::share_kbps(estimate_bps);
        if self.rate.paused && self.paused_at.is_some_and(|at| now.saturating_sub(at) >= TRY_AGAIN_AFTER) {
            self.rate = VideoRate { target_kbps: RESUME_AT_KBPS, paused: false };
            self.crossed_since = None;
            self.paused_at = None;
            return self.rate;
        }
        let crossed = if self.rate.paused { share >= RESUME_AT_KBPS } else { share < PAUSE_BELOW_KBPS };
        if crossed {
            let since = *self.crossed_since.get_or_insert(now);
            let wait = if self.rate.paused { RESUME_AFTER } else { PAUSE_AFTER };
            if now.saturating_sub(since) >= wait {
                self.rate.paused = !self.rate.paused;
                self.crossed_since = None;
                self.paused_at = self.rate.paused.then_some(now);
            }
        } else {
            self.crossed_since = None;
        }
        // The encoder follows the estimate while sending; while paused it keeps the share it
        // will resume with.
        self.rate.target_kbps = share.max(calldock_video::MIN_KBPS);
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// Feeds `estimate_bps` every 250 ms from `from` for `seconds`.
    fn hold(policy: &mut VideoRatePolicy, from: f64, seconds: f64, estimate_bps: f64) -> VideoRate {
        let mut rate = policy.rate();
        let mut t = from;
        while t < from + seconds {
            rate = policy.update(secs(t), estimate_bps);
            t += 0.25;
        }
        rate
    }

    #[test]
    fn video_gets_the_estimate_less_audio_and_headroom() {
        assert_eq!(VideoRatePolicy::share_kbps(1_000_000.0), 800);
        assert_eq!(VideoRatePolicy::share_kbps(400_000.0), 290);
        assert_eq!(VideoRatePolicy::share_kbps(40_000.0), 0, "audio first");
        assert_eq!(VideoRatePolicy::share_kbps(10_000_000.0), MAX_VIDEO_KBPS);
        assert_eq!(VideoRatePolicy::share_kbps(f64::NAN), 0);
        let mut policy = VideoRatePolicy::new(800);
        assert_eq!(policy.update(secs(0.0), 400_000.0), VideoRate { target_kbps: 290, paused: false });
    }

    #[test]
    fn a_short_dip_does_not_stop_video() {
        let mut policy = VideoRatePolicy::new(800);
        hold(&mut policy, 0.0, 5.0, 1_000_000.0);
        let dip = hold(&mut policy, 5.0, 1.5, 100_000.0);
        assert!(!dip.paused);
        assert_eq!(dip.target_kbps, 35, "the encoder follows the dip meanwhile");
        assert!(!hold(&mut policy, 6.5, 5.0, 1_000_000.0).paused);
    }

    #[test]
    fn a_path_that_cannot_carry_video_stops_it_and_a_recovered_one_brings_it_back() {
        let mut policy = VideoRatePolicy::new(800);
        hold(&mut policy, 0.0, 2.0, 1_000_000.0);
        // 150 kbit/s: 77 for video, under the 100 line, for longer than 2 s.
        assert!(!hold(&mut policy, 2.0, 1.75, 150_000.0).paused);
        assert!(hold(&mut policy, 3.75, 0.5, 150_000.0).paused);
        // Better, but not by enough to come back (180 kbit/s for video needs 271 kbit/s).
        assert!(hold(&mut policy, 4.25, 5.0, 250_000.0).paused);
        // Good again, but a dip in the middle restarts the 4 s wait.
        assert!(hold(&mut policy, 9.25, 3.0, 600_000.0).paused);
        assert!(hold(&mut policy, 12.25, 0.25, 150_000.0).paused);
        assert!(hold(&mut policy, 12.5, 3.75, 600_000.0).paused);
        let back = hold(&mut policy, 16.25, 0.5, 600_000.0);
        assert_eq!(back, VideoRate { target_kbps: 460, paused: false });
    }

    #[test]
    fn paused_video_is_tried_again_and_stops_again_if_the_path_still_cannot_carry_it() {
        let mut policy = VideoRatePolicy::new(800);
        // Paused at 2 s; on audio alone the estimate stays where it was.
        assert!(hold(&mut policy, 0.0, 2.25, 150_000.0).paused);
        assert!(hold(&mut policy, 2.25, 14.5, 150_000.0).paused);
        // 15 s after pausing: a try at the resume rate.
        let tried = policy.update(secs(17.0), 150_000.0);
        assert_eq!(tried, VideoRate { target_kbps: RESUME_AT_KBPS, paused: false });
        // The estimate did not move: stopped again 2 s later.
        assert!(!hold(&mut policy, 17.25, 1.5, 150_000.0).paused);
        assert!(hold(&mut policy, 18.75, 0.75, 150_000.0).paused);
        // Had it grown, video would have stayed.
        let mut policy = VideoRatePolicy::new(800);
        hold(&mut policy, 0.0, 17.0, 150_000.0);
        assert!(!hold(&mut policy, 17.0, 10.0, 700_000.0).paused);
    }
}
