//! Time per 10 ms of each processing stage (render + capture), for choosing what a call runs.
use std::time::Instant;

use calldock_audio::FRAME_10MS;
use calldock_audio::pipeline::test_signal;
use calldock_audio::processing::{AudioProcessor, ProcessingSwitches};

fn main() {
    let far = test_signal::speech_like(20.0);
    let mic: Vec<f32> = far.iter().map(|s| s * 0.3).collect();
    let cases = [
        ("all three", ProcessingSwitches::default()),
        ("echo cancellation", ProcessingSwitches { echo_cancellation: true, ..ProcessingSwitches::OFF }),
        ("noise suppression", ProcessingSwitches { noise_suppression: true, ..ProcessingSwitches::OFF }),
        ("gain control", ProcessingSwitches { gain_control: true, ..ProcessingSwitches::OFF }),
        ("none (high-pass only)", ProcessingSwitches::OFF),
    ];
    for (name, switches) in cases {
        let mut p = AudioProcessor::new(switches);
        let started = Instant::now();
        let mut frames = 0;
        for (f, m) in far.chunks_exact(FRAME_10MS).zip(mic.chunks_exact(FRAME_10MS)) {
            p.render(f.try_into().unwrap()).unwrap();
            let mut frame: [f32; FRAME_10MS] = m.try_into().unwrap();
            p.capture(&mut frame, 20).unwrap();
            frames += 1;
        }
        let per = started.elapsed().as_secs_f64() * 1e6 / frames as f64;
        println!("{name:<24} {per:6.1} µs per 10 ms ({:.2} % of a core)", per / 100.0);
    }
}
