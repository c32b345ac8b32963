//! The camera check as QA and support run it: the real binary, `calldock doctor --only camera
//! --json`, on Y4M files written here (a moving pattern, a black camera, a frozen one, a slow
//! one), on the built-in pattern, and on this machine's own cameras: none here, so a warning.

mod support;

use std::path::{Path, PathBuf};

use calldock_devices::camera::{PatternSource, Resolution};
use serde_json::Value;
use support::calldock;

const SIZE: Resolution = Resolution::new(320, 240);

/// Writes a 4:2:0 Y4M file of these luma planes (grey chroma) at `fps`.
fn write_y4m(dir: &Path, name: &str, fps: usize, planes: impl IntoIterator<Item = Vec<u8>>) -> PathBuf {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).unwrap();
    let (width, height) = (SIZE.width as usize, SIZE.height as usize);
    let mut encoder = y4m::encode(width, height, y4m::Ratio::new(fps, 1))
        .with_colorspace(y4m::Colorspace::C420jpeg)
        .write_header(file)
        .unwrap();
    let chroma = vec![128u8; width.div_ceil(2) * height.div_ceil(2)];
    for luma in planes {
        encoder.write_frame(&y4m::Frame::new([&luma, &chroma, &chroma], None)).unwrap();
    }
    path
}

/// `count` frames of the moving pattern, as planes.
fn moving(fps: u32, count: u64) -> Vec<Vec<u8>> {
    let pattern = PatternSource::new(SIZE, fps);
    (0..count).map(|n| pattern.frame(n).luma).collect()
}

/// Runs `calldock doctor --only camera --camera CAMERA --json`: the camera check and the exit code.
fn doctor(camera: &str) -> (Value, i32) {
    let out = calldock().args(["doctor", "--only", "camera", "--camera", camera, "--json"]).output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not a JSON report ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let checks = report["checks"].as_array().expect("a list of checks");
    assert_eq!(checks.len(), 1, "{report:#}");
    assert_eq!(checks[0]["check"], "camera", "{report:#}");
    (checks[0].clone(), out.status.code().expect("exited"))
}

fn bursts(check: &Value) -> &Vec<Value> {
    check["figures"]["bursts"].as_array().unwrap_or_else(|| panic!("no bursts: {check:#}"))
}

#[test]
fn a_recording_of_a_moving_picture_passes_at_its_own_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_y4m(dir.path(), "moving.y4m", 30, moving(30, 60));
    let (check, code) = doctor(path.to_str().unwrap());
    assert_eq!((check["verdict"].as_str(), code), (Some("pass"), 0), "{check:#}");
    let bursts = bursts(&check);
    assert_eq!(bursts.len(), 1, "a file is judged at its own size only: {check:#}");
    let burst = &bursts[0];
    assert_eq!((&burst["asked"]["width"], &burst["asked"]["height"]), (&320.into(), &240.into()));
    assert_eq!(burst["delivered"], burst["asked"]);
    assert_eq!((burst["frames"].as_u64(), burst["fps"].as_f64()), (Some(60), Some(30.0)), "{burst}");
    assert_eq!((burst["black_frames"].as_u64(), burst["frozen_frames"].as_u64()), (Some(0), Some(0)));
    assert_eq!(check["figures"]["source"], path.to_str().unwrap());
}

#[test]
fn a_black_camera_fails_with_a_remedy() {
    let dir = tempfile::tempdir().unwrap();
    let plane = vec![16u8; (SIZE.width * SIZE.height) as usize];
    let path = write_y4m(dir.path(), "black.y4m", 30, std::iter::repeat_n(plane, 45));
    let (check, code) = doctor(path.to_str().unwrap());
    assert_eq!((check["verdict"].as_str(), check["code"].as_str(), code), (Some("fail"), Some("camera_black"), 2));
    assert_eq!(bursts(&check)[0]["black_frames"], 45);
    assert!(check["remedy"].as_str().unwrap().contains("privacy shutter"), "{check:#}");
}

#[test]
fn a_frozen_camera_fails_with_a_remedy() {
    let dir = tempfile::tempdir().unwrap();
    // Moves for half a second, then repeats one picture for a second and a half.
    let mut planes = moving(30, 15);
    let still = planes[14].clone();
    planes.extend(std::iter::repeat_n(still, 45));
    let path = write_y4m(dir.path(), "frozen.y4m", 30, planes);
    let (check, code) = doctor(path.to_str().unwrap());
    assert_eq!((check["verdict"].as_str(), check["code"].as_str(), code), (Some("fail"), Some("camera_frozen"), 2));
    assert_eq!(bursts(&check)[0]["frozen_frames"], 45);
    assert!(check["summary"].as_str().unwrap().contains("frozen picture"), "{check:#}");
    assert!(check["remedy"].as_str().unwrap().contains("replug"), "{check:#}");
}

#[test]
fn a_slow_camera_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_y4m(dir.path(), "slow.y4m", 3, moving(3, 9));
    let (check, code) = doctor(path.to_str().unwrap());
    assert_eq!((check["code"].as_str(), code), (Some("camera_slow"), 2), "{check:#}");
    assert_eq!(bursts(&check)[0]["fps"], 3.0);
}

#[test]
fn an_unreadable_file_fails_and_says_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-video.y4m");
    std::fs::write(&path, b"this is not a video").unwrap();
    let (check, code) = doctor(path.to_str().unwrap());
    assert_eq!((check["code"].as_str(), code), (Some("camera_file_unreadable"), 2), "{check:#}");
    assert!(check["remedy"].as_str().unwrap().contains("ffmpeg"), "{check:#}");
    assert_eq!(check["figures"], Value::Null);
}

#[test]
fn the_built_in_pattern_passes_at_all_three_sizes() {
    let (check, code) = doctor("pattern");
    assert_eq!((check["verdict"].as_str(), code), (Some("pass"), 0), "{check:#}");
    let sizes: Vec<String> =
        bursts(&check).iter().map(|b| format!("{}x{}", b["asked"]["width"], b["asked"]["height"])).collect();
    assert_eq!(sizes, ["320x240", "640x480", "1280x720"]);
    assert!(bursts(&check).iter().all(|b| b["fps"] == 30.0 && b["delivered"] == b["asked"]), "{check:#}");
}

/// No camera here (nor in CI): the default camera is a warning with a remedy, not a failure,
/// since calls work with audio alone. On a machine with a camera the check runs on it instead.
#[test]
fn no_camera_is_a_warning_that_calls_work_with_audio() {
    let has_video_node = std::fs::read_dir("/dev")
        .map(|nodes| nodes.flatten().any(|n| n.file_name().to_string_lossy().starts_with("video")))
        .unwrap_or(false);
    let (check, code) = doctor("default");
    if has_video_node {
        assert_ne!(check["code"], "camera_none", "{check:#}");
        return;
    }
    assert_eq!((check["verdict"].as_str(), check["code"].as_str(), code), (Some("warn"), Some("camera_none"), 1));
    assert_eq!(check["summary"], "no camera found: connect one for video (calls work with audio alone)");
    assert!(check["remedy"].as_str().unwrap().contains("audio only"), "{check:#}");

    let out = calldock().args(["devices"]).output().unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("no cameras found"), "{listing}");
    // What stands in for a camera (and a microphone or speaker) on a machine without one.
    let virtual_line = listing.lines().find(|l| l.starts_with("virtual")).unwrap_or_else(|| panic!("{listing}"));
    assert!(virtual_line.contains("pattern, FILE.y4m") && virtual_line.contains("silence, FILE.wav"), "{listing}");
}

#[test]
fn a_camera_argument_that_is_nothing_known_is_bad_usage() {
    let out = calldock().args(["doctor", "--only", "camera", "--camera", "webcam.mp4"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not a camera"), "{stderr}");
}
