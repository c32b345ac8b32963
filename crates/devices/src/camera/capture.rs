//! Real cameras through nokhwa: enumeration, and a capture that runs on a thread of its own.
//!
//! nokhwa's V4L2 backend blocks in `frame()` until the camera delivers (no timeout), and parts
//! of it assert or panic on odd driver answers. So a capture's camera lives on its own thread:
//! the caller waits on a channel with a deadline, a panic ends only that thread, and a camera
//! that stops delivering is reported as stalled instead of hanging the doctor.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
    Resolution as NokhwaResolution,
};
use nokhwa::{Camera, NokhwaError};

use super::luma::planes;
use super::{
    CameraChoice, CameraDevice, CameraError, CameraMode, CameraProblem, Frame, FrameSource, PixelFormat, Resolution,
    camera_id, camera_index,
};
use crate::holders::processes_holding;

/// Every format nokhwa knows; [`super::luma`] reads them all.
const READABLE: [FrameFormat; 6] = [
    FrameFormat::NV12,
    FrameFormat::YUYV,
    FrameFormat::GRAY,
    FrameFormat::MJPEG,
    FrameFormat::RAWRGB,
    FrameFormat::RAWBGR,
];
/// The longest wait for a camera's first frame once its stream starts: USB cameras take up to
/// about a second to start, and adjusting exposure in the dark can take longer.
pub const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest wait between two frames: five frame intervals at the slowest usable rate (5 fps).
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(1);
/// How long opening a camera (format negotiation, buffer allocation) may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long dropping a capture waits for its camera to be released, so the next open does not
/// find it busy with ourselves.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Frames waiting for the reader: about two seconds' worth at 30 fps.
const QUEUED_FRAMES: usize = 60;
/// Unreadable frames in a row after which the camera counts as broken: one corrupt MJPEG frame
/// after a USB hiccup is normal; a stream of them is not.
const UNREADABLE_IN_A_ROW: u32 = 10;

/// Whether any camera is present, without opening one (a camera in use by a call stays
/// undisturbed).
pub fn any_camera() -> bool {
    nodes().is_ok_and(|nodes| !nodes.is_empty())
}

/// Every camera present, in index order; the first is the default. Nodes that offer no picture
/// (the metadata nodes UVC drivers add beside each camera) are not cameras and are left out.
/// A camera that cannot be opened to ask for its modes is listed with its problem.
pub fn list_cameras() -> Result<Vec<CameraDevice>, CameraError> {
    let mut cameras = Vec::new();
    for (index, name) in nodes()? {
        let id = camera_id(index);
        let modes = guarded(&id, || {
            let mut camera = open_node(index, &id)?;
            let offered = camera.compatible_camera_formats().map_err(|e| classify(&id, &e))?;
            Ok(group_modes(&offers(&offered)))
        });
        match modes {
            Ok(modes) if modes.is_empty() => continue,
            Ok(modes) => cameras.push(CameraDevice { id, name, is_default: false, modes, problem: None }),
            Err(CameraError::Unsupported { .. }) => continue,
            Err(e) => cameras.push(CameraDevice {
                id,
                name,
                is_default: false,
                modes: Vec::new(),
                problem: Some(CameraProblem::from(&e)),
            }),
        }
    }
    if let Some(first) = cameras.first_mut() {
        first.is_default = true;
    }
    Ok(cameras)
}

/// The nodes nokhwa finds, by index, with their names.
fn nodes() -> Result<Vec<(u32, String)>, CameraError> {
    let found = catch_unwind(|| nokhwa::query(ApiBackend::Auto))
        .map_err(|_| CameraError::Enumerate("the camera driver gave an answer calldock cannot read".into()))?
        .map_err(|e| CameraError::Enumerate(e.to_string()))?;
    let mut nodes: Vec<(u32, String)> =
        found.iter().filter_map(|info| Some((info.index().as_index().ok()?, info.human_name()))).collect();
    nodes.sort_by_key(|(index, _)| *index);
    nodes.dedup_by_key(|(index, _)| *index);
    Ok(nodes)
}

/// Runs nokhwa code that may panic on a driver's odd answer; a panic becomes an error.
fn guarded<T>(id: &str, work: impl FnOnce() -> Result<T, CameraError>) -> Result<T, CameraError> {
    catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|_| {
        Err(CameraError::Open { id: id.to_string(), reason: "its driver gave an answer calldock cannot read".into() })
    })
}

fn open_node(index: u32, id: &str) -> Result<Camera, CameraError> {
    let any_readable = RequestedFormat::with_formats(RequestedFormatType::None, &READABLE);
    Camera::new(CameraIndex::Index(index), any_readable).map_err(|e| classify(id, &e))
}

/// What a nokhwa error means for a person. nokhwa flattens OS errors into text, so the node is
/// probed directly where that is possible (Linux), and busy is recognised by its errno.
fn classify(id: &str, error: &NokhwaError) -> CameraError {
    let text = error.to_string();
    #[cfg(target_os = "linux")]
    {
        let node = Path::new(id);
        if !node.exists() {
            return CameraError::NotFound { id: id.to_string() };
        }
        if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open(node)
            && e.kind() == std::io::ErrorKind::PermissionDenied
        {
            return CameraError::PermissionDenied { id: id.to_string(), group: node_group(node) };
        }
    }
    if is_busy(&text) {
        return CameraError::Busy { id: id.to_string(), holders: processes_holding(Path::new(id)) };
    }
    // A node whose formats include none nokhwa reads (or none at all: a metadata node).
    if let NokhwaError::GetPropertyError { property, .. } = error
        && property == "CameraFormat"
    {
        return CameraError::Unsupported { id: id.to_string() };
    }
    CameraError::Open { id: id.to_string(), reason: text }
}

/// EBUSY, as nokhwa passes it on in the text of an OS error.
fn is_busy(text: &str) -> bool {
    text.contains("(os error 16)") || text.to_lowercase().contains("resource busy")
}

/// The group allowed to open a device node (`video`), unless it is root's.
#[cfg(target_os = "linux")]
fn node_group(node: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let gid = std::fs::metadata(node).ok()?.gid();
    if gid == 0 {
        return None;
    }
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid)).ok().flatten().map(|group| group.name)
}

/// One mode a camera offers, flat: what [`choose_offer`] picks from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Offer {
    pub format: PixelFormat,
    pub resolution: Resolution,
    pub fps: u32,
}

fn offers(formats: &[CameraFormat]) -> Vec<Offer> {
    formats
        .iter()
        .filter(|f| f.frame_rate() > 0)
        .map(|f| Offer {
            format: pixel_format(f.format()),
            resolution: Resolution::new(f.width(), f.height()),
            fps: f.frame_rate(),
        })
        .collect()
}

fn pixel_format(format: FrameFormat) -> PixelFormat {
    match format {
        FrameFormat::MJPEG => PixelFormat::Mjpeg,
        FrameFormat::YUYV => PixelFormat::Yuyv,
        FrameFormat::NV12 => PixelFormat::Nv12,
        FrameFormat::GRAY => PixelFormat::Gray,
        FrameFormat::RAWRGB => PixelFormat::Rgb,
        FrameFormat::RAWBGR => PixelFormat::Bgr,
    }
}

fn frame_format(format: PixelFormat) -> FrameFormat {
    match format {
        PixelFormat::Mjpeg => FrameFormat::MJPEG,
        PixelFormat::Yuyv => FrameFormat::YUYV,
        PixelFormat::Nv12 => FrameFormat::NV12,
        PixelFormat::Gray => FrameFormat::GRAY,
        PixelFormat::Rgb => FrameFormat::RAWRGB,
        PixelFormat::Bgr => FrameFormat::RAWBGR,
    }
}

/// The offers grouped for a listing: one mode per format and size, its rates highest first;
/// modes by format, then largest size first.
pub(crate) fn group_modes(offers: &[Offer]) -> Vec<CameraMode> {
    let mut modes: Vec<CameraMode> = Vec::new();
    for offer in offers {
        let same = |m: &&mut CameraMode| {
            m.format == offer.format && (m.width, m.height) == (offer.resolution.width, offer.resolution.height)
        };
        match modes.iter_mut().find(same) {
            Some(mode) if !mode.frame_rates.contains(&offer.fps) => mode.frame_rates.push(offer.fps),
            Some(_) => {}
            None => modes.push(CameraMode {
                format: offer.format,
                width: offer.resolution.width,
                height: offer.resolution.height,
                frame_rates: vec![offer.fps],
            }),
        }
    }
    for mode in &mut modes {
        mode.frame_rates.sort_unstable_by(|a, b| b.cmp(a));
    }
    modes.sort_by(|a, b| {
        (a.format, u64::from(b.width) * u64::from(b.height)).cmp(&(b.format, u64::from(a.width) * u64::from(a.height)))
    });
    modes
}

/// The offer to run a camera at when `wanted` at `fps` is asked: the asked size if offered, else
/// the nearest (and the check will see the camera cannot deliver what was asked); at that size
/// the rate nearest `fps`, higher on a tie; then the format cheapest to read.
pub(crate) fn choose_offer(offers: &[Offer], wanted: Resolution, fps: u32) -> Option<Offer> {
    let size_distance = |r: Resolution| r.width.abs_diff(wanted.width) + r.height.abs_diff(wanted.height);
    let format_cost = |f: PixelFormat| match f {
        PixelFormat::Nv12 | PixelFormat::Gray => 0,
        PixelFormat::Yuyv => 1,
        PixelFormat::Mjpeg => 2,
        PixelFormat::Rgb | PixelFormat::Bgr => 3,
    };
    offers.iter().copied().min_by_key(|o| {
        (size_distance(o.resolution), o.fps.abs_diff(fps), std::cmp::Reverse(o.fps), format_cost(o.format))
    })
}

/// A running camera: frames arrive from its thread, timestamped by the clock when captured.
/// Dropping it stops the camera and releases the device.
pub struct CameraCapture {
    id: String,
    offer: Offer,
    frames: Option<mpsc::Receiver<Result<Frame, CameraError>>>,
    stop: Arc<AtomicBool>,
    released: mpsc::Receiver<()>,
    delivered_any: bool,
}

impl CameraCapture {
    /// Opens a camera and starts it in the mode nearest `wanted` at `fps` that it offers.
    /// `Default` is the first camera present; none at all is [`CameraError::NoCamera`].
    pub fn open(choice: &CameraChoice, wanted: Resolution, fps: u32) -> Result<CameraCapture, CameraError> {
        let candidates = candidates(choice)?;
        let (started_tx, started_rx) = mpsc::channel();
        let (frames_tx, frames_rx) = mpsc::sync_channel(QUEUED_FRAMES);
        let (released_tx, released_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::Builder::new()
            .name(format!("calldock camera {choice}"))
            .spawn(move || {
                let (mut camera, id, offer) =
                    match guarded(&choice_name(&candidates), || start(&candidates, wanted, fps)) {
                        Ok(started) => started,
                        Err(e) => {
                            let _ = started_tx.send(Err(e));
                            return;
                        }
                    };
                let _ = started_tx.send(Ok((id.clone(), offer)));
                let outcome = guarded(&id, || {
                    capture(&mut camera, &id, &frames_tx, &stopping);
                    Ok(())
                });
                if let Err(e) = outcome {
                    let _ = frames_tx.send(Err(e));
                }
                drop(camera);
                let _ = released_tx.send(());
            })
            .map_err(|e| CameraError::Open {
                id: choice.to_string(),
                reason: format!("no thread for the camera: {e}"),
            })?;
        match started_rx.recv_timeout(OPEN_TIMEOUT) {
            Ok(Ok((id, offer))) => {
                tracing::info!(camera = %id, format = %offer.format, resolution = %offer.resolution, fps = offer.fps, "camera open");
                Ok(CameraCapture {
                    id,
                    offer,
                    frames: Some(frames_rx),
                    stop,
                    released: released_rx,
                    delivered_any: false,
                })
            }
            Ok(Err(e)) => Err(e),
            Err(_) => {
                stop.store(true, Ordering::Release);
                Err(CameraError::Open {
                    id: choice.to_string(),
                    reason: format!("it did not open within {} s", OPEN_TIMEOUT.as_secs()),
                })
            }
        }
    }

    /// The camera's id (the one `default` chose, for the default).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The mode the camera runs in: its size may differ from the one asked, when not offered.
    pub fn resolution(&self) -> Resolution {
        self.offer.resolution
    }

    pub fn format(&self) -> PixelFormat {
        self.offer.format
    }

    pub fn fps(&self) -> u32 {
        self.offer.fps
    }
}

/// The camera indexes to try, in order: for `Default` every node (the first that is a camera
/// wins), for an id just that one.
fn candidates(choice: &CameraChoice) -> Result<Vec<u32>, CameraError> {
    match choice {
        CameraChoice::Default => {
            let indexes: Vec<u32> = nodes()?.into_iter().map(|(index, _)| index).collect();
            if indexes.is_empty() { Err(CameraError::NoCamera) } else { Ok(indexes) }
        }
        CameraChoice::Id(id) => {
            let not_found = || CameraError::NotFound { id: id.clone() };
            let index = camera_index(id).ok_or_else(not_found)?;
            if !nodes()?.iter().any(|(present, _)| *present == index) {
                return Err(not_found());
            }
            Ok(vec![index])
        }
    }
}

fn choice_name(candidates: &[u32]) -> String {
    candidates.first().map(|&index| camera_id(index)).unwrap_or_default()
}

/// Opens the first candidate that is a camera, sets its mode and starts its stream.
fn start(candidates: &[u32], wanted: Resolution, fps: u32) -> Result<(Camera, String, Offer), CameraError> {
    let mut last = CameraError::NoCamera;
    for &index in candidates {
        let id = camera_id(index);
        match start_one(index, &id, wanted, fps) {
            Ok((camera, offer)) => return Ok((camera, id, offer)),
            // Not a camera (a metadata node): try the next node.
            Err(e @ CameraError::Unsupported { .. }) if candidates.len() > 1 => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(if candidates.len() > 1 { CameraError::NoCamera } else { last })
}

fn start_one(index: u32, id: &str, wanted: Resolution, fps: u32) -> Result<(Camera, Offer), CameraError> {
    let mut camera = open_node(index, id)?;
    let offered = camera.compatible_camera_formats().map_err(|e| classify(id, &e))?;
    let offer = choose_offer(&offers(&offered), wanted, fps).ok_or(CameraError::Unsupported { id: id.to_string() })?;
    let format = CameraFormat::new(
        NokhwaResolution::new(offer.resolution.width, offer.resolution.height),
        frame_format(offer.format),
        offer.fps,
    );
    let wanted_format = [frame_format(offer.format)];
    let exactly = RequestedFormat::with_formats(RequestedFormatType::Exact(format), &wanted_format);
    camera.set_camera_requset(exactly).map_err(|e| classify(id, &e))?;
    camera.open_stream().map_err(|e| classify(id, &e))?;
    Ok((camera, offer))
}

/// The capture loop: frames to luma, timestamped on arrival, until the reader goes away or the
/// camera fails.
fn capture(camera: &mut Camera, id: &str, frames: &mpsc::SyncSender<Result<Frame, CameraError>>, stop: &AtomicBool) {
    let started = Instant::now();
    let mut unreadable = 0;
    while !stop.load(Ordering::Acquire) {
        let buffer = match camera.frame() {
            Ok(buffer) => buffer,
            Err(e) => {
                let _ = frames.send(Err(CameraError::Failed { id: id.to_string(), reason: e.to_string() }));
                return;
            }
        };
        let captured_at = started.elapsed();
        let claimed = Resolution::new(buffer.resolution().width(), buffer.resolution().height());
        let format = pixel_format(buffer.source_frame_format());
        match planes(format, claimed, buffer.buffer()) {
            Ok((size, luma, chroma)) => {
                unreadable = 0;
                let frame = Frame { width: size.width, height: size.height, captured_at, luma, chroma };
                if frames.send(Ok(frame)).is_err() {
                    return;
                }
            }
            Err(reason) => {
                unreadable += 1;
                tracing::debug!(camera = %id, %reason, "unreadable frame skipped");
                if unreadable >= UNREADABLE_IN_A_ROW {
                    let reason = format!("{unreadable} frames in a row could not be read ({reason})");
                    let _ = frames.send(Err(CameraError::Failed { id: id.to_string(), reason }));
                    return;
                }
            }
        }
    }
}

impl FrameSource for CameraCapture {
    /// Waits for the next frame: up to [`FIRST_FRAME_TIMEOUT`] for the first, [`FRAME_TIMEOUT`]
    /// for the others.
    fn next_frame(&mut self) -> Result<Option<Frame>, CameraError> {
        let Some(frames) = &self.frames else { return Ok(None) };
        let waited = if self.delivered_any { FRAME_TIMEOUT } else { FIRST_FRAME_TIMEOUT };
        match frames.recv_timeout(waited) {
            Ok(Ok(frame)) => {
                self.delivered_any = true;
                Ok(Some(frame))
            }
            Ok(Err(e)) => {
                self.frames = None;
                Err(e)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Err(CameraError::Stalled { id: self.id.clone(), waited }),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                self.frames = None;
                Err(CameraError::Failed { id: self.id.clone(), reason: "its capture stopped".into() })
            }
        }
    }
}

impl Drop for CameraCapture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Unblocks a thread waiting to hand over a frame; one blocked in the driver notices the
        // stop flag after its next frame, or never, if the camera hangs: then it is left behind.
        self.frames = None;
        let _ = self.released.recv_timeout(CLOSE_TIMEOUT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(format: PixelFormat, width: u32, height: u32, fps: u32) -> Offer {
        Offer { format, resolution: Resolution::new(width, height), fps }
    }

    /// A typical USB webcam: raw YUYV is slow at large sizes, MJPEG keeps 30 fps.
    fn webcam() -> Vec<Offer> {
        vec![
            offer(PixelFormat::Yuyv, 640, 480, 30),
            offer(PixelFormat::Yuyv, 640, 480, 15),
            offer(PixelFormat::Yuyv, 1280, 720, 10),
            offer(PixelFormat::Mjpeg, 640, 480, 30),
            offer(PixelFormat::Mjpeg, 1280, 720, 30),
            offer(PixelFormat::Mjpeg, 1280, 720, 15),
            offer(PixelFormat::Mjpeg, 320, 240, 30),
        ]
    }

    #[test]
    fn the_asked_size_at_the_asked_rate_wins_then_the_cheaper_format() {
        let at = |w, h| choose_offer(&webcam(), Resolution::new(w, h), 30).unwrap();
        assert_eq!(at(640, 480), offer(PixelFormat::Yuyv, 640, 480, 30));
        assert_eq!(at(1280, 720), offer(PixelFormat::Mjpeg, 1280, 720, 30));
        assert_eq!(at(320, 240), offer(PixelFormat::Mjpeg, 320, 240, 30));
    }

    #[test]
    fn a_size_not_offered_falls_back_to_the_nearest() {
        let only_vga = [offer(PixelFormat::Yuyv, 640, 480, 30), offer(PixelFormat::Yuyv, 160, 120, 30)];
        let chosen = choose_offer(&only_vga, Resolution::new(1280, 720), 30).unwrap();
        assert_eq!(chosen.resolution, Resolution::new(640, 480));
        assert_eq!(choose_offer(&[], Resolution::new(640, 480), 30), None);
    }

    #[test]
    fn rates_nearest_the_asked_one_and_higher_on_a_tie() {
        let rates = [offer(PixelFormat::Yuyv, 640, 480, 15), offer(PixelFormat::Yuyv, 640, 480, 60)];
        assert_eq!(choose_offer(&rates, Resolution::new(640, 480), 30).unwrap().fps, 15);
        let tie = [offer(PixelFormat::Yuyv, 640, 480, 20), offer(PixelFormat::Yuyv, 640, 480, 40)];
        assert_eq!(choose_offer(&tie, Resolution::new(640, 480), 30).unwrap().fps, 40);
    }

    #[test]
    fn listings_group_rates_by_format_and_size() {
        let modes = group_modes(&webcam());
        let summary: Vec<(PixelFormat, u32, u32, Vec<u32>)> =
            modes.iter().map(|m| (m.format, m.width, m.height, m.frame_rates.clone())).collect();
        assert_eq!(
            summary,
            [
                (PixelFormat::Mjpeg, 1280, 720, vec![30, 15]),
                (PixelFormat::Mjpeg, 640, 480, vec![30]),
                (PixelFormat::Mjpeg, 320, 240, vec![30]),
                (PixelFormat::Yuyv, 1280, 720, vec![10]),
                (PixelFormat::Yuyv, 640, 480, vec![30, 15]),
            ]
        );
    }

    #[test]
    fn busy_is_recognised_in_the_text_nokhwa_passes_on() {
        assert!(is_busy("Could not open device stream: Device or resource busy (os error 16)"));
        assert!(!is_busy("Could not open device 0: V4L2 Error: Permission denied (os error 13)"));
    }

    #[test]
    fn nokhwa_errors_become_errors_a_person_can_act_on() {
        // A file stands in for the node: it exists and opens, as a camera held by another
        // program does.
        let node = tempfile::NamedTempFile::new().unwrap();
        let id = node.path().to_str().unwrap();
        let busy = classify(id, &NokhwaError::OpenStreamError("Device or resource busy (os error 16)".into()));
        assert_eq!(busy, CameraError::Busy { id: id.into(), holders: vec![] });
        let metadata_node =
            NokhwaError::GetPropertyError { property: "CameraFormat".into(), error: "Failed to Fufill".into() };
        assert_eq!(classify(id, &metadata_node).code(), "camera_no_usable_format");
        let other = classify(id, &NokhwaError::ReadFrameError("Input/output error (os error 5)".into()));
        assert_eq!(other.code(), "camera_open_failed");
        assert!(other.to_string().contains("Input/output error"), "{other}");
        #[cfg(target_os = "linux")]
        {
            let gone = classify("/dev/video-unplugged", &NokhwaError::OpenDeviceError("0".into(), "gone".into()));
            assert_eq!(gone, CameraError::NotFound { id: "/dev/video-unplugged".into() });
        }
    }

    #[test]
    fn listing_and_opening_never_panic_and_say_when_there_is_no_camera() {
        let cameras = list_cameras().expect("listing works with or without cameras");
        assert!(cameras.iter().all(|c| camera_index(&c.id).is_some()), "{cameras:?}");
        assert!(cameras.iter().filter(|c| c.is_default).count() <= 1, "{cameras:?}");
        let video_nodes = std::fs::read_dir("/dev")
            .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("video")).count())
            .unwrap_or(0);
        if video_nodes == 0 {
            // This machine and CI: no camera at all.
            assert_eq!(cameras, []);
            let none = CameraCapture::open(&CameraChoice::Default, Resolution::new(640, 480), 30).err();
            assert_eq!(none, Some(CameraError::NoCamera));
        }
        let id = camera_id(997);
        let missing = CameraCapture::open(&CameraChoice::Id(id.clone()), Resolution::new(640, 480), 30).err();
        assert_eq!(missing, Some(CameraError::NotFound { id }));
    }
}
