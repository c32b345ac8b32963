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

/// The largest picture and the frame rate video is sent at. At a low bitrate a smaller picture
/// looks better than a large one quantized into blocks, and lower still, fewer frames give each
/// one enough bits (libwebrtc's "balanced" degradation does the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendFormat {
    pub max_width: u32,
    pub max_height: u32,
    pub fps: u32,
}

impl SendFormat {
    pub const fn new(max_width: u32, max_height: u32, fps: u32) -> Self {
        Self { max_width, max_height, fps }
    }
}

/// The largest format.
impl Default for SendFormat {
    fn default() -> Self {
        FORMATS[0].0
    }
}

impl std::fmt::Display for SendFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}×{} at {} fps", self.max_width, self.max_height, self.fps)
    }
}

/// The formats, largest first, each with the least bitrate (kbit/s) it is sent at. Near
/// libwebrtc's limits for a single VP8 stream (500 kbit/s to start 640×360, 300 for 480×270),
/// with 640×480 kept down to 400: the congestion controller's 600 kbit/s start leaves video 460,
/// and a call should not start by shrinking its picture.
pub const FORMATS: [(SendFormat, u32); 4] = [
    (SendFormat::new(640, 480, 30), 400),
    (SendFormat::new(480, 360, 30), 250),
    (SendFormat::new(320, 240, 30), 150),
    (SendFormat::new(320, 240, 15), 0),
];
/// A larger format needs this much more than its least bitrate, so that a target hovering at
/// a line does not switch formats back and forth (each switch costs a key frame).
const STEP_UP_MARGIN: f64 = 1.3;
/// How long the target must stay under the format's least before a smaller one is taken, and
/// above the next larger one's (with the margin) before that is taken. Up is slower: a format
/// that proves too large costs a key frame twice.
pub const STEP_DOWN_AFTER: Duration = Duration::from_secs(2);
pub const STEP_UP_AFTER: Duration = Duration::from_secs(6);

/// Follows the encoder's target with the send format: down at once to the format that fits
/// (after [`STEP_DOWN_AFTER`]), up one format at a time (after [`STEP_UP_AFTER`]).
#[derive(Debug, Clone, Default)]
pub struct SendFormatPolicy {
    /// Index into [`FORMATS`].
    step: usize,
    /// Since when the target has been below this format's least, or above the next larger
    /// one's with the margin.
    below_since: Option<Duration>,
    above_since: Option<Duration>,
}

impl SendFormatPolicy {
    /// Starting at the largest format.
    pub fn new() -> Self {
        Self::default()
    }

    pub fn format(&self) -> SendFormat {
        FORMATS[self.step].0
    }

    /// Takes the encoder's target now; returns the format as it now stands.
    pub fn update(&mut self, now: Duration, target_kbps: u32) -> SendFormat {
        let fits = FORMATS.iter().position(|(_, least)| target_kbps >= *least).unwrap_or(FORMATS.len() - 1);
        let larger_fits =
            self.step > 0 && f64::from(target_kbps) >= f64::from(FORMATS[self.step - 1].1) * STEP_UP_MARGIN;
        if fits > self.step {
            self.above_since = None;
            let since = *self.below_since.get_or_insert(now);
            if now.saturating_sub(since) >= STEP_DOWN_AFTER {
                self.step = fits;
                self.below_since = None;
            }
        } else if larger_fits {
            self.below_since = None;
            let since = *self.above_since.get_or_insert(now);
            if now.saturating_sub(since) >= STEP_UP_AFTER {
                self.step -= 1;
                self.above_since = None;
            }
        } else {
            self.below_since = None;
            self.above_since = None;
        }
        self.format()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// Calls `update` every 250 ms from `from` for `seconds`; what the last call returned.
    fn every_quarter_second<T>(from: f64, seconds: f64, mut update: impl FnMut(Duration) -> T) -> Option<T> {
        let mut last = None;
        let mut t = from;
        while t < from + seconds {
            last = Some(update(secs(t)));
            t += 0.25;
        }
        last
    }

    /// Feeds `estimate_bps` every 250 ms from `from` for `seconds`.
    fn hold(policy: &mut VideoRatePolicy, from: f64, seconds: f64, estimate_bps: f64) -> VideoRate {
        every_quarter_second(from, seconds, |t| policy.update(t, estimate_bps)).unwrap_or(policy.rate())
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

    /// Feeds `target_kbps` every 250 ms from `from` for `seconds`.
    fn hold_format(policy: &mut SendFormatPolicy, from: f64, seconds: f64, target_kbps: u32) -> SendFormat {
        every_quarter_second(from, seconds, |t| policy.update(t, target_kbps)).unwrap_or(policy.format())
    }

    const VGA: SendFormat = SendFormat::new(640, 480, 30);
    const HALF: SendFormat = SendFormat::new(480, 360, 30);
    const QVGA: SendFormat = SendFormat::new(320, 240, 30);
    const QVGA_15: SendFormat = SendFormat::new(320, 240, 15);

    #[test]
    fn a_narrow_path_takes_the_format_that_fits_at_once_and_a_short_dip_changes_nothing() {
        let mut policy = SendFormatPolicy::new();
        assert_eq!(hold_format(&mut policy, 0.0, 5.0, 800), VGA);
        // A dip shorter than 2 s.
        assert_eq!(hold_format(&mut policy, 5.0, 1.75, 120), VGA);
        assert_eq!(hold_format(&mut policy, 6.75, 3.0, 800), VGA);
        // 300 kbit/s for long enough: 480×360, straight from 640×480.
        assert_eq!(hold_format(&mut policy, 9.75, 1.75, 300), VGA);
        assert_eq!(hold_format(&mut policy, 11.5, 0.5, 300), HALF);
        // Far lower: straight to the smallest, at half the frame rate.
        assert_eq!(hold_format(&mut policy, 12.0, 2.25, 90), QVGA_15);
    }

    #[test]
    fn a_wider_path_brings_larger_formats_back_one_at_a_time_with_a_margin() {
        let mut policy = SendFormatPolicy::new();
        assert_eq!(hold_format(&mut policy, 0.0, 2.25, 100), QVGA_15);
        // Just over 150 kbit/s is not enough to go up: 195 is, for 6 s.
        assert_eq!(hold_format(&mut policy, 2.25, 20.0, 190), QVGA_15);
        assert_eq!(hold_format(&mut policy, 22.25, 5.9, 1000), QVGA_15);
        assert_eq!(policy.update(secs(28.25), 1000), QVGA);
        // One format each 6 s, however wide the path.
        assert_eq!(hold_format(&mut policy, 28.5, 5.9, 1000), QVGA);
        assert_eq!(policy.update(secs(34.5), 1000), HALF);
        assert_eq!(hold_format(&mut policy, 34.75, 5.9, 1000), HALF);
        assert_eq!(policy.update(secs(40.75), 1000), VGA);
        // A dip in the middle of the wait restarts it.
        let mut policy = SendFormatPolicy::new();
        hold_format(&mut policy, 0.0, 2.25, 300);
        assert_eq!(policy.format(), HALF);
        hold_format(&mut policy, 2.25, 5.0, 700);
        hold_format(&mut policy, 7.25, 0.25, 400);
        assert_eq!(hold_format(&mut policy, 7.5, 5.75, 700), HALF);
        assert_eq!(policy.update(secs(13.5), 700), VGA);
    }
}
