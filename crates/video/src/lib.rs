//! Video between cameras and RTP (SPEC §5): I420 [`Picture`]s, and VP8 through libvpx
//! ([`Vp8Encoder`], realtime, speed 6, as Chromium encodes VP8 on desktop; [`Vp8Decoder`]).
//!
//! No devices, sockets, threads or clocks here: callers bring pictures and time. Bitstreams
//! come from the network, so decoding one that is corrupt, truncated or of absurd size is an
//! error, never a panic.

use std::num::NonZero;

use vpx_rs::enc::{CodecId as EncodeCodec, KeyFrameMode};
use vpx_rs::{
    DecodedImageData, Decoder, DecoderConfig, Encoder, EncoderConfig, EncoderFrameFlags, EncodingDeadline, ImageFormat,
    Packet, RateControl, Timebase, YUVImageData,
};

/// The largest picture side accepted from a camera or a decoder: 4K. A bitstream that claims
/// more is treated as corrupt rather than allocated for.
pub const MAX_SIDE: u32 = 4096;

/// The lowest target bitrate the encoder is given, kbit/s: below it VP8 at any size is mush.
pub const MIN_KBPS: u32 = 30;

/// RTP's clock for video: 90 kHz.
pub const RTP_CLOCK_RATE: u32 = 90_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VideoError {
    #[error("a {width}×{height} picture cannot be encoded: sides must be even and at most {MAX_SIDE}")]
    BadSize { width: u32, height: u32 },
    #[error("picture data is {got} bytes, a {width}×{height} picture needs {expected}")]
    BadLength { width: u32, height: u32, expected: usize, got: usize },
    #[error("the VP8 encoder failed: {0}")]
    Encoder(String),
    #[error("the VP8 decoder cannot start: {0}")]
    DecoderSetup(String),
    /// A frame from the other side that does not decode: ask for a key frame.
    #[error("a received video frame does not decode: {0}")]
    Corrupt(String),
    #[error("a picture cannot be scaled: {0}")]
    Scaling(String),
}

impl VideoError {
    /// A short stable code for logs and the UI.
    pub fn code(&self) -> &'static str {
        match self {
            VideoError::BadSize { .. } | VideoError::BadLength { .. } => "video_bad_picture",
            VideoError::Encoder(_) => "video_encoder",
            VideoError::DecoderSetup(_) => "video_decoder",
            VideoError::Corrupt(_) => "video_corrupt_frame",
            VideoError::Scaling(_) => "video_scaling",
        }
    }
}

/// One picture in I420 (planar 4:2:0, BT.601 limited range, as cameras and VP8 use): the
/// luma plane, then the two chroma planes at half resolution each way, packed without padding.
#[derive(Clone, PartialEq, Eq)]
pub struct Picture {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl std::fmt::Debug for Picture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Picture({}×{})", self.width, self.height)
    }
}

fn check_size(width: u32, height: u32) -> Result<(), VideoError> {
    if width == 0
        || height == 0
        || !width.is_multiple_of(2)
        || !height.is_multiple_of(2)
        || width > MAX_SIDE
        || height > MAX_SIDE
    {
        return Err(VideoError::BadSize { width, height });
    }
    Ok(())
}

impl Picture {
    /// Bytes of an I420 picture of this size.
    pub fn len_for(width: u32, height: u32) -> usize {
        let luma = width as usize * height as usize;
        luma + luma / 2
    }

    /// Mid grey.
    pub fn grey(width: u32, height: u32) -> Result<Picture, VideoError> {
        check_size(width, height)?;
        Ok(Picture { width, height, data: vec![128; Self::len_for(width, height)] })
    }

    /// From packed I420 data.
    pub fn from_i420(width: u32, height: u32, data: Vec<u8>) -> Result<Picture, VideoError> {
        check_size(width, height)?;
        let expected = Self::len_for(width, height);
        if data.len() != expected {
            return Err(VideoError::BadLength { width, height, expected, got: data.len() });
        }
        Ok(Picture { width, height, data })
    }

    /// From a luma plane alone (what the camera layer's test pattern and checks carry), with
    /// neutral chroma: a grey-scale picture.
    pub fn from_luma(width: u32, height: u32, luma: &[u8]) -> Result<Picture, VideoError> {
        check_size(width, height)?;
        let expected = width as usize * height as usize;
        if luma.len() != expected {
            return Err(VideoError::BadLength { width, height, expected, got: luma.len() });
        }
        let mut data = Vec::with_capacity(Self::len_for(width, height));
        data.extend_from_slice(luma);
        data.resize(Self::len_for(width, height), 128);
        Ok(Picture { width, height, data })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn luma(&self) -> &[u8] {
        &self.data[..self.width as usize * self.height as usize]
    }

    /// The two chroma planes, U then V.
    pub fn chroma(&self) -> (&[u8], &[u8]) {
        let luma = self.width as usize * self.height as usize;
        let (u, v) = self.data[luma..].split_at(luma / 4);
        (u, v)
    }

    pub fn as_i420(&self) -> &[u8] {
        &self.data
    }

    /// Peak signal-to-noise ratio of the luma planes, dB (`None` when the sizes differ;
    /// infinite when identical): how faithfully a picture survived encoding.
    pub fn luma_psnr(&self, other: &Picture) -> Option<f64> {
        if self.width != other.width || self.height != other.height {
            return None;
        }
        let squared: u64 = self
            .luma()
            .iter()
            .zip(other.luma())
            .map(|(&a, &b)| {
                let d = u64::from(a.abs_diff(b));
                d * d
            })
            .sum();
        let mse = squared as f64 / self.luma().len() as f64;
        Some(if mse == 0.0 { f64::INFINITY } else { 10.0 * (255.0 * 255.0 / mse).log10() })
    }
}

/// How to encode. Sizes follow the pictures: a picture of another size restarts the encoder
/// at that size with a key frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderSettings {
    pub frame_rate: u32,
    /// Target bitrate, kbit/s.
    pub target_kbps: u32,
    /// libvpx's realtime speed (`cpu-used`), 0..=16, higher is faster and coarser. SPEC §5 asks
    /// for at least 6; Chromium uses 6 for VP8 on desktop machines.
    pub speed: u32,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        Self { frame_rate: 30, target_kbps: 800, speed: 6 }
    }
}

/// One encoded VP8 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    pub data: Vec<u8>,
    pub keyframe: bool,
}

/// A realtime VP8 encoder.
pub struct Vp8Encoder {
    settings: EncoderSettings,
    encoder: Option<(u32, u32, Encoder<u8>)>,
    /// The next frame's time, in [`TIMEBASE_HZ`] ticks.
    pts: i64,
    keyframe_requested: bool,
}

/// The encoder's clock: RTP's video clock. Frames are spaced by the rate they are sent at, so
/// libvpx's rate control spends the target over the frames actually sent (at 15 frames a
/// second, twice the bits per frame of 30).
const TIMEBASE_HZ: u32 = 90_000;

impl Vp8Encoder {
    pub fn new(settings: EncoderSettings) -> Vp8Encoder {
        Vp8Encoder { settings, encoder: None, pts: 0, keyframe_requested: false }
    }

    pub fn settings(&self) -> EncoderSettings {
        self.settings
    }

    /// A new target bitrate (the bandwidth estimate moved): the running stream follows it from
    /// the next frames, without a key frame.
    pub fn set_target_kbps(&mut self, kbps: u32) -> Result<(), VideoError> {
        let kbps = kbps.max(MIN_KBPS);
        if kbps == self.settings.target_kbps {
            return Ok(());
        }
        self.settings.target_kbps = kbps;
        if let Some((_, _, encoder)) = self.encoder.as_mut() {
            encoder.set_target_bitrate(kbps).map_err(|e| VideoError::Encoder(e.to_string()))?;
        }
        Ok(())
    }

    /// The next frame is a key frame (the other side lost the picture and asked, by PLI/FIR).
    pub fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    fn start(&self, width: u32, height: u32) -> Result<Encoder<u8>, VideoError> {
        let encoder_error = |e: vpx_rs::Error| VideoError::Encoder(e.to_string());
        let timebase =
            Timebase { num: NonZero::<u32>::MIN, den: NonZero::new(TIMEBASE_HZ).unwrap_or(NonZero::<u32>::MIN) };
        let mut config = EncoderConfig::<u8>::new(
            EncodeCodec::VP8,
            width,
            height,
            timebase,
            RateControl::ConstantBitRate(self.settings.target_kbps.max(MIN_KBPS)),
        )
        .map_err(encoder_error)?;
        // What WebRTC's VP8 encoder configures for a realtime call: no look-ahead, drop frames
        // rather than fall behind the target rate, a small rate buffer (latency), and key
        // frames only when asked for (the receiver asks after a loss it cannot repair).
        config.lag_in_frames = 0;
        config.rc_dropframe_thresh = 30;
        config.rc_undershoot_pct = 100;
        config.rc_overshoot_pct = 15;
        config.rc_buf_initial_sz = std::time::Duration::from_millis(500);
        config.rc_buf_optimal_sz = std::time::Duration::from_millis(600);
        config.rc_buf_sz = std::time::Duration::from_millis(1000);
        config.kf_mode = KeyFrameMode::Auto { min_dist: 0, max_dist: 3000 };
        config.threads = if width * height > 640 * 480 { 2 } else { 1 };
        let mut encoder = Encoder::new(config).map_err(encoder_error)?;
        // Negative: this speed always, rather than libvpx adapting it to its own timing.
        let speed = self.settings.speed.min(16) as i32;
        encoder.codec_control_set(vpx_rs::enc::ctrl::EncoderControlSet::CpuUsed(-speed)).map_err(encoder_error)?;
        Ok(encoder)
    }

    /// Encodes one picture at the settings' frame rate. `None` when the rate control dropped
    /// it (the link cannot carry every frame at this bitrate).
    pub fn encode(&mut self, picture: &Picture) -> Result<Option<EncodedFrame>, VideoError> {
        self.encode_at(picture, self.settings.frame_rate)
    }

    /// Encodes one picture of a stream sent at `fps` frames a second (lowered for a narrow
    /// path): the rate control spends the target over that many frames. As in libwebrtc, the
    /// frame's time is the interval of that rate, not its real spacing, so a frame after a
    /// pause is not given the pause's bits.
    pub fn encode_at(&mut self, picture: &Picture, fps: u32) -> Result<Option<EncodedFrame>, VideoError> {
        let (width, height) = (picture.width, picture.height);
        let mut flags = EncoderFrameFlags::empty();
        if !matches!(&self.encoder, Some((w, h, _)) if *w == width && *h == height) {
            self.encoder = Some((width, height, self.start(width, height)?));
            flags |= EncoderFrameFlags::FORCE_KF;
        }
        if std::mem::take(&mut self.keyframe_requested) {
            flags |= EncoderFrameFlags::FORCE_KF;
        }
        let Some((_, _, encoder)) = self.encoder.as_mut() else { unreachable!("started above") };
        let image = YUVImageData::from_raw_data(ImageFormat::I420, width as usize, height as usize, &picture.data)
            .map_err(|e| VideoError::Encoder(e.to_string()))?;
        let ticks = i64::from(TIMEBASE_HZ / fps.clamp(1, TIMEBASE_HZ));
        let pts = self.pts;
        self.pts += ticks;
        let packets = encoder
            .encode(pts, ticks as u64, image, EncodingDeadline::Realtime, flags)
            .map_err(|e| VideoError::Encoder(e.to_string()))?;
        let mut frame: Option<EncodedFrame> = None;
        for packet in packets {
            if let Packet::CompressedFrame(compressed) = packet {
                match frame.as_mut() {
                    // Without partitioned output there is one packet per frame; join any more.
                    Some(f) => f.data.extend_from_slice(&compressed.data),
                    None => frame = Some(EncodedFrame { data: compressed.data, keyframe: compressed.flags.is_key }),
                }
            }
        }
        Ok(frame)
    }
}

/// Whether a VP8 frame is a whole key frame, from its header (RFC 6386 §9.1): the frame type
/// bit, and the start code a key frame carries after its first three bytes. A frame whose first
/// packet went missing fails the second test.
pub fn is_keyframe(frame: &[u8]) -> bool {
    frame.len() >= 10 && frame[0] & 1 == 0 && frame[3..6] == [0x9d, 0x01, 0x2a]
}

/// A VP8 decoder for one incoming stream.
pub struct Vp8Decoder {
    decoder: Decoder,
}

impl Vp8Decoder {
    pub fn new() -> Result<Vp8Decoder, VideoError> {
        let config = DecoderConfig::new(vpx_rs::dec::CodecId::VP8, 0, 0);
        let decoder = Decoder::new(config).map_err(|e| VideoError::DecoderSetup(e.to_string()))?;
        Ok(Vp8Decoder { decoder })
    }

    /// Decodes one whole frame. `None` when the frame shows nothing new (libvpx may keep a
    /// frame back); an error when it is corrupt or depends on a frame that never arrived.
    pub fn decode(&mut self, frame: &[u8]) -> Result<Option<Picture>, VideoError> {
        if frame.is_empty() {
            return Err(VideoError::Corrupt("an empty frame".into()));
        }
        let mut latest = None;
        let images = self.decoder.decode(frame).map_err(|e| VideoError::Corrupt(e.to_string()))?;
        for image in images {
            let (width, height) = (image.width(), image.height());
            if check_size(width, height).is_err() {
                return Err(VideoError::Corrupt(format!("a frame of {width}×{height}")));
            }
            let DecodedImageData::Data8b(data) = image.data() else {
                return Err(VideoError::Corrupt("a high bit depth frame in a VP8 stream".into()));
            };
            latest = Some(copy_i420(&data, width, height)?);
        }
        Ok(latest)
    }
}

/// Copies a decoder's image (rows padded to its stride) into a packed [`Picture`].
fn copy_i420(image: &YUVImageData<'_, u8>, width: u32, height: u32) -> Result<Picture, VideoError> {
    if image.format() != ImageFormat::I420 {
        return Err(VideoError::Corrupt(format!("a frame in {:?}, not I420", image.format())));
    }
    let planes = image.planes();
    let vpx_rs::image::UVImagePlanes::Separate(uv) = &planes.uv else {
        return Err(VideoError::Corrupt("interleaved chroma in a VP8 frame".into()));
    };
    let (w, h) = (width as usize, height as usize);
    let mut data = Vec::with_capacity(Picture::len_for(width, height));
    let mut copy_plane = |plane: &[u8], stride: usize, w: usize, h: usize| -> Result<(), VideoError> {
        for row in 0..h {
            let line = plane
                .get(row * stride..row * stride + w)
                .ok_or_else(|| VideoError::Corrupt("a decoded plane shorter than its size".into()))?;
            data.extend_from_slice(line);
        }
        Ok(())
    };
    copy_plane(planes.y, planes.y_stride(), w, h)?;
    copy_plane(uv.u, uv.u_stride(), w / 2, h / 2)?;
    copy_plane(uv.v, uv.v_stride(), w / 2, h / 2)?;
    Picture::from_i420(width, height, data)
}

pub mod scale;
pub mod test_pattern;

#[cfg(test)]
mod tests;
