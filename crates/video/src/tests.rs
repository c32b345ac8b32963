use super::*;
use crate::test_pattern::{counter, pattern};

#[test]
fn pictures_round_trip_through_vp8_with_their_detail() {
    let mut encoder = Vp8Encoder::new(EncoderSettings::default());
    let mut decoder = Vp8Decoder::new().unwrap();
    let mut decoded = 0;
    let mut worst = f64::INFINITY;
    for index in 0..60 {
        let picture = pattern(640, 480, index);
        let Some(frame) = encoder.encode(&picture).unwrap() else { continue };
        assert_eq!(frame.keyframe, index == 0, "only the first frame is a key frame unless asked");
        let out = decoder.decode(&frame.data).unwrap().expect("every frame shows");
        assert_eq!((out.width(), out.height()), (640, 480));
        assert_eq!(counter(&out), index, "frames come out in order, each one itself");
        if index >= 10 {
            worst = worst.min(picture.luma_psnr(&out).unwrap());
        }
        decoded += 1;
    }
    assert!(decoded >= 55, "the rate control dropped {} of 60 frames", 60 - decoded);
    assert!(worst > 30.0, "luma PSNR fell to {worst:.1} dB at 800 kbit/s");
}

#[test]
fn colour_survives_encoding() {
    let mut encoder = Vp8Encoder::new(EncoderSettings::default());
    let mut decoder = Vp8Decoder::new().unwrap();
    let picture = pattern(320, 240, 0);
    let frame = encoder.encode(&picture).unwrap().unwrap();
    let out = decoder.decode(&frame.data).unwrap().unwrap();
    let (u_in, v_in) = picture.chroma();
    let (u_out, v_out) = out.chroma();
    let mean_error =
        |a: &[u8], b: &[u8]| a.iter().zip(b).map(|(&x, &y)| f64::from(x.abs_diff(y))).sum::<f64>() / a.len() as f64;
    assert!(mean_error(u_in, u_out) < 4.0 && mean_error(v_in, v_out) < 4.0);
}

#[test]
fn a_requested_key_frame_comes_next_and_lets_a_fresh_decoder_start() {
    let mut encoder = Vp8Encoder::new(EncoderSettings::default());
    for index in 0..5 {
        encoder.encode(&pattern(320, 240, index)).unwrap();
    }
    // A decoder that missed the start cannot use a delta frame...
    let delta = encoder.encode(&pattern(320, 240, 5)).unwrap().unwrap();
    assert!(!delta.keyframe);
    let mut late = Vp8Decoder::new().unwrap();
    assert!(late.decode(&delta.data).is_err(), "a delta frame with no reference is an error");
    // ...until the key frame it asks for.
    encoder.request_keyframe();
    let key = encoder.encode(&pattern(320, 240, 6)).unwrap().unwrap();
    assert!(key.keyframe && is_keyframe(&key.data));
    assert!(!is_keyframe(&delta.data) && !is_keyframe(&key.data[1..]), "a key frame missing its start is not one");
    let out = late.decode(&key.data).unwrap().unwrap();
    assert_eq!(counter(&out), 6);
    let next = encoder.encode(&pattern(320, 240, 7)).unwrap().unwrap();
    assert!(!next.keyframe, "one key frame per request");
}

#[test]
fn a_new_picture_size_restarts_the_stream_with_a_key_frame() {
    let mut encoder = Vp8Encoder::new(EncoderSettings::default());
    let mut decoder = Vp8Decoder::new().unwrap();
    for (index, (w, h)) in [(320, 240), (320, 240), (640, 360), (640, 360)].into_iter().enumerate() {
        let frame = encoder.encode(&pattern(w, h, index as u32)).unwrap().unwrap();
        assert_eq!(frame.keyframe, index == 0 || index == 2);
        let out = decoder.decode(&frame.data).unwrap().unwrap();
        assert_eq!((out.width(), out.height()), (w, h));
    }
}

#[test]
fn the_bitrate_follows_the_target() {
    let bytes_per_second = |kbps| {
        let mut encoder = Vp8Encoder::new(EncoderSettings { target_kbps: kbps, ..EncoderSettings::default() });
        // Three seconds of a picture that keeps changing; the first second settles the rate.
        (0..90u32)
            .filter_map(|i| encoder.encode(&pattern(640, 480, i * 3)).unwrap())
            .skip(30)
            .map(|f| f.data.len())
            .sum::<usize>() as f64
            / 2.0
    };
    let low = bytes_per_second(200) * 8.0 / 1000.0;
    let high = bytes_per_second(1200) * 8.0 / 1000.0;
    assert!(low < 300.0, "asked for 200 kbit/s, got {low:.0}");
    assert!(high > 2.0 * low, "1200 kbit/s gave {high:.0}, 200 gave {low:.0}");
}

/// A lower frame rate (a narrow path) spends the same bitrate on fewer frames.
#[test]
fn at_half_the_frame_rate_the_bitrate_stays_on_target() {
    let kbps_at = |fps: u32| {
        let mut encoder = Vp8Encoder::new(EncoderSettings { target_kbps: 300, ..EncoderSettings::default() });
        // Four seconds of a picture that keeps changing; the first second settles the rate.
        let bytes: usize = (0..4 * fps)
            .filter_map(|i| encoder.encode_at(&pattern(640, 480, i * 90 / fps), fps).unwrap())
            .skip(fps as usize)
            .map(|f| f.data.len())
            .sum();
        bytes as f64 * 8.0 / 1000.0 / 3.0
    };
    let (full, half) = (kbps_at(30), kbps_at(15));
    println!("300 kbit/s asked: {full:.0} at 30 fps, {half:.0} at 15 fps");
    assert!(half > 0.75 * full && half < 400.0, "30 fps gave {full:.0} kbit/s, 15 fps {half:.0}");
}

#[test]
fn the_bitrate_of_a_running_stream_follows_a_new_target_without_a_key_frame() {
    let mut encoder = Vp8Encoder::new(EncoderSettings { target_kbps: 1200, ..EncoderSettings::default() });
    let mut decoder = Vp8Decoder::new().unwrap();
    let mut kbps = |encoder: &mut Vp8Encoder, from: u32| {
        let mut bytes = 0;
        for i in from..from + 60 {
            let frame = encoder.encode(&pattern(640, 480, i * 3));
            if let Some(frame) = frame.unwrap() {
                assert!(!frame.keyframe || i == 0, "frame {i} is a key frame");
                assert!(decoder.decode(&frame.data).unwrap().is_some());
                if i >= from + 30 {
                    bytes += frame.data.len();
                }
            }
        }
        bytes as f64 * 8.0 / 1000.0
    };
    let high = kbps(&mut encoder, 0);
    encoder.set_target_kbps(200).unwrap();
    let low = kbps(&mut encoder, 60);
    assert!(low < 300.0 && high > 2.0 * low, "1200 kbit/s gave {high:.0}, then 200 gave {low:.0}");
    assert_eq!(encoder.settings().target_kbps, 200);
    encoder.set_target_kbps(1).unwrap();
    assert_eq!(encoder.settings().target_kbps, MIN_KBPS, "never below the floor");
}

#[test]
fn garbage_and_truncated_frames_are_errors_not_panics() {
    let mut encoder = Vp8Encoder::new(EncoderSettings::default());
    let key = encoder.encode(&pattern(320, 240, 0)).unwrap().unwrap();
    let mut decoder = Vp8Decoder::new().unwrap();
    assert_eq!(decoder.decode(&[]).unwrap_err().code(), "video_corrupt_frame");
    assert!(decoder.decode(&[0xff; 3]).is_err());
    let mut seed = 1u32;
    for _ in 0..200 {
        let mut bytes = key.data.clone();
        for _ in 0..8 {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let at = seed as usize % bytes.len();
            bytes[at] ^= (seed >> 24) as u8 | 1;
        }
        let cut = seed as usize % bytes.len();
        let _ = decoder.decode(&bytes);
        let _ = decoder.decode(&bytes[..cut]);
    }
    // A header claiming 16383×16383 (VP8's largest) is refused, not allocated for.
    let mut huge = key.data.clone();
    huge[6..10].copy_from_slice(&[0xff, 0x3f, 0xff, 0x3f]);
    assert!(matches!(decoder.decode(&huge), Err(_) | Ok(None)));
    // And the decoder still works after all that, from the next key frame.
    let mut fresh = Vp8Decoder::new().unwrap();
    assert!(fresh.decode(&key.data).unwrap().is_some());
    assert!(decoder.decode(&key.data).unwrap().is_some());
}

#[test]
fn pictures_of_unusable_sizes_are_refused() {
    assert_eq!(Picture::grey(641, 480).unwrap_err().code(), "video_bad_picture");
    assert!(Picture::grey(0, 480).is_err());
    assert!(Picture::grey(8192, 480).is_err());
    assert!(matches!(Picture::from_i420(4, 4, vec![0; 10]), Err(VideoError::BadLength { expected: 24, got: 10, .. })));
    let grey = Picture::from_luma(4, 2, &[50; 8]).unwrap();
    assert_eq!(grey.luma(), &[50; 8]);
    assert_eq!(grey.chroma(), (&[128u8, 128][..], &[128u8, 128][..]));
}
