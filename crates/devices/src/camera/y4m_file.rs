//! A YUV4MPEG2 (`.y4m`) file standing in for a camera: a customer's recording replayed on any
//! machine. `ffmpeg -i recording.mp4 -pix_fmt yuv420p recording.y4m` makes one from any video.

use std::fs::File;
use std::io::BufReader;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use super::luma::subsample;
use super::{CameraError, Chroma, Frame, FrameSource, Resolution, frame_time};

/// The largest frame read (all planes): 4K at 4:4:4 and 12 bits fits. A header asking for more
/// is corrupt or not meant for a camera check, and must not make us allocate gigabytes.
const LARGEST_FRAME_BYTES: usize = 64 << 20;
/// The widest or tallest picture accepted: 8K, beyond any camera.
const LARGEST_SIDE: u64 = 8192;
/// Where the header's size must appear: its first line is short.
const HEADER_BYTES: usize = 1024;

/// A Y4M file read frame by frame; frame `n` is timestamped `n` over the declared rate.
pub struct Y4mFile {
    path: PathBuf,
    decoder: y4m::Decoder<BufReader<File>>,
    resolution: Resolution,
    /// The declared frame rate, as the header's ratio.
    rate: (u64, u64),
    bit_depth: usize,
    colorspace: y4m::Colorspace,
    next: u64,
}

impl Y4mFile {
    pub fn open(path: &Path) -> Result<Y4mFile, CameraError> {
        let unreadable = |reason: String| CameraError::File { path: path.to_path_buf(), reason };
        let mut file = File::open(path).map_err(|e| unreadable(format!("cannot be read: {e}")))?;
        if let Some((width, height)) = oversized(&mut file) {
            return Err(unreadable(format!(
                "its header declares a {width}x{height} picture, larger than any camera's"
            )));
        }
        let limits = y4m::Limits { bytes: LARGEST_FRAME_BYTES };
        // y4m 0.8 multiplies the header's sizes unchecked: `oversized` keeps absurd ones away,
        // and should one get through, the overflow must not take the process down.
        let decoder = catch_unwind(AssertUnwindSafe(|| y4m::Decoder::new_with_limits(BufReader::new(file), limits)))
            .map_err(|_| unreadable("its header is corrupt".into()))?
            .map_err(|e| unreadable(header_problem(e)))?;
        let (Ok(width), Ok(height)) = (u32::try_from(decoder.get_width()), u32::try_from(decoder.get_height())) else {
            return Err(unreadable("its header declares an impossible picture size".into()));
        };
        let ratio = decoder.get_framerate();
        let (Ok(num), Ok(den)) = (u64::try_from(ratio.num), u64::try_from(ratio.den)) else {
            return Err(unreadable(format!("its frame rate {ratio} is impossible")));
        };
        if num == 0 || den == 0 {
            return Err(unreadable(format!("its header declares a frame rate of {ratio}: give it a real one")));
        }
        let bit_depth = decoder.get_bit_depth();
        let colorspace = decoder.get_colorspace();
        Ok(Y4mFile {
            path: path.to_path_buf(),
            decoder,
            resolution: Resolution::new(width, height),
            rate: (num, den),
            bit_depth,
            colorspace,
            next: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn resolution(&self) -> Resolution {
        self.resolution
    }

    /// Frames per second, as declared.
    pub fn fps(&self) -> f64 {
        self.rate.0 as f64 / self.rate.1 as f64
    }
}

/// The size a header declares, when a side is beyond [`LARGEST_SIDE`]: a look at the `W` and
/// `H` fields before the decoder multiplies them. Reads the start of the file and rewinds it;
/// anything it cannot make out is left for the decoder to judge.
fn oversized(file: &mut File) -> Option<(u64, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut start = Vec::with_capacity(HEADER_BYTES);
    let read = file.by_ref().take(HEADER_BYTES as u64).read_to_end(&mut start);
    file.seek(SeekFrom::Start(0)).ok()?;
    read.ok()?;
    let line = start.split(|&b| b == b'\n').next()?;
    let field = |name: u8| -> u64 {
        line.split(|&b| b == b' ')
            .find_map(|f| f.strip_prefix(&[name]))
            .and_then(|digits| std::str::from_utf8(digits).ok()?.parse().ok())
            .unwrap_or(0)
    };
    let (width, height) = (field(b'W'), field(b'H'));
    (width > LARGEST_SIDE || height > LARGEST_SIDE).then_some((width, height))
}

fn header_problem(error: y4m::Error) -> String {
    match error {
        y4m::Error::EOF => "it is empty".into(),
        y4m::Error::UnknownColorspace => "its colour space is not one Y4M readers know (420, 422, 444, mono)".into(),
        y4m::Error::OutOfMemory => format!("its frames are larger than {} MiB", LARGEST_FRAME_BYTES >> 20),
        y4m::Error::IoError(e) => format!("cannot be read: {e}"),
        other => format!("it is not a Y4M file ({other})"),
    }
}

impl FrameSource for Y4mFile {
    fn next_frame(&mut self) -> Result<Option<Frame>, CameraError> {
        let unreadable = |reason: String| CameraError::File { path: self.path.clone(), reason };
        let index = self.next;
        let read = catch_unwind(AssertUnwindSafe(|| match self.decoder.read_frame() {
            Ok(frame) => {
                Ok(Some((frame.get_y_plane().to_vec(), frame.get_u_plane().to_vec(), frame.get_v_plane().to_vec())))
            }
            // A recording cut short ends with a partial frame: the frames before it still count.
            Err(y4m::Error::EOF) => Ok(None),
            Err(y4m::Error::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e.to_string()),
        }))
        .map_err(|_| unreadable(format!("frame {index} is corrupt")))?
        .map_err(|reason| unreadable(format!("frame {index} cannot be read: {reason}")))?;
        let Some((y, u, v)) = read else { return Ok(None) };
        self.next += 1;
        let (u, v) = (to_eight_bits(u, self.bit_depth), to_eight_bits(v, self.bit_depth));
        Ok(Some(Frame {
            width: self.resolution.width,
            height: self.resolution.height,
            captured_at: frame_time(index, self.rate.0, self.rate.1),
            luma: to_eight_bits(y, self.bit_depth),
            chroma: chroma_420(self.colorspace, self.resolution, u, v),
        }))
    }
}

/// The file's chroma as 4:2:0: as it is, or averaged down from 4:2:2 and 4:4:4. A grey file,
/// or planes shorter than their size says, has none.
fn chroma_420(colorspace: y4m::Colorspace, size: Resolution, u: Vec<u8>, v: Vec<u8>) -> Option<Chroma> {
    use y4m::Colorspace::*;
    let (w, h) = (size.width as usize, size.height as usize);
    let (cw, ch) = Chroma::size_for(size.width, size.height);
    let (plane_w, plane_h) = match colorspace {
        C420 | C420p10 | C420p12 | C420jpeg | C420paldv | C420mpeg2 => (cw, ch),
        C422 | C422p10 | C422p12 => (cw, h),
        C444 | C444p10 | C444p12 => (w, h),
        // Grey, and whatever a later y4m release adds (the enum is non-exhaustive): no colour
        // rather than a wrong one.
        _ => return None,
    };
    if u.len() < plane_w * plane_h || v.len() < plane_w * plane_h {
        return None;
    }
    if (plane_w, plane_h) == (cw, ch) {
        return Some(Chroma { u, v });
    }
    // 4:2:2 and 4:4:4 have a chroma row for every picture row; 4:2:2 one sample per two columns.
    Some(subsample(w, h, |x, y| {
        let column = if plane_w == w { x } else { x / 2 };
        let at = y * plane_w + column;
        (u[at], v[at])
    }))
}

/// Deeper than 8 bits, samples are 16-bit little-endian: keep their top 8 bits.
fn to_eight_bits(plane: Vec<u8>, bit_depth: usize) -> Vec<u8> {
    if bit_depth <= 8 {
        return plane;
    }
    let shift = bit_depth - 8;
    plane.chunks_exact(2).map(|s| u8::try_from(u16::from_le_bytes([s[0], s[1]]) >> shift).unwrap_or(u8::MAX)).collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// A 4x2 4:2:0 file at `rate` whose frames have luma 10, 20, 30, …
    fn y4m(frames: u8, rate: &str) -> Vec<u8> {
        let mut bytes = format!("YUV4MPEG2 W4 H2 F{rate} C420jpeg\n").into_bytes();
        for n in 1..=frames {
            bytes.extend_from_slice(b"FRAME\n");
            bytes.extend_from_slice(&[n * 10; 8]);
            bytes.extend_from_slice(&[128; 4]);
        }
        bytes
    }

    #[test]
    fn frames_are_read_with_timestamps_from_the_declared_rate() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "clip.y4m", &y4m(3, "10:1"));
        let mut file = Y4mFile::open(&path).unwrap();
        assert_eq!((file.resolution(), file.fps()), (Resolution::new(4, 2), 10.0));
        let mut frames = Vec::new();
        while let Some(frame) = file.next_frame().unwrap() {
            frames.push(frame);
        }
        let times: Vec<Duration> = frames.iter().map(|f| f.captured_at).collect();
        assert_eq!(times, [Duration::ZERO, Duration::from_millis(100), Duration::from_millis(200)]);
        assert_eq!(frames[2].luma, [30; 8]);
        assert_eq!(frames[2].chroma, Some(Chroma { u: vec![128; 2], v: vec![128; 2] }));
    }

    #[test]
    fn chroma_comes_as_four_two_zero_whatever_the_file_has() {
        let dir = tempfile::tempdir().unwrap();
        let read = |name: &str, header: &str, body: &[u8]| {
            let mut bytes = format!("YUV4MPEG2 W4 H2 F10:1 {header}\nFRAME\n").into_bytes();
            bytes.extend_from_slice(body);
            Y4mFile::open(&write(dir.path(), name, &bytes)).unwrap().next_frame().unwrap().unwrap().chroma
        };
        // 4:4:4: U and V for every pixel, averaged over each 2x2 block.
        let mut c444 = vec![50u8; 8];
        c444.extend([10, 20, 30, 40, 10, 20, 30, 40]);
        c444.extend([100, 100, 200, 200, 100, 100, 200, 200]);
        assert_eq!(read("444.y4m", "C444", &c444), Some(Chroma { u: vec![15, 35], v: vec![100, 200] }));
        // 4:2:2: one sample per two columns, every row: the two rows averaged.
        let mut c422 = vec![50u8; 8];
        c422.extend([10, 30, 20, 40]);
        c422.extend([100, 200, 100, 200]);
        assert_eq!(read("422.y4m", "C422", &c422), Some(Chroma { u: vec![15, 35], v: vec![100, 200] }));
        // Grey: no colour.
        assert_eq!(read("mono.y4m", "Cmono", &[50u8; 8]), None);
    }

    #[test]
    fn a_cut_off_last_frame_ends_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = y4m(2, "30:1");
        bytes.truncate(bytes.len() - 5);
        let mut file = Y4mFile::open(&write(dir.path(), "cut.y4m", &bytes)).unwrap();
        assert!(file.next_frame().unwrap().is_some());
        assert_eq!(file.next_frame().unwrap(), None);
    }

    #[test]
    fn ten_bit_samples_keep_their_top_bits() {
        assert_eq!(to_eight_bits(vec![0xFF, 0x03, 0x00, 0x02, 0x40, 0x00], 10), [255, 128, 16]);
        assert_eq!(to_eight_bits(vec![1, 2, 3], 8), [1, 2, 3]);
    }

    #[test]
    fn bad_files_are_errors_that_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let reason = |bytes: &[u8]| match Y4mFile::open(&write(dir.path(), "bad.y4m", bytes)) {
            Err(e @ CameraError::File { .. }) => {
                assert_eq!(e.code(), "camera_file_unreadable");
                e.to_string()
            }
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("{:?} opened", String::from_utf8_lossy(bytes)),
        };
        assert!(reason(b"").contains("empty"));
        assert!(reason(b"RIFF....WAVEfmt \n").contains("not a Y4M file"));
        assert!(reason(b"YUV4MPEG2 W4 H2 F0:1\n").contains("frame rate of 0:1"));
        assert!(reason(b"YUV4MPEG2 W4 H2 F30:1 Cbayer\n").contains("colour space"));
        assert!(reason(b"YUV4MPEG2 W8000 H8000 F30:1\n").contains("larger than 64 MiB"));
        let overflowing = reason(b"YUV4MPEG2 W4294967296 H4294967296 F30:1\n");
        assert!(overflowing.contains("declares a 4294967296x4294967296 picture"), "{overflowing}");
        assert!(reason(b"YUV4MPEG2 W18446744073709551616 H2 F30:1\n").contains("not a Y4M file"));
        let missing = Y4mFile::open(Path::new("/nonexistent/clip.y4m")).err().unwrap();
        assert!(missing.to_string().contains("cannot be read"), "{missing}");

        let mut garbled = y4m(1, "30:1");
        garbled.extend_from_slice(b"JUNK\n");
        let mut file = Y4mFile::open(&write(dir.path(), "garbled.y4m", &garbled)).unwrap();
        assert!(file.next_frame().unwrap().is_some());
        let err = file.next_frame().unwrap_err();
        assert!(err.to_string().contains("frame 1 cannot be read"), "{err}");
    }
}
