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
use calldock_video::{EncoderSettings, Picture, Vp8Decoder, Vp8Encoder};
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
    pub frames_sent: AtomicU64,
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

    pub fn target_kbps(&self) -> u32 {
        self.target_kbps.load(Ordering::SeqCst)
    }

    pub fn paused_for_bandwidth(&self) -> bool {
        self.paused_for_bandwidth.load(Ordering::SeqCst)
    }

    pub fn want_keyframe(&self) {
        self.keyframe_wanted.store(true, Ordering::SeqCst);
    }

    /// Whether a key frame should be asked of the other side (once per need).
    pub fn take_keyframe_needed(&self) -> bool {
        self.keyframe_needed.swap(false, Ordering::SeqCst)
    }
}

/// Opens the camera's frame source. Errors say what to do.
fn open(camera: &CameraSource) -> Result<(Box<dyn FrameSource>, bool), String> {
    match camera {
        CameraSource::Pattern => Ok((Box::new(PatternSource::new(CAPTURE, CAPTURE_FPS)), true)),
        CameraSource::Y4m(path) => {
            let file = Y4mFile::open(path).map_err(|e| e.to_string())?;
            Ok((Box::new(file), true))
        }
        CameraSource::Device(choice) => {
            let capture = CameraCapture::open(choice, CAPTURE, CAPTURE_FPS).map_err(|e| e.to_string())?;
            // A camera delivers at its own pace.
            Ok((Box::new(capture), false))
        }
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

/// Starts capturing and encoding on a thread of its own. Encoded frames arrive on the returned
/// channel; a camera that fails ends the channel with the reason logged and sent as the last
/// message on `failed`.
pub fn start_sending(
    camera: CameraSource,
    settings: EncoderSettings,
    control: Arc<VideoControl>,
    failed: mpsc::Sender<String>,
) -> mpsc::Receiver<OutgoingFrame> {
    let (tx, rx) = mpsc::channel(8);
    let spawned = std::thread::Builder::new().name("calldock-video-send".into()).spawn(move || {
        if let Err(reason) = send_loop(&camera, settings, &control, &tx) {
            tracing::warn!(?camera, "video capture stopped: {reason}");
            let _ = failed.try_send(reason);
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
) -> Result<(), String> {
    let (mut source, paced) = open(camera)?;
    let mut encoder = Vp8Encoder::new(settings);
    let started = Instant::now();
    // A looped file's timestamps start again at zero: carry on from where the last loop ended.
    let mut loop_offset = Duration::ZERO;
    // The last frame read, and the last one sent.
    let (mut read_at, mut sent_at): (Option<Duration>, Option<Duration>) = (None, None);
    let frame_interval = Duration::from_secs(1) / CAPTURE_FPS;
    while !control.stop.load(Ordering::SeqCst) {
        let frame = match source.next_frame() {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                // The end of a file: play it again.
                loop_offset = read_at.map_or(Duration::ZERO, |at| at + frame_interval);
                source = open(camera)?.0;
                match source.next_frame() {
                    Ok(Some(frame)) => frame,
                    Ok(None) => return Err("the video file has no frames".into()),
                    Err(e) => return Err(e.to_string()),
                }
            }
            Err(e) => return Err(e.to_string()),
        };
        let at = loop_offset + frame.captured_at;
        read_at = Some(at);
        if paced {
            let due = started + at;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        if control.camera_off() || control.paused_for_bandwidth() {
            // When pictures go out again, the other side needs a key frame to start from.
            encoder.request_keyframe();
            continue;
        }
        // Since the last frame sent: across a pause the RTP timestamp moves by the pause, so
        // the other side's timing stays true to the clock.
        let duration = sent_at.map_or(frame_interval, |last| at.saturating_sub(last));
        sent_at = Some(at);
        let target = control.target_kbps();
        if target != 0 && target != encoder.settings().target_kbps {
            encoder.set_target_kbps(target).map_err(|e| e.to_string())?;
        }
        let Some(picture) = picture_of(&frame) else { continue };
        if control.keyframe_wanted.swap(false, Ordering::SeqCst) {
            encoder.request_keyframe();
        }
        match encoder.encode(&picture) {
            Ok(Some(encoded)) => {
                let frame = OutgoingFrame { data: Bytes::from(encoded.data), duration };
                match out.try_send(frame) {
                    Ok(()) => {
                        control.frames_sent.fetch_add(1, Ordering::Relaxed);
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
        let (failed_tx, mut failed) = mpsc::channel(1);
        let mut frames = start_sending(CameraSource::Pattern, EncoderSettings::default(), control.clone(), failed_tx);
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
        assert!(failed.try_recv().is_err(), "stopping is not a failure");
    }

    #[test]
    fn after_the_camera_was_off_the_next_frame_spans_the_gap_and_is_a_key_frame() {
        let control = Arc::new(VideoControl::default());
        let (failed_tx, _failed) = mpsc::channel(1);
        let mut frames = start_sending(CameraSource::Pattern, EncoderSettings::default(), control.clone(), failed_tx);
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
        let (failed_tx, mut failed) = mpsc::channel(1);
        let mut frames = start_sending(
            CameraSource::Y4m("/nonexistent/camera.y4m".into()),
            EncoderSettings::default(),
            control,
            failed_tx,
        );
        assert!(frames.blocking_recv().is_none());
        let reason = failed.blocking_recv().unwrap();
        assert!(reason.contains("camera.y4m"), "{reason}");
    }
}
