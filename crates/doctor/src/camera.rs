//! The camera check (SPEC §6, after test.webrtc.org): a short burst of frames at 320×240,
//! 640×480 and 1280×720, each judged on its frame rate, its size, and how many of its frames are
//! black or frozen.
//!
//! A frame is black when its mean luma is below [`BLACK_LUMA`] (20 of 255: video black is 16),
//! and frozen when it is not black and differs from the frame before by less than
//! [`FROZEN_DIFFERENCE`] on average: a camera that repeats a picture sends it bit for bit or
//! nearly so, while sensor noise alone moves a still scene by one level or more.
//!
//! Verdicts, by what matters most: fewer than two frames → fail (nothing to judge); more than a
//! third of a burst's frames black or frozen → fail (`camera_black` when black ones are the
//! majority of those, else `camera_frozen`); frames of another size than asked → fail; under
//! 5 fps on average → fail. No camera at all → warn: calls work with audio alone.
//!
//! A Y4M file has one size and cannot be asked for another: it is judged at its own size only,
//! over its first [`FILE_SECONDS`] (at most [`FILE_FRAMES`] frames), at its declared rate. The
//! pattern and a camera are judged over [`BURST`] per size.
//!
//! [`Burst`] and [`verdict`] decide from frames and their timestamps alone; [`run`] only gets
//! the frames, from a camera, the pattern or a file.

use std::time::Duration;

pub use calldock_devices::camera::CameraSource;
use calldock_devices::camera::{
    CameraCapture, CameraChoice, CameraError, Frame, FrameSource, PatternSource, Resolution, Y4mFile,
};
use calldock_devices::describe_holders;
use serde::Serialize;

use crate::{Check, CheckResult, Figures, Verdict};

/// The sizes a camera is asked for (test.webrtc.org's): a small call tile, a normal call, HD.
pub const RESOLUTIONS: [Resolution; 3] =
    [Resolution::new(320, 240), Resolution::new(640, 480), Resolution::new(1280, 720)];
/// The rate a camera is asked for, and the pattern runs at.
pub const ASKED_FPS: u32 = 30;
/// Below this average rate video is a slide show.
pub const MIN_FPS: f64 = 5.0;
/// A frame whose mean luma is below this is black (test.webrtc.org's threshold).
pub const BLACK_LUMA: f64 = 20.0;
/// A frame that differs from the one before by less than this mean luma difference is frozen.
pub const FROZEN_DIFFERENCE: f64 = 0.5;
/// More than this share of a burst's frames black or frozen fails it.
pub const BAD_FRAME_SHARE: f64 = 1.0 / 3.0;
/// How much of a camera's or the pattern's video is judged per size: with the camera's start,
/// about one second per size, so the three fit a doctor run of under 10 s.
pub const BURST: Duration = Duration::from_millis(800);
/// How much of a Y4M file is judged: enough to catch a camera that freezes after a while.
pub const FILE_SECONDS: Duration = Duration::from_secs(10);
/// And at most this many of its frames, whatever rate it declares.
pub const FILE_FRAMES: usize = 600;

/// The frames of one burst, judged as they arrive; only the previous frame is kept, so a long
/// file costs no more memory than a short one.
#[derive(Debug, Clone)]
pub struct Burst {
    asked: Resolution,
    frames: usize,
    first_at: Option<Duration>,
    last_at: Duration,
    black: usize,
    frozen: usize,
    luma_total: f64,
    /// The first size that differs from the asked one, else the size frames came in.
    delivered: Option<Resolution>,
    previous: Option<Frame>,
}

impl Burst {
    pub fn new(asked: Resolution) -> Self {
        Self {
            asked,
            frames: 0,
            first_at: None,
            last_at: Duration::ZERO,
            black: 0,
            frozen: 0,
            luma_total: 0.0,
            delivered: None,
            previous: None,
        }
    }

    pub fn push(&mut self, frame: Frame) {
        let mean = mean_luma(&frame.luma);
        let black = mean < BLACK_LUMA;
        let frozen = !black
            && self.previous.as_ref().is_some_and(|previous| {
                previous.resolution() == frame.resolution()
                    && mean_difference(&previous.luma, &frame.luma) < FROZEN_DIFFERENCE
            });
        self.frames += 1;
        self.black += usize::from(black);
        self.frozen += usize::from(frozen);
        self.luma_total += mean;
        self.first_at.get_or_insert(frame.captured_at);
        self.last_at = frame.captured_at;
        let size = frame.resolution();
        if self.delivered.is_none_or(|delivered| delivered == self.asked) {
            self.delivered = Some(size);
        }
        self.previous = Some(frame);
    }

    /// Frames pushed so far.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Time from the first frame to the last.
    pub fn span(&self) -> Duration {
        self.first_at.map_or(Duration::ZERO, |first| self.last_at.saturating_sub(first))
    }

    pub fn figures(&self) -> BurstFigures {
        let seconds = self.span().as_secs_f64();
        let fps = if self.frames >= 2 && seconds > 0.0 { (self.frames - 1) as f64 / seconds } else { 0.0 };
        BurstFigures {
            asked: self.asked,
            delivered: self.delivered,
            frames: self.frames,
            seconds: round(seconds, 3),
            fps: round(fps, 1),
            black_frames: self.black,
            frozen_frames: self.frozen,
            mean_luma: round(if self.frames == 0 { 0.0 } else { self.luma_total / self.frames as f64 }, 1),
        }
    }
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// The mean of a luma plane (0 for an empty one).
pub fn mean_luma(luma: &[u8]) -> f64 {
    if luma.is_empty() {
        return 0.0;
    }
    luma.iter().map(|&v| u64::from(v)).sum::<u64>() as f64 / luma.len() as f64
}

/// The mean absolute difference between two planes of the same size, in luma levels.
pub fn mean_difference(a: &[u8], b: &[u8]) -> f64 {
    let pixels = a.len().min(b.len());
    if pixels == 0 {
        return 0.0;
    }
    a.iter().zip(b).map(|(x, y)| u64::from(x.abs_diff(*y))).sum::<u64>() as f64 / pixels as f64
}

/// One burst's measurements.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BurstFigures {
    pub asked: Resolution,
    /// The size frames came in (the first that differs from the asked one, if any); `None`
    /// when no frame came.
    pub delivered: Option<Resolution>,
    pub frames: usize,
    /// From the first frame's timestamp to the last's.
    pub seconds: f64,
    /// Average frames per second over those seconds.
    pub fps: f64,
    pub black_frames: usize,
    pub frozen_frames: usize,
    pub mean_luma: f64,
}

impl BurstFigures {
    fn has_too_few_frames(&self) -> bool {
        self.frames < 2
    }

    fn has_bad_frames(&self) -> bool {
        (self.black_frames + self.frozen_frames) as f64 > self.frames as f64 * BAD_FRAME_SHARE
    }

    fn has_wrong_size(&self) -> bool {
        self.delivered.is_some_and(|delivered| delivered != self.asked)
    }

    fn is_slow(&self) -> bool {
        self.fps < MIN_FPS
    }

    fn brief(&self) -> String {
        format!(
            "{}: {} frames, {:.1} fps, {} black, {} frozen",
            self.asked, self.frames, self.fps, self.black_frames, self.frozen_frames
        )
    }
}

/// The camera check's figures in a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CameraFigures {
    /// The camera id, `pattern`, or the file judged.
    pub source: String,
    /// One per size asked (one for a file).
    pub bursts: Vec<BurstFigures>,
}

const PICK_ANOTHER: &str = "or pick another camera (`calldock devices` lists them)";

/// The verdict on the bursts of frames from `source`.
pub fn verdict(source: &str, bursts: Vec<BurstFigures>) -> CheckResult {
    let all = bursts.iter().map(BurstFigures::brief).collect::<Vec<_>>().join("; ");
    let problem = first_problem(source, &bursts, &all);
    let figures = Some(Figures::Camera(CameraFigures { source: source.to_string(), bursts }));
    match problem {
        Some((code, summary, remedy)) => {
            CheckResult::problem(Check::Camera, Verdict::Fail, code, summary, remedy, figures)
        }
        None => CheckResult::pass(Check::Camera, format!("{source}: {all}"), figures),
    }
}

/// The most telling problem among the bursts, as its code, summary and remedy; `all` is every
/// burst's figures in brief.
fn first_problem(source: &str, bursts: &[BurstFigures], all: &str) -> Option<(&'static str, String, String)> {
    if bursts.is_empty() {
        return Some((
            "camera_no_frames",
            format!("{source}: no frames were captured"),
            format!("The camera delivered nothing: replug it, {PICK_ANOTHER}"),
        ));
    }
    if let Some(b) = bursts.iter().find(|b| b.has_too_few_frames()) {
        return Some((
            "camera_no_frames",
            format!("{source}: {} frame(s) at {}, too few to judge; {all}", b.frames, b.asked),
            format!("Not enough video to judge: give at least a second of it (a longer recording), {PICK_ANOTHER}"),
        ));
    }
    if let Some(b) = bursts.iter().find(|b| b.has_bad_frames()) {
        let counts =
            format!("{} black and {} frozen of {} frames at {}", b.black_frames, b.frozen_frames, b.frames, b.asked);
        return Some(if b.black_frames >= b.frozen_frames {
            (
                "camera_black",
                format!("{source}: black picture ({counts}); {all}"),
                format!(
                    "The camera sends black frames: open its privacy shutter or lens cover, add light, {PICK_ANOTHER}"
                ),
            )
        } else {
            (
                "camera_frozen",
                format!("{source}: frozen picture ({counts}); {all}"),
                format!(
                    "The picture does not change: unplug and replug the camera, close other programs using it, {PICK_ANOTHER}"
                ),
            )
        });
    }
    if let Some(b) = bursts.iter().find(|b| b.has_wrong_size()) {
        let delivered = b.delivered.map(|d| d.to_string()).unwrap_or_default();
        return Some((
            "camera_wrong_resolution",
            format!("{source}: asked for {}, the camera sent {delivered}; {all}", b.asked),
            format!("The camera cannot deliver {}: update its driver, {PICK_ANOTHER}", b.asked),
        ));
    }
    bursts.iter().find(|b| b.is_slow()).map(|b| {
        (
            "camera_slow",
            format!("{source}: {:.1} fps at {}, below {MIN_FPS:.0}; {all}", b.fps, b.asked),
            format!(
                "The camera is too slow: add light (cameras slow down in the dark), close programs busy with it or \
                 the USB bus, {PICK_ANOTHER}"
            ),
        )
    })
}

/// The verdict when frames could not be had: what went wrong and what to do.
pub fn device_problem(error: &CameraError) -> CheckResult {
    let (verdict, remedy) = match error {
        CameraError::NoCamera => (
            Verdict::Warn,
            "For video, connect a camera (check any privacy switch) and run the check again; until then calls work \
             with audio only"
                .to_string(),
        ),
        CameraError::NotFound { .. } => {
            (Verdict::Fail, "Pick a camera that is present: `calldock devices` lists them".to_string())
        }
        CameraError::Busy { holders, .. } => {
            let program = if holders.is_empty() {
                "the program using the camera (a browser, a video call, a recorder)".to_string()
            } else {
                describe_holders(holders)
            };
            (Verdict::Fail, format!("Close {program}, {PICK_ANOTHER}"))
        }
        CameraError::PermissionDenied { group: Some(group), .. } => (
            Verdict::Fail,
            format!("Add yourself to the `{group}` group: `sudo usermod -aG {group} $USER`, then log out and back in"),
        ),
        CameraError::PermissionDenied { group: None, .. } => {
            (Verdict::Fail, format!("Ask for access to the camera, {PICK_ANOTHER}"))
        }
        CameraError::Unsupported { .. } => (Verdict::Fail, format!("This camera cannot be used: {PICK_ANOTHER}")),
        CameraError::Open { .. } => {
            (Verdict::Fail, format!("Close programs that may use the camera and replug it, {PICK_ANOTHER}"))
        }
        CameraError::Stalled { .. } => (
            Verdict::Fail,
            format!("The camera sends nothing: unplug and replug it, close programs that may use it, {PICK_ANOTHER}"),
        ),
        CameraError::Failed { .. } => {
            (Verdict::Fail, format!("The camera stopped during the test: check it is still plugged in, {PICK_ANOTHER}"))
        }
        CameraError::File { .. } => (
            Verdict::Fail,
            "Give a readable Y4M file (`ffmpeg -i recording.mp4 -pix_fmt yuv420p recording.y4m` makes one), \
             or a camera from `calldock devices`"
                .to_string(),
        ),
        CameraError::Enumerate(_) => (
            Verdict::Fail,
            "Cameras cannot be listed: check the camera driver is loaded (`ls /dev/video*`) and try again".to_string(),
        ),
    };
    CheckResult::problem(Check::Camera, verdict, error.code(), error.to_string(), remedy, None)
}

/// Takes frames from `source` into a burst asked at `asked`: until `window` of video has been
/// seen (the frame that reaches it included, so a slow source's rate shows), `max_frames`, or
/// the end of the source.
pub fn capture_burst(
    source: &mut dyn FrameSource,
    asked: Resolution,
    window: Duration,
    max_frames: usize,
) -> Result<BurstFigures, CameraError> {
    let mut burst = Burst::new(asked);
    while let Some(frame) = source.next_frame()? {
        burst.push(frame);
        if burst.span() >= window || burst.frames() >= max_frames {
            break;
        }
    }
    Ok(burst.figures())
}

/// Runs the camera check on a camera, the pattern, or a file.
pub fn run(source: &CameraSource) -> CheckResult {
    match source {
        CameraSource::Pattern => {
            let mut bursts = Vec::new();
            for asked in RESOLUTIONS {
                let mut pattern = PatternSource::new(asked, ASKED_FPS);
                match capture_burst(&mut pattern, asked, BURST, usize::MAX) {
                    Ok(burst) => bursts.push(burst),
                    Err(e) => return device_problem(&e),
                }
            }
            verdict("pattern", bursts)
        }
        CameraSource::Y4m(path) => {
            let mut file = match Y4mFile::open(path) {
                Ok(file) => file,
                Err(e) => return device_problem(&e),
            };
            let own_size = file.resolution();
            match capture_burst(&mut file, own_size, FILE_SECONDS, FILE_FRAMES) {
                Ok(burst) => verdict(&path.display().to_string(), vec![burst]),
                Err(e) => device_problem(&e),
            }
        }
        CameraSource::Device(choice) => watch_camera(choice),
    }
}

fn watch_camera(choice: &CameraChoice) -> CheckResult {
    let mut bursts = Vec::new();
    let mut name = choice.to_string();
    for asked in RESOLUTIONS {
        // Opened per size, as a call would; a camera that will not open or stops delivering
        // ends the check, since the other sizes would only wait on it again.
        let mut camera = match CameraCapture::open(choice, asked, ASKED_FPS) {
            Ok(camera) => camera,
            Err(e) => return device_problem(&e),
        };
        if *choice == CameraChoice::Default {
            name = format!("default ({})", camera.id());
        }
        match capture_burst(&mut camera, asked, BURST, usize::MAX) {
            Ok(burst) => bursts.push(burst),
            Err(e) => return device_problem(&e),
        }
    }
    verdict(&name, bursts)
}

#[cfg(test)]
mod tests {
    use calldock_devices::DeviceHolder;

    use super::*;

    const VGA: Resolution = Resolution::new(640, 480);

    fn frame(resolution: Resolution, at_ms: u64, luma: u8) -> Frame {
        let pixels = resolution.width as usize * resolution.height as usize;
        Frame {
            width: resolution.width,
            height: resolution.height,
            captured_at: Duration::from_millis(at_ms),
            luma: vec![luma; pixels],
            chroma: None,
        }
    }

    /// `count` frames of the moving pattern at `fps`.
    fn pattern(resolution: Resolution, fps: u32, count: u64) -> Vec<Frame> {
        let source = PatternSource::new(resolution, fps);
        (0..count).map(|n| source.frame(n)).collect()
    }

    fn judge(frames: Vec<Frame>, asked: Resolution) -> CheckResult {
        let mut burst = Burst::new(asked);
        frames.into_iter().for_each(|f| burst.push(f));
        verdict("test", vec![burst.figures()])
    }

    fn burst_figures(result: &CheckResult) -> &BurstFigures {
        let Some(Figures::Camera(figures)) = &result.figures else { panic!("figures: {result:?}") };
        &figures.bursts[0]
    }

    #[test]
    fn a_moving_pattern_passes_at_every_size() {
        let bursts = RESOLUTIONS
            .iter()
            .map(|&size| {
                let mut burst = Burst::new(size);
                pattern(size, 30, 25).into_iter().for_each(|f| burst.push(f));
                burst.figures()
            })
            .collect();
        let result = verdict("pattern", bursts);
        assert_eq!(result.verdict, Verdict::Pass, "{result:?}");
        assert_eq!((result.code, result.remedy.as_deref()), (None, None));
        let Some(Figures::Camera(figures)) = &result.figures else { panic!() };
        for burst in &figures.bursts {
            assert_eq!((burst.frames, burst.fps, burst.black_frames, burst.frozen_frames), (25, 30.0, 0, 0));
            assert_eq!(burst.delivered, Some(burst.asked));
        }
        assert!(result.summary.contains("1280x720: 25 frames, 30.0 fps, 0 black, 0 frozen"), "{}", result.summary);
    }

    #[test]
    fn black_frames_fail() {
        let frames: Vec<Frame> = (0..20).map(|n| frame(VGA, n * 33, 16 + (n % 3) as u8)).collect();
        let result = judge(frames, VGA);
        assert_eq!((result.verdict, result.code), (Verdict::Fail, Some("camera_black")));
        assert_eq!(burst_figures(&result).black_frames, 20);
        assert!(result.remedy.unwrap().contains("privacy shutter"));
    }

    #[test]
    fn a_third_black_is_tolerated_more_is_not() {
        // Cameras send a few dark frames while exposure settles.
        let mixed = |black: u64| -> Vec<Frame> {
            let mut frames = pattern(VGA, 30, 30);
            for f in frames.iter_mut().take(black as usize) {
                f.luma.fill(0);
            }
            frames
        };
        assert_eq!(judge(mixed(10), VGA).verdict, Verdict::Pass);
        assert_eq!(judge(mixed(11), VGA).code, Some("camera_black"));
    }

    #[test]
    fn frozen_frames_fail() {
        let still = pattern(VGA, 30, 1).remove(0);
        let frames = (0..20).map(|n| Frame { captured_at: Duration::from_millis(n * 33), ..still.clone() }).collect();
        let result = judge(frames, VGA);
        assert_eq!((result.verdict, result.code), (Verdict::Fail, Some("camera_frozen")));
        assert_eq!(burst_figures(&result).frozen_frames, 19);
        assert!(result.summary.contains("frozen picture (0 black and 19 frozen of 20 frames at 640x480)"));
    }

    #[test]
    fn sensor_noise_on_a_still_scene_is_not_frozen() {
        // A still scene as a real sensor sends it: every pixel wobbles by a level or two.
        let frames = (0..20u64)
            .map(|n| {
                let mut f = frame(VGA, n * 33, 120);
                f.luma.iter_mut().enumerate().for_each(|(i, v)| *v += ((i as u64 * 7 + n * 13) % 3) as u8);
                f
            })
            .collect();
        let result = judge(frames, VGA);
        assert_eq!(result.verdict, Verdict::Pass, "{result:?}");
    }

    #[test]
    fn a_slow_camera_fails() {
        // Four frames a second, each new.
        let frames = pattern(VGA, 4, 5);
        let result = judge(frames, VGA);
        assert_eq!((result.verdict, result.code), (Verdict::Fail, Some("camera_slow")));
        assert_eq!(burst_figures(&result).fps, 4.0);
        assert!(result.summary.contains("4.0 fps at 640x480, below 5"), "{}", result.summary);
    }

    #[test]
    fn the_wrong_resolution_fails() {
        let hd = Resolution::new(1280, 720);
        let result = judge(pattern(VGA, 30, 25), hd);
        assert_eq!((result.verdict, result.code), (Verdict::Fail, Some("camera_wrong_resolution")));
        assert_eq!(burst_figures(&result).delivered, Some(VGA));
        assert!(result.summary.contains("asked for 1280x720, the camera sent 640x480"), "{}", result.summary);
        assert!(result.remedy.unwrap().contains("cannot deliver 1280x720"));
    }

    #[test]
    fn one_frame_is_too_few_to_judge() {
        let result = judge(pattern(VGA, 30, 1), VGA);
        assert_eq!((result.verdict, result.code), (Verdict::Fail, Some("camera_no_frames")));
        assert_eq!(verdict("empty", vec![]).code, Some("camera_no_frames"));
    }

    #[test]
    fn bursts_end_at_the_window_or_the_frame_limit_and_include_the_frame_that_reaches_it() {
        let mut source = PatternSource::new(VGA, 30);
        let burst = capture_burst(&mut source, VGA, BURST, usize::MAX).unwrap();
        assert_eq!((burst.frames, burst.seconds, burst.fps), (25, 0.8, 30.0));
        let mut slow = PatternSource::new(VGA, 1);
        let burst = capture_burst(&mut slow, VGA, BURST, usize::MAX).unwrap();
        assert_eq!((burst.frames, burst.fps), (2, 1.0));
        let mut capped = PatternSource::new(VGA, 30);
        assert_eq!(capture_burst(&mut capped, VGA, FILE_SECONDS, 7).unwrap().frames, 7);
    }

    #[test]
    fn the_pattern_source_passes_the_whole_check() {
        let result = run(&CameraSource::Pattern);
        assert_eq!(result.verdict, Verdict::Pass, "{result:?}");
        let Some(Figures::Camera(figures)) = &result.figures else { panic!() };
        let asked: Vec<Resolution> = figures.bursts.iter().map(|b| b.asked).collect();
        assert_eq!(asked, RESOLUTIONS);
    }

    #[test]
    fn device_problems_have_codes_and_remedies() {
        let busy = CameraError::Busy {
            id: "/dev/video0".into(),
            holders: vec![DeviceHolder { pid: 1234, name: "firefox".into() }],
        };
        let result = device_problem(&busy);
        assert_eq!((result.verdict, result.code), (Verdict::Fail, Some("camera_busy")));
        assert_eq!(
            result.summary,
            "Another program (firefox, pid 1234) is using the camera /dev/video0: close it or pick another camera"
        );
        assert!(result.remedy.unwrap().starts_with("Close firefox, pid 1234"));

        let none = device_problem(&CameraError::NoCamera);
        assert_eq!((none.verdict, none.code), (Verdict::Warn, Some("camera_none")));
        assert!(none.remedy.unwrap().contains("audio only"));

        let denied =
            device_problem(&CameraError::PermissionDenied { id: "/dev/video0".into(), group: Some("video".into()) });
        assert_eq!(denied.code, Some("camera_permission_denied"));
        assert!(denied.remedy.unwrap().contains("sudo usermod -aG video $USER"));
    }

    #[test]
    fn sources_parse_from_what_users_type() {
        assert_eq!(CameraSource::parse("default"), Ok(CameraSource::Device(CameraChoice::Default)));
        assert_eq!(CameraSource::parse("pattern"), Ok(CameraSource::Pattern));
        assert_eq!(CameraSource::parse("Frozen.Y4M"), Ok(CameraSource::Y4m("Frozen.Y4M".into())));
        let id = calldock_devices::camera::camera_id(0);
        assert_eq!(CameraSource::parse(&id), Ok(CameraSource::Device(CameraChoice::Id(id.clone()))));
        let err = CameraSource::parse("webcam.mp4").unwrap_err();
        assert!(err.contains("`pattern`, or a Y4M file"), "{err}");
        assert_eq!(CameraSource::default().to_string(), "default");
    }
}
