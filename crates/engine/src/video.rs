//! A video call's pictures (SPEC §5): the camera's frames encoded to VP8 for the peer, and the
//! other side's frames decoded for the UI.
//!
//! Encoding and decoding take milliseconds of CPU per frame, so each runs on a thread of its
//! own, never on the tokio workers that carry the call's audio. The session moves encoded
//! frames between these threads and the peer; [`VideoControl`] carries the flags and counters
//! they share.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use calldock_devices::camera::{CameraCapture, CameraSource, Frame, FrameSource, PatternSource, Resolution, Y4mFile};
use calldock_peer::VideoFrame;
use calldock_video::scale::{Scaler, fit_within};
use calldock_video::{EncoderSettings, Picture, Vp8Decoder, Vp8Encoder};

use crate::video_rate::SendFormat;
use tokio::sync::mpsc;

/// The size and rate a call asks of a camera: what Chromium sends by default on a desktop.
pub const CAPTURE: Resolution = Resolution::new(640, 480);
pub const CAPTURE_FPS: u32 = 30;

/// One encoded frame on its way to the peer.
#[derive(Debug)]
pub struct OutgoingFrame {
    pub data: Bytes,
    /// Since the frame before it (moves the RTP timestamp).
    pub duration: Duration,
}

/// What the session and the video threads share.
#[derive(Debug, Default)]
pub struct VideoControl {
    stop: AtomicBool,
    /// Camera off: nothing is captured or sent (the other side sees the last picture freeze).
    camera_off: AtomicBool,
    /// The other side asked for a key frame.
    keyframe_wanted: AtomicBool,
    /// The encoder's target, kbit/s (0: its own default), and whether the path is too narrow
    /// for video at all (crate::video_rate).
    target_kbps: AtomicU32,
    paused_for_bandwidth: AtomicBool,
    /// What we received stopped decoding: ask the other side for a key frame.
    keyframe_needed: AtomicBool,
    /// Another camera, asked for mid-call.
    switch_to: std::sync::Mutex<Option<CameraSource>>,
    /// The largest picture and the frame rate sent now (crate::video_rate).
    format: std::sync::Mutex<SendFormat>,
    pub frames_sent: AtomicU64,
    /// The last picture sent's size (0 before the first).
    pub sent_width: AtomicU32,
    pub sent_height: AtomicU32,
    pub frames_received: AtomicU64,
    pub undecodable: AtomicU64,
    /// The last decoded picture's size (0 before the first).
    pub received_width: AtomicU32,
    pub received_height: AtomicU32,
}

impl VideoControl {
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn set_camera_off(&self, off: bool) {
        self.camera_off.store(off, Ordering::SeqCst);
    }

    pub fn camera_off(&self) -> bool {
        self.camera_off.load(Ordering::SeqCst)
    }

    /// What the bandwidth estimate leaves for video.
    pub fn set_rate(&self, rate: crate::video_rate::VideoRate) {
        self.target_kbps.store(rate.target_kbps, Ordering::SeqCst);
        self.paused_for_bandwidth.store(rate.paused, Ordering::SeqCst);
    }

    /// What the encoder's target leaves room for: a smaller picture, fewer frames.
    pub fn set_format(&self, format: SendFormat) {
        *self.format.lock().unwrap_or_else(|p| p.into_inner()) = format;
    }

    pub fn format(&self) -> SendFormat {
        *self.format.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn target_kbps(&self) -> u32 {
        self.target_kbps.load(Ordering::SeqCst)
    }

    pub fn paused_for_bandwidth(&self) -> bool {
        self.paused_for_bandwidth.load(Ordering::SeqCst)
    }

    pub fn want_keyframe(&self) {
        self.keyframe_wanted.store(true, Ordering::SeqCst);
    }

    /// Switches the camera thread to another camera at its next frame.
    pub fn switch_camera(&self, camera: CameraSource) {
        *self.switch_to.lock().unwrap_or_else(|p| p.into_inner()) = Some(camera);
    }

    fn take_switch(&self) -> Option<CameraSource> {
        self.switch_to.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Whether a key frame should be asked of the other side (once per need).
    pub fn take_keyframe_needed(&self) -> bool {
        self.keyframe_needed.swap(false, Ordering::SeqCst)
    }
}

/// Opens the camera's frame source, and whether its frames must be paced to their timestamps
/// (a file or the pattern hands them out at once; a camera at its own pace). Errors say what to do.
fn open(camera: &CameraSource) -> Result<(Box<dyn FrameSource>, bool), String> {
    match camera {
        CameraSource::Pattern => Ok((Box::new(PatternSource::new(CAPTURE, CAPTURE_FPS)), true)),
        CameraSource::Y4m(path) => {
            let file = Y4mFile::open(path).map_err(|e| e.to_string())?;
            Ok((Box::new(file), true))
        }
        CameraSource::Device(choice) => {
            let capture = CameraCapture::open(choice, CAPTURE, CAPTURE_FPS).map_err(|e| e.to_string())?;
            Ok((Box::new(capture), false))
        }
    }
}

/// The camera's pictures, each with its time since the reader started: files and the pattern
/// paced to their own clock and played again at their end; the device closed while nobody
/// needs it ([`CameraReader::close`]: its light goes off), and opened again on the next read.
struct CameraReader {
    camera: CameraSource,
    source: Option<(Box<dyn FrameSource>, bool)>,
    started: Instant,
    /// When the current source was opened, on the clock and on the reader's timeline.
    opened_at: Instant,
    base: Duration,
    /// A looped file's timestamps start again at zero: carry on from where the last loop ended.
    loop_offset: Duration,
    /// The last frame read, since the source opened.
    last: Option<Duration>,
}

impl CameraReader {
    fn open(camera: CameraSource) -> Result<CameraReader, String> {
        let source = open(&camera)?;
        let now = Instant::now();
        Ok(CameraReader {
            camera,
            source: Some(source),
            started: now,
            opened_at: now,
            base: Duration::ZERO,
            loop_offset: Duration::ZERO,
            last: None,
        })
    }

    /// Another camera from now on. When it cannot be opened, the current one stays.
    fn switch(&mut self, camera: CameraSource) -> Result<(), String> {
        let source = open(&camera)?;
        self.camera = camera;
        self.started_source(source);
        Ok(())
    }

    fn close(&mut self) {
        self.source = None;
    }

    fn started_source(&mut self, source: (Box<dyn FrameSource>, bool)) {
        self.source = Some(source);
        self.opened_at = Instant::now();
        self.base = self.started.elapsed();
        self.loop_offset = Duration::ZERO;
        self.last = None;
    }

    /// The next picture (`None` for a frame that makes none: too small), and when it was
    /// captured on the reader's timeline.
    fn next(&mut self) -> Result<(Option<Picture>, Duration), String> {
        if self.source.is_none() {
            let source = open(&self.camera)?;
            self.started_source(source);
        }
        let (source, paced) = self.source.as_mut().expect("opened above");
        let frame = match source.next_frame().map_err(|e| e.to_string())? {
            Some(frame) => frame,
            None => {
                // The end of a file: play it again.
                self.loop_offset = self.last.map_or(Duration::ZERO, |at| at + Duration::from_secs(1) / CAPTURE_FPS);
                *source = open(&self.camera)?.0;
                match source.next_frame().map_err(|e| e.to_string())? {
                    Some(frame) => frame,
                    None => return Err("the video file has no frames".into()),
                }
            }
        };
        let at = self.loop_offset + frame.captured_at;
        self.last = Some(at);
        if *paced {
            let due = self.opened_at + at;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        Ok((picture_of(&frame), self.base + at))
    }
}

/// The even-sided picture of a frame (an odd last row or column is dropped), in colour when the
/// source has it, grey otherwise.
fn picture_of(frame: &Frame) -> Option<Picture> {
    let (width, height) = (frame.width & !1, frame.height & !1);
    let (w, h) = (width as usize, height as usize);
    // One copy per frame, straight into the picture: rows cropped to the even size.
    let mut data = Vec::with_capacity(Picture::len_for(width, height));
    let mut append = |plane: &[u8], plane_width: usize, w: usize, h: usize| -> Option<()> {
        if plane_width == 0 || plane.len() < plane_width * h {
            return None;
        }
        plane.chunks_exact(plane_width).take(h).for_each(|row| data.extend_from_slice(&row[..w]));
        Some(())
    };
    append(&frame.luma, frame.width as usize, w, h)?;
    match &frame.chroma {
        Some(chroma) => {
            let (chroma_width, _) = calldock_devices::camera::Chroma::size_for(frame.width, frame.height);
            append(&chroma.u, chroma_width, w / 2, h / 2)?;
            append(&chroma.v, chroma_width, w / 2, h / 2)?;
        }
        // Grey: neutral chroma.
        None => data.resize(Picture::len_for(width, height), 128),
    }
    Picture::from_i420(width, height, data).ok()
}

/// How large the self view and the preview are at most: a thumbnail beside (or before) the
/// call, which costs the window a sixteenth of the copying and conversion of a full picture.
pub const SELF_VIEW: Resolution = Resolution::new(320, 240);
/// How often the self view and the preview change at most.
pub const SELF_VIEW_FPS: u32 = 15;

/// Hands out thumbnails of the camera's pictures at most [`SELF_VIEW_FPS`] a second.
struct SelfView {
    deliver: Box<dyn Fn(Picture) + Send>,
    scaler: Scaler,
    last: Option<Duration>,
}

impl SelfView {
    fn new(deliver: Box<dyn Fn(Picture) + Send>) -> SelfView {
        SelfView { deliver, scaler: Scaler::new(), last: None }
    }

    fn show(&mut self, picture: &Picture, at: Duration) {
        // A little under the interval, so a 30 fps camera's jitter does not halve the rate.
        let interval = Duration::from_secs(1) / SELF_VIEW_FPS - Duration::from_millis(5);
        if self.last.is_some_and(|last| at.saturating_sub(last) < interval) {
            return;
        }
        self.last = Some(at);
        match self.scaler.fit(picture, SELF_VIEW.width, SELF_VIEW.height) {
            Ok(thumbnail) => (self.deliver)(thumbnail),
            Err(e) => tracing::debug!("no self view of this picture: {e}"),
        }
    }
}

/// What the camera thread tells the session besides its frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraReport {
    /// The camera stopped (unplugged, taken, a file that went bad); the thread has ended.
    Stopped(String),
    /// A switch to another camera failed: the current one goes on.
    SwitchRefused(String),
}

/// Starts capturing and encoding on a thread of its own. Encoded frames arrive on the returned
/// channel; thumbnails of what is sent go to `self_view`. A camera that fails ends the channel,
/// with the reason logged and sent on `reports`.
pub fn start_sending(
    camera: CameraSource,
    settings: EncoderSettings,
    control: Arc<VideoControl>,
    reports: mpsc::Sender<CameraReport>,
    self_view: Option<Box<dyn Fn(Picture) + Send>>,
) -> mpsc::Receiver<OutgoingFrame> {
    let (tx, rx) = mpsc::channel(8);
    let spawned = std::thread::Builder::new().name("calldock-video-send".into()).spawn(move || {
        let mut self_view = self_view.map(SelfView::new);
        if let Err(reason) = send_loop(&camera, settings, &control, &tx, &reports, self_view.as_mut()) {
            tracing::warn!(?camera, "video capture stopped: {reason}");
            let _ = reports.try_send(CameraReport::Stopped(reason));
        }
    });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the video thread: {e}");
    }
    rx
}

fn send_loop(
    camera: &CameraSource,
    settings: EncoderSettings,
    control: &VideoControl,
    out: &mpsc::Sender<OutgoingFrame>,
    reports: &mpsc::Sender<CameraReport>,
    mut self_view: Option<&mut SelfView>,
) -> Result<(), String> {
    let mut reader = CameraReader::open(camera.clone())?;
    let mut encoder = Vp8Encoder::new(settings);
    let mut scaler = Scaler::new();
    // The last frame handed to the peer, and the last one given to the encoder (which may drop
    // it, or find the peer's queue full).
    let mut sent_at: Option<Duration> = None;
    let mut encoded_at: Option<Duration> = None;
    let frame_interval = Duration::from_secs(1) / CAPTURE_FPS;
    while !control.stop.load(Ordering::SeqCst) {
        if let Some(next) = control.take_switch() {
            match reader.switch(next.clone()) {
                Ok(()) => {
                    tracing::info!(camera = %next, "camera switched");
                    encoder.request_keyframe();
                }
                Err(reason) => {
                    tracing::warn!(camera = %next, "camera not switched: {reason}");
                    let _ = reports.try_send(CameraReport::SwitchRefused(reason));
                }
            }
        }
        if control.camera_off() {
            // Camera off means off: the device is closed (its light goes out) until it is on
            // again, and then the other side needs a key frame to start from.
            reader.close();
            encoder.request_keyframe();
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let (picture, at) = reader.next()?;
        let Some(picture) = picture else { continue };
        if let Some(view) = self_view.as_deref_mut() {
            view.show(&picture, at);
        }
        if control.paused_for_bandwidth() {
            encoder.request_keyframe();
            continue;
        }
        let format = control.format();
        // A lower frame rate: a frame sooner than its interval after the last one sent waits
        // for the next (with half a capture interval of slack: a camera's spacing wobbles).
        if format.fps < CAPTURE_FPS
            && let Some(last) = encoded_at
            && at.saturating_sub(last) + frame_interval / 2 < Duration::from_secs(1) / format.fps.max(1)
        {
            continue;
        }
        // A smaller picture: the encoder starts again at its size, with a key frame.
        let (width, height) = fit_within(picture.width(), picture.height(), format.max_width, format.max_height);
        let picture = if (width, height) == (picture.width(), picture.height()) {
            picture
        } else {
            scaler.scale(&picture, width, height).map_err(|e| e.to_string())?
        };
        // Since the last frame sent: across a pause, or frames the rate control dropped, the
        // RTP timestamp moves by the time they took, so the other side's timing stays true to
        // the clock.
        let duration = sent_at.map_or(frame_interval, |last| at.saturating_sub(last));
        encoded_at = Some(at);
        let target = control.target_kbps();
        if target != 0 && target != encoder.settings().target_kbps {
            encoder.set_target_kbps(target).map_err(|e| e.to_string())?;
        }
        if control.keyframe_wanted.swap(false, Ordering::SeqCst) {
            encoder.request_keyframe();
        }
        match encoder.encode_at(&picture, format.fps) {
            Ok(Some(encoded)) => {
                let frame = OutgoingFrame { data: Bytes::from(encoded.data), duration };
                match out.try_send(frame) {
                    Ok(()) => {
                        sent_at = Some(at);
                        control.frames_sent.fetch_add(1, Ordering::Relaxed);
                        control.sent_width.store(width, Ordering::Relaxed);
                        control.sent_height.store(height, Ordering::Relaxed);
                    }
                    // The session is behind: this frame is dropped, and the next ones depend
                    // on it, so the next is a key frame.
                    Err(mpsc::error::TrySendError::Full(_)) => encoder.request_keyframe(),
                    Err(mpsc::error::TrySendError::Closed(_)) => return Ok(()),
                }
            }
            Ok(None) => {} // dropped by the rate control
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

/// The camera outside a call: the pre-join screen's preview, thumbnails at most
/// [`SELF_VIEW`] and [`SELF_VIEW_FPS`], on a thread of its own. Dropping it stops it and
/// closes the camera.
pub struct CameraPreview {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CameraPreview {
    /// Opens `camera` now (an error says why it cannot be) and delivers its thumbnails until
    /// dropped. A camera that fails later calls `failed` with the reason, once.
    pub fn start(
        camera: CameraSource,
        deliver: impl Fn(Picture) + Send + 'static,
        failed: impl FnOnce(String) + Send + 'static,
    ) -> Result<CameraPreview, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        // The source is opened on the thread that reads it (a camera handle stays on its
        // thread); whether it opened comes back before `start` returns.
        let (opened_tx, opened) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("calldock-camera-preview".into())
            .spawn(move || {
                let mut reader = match CameraReader::open(camera.clone()) {
                    Ok(reader) => {
                        let _ = opened_tx.send(Ok(()));
                        reader
                    }
                    Err(reason) => {
                        let _ = opened_tx.send(Err(reason));
                        return;
                    }
                };
                let mut view = SelfView::new(Box::new(deliver));
                while !stopping.load(Ordering::SeqCst) {
                    match reader.next() {
                        Ok((Some(picture), at)) => view.show(&picture, at),
                        Ok((None, _)) => {}
                        Err(reason) => {
                            tracing::warn!(?camera, "camera preview stopped: {reason}");
                            failed(reason);
                            return;
                        }
                    }
                }
            })
            .map_err(|e| format!("cannot start the camera preview: {e}"))?;
        match opened.recv() {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(reason),
            Err(_) => return Err("the camera preview stopped as it started".into()),
        }
        Ok(CameraPreview { stop, thread: Some(thread) })
    }
}

impl Drop for CameraPreview {
    /// Waits for the thread to let go of the camera (at most one frame), so the same camera
    /// can be opened again at once, by a call or another preview.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The decoding side: frames in, pictures out through `deliver`.
pub struct VideoReceiver {
    frames: std::sync::mpsc::SyncSender<VideoFrame>,
}

impl VideoReceiver {
    pub fn start(control: Arc<VideoControl>, deliver: impl Fn(Picture) + Send + 'static) -> Option<VideoReceiver> {
        let (frames, inbox) = std::sync::mpsc::sync_channel::<VideoFrame>(16);
        let spawned = std::thread::Builder::new().name("calldock-video-receive".into()).spawn(move || {
            let mut decoder = match Vp8Decoder::new() {
                Ok(decoder) => decoder,
                Err(e) => {
                    tracing::warn!("no video decoder: {e}");
                    return;
                }
            };
            // Until a key frame arrives (at the start, and after a loss), delta frames only make
            // the picture worse, or do not decode at all.
            let mut broken = true;
            for frame in inbox {
                if control.stop.load(Ordering::SeqCst) {
                    break;
                }
                let keyframe = calldock_video::is_keyframe(&frame.data);
                if frame.after_loss {
                    broken = true;
                }
                if broken && !keyframe {
                    control.keyframe_needed.store(true, Ordering::SeqCst);
                    continue;
                }
                match decoder.decode(&frame.data) {
                    Ok(Some(picture)) => {
                        broken = false;
                        control.frames_received.fetch_add(1, Ordering::Relaxed);
                        control.received_width.store(picture.width(), Ordering::Relaxed);
                        control.received_height.store(picture.height(), Ordering::Relaxed);
                        deliver(picture);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::debug!(code = e.code(), "a received video frame does not decode: {e}");
                        control.undecodable.fetch_add(1, Ordering::Relaxed);
                        broken = true;
                        control.keyframe_needed.store(true, Ordering::SeqCst);
                    }
                }
            }
        });
        match spawned {
            Ok(_) => Some(VideoReceiver { frames }),
            Err(e) => {
                tracing::warn!("cannot start the video decoder thread: {e}");
                None
            }
        }
    }

    /// Hands a received frame to the decoder; when it is behind, the frame is dropped and a
    /// key frame asked for.
    pub fn push(&self, frame: VideoFrame, control: &VideoControl) {
        if self.frames.try_send(frame).is_err() {
            control.keyframe_needed.store(true, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_sized_frames_lose_their_last_row_and_column() {
        let frame = Frame { width: 5, height: 3, captured_at: Duration::ZERO, luma: (0..15).collect(), chroma: None };
        let picture = picture_of(&frame).unwrap();
        assert_eq!((picture.width(), picture.height()), (4, 2));
        assert_eq!(picture.luma(), &[0, 1, 2, 3, 5, 6, 7, 8]);
        assert_eq!(picture.chroma(), (&[128u8, 128][..], &[128u8, 128][..]), "no colour: grey");
        // With colour: chroma planes of 3×2, cropped to 2×1 with the picture.
        let chroma = calldock_devices::camera::Chroma { u: vec![1, 2, 3, 4, 5, 6], v: vec![7, 8, 9, 10, 11, 12] };
        let picture = picture_of(&Frame { chroma: Some(chroma), ..frame }).unwrap();
        assert_eq!(picture.chroma(), (&[1u8, 2][..], &[7u8, 8][..]));
    }

    #[test]
    fn the_test_pattern_is_encoded_at_its_own_pace_until_stopped() {
        let control = Arc::new(VideoControl::default());
        let (reports_tx, mut reports) = mpsc::channel(1);
        let mut frames =
            start_sending(CameraSource::Pattern, EncoderSettings::default(), control.clone(), reports_tx, None);
        let started = Instant::now();
        let mut durations = Vec::new();
        while durations.len() < 15 {
            let frame = frames.blocking_recv().expect("frames keep coming");
            durations.push(frame.duration);
        }
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(400), "15 frames at 30 per second took {took:?}");
        assert!(durations.iter().all(|d| (Duration::from_millis(33)..=Duration::from_millis(34)).contains(d)));
        control.stop();
        while frames.blocking_recv().is_some() {}
        assert!(reports.try_recv().is_err(), "stopping is not a failure");
    }

    #[test]
    fn after_the_camera_was_off_the_next_frame_spans_the_gap_and_is_a_key_frame() {
        let control = Arc::new(VideoControl::default());
        let (reports_tx, _reports) = mpsc::channel(1);
        let mut frames =
            start_sending(CameraSource::Pattern, EncoderSettings::default(), control.clone(), reports_tx, None);
        for _ in 0..3 {
            frames.blocking_recv().expect("frames keep coming");
        }
        control.set_camera_off(true);
        // Whatever was queued before the camera went off.
        std::thread::sleep(Duration::from_millis(100));
        while frames.try_recv().is_ok() {}
        std::thread::sleep(Duration::from_millis(300));
        control.set_camera_off(false);
        let next = frames.blocking_recv().expect("frames come again");
        assert!(next.duration >= Duration::from_millis(300), "the RTP clock moves by the pause: {:?}", next.duration);
        assert!(calldock_video::is_keyframe(&next.data), "the first frame after a pause is a key frame");
        control.stop();
    }

    #[test]
    fn a_missing_video_file_is_a_failure_with_its_reason() {
        let control = Arc::new(VideoControl::default());
        let (reports_tx, mut reports) = mpsc::channel(1);
        let mut frames = start_sending(
            CameraSource::Y4m("/nonexistent/camera.y4m".into()),
            EncoderSettings::default(),
            control,
            reports_tx,
            None,
        );
        assert!(frames.blocking_recv().is_none());
        let Some(CameraReport::Stopped(reason)) = reports.blocking_recv() else { panic!("a failure report") };
        assert!(reason.contains("camera.y4m"), "{reason}");
    }

    #[test]
    fn a_smaller_send_format_scales_the_pictures_and_sends_fewer_of_them_from_a_key_frame() {
        let control = Arc::new(VideoControl::default());
        let (reports_tx, _reports) = mpsc::channel(1);
        let mut frames =
            start_sending(CameraSource::Pattern, EncoderSettings::default(), control.clone(), reports_tx, None);
        let mut decoder = Vp8Decoder::new().unwrap();
        // The next `count` frames: size, whether a key frame, spacing.
        let mut next = |count: usize| {
            (0..count)
                .filter_map(|_| {
                    let frame = frames.blocking_recv().expect("frames keep coming");
                    let key = calldock_video::is_keyframe(&frame.data);
                    let picture = decoder.decode(&frame.data).expect("decodes")?;
                    Some(((picture.width(), picture.height()), key, frame.duration))
                })
                .collect::<Vec<_>>()
        };
        let full = next(5);
        assert!(full.iter().all(|(size, _, _)| *size == (640, 480)), "{full:?}");
        assert_eq!((control.sent_width.load(Ordering::SeqCst), control.sent_height.load(Ordering::SeqCst)), (640, 480));

        control.set_format(SendFormat::new(320, 240, 15));
        // A frame or two may have been encoded before the change was seen.
        let small: Vec<_> = next(12).into_iter().skip_while(|(size, _, _)| *size == (640, 480)).collect();
        assert!(small.len() >= 8, "{small:?}");
        assert!(small[0].1, "the first smaller picture is a key frame");
        assert!(small[1..].iter().all(|(size, key, _)| *size == (320, 240) && !key), "{small:?}");
        // Every other camera frame: two capture intervals apart (the first spans the change).
        for (_, _, spacing) in &small[1..] {
            assert!((Duration::from_millis(66)..=Duration::from_millis(67)).contains(spacing), "{small:?}");
        }
        assert_eq!((control.sent_width.load(Ordering::SeqCst), control.sent_height.load(Ordering::SeqCst)), (320, 240));

        control.set_format(SendFormat::default());
        let back: Vec<_> = next(8).into_iter().skip_while(|(size, _, _)| *size == (320, 240)).collect();
        assert!(back.len() >= 4 && back[0].1 && back.iter().all(|(size, _, _)| *size == (640, 480)), "{back:?}");
        control.stop();
        while frames.blocking_recv().is_some() {}
    }

    #[test]
    fn frames_not_sent_still_move_the_rtp_clock() {
        let dir = tempfile::tempdir().unwrap();
        let camera = numbered_y4m(dir.path(), "numbered.y4m", 0, 120);
        let control = Arc::new(VideoControl::default());
        let (reports_tx, _reports) = mpsc::channel(1);
        let mut frames = start_sending(camera, EncoderSettings::default(), control.clone(), reports_tx, None);
        // The session falls behind for a while: its queue fills and frames are not sent (as
        // when the rate control drops them).
        let first = frames.blocking_recv().expect("a first frame");
        std::thread::sleep(Duration::from_millis(800));
        let mut decoder = Vp8Decoder::new().unwrap();
        let mut previous = decoder.decode(&first.data).unwrap().map(|p| calldock_video::test_pattern::counter(&p));
        let mut gaps = 0;
        while previous.is_none_or(|n| n < 60) {
            let frame = frames.blocking_recv().expect("frames keep coming");
            let Some(picture) = decoder.decode(&frame.data).expect("decodes") else { continue };
            let number = calldock_video::test_pattern::counter(&picture);
            if let Some(before) = previous {
                // The frame's RTP duration spans the frames not sent since the last one that was.
                let spans = frame.duration.as_secs_f64() * f64::from(CAPTURE_FPS);
                let gap = f64::from(number) - f64::from(before);
                assert!((spans - gap).abs() < 0.1, "{before} → {number} in {:?}", frame.duration);
                gaps += usize::from(gap > 1.0);
            }
            previous = Some(number);
        }
        assert!(gaps > 0, "frames were left out while the queue was full");
        control.stop();
        while frames.blocking_recv().is_some() {}
    }

    /// A 640×480 30 fps Y4M file of `calldock_video::test_pattern` frames `first..first + count`.
    fn numbered_y4m(dir: &std::path::Path, name: &str, first: u32, count: u32) -> CameraSource {
        let path = dir.join(name);
        let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut y4m = y4m::encode(640, 480, y4m::Ratio::new(30, 1)).write_header(file).unwrap();
        for index in first..first + count {
            let picture = calldock_video::test_pattern::pattern(640, 480, index);
            let (u, v) = picture.chroma();
            y4m.write_frame(&y4m::Frame::new([picture.luma(), u, v], None)).unwrap();
        }
        CameraSource::Y4m(path)
    }

    /// The number of each sent frame, decoded as the other side would, and whether it was a
    /// key frame.
    struct Watcher {
        frames: mpsc::Receiver<OutgoingFrame>,
        decoder: Vp8Decoder,
    }

    impl Watcher {
        fn next(&mut self) -> (u32, bool) {
            loop {
                let frame = self.frames.blocking_recv().expect("frames keep coming");
                let key = calldock_video::is_keyframe(&frame.data);
                if let Some(picture) = self.decoder.decode(&frame.data).expect("decodes") {
                    return (calldock_video::test_pattern::counter(&picture), key);
                }
            }
        }
    }

    #[test]
    fn a_camera_switch_mid_stream_changes_the_picture_at_a_key_frame_and_a_bad_one_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let first = numbered_y4m(dir.path(), "first.y4m", 0, 60);
        let second = numbered_y4m(dir.path(), "second.y4m", 200, 30);
        let control = Arc::new(VideoControl::default());
        let (reports_tx, mut reports) = mpsc::channel(4);
        let frames = start_sending(first, EncoderSettings::default(), control.clone(), reports_tx, None);
        let mut watch = Watcher { frames, decoder: Vp8Decoder::new().unwrap() };
        assert_eq!(watch.next(), (0, true));
        assert_eq!(watch.next(), (1, false));

        // A camera that cannot be opened: refused, and the pictures go on from the first.
        control.switch_camera(CameraSource::Y4m(dir.path().join("missing.y4m")));
        let Some(CameraReport::SwitchRefused(reason)) = reports.blocking_recv() else { panic!("a refusal") };
        assert!(reason.contains("missing.y4m"), "{reason}");
        let (number, _) = watch.next();
        assert!((2..40).contains(&number), "still the first camera: {number}");

        control.switch_camera(second);
        let switched = loop {
            let (number, key) = watch.next();
            if number >= 200 {
                break (number, key);
            }
            assert!(number < 60, "the first camera's until the switch: {number}");
        };
        assert_eq!(switched, (200, true), "the second camera from its first picture, as a key frame");
        assert_eq!(watch.next(), (201, false));
        assert!(reports.try_recv().is_err(), "a switch that worked is no news");
        control.stop();
    }

    #[test]
    fn while_the_camera_is_off_it_is_closed_and_it_opens_again_when_on() {
        let dir = tempfile::tempdir().unwrap();
        let camera = numbered_y4m(dir.path(), "camera.y4m", 0, 90);
        let control = Arc::new(VideoControl::default());
        let (reports_tx, mut reports) = mpsc::channel(4);
        let frames = start_sending(camera.clone(), EncoderSettings::default(), control.clone(), reports_tx, None);
        let mut watch = Watcher { frames, decoder: Vp8Decoder::new().unwrap() };
        for expected in 0..5 {
            assert_eq!(watch.next().0, expected);
        }
        control.set_camera_off(true);
        std::thread::sleep(Duration::from_millis(100));
        while watch.frames.try_recv().is_ok() {}
        // Closed: a file can be replaced (a device: its light is off, another program may take it).
        let CameraSource::Y4m(path) = &camera else { unreachable!() };
        std::fs::remove_file(path).unwrap();
        numbered_y4m(dir.path(), "camera.y4m", 100, 30);
        control.set_camera_off(false);
        assert_eq!(watch.next(), (100, true), "opened again, from its start, with a key frame");
        assert!(reports.try_recv().is_err());
        control.stop();
    }

    #[test]
    fn the_self_view_gets_thumbnails_of_what_is_sent_while_video_is_paused_but_not_while_off() {
        let control = Arc::new(VideoControl::default());
        let (reports_tx, _reports) = mpsc::channel(4);
        let (view_tx, view) = std::sync::mpsc::channel::<Picture>();
        let sink: Box<dyn Fn(Picture) + Send> = Box::new(move |picture| {
            let _ = view_tx.send(picture);
        });
        let mut frames =
            start_sending(CameraSource::Pattern, EncoderSettings::default(), control.clone(), reports_tx, Some(sink));
        std::thread::spawn(move || while frames.blocking_recv().is_some() {});
        let count_for = |span: Duration| {
            let until = Instant::now() + span;
            let mut pictures = Vec::new();
            while let Ok(picture) = view.recv_timeout(until.saturating_duration_since(Instant::now())) {
                pictures.push(picture);
            }
            pictures
        };
        count_for(Duration::from_millis(200));
        let second = count_for(Duration::from_secs(1));
        assert!((10..=16).contains(&second.len()), "{} thumbnails in a second", second.len());
        assert!(second.iter().all(|p| (p.width(), p.height()) == (320, 240)), "{:?}", second[0]);

        control.set_rate(crate::video_rate::VideoRate { target_kbps: 0, paused: true });
        count_for(Duration::from_millis(100));
        let paused = count_for(Duration::from_millis(500));
        assert!(paused.len() >= 4, "the self view goes on while video is paused: {}", paused.len());

        control.set_camera_off(true);
        count_for(Duration::from_millis(100));
        assert!(count_for(Duration::from_millis(500)).is_empty(), "camera off: nothing to show");
        control.stop();
    }

    #[test]
    fn the_preview_shows_thumbnails_until_dropped() {
        let (view_tx, view) = std::sync::mpsc::channel::<Picture>();
        let preview = CameraPreview::start(
            CameraSource::Pattern,
            move |picture| {
                let _ = view_tx.send(picture);
            },
            |reason| panic!("the pattern does not fail: {reason}"),
        )
        .expect("the pattern opens");
        let started = Instant::now();
        let pictures: Vec<Picture> = (0..15).map(|_| view.recv_timeout(Duration::from_secs(2)).unwrap()).collect();
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(850), "15 thumbnails at 15 a second took {took:?}");
        assert!(pictures.iter().all(|p| (p.width(), p.height()) == (320, 240)));
        drop(preview);
        while view.try_recv().is_ok() {}
        assert!(view.recv_timeout(Duration::from_millis(300)).is_err(), "stopped with its drop");
    }

    #[test]
    fn a_preview_that_cannot_open_its_camera_says_why_at_once() {
        let error = CameraPreview::start(CameraSource::Y4m("/nonexistent/face.y4m".into()), |_| {}, |_| {})
            .err()
            .expect("no such file");
        assert!(error.contains("face.y4m"), "{error}");
    }
}
