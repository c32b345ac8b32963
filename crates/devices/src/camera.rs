//! Cameras: enumeration through nokhwa, and sources of frames for the camera check, the
//! preview and video calls.
//!
//! Three sources hand out [`Frame`]s through one trait, [`FrameSource`]:
//! - [`CameraCapture`]: a real camera through nokhwa, on a thread of its own (as sound streams
//!   are), so a camera that stops delivering cannot block its caller. Timestamps come from the
//!   clock.
//! - [`PatternSource`]: a synthetic moving test pattern at a requested resolution and rate.
//! - [`Y4mFile`]: a YUV4MPEG2 file, to replay a customer's camera (frozen, black, slow) on any
//!   machine.
//!
//! The pattern's and a file's timestamps follow from their frame rate, so reading them never
//! waits: a ten-second recording is judged in the time it takes to read it.
//!
//! A frame carries its luma (Y') plane, where whatever the checks judge (black, frozen, size,
//! rate) is, and its colour at 4:2:0 where the source has any, for video calls.
//!
//! Camera ids: on Linux the V4L2 node (`/dev/video0`), the name `fuser`, `lsof` and permission
//! errors use too; elsewhere `camera:N`, nokhwa's index.

mod capture;
mod luma;
mod pattern;
mod y4m_file;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use capture::{CameraCapture, FIRST_FRAME_TIMEOUT, FRAME_TIMEOUT, any_camera, list_cameras};
pub use pattern::PatternSource;
pub use y4m_file::Y4mFile;

use crate::holders::{DeviceHolder, named_in_parentheses};

/// One picture: its luma plane, and its colour where the source has any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    /// When the frame was captured, counted from the start of its source.
    pub captured_at: Duration,
    /// 8-bit luma, row after row, `width × height` bytes.
    pub luma: Vec<u8>,
    /// The colour, at 4:2:0; `None` for a grey source (the test pattern, a grey camera or
    /// file). What the checks judge is the luma; a video call sends both.
    pub chroma: Option<Chroma>,
}

/// The two chroma planes of a 4:2:0 picture, each `⌈width/2⌉ × ⌈height/2⌉` bytes, row after row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chroma {
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

impl Chroma {
    /// The size of each plane for a picture of that size.
    pub fn size_for(width: u32, height: u32) -> (usize, usize) {
        (width.div_ceil(2) as usize, height.div_ceil(2) as usize)
    }
}

impl Frame {
    pub fn resolution(&self) -> Resolution {
        Resolution { width: self.width, height: self.height }
    }
}

/// Something that delivers frames: a camera, the test pattern, or a file.
pub trait FrameSource {
    /// The next frame, or `Ok(None)` once there are no more (the end of a file). A camera that
    /// stops delivering is an error ([`CameraError::Stalled`]), not an end.
    fn next_frame(&mut self) -> Result<Option<Frame>, CameraError>;
}

/// A picture size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Resolution {
    pub width: u32,
    pub height: u32,
}

impl Resolution {
    pub const fn new(width: u32, height: u32) -> Self {
        Self { width, height }
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// How a camera lays out the pixels it sends: the formats nokhwa knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum PixelFormat {
    #[serde(rename = "MJPEG")]
    Mjpeg,
    #[serde(rename = "YUYV")]
    Yuyv,
    #[serde(rename = "NV12")]
    Nv12,
    #[serde(rename = "GRAY")]
    Gray,
    #[serde(rename = "RGB")]
    Rgb,
    #[serde(rename = "BGR")]
    Bgr,
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PixelFormat::Mjpeg => "MJPEG",
            PixelFormat::Yuyv => "YUYV",
            PixelFormat::Nv12 => "NV12",
            PixelFormat::Gray => "GRAY",
            PixelFormat::Rgb => "RGB",
            PixelFormat::Bgr => "BGR",
        })
    }
}

/// One way a camera can run: a pixel format at a resolution, with the frame rates it offers
/// there (highest first).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CameraMode {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub frame_rates: Vec<u32>,
}

/// One camera as enumeration sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CameraDevice {
    /// `/dev/video0` on Linux, `camera:0` elsewhere; pass it to `--camera`.
    pub id: String,
    /// What the driver calls it; not unique.
    pub name: String,
    /// The camera `default` means: the first one listed.
    pub is_default: bool,
    /// Empty when the camera could not be opened to ask (see `problem`).
    pub modes: Vec<CameraMode>,
    /// Why the camera could not be opened (busy, permission denied), if it could not.
    pub problem: Option<CameraProblem>,
}

/// A camera's problem in a listing: the error's stable code and its message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CameraProblem {
    pub code: &'static str,
    pub message: String,
}

impl From<&CameraError> for CameraProblem {
    fn from(error: &CameraError) -> Self {
        Self { code: error.code(), message: error.to_string() }
    }
}

/// The camera a user picked: the first one present, or one by id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CameraChoice {
    Default,
    Id(String),
}

impl CameraChoice {
    /// `default`, or a camera id as `calldock devices` prints it. Anything else is not a camera.
    pub fn parse(text: &str) -> Option<CameraChoice> {
        if text == "default" {
            return Some(CameraChoice::Default);
        }
        camera_index(text).map(|_| CameraChoice::Id(text.to_string()))
    }
}

impl fmt::Display for CameraChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CameraChoice::Default => f.write_str("default"),
            CameraChoice::Id(id) => f.write_str(id),
        }
    }
}

/// Where frames come from: a camera, or what stands in for one (the doctor's camera check, and
/// what a video call shows of us).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraSource {
    /// A camera (`default` or an id from `calldock devices`).
    Device(CameraChoice),
    /// The moving test pattern: checks the video path on a machine without a camera.
    Pattern,
    /// A Y4M file standing in for the camera: replays a customer's frozen, black or slow camera.
    Y4m(PathBuf),
}

impl Default for CameraSource {
    fn default() -> Self {
        CameraSource::Device(CameraChoice::Default)
    }
}

impl CameraSource {
    /// `default`, a camera id as `calldock devices` prints it, `pattern`, or a path ending in `.y4m`.
    pub fn parse(text: &str) -> Result<CameraSource, String> {
        if text == "pattern" {
            return Ok(CameraSource::Pattern);
        }
        if text.to_lowercase().ends_with(".y4m") {
            return Ok(CameraSource::Y4m(PathBuf::from(text)));
        }
        CameraChoice::parse(text).map(CameraSource::Device).ok_or_else(|| {
            format!(
                "{text:?} is not a camera: give `default`, a camera id from `calldock devices`, `pattern`, or a Y4M file"
            )
        })
    }
}

impl fmt::Display for CameraSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CameraSource::Device(choice) => write!(f, "{choice}"),
            CameraSource::Pattern => f.write_str("pattern"),
            CameraSource::Y4m(path) => write!(f, "{}", path.display()),
        }
    }
}

#[cfg(target_os = "linux")]
const ID_PREFIX: &str = "/dev/video";
#[cfg(not(target_os = "linux"))]
const ID_PREFIX: &str = "camera:";

/// The id of the camera nokhwa numbers `index`.
pub fn camera_id(index: u32) -> String {
    format!("{ID_PREFIX}{index}")
}

/// nokhwa's index of a camera id, if `id` is one.
pub fn camera_index(id: &str) -> Option<u32> {
    let digits = id.strip_prefix(ID_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What went wrong with a camera or a file standing in for one. Each message says what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CameraError {
    #[error("no camera found: connect one for video (calls work with audio alone)")]
    NoCamera,
    #[error("no camera {id}: it may be unplugged; `calldock devices` lists the ones present")]
    NotFound { id: String },
    #[error(
        "Another program{} is using the camera {id}: close it or pick another camera",
        named_in_parentheses(holders)
    )]
    Busy { id: String, holders: Vec<DeviceHolder> },
    #[error("{}", permission_message(id, group.as_deref()))]
    PermissionDenied {
        id: String,
        /// The group that may open the node (`video`), where the system says.
        group: Option<String>,
    },
    #[error(
        "the camera {id} offers no picture format calldock reads (MJPEG, YUYV, NV12, GRAY, RGB): pick another camera"
    )]
    Unsupported { id: String },
    #[error("the camera {id} cannot be opened: {reason}")]
    Open { id: String, reason: String },
    #[error("the camera {id} delivered no frame for {} ms: unplug and replug it, or pick another camera", waited.as_millis())]
    Stalled { id: String, waited: Duration },
    #[error("the camera {id} stopped working: {reason}; check it is still plugged in")]
    Failed { id: String, reason: String },
    #[error("{}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    #[error("cameras cannot be listed: {0}")]
    Enumerate(String),
}

fn permission_message(id: &str, group: Option<&str>) -> String {
    match group {
        Some(group) => format!(
            "no permission to open the camera {id}: add yourself to the `{group}` group \
             (`sudo usermod -aG {group} $USER`), then log out and back in"
        ),
        None => format!("no permission to open the camera {id}: ask for access to it, or pick another camera"),
    }
}

impl CameraError {
    /// Stable code for logs, JSON output and events.
    pub fn code(&self) -> &'static str {
        match self {
            CameraError::NoCamera => "camera_none",
            CameraError::NotFound { .. } => "camera_not_found",
            CameraError::Busy { .. } => "camera_busy",
            CameraError::PermissionDenied { .. } => "camera_permission_denied",
            CameraError::Unsupported { .. } => "camera_no_usable_format",
            CameraError::Open { .. } => "camera_open_failed",
            CameraError::Stalled { .. } => "camera_stalled",
            CameraError::Failed { .. } => "camera_failed",
            CameraError::File { .. } => "camera_file_unreadable",
            CameraError::Enumerate(_) => "camera_enumeration_failed",
        }
    }
}

/// The timestamp of frame `index` of a source running at `rate_num / rate_den` frames per
/// second: the pattern's and a file's clock. The rate must be positive.
fn frame_time(index: u64, rate_num: u64, rate_den: u64) -> Duration {
    let nanos = u128::from(index) * u128::from(rate_den) * 1_000_000_000 / u128::from(rate_num.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_ids_round_trip_and_other_text_is_not_a_camera() {
        let id = camera_id(2);
        assert_eq!(camera_index(&id), Some(2));
        assert_eq!(CameraChoice::parse(&id), Some(CameraChoice::Id(id.clone())));
        assert_eq!(CameraChoice::parse("default"), Some(CameraChoice::Default));
        for text in ["pattern", "clip.y4m", "", ID_PREFIX, &format!("{ID_PREFIX}+1"), &format!("{ID_PREFIX}1a")] {
            assert_eq!(CameraChoice::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn busy_errors_name_the_program_holding_the_camera() {
        let busy = CameraError::Busy {
            id: "/dev/video0".into(),
            holders: vec![DeviceHolder { pid: 1234, name: "firefox".into() }],
        };
        assert_eq!(busy.code(), "camera_busy");
        assert_eq!(
            busy.to_string(),
            "Another program (firefox, pid 1234) is using the camera /dev/video0: close it or pick another camera"
        );
        let unnamed = CameraError::Busy { id: "/dev/video0".into(), holders: vec![] };
        assert!(unnamed.to_string().starts_with("Another program is using the camera"), "{unnamed}");
    }

    #[test]
    fn permission_errors_say_which_group_to_join() {
        let denied = CameraError::PermissionDenied { id: "/dev/video0".into(), group: Some("video".into()) };
        assert_eq!(denied.code(), "camera_permission_denied");
        assert!(denied.to_string().contains("sudo usermod -aG video $USER"), "{denied}");
        let unknown = CameraError::PermissionDenied { id: "/dev/video0".into(), group: None };
        assert!(unknown.to_string().contains("ask for access"), "{unknown}");
    }

    #[test]
    fn frame_times_follow_the_rate_exactly() {
        assert_eq!(frame_time(0, 30, 1), Duration::ZERO);
        assert_eq!(frame_time(30, 30, 1), Duration::from_secs(1));
        assert_eq!(frame_time(1, 30_000, 1001), Duration::from_nanos(33_366_666));
        assert_eq!(frame_time(3, 0, 1), Duration::from_secs(3), "a zero rate must not divide by zero");
    }
}
