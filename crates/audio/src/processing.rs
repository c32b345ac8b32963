//! Echo cancellation, noise suppression and automatic gain control (sonora, a pure-Rust port of
//! WebRTC's audio processing), each switchable at any time.

use sonora::config::{EchoCanceller, GainController2, HighPassFilter, NoiseSuppression, NoiseSuppressionLevel};
use sonora::{AudioProcessing, Config, StreamConfig};

use crate::{AudioError, FRAME_10MS, SAMPLE_RATE};

/// Which processing runs. [`Default`]: all on, as a call wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessingSwitches {
    pub echo_cancellation: bool,
    pub noise_suppression: bool,
    pub gain_control: bool,
}

impl Default for ProcessingSwitches {
    fn default() -> Self {
        Self { echo_cancellation: true, noise_suppression: true, gain_control: true }
    }
}

impl ProcessingSwitches {
    pub const OFF: Self = Self { echo_cancellation: false, noise_suppression: false, gain_control: false };

    fn config(self) -> Config {
        Config {
            high_pass_filter: Some(HighPassFilter::default()),
            echo_canceller: self.echo_cancellation.then(EchoCanceller::default),
            noise_suppression: self
                .noise_suppression
                .then(|| NoiseSuppression { level: NoiseSuppressionLevel::High, ..Default::default() }),
            gain_controller2: self
                .gain_control
                .then(|| GainController2 { adaptive_digital: Some(Default::default()), ..Default::default() }),
            ..Default::default()
        }
    }
}

/// Processes 10 ms frames at 48 kHz mono. Feed every frame that is played out as render (the
/// far end), and every captured frame as capture.
pub struct AudioProcessor {
    apm: AudioProcessing,
    switches: ProcessingSwitches,
    scratch: [f32; FRAME_10MS],
}

impl AudioProcessor {
    pub fn new(switches: ProcessingSwitches) -> Self {
        let stream = StreamConfig::new(SAMPLE_RATE, 1);
        let apm =
            AudioProcessing::builder().config(switches.config()).capture_config(stream).render_config(stream).build();
        Self { apm, switches, scratch: [0.0; FRAME_10MS] }
    }

    pub fn switches(&self) -> ProcessingSwitches {
        self.switches
    }

    /// Turns processing on or off without losing the echo canceller's adaptation.
    pub fn set_switches(&mut self, switches: ProcessingSwitches) {
        self.switches = switches;
        self.apm.apply_config(switches.config());
    }

    /// A frame that was just played to the speaker.
    pub fn render(&mut self, frame: &[f32; FRAME_10MS]) -> Result<(), AudioError> {
        without_subnormals(|| self.apm.process_render_f32(&[&frame[..]], &mut [&mut self.scratch[..]]))
            .map(|_| ())
            .map_err(|e| AudioError::Processing(format!("{e:?}")))
    }

    /// A frame from the microphone, processed in place. `delay_ms` is the known delay between
    /// rendering a frame and capturing its echo (device latencies), a hint for the canceller.
    pub fn capture(&mut self, frame: &mut [f32; FRAME_10MS], delay_ms: i32) -> Result<(), AudioError> {
        let _ = self.apm.set_stream_delay_ms(delay_ms.clamp(0, 500));
        let input = *frame;
        without_subnormals(|| self.apm.process_capture_f32(&[&input[..]], &mut [&mut frame[..]]))
            .map(|_| ())
            .map_err(|e| AudioError::Processing(format!("{e:?}")))
    }
}

/// Runs `processing` with subnormal floats flushed to zero (x86: MXCSR's FTZ and DAZ; ARM: FPCR's
/// FZ), then puts the thread's flags back. sonora's recursive filters (the high-pass biquads, the
/// echo canceller's decimator and matched filter) decay through subnormals whenever the signal
/// turns to digital silence, a WAV's pauses or a quiet far end, and x86 computes with subnormals
/// about a hundred times slower: flushing halves the processing of a speech WAV (238 → 114 µs
/// per 10 ms, docs/benchmarks.md). WebRTC's own audio processing does the same
/// (DenormalDisabler).
fn without_subnormals<T>(processing: impl FnOnce() -> T) -> T {
    // SAFETY: Rust assumes the default floating-point environment, so code run with these flags
    // may compute values below f32::MIN_POSITIVE (1.2e-38, over 700 dB under full scale) as zero
    // where the compiler would not; nothing in the processing depends on such values, and the
    // flags are restored before anything else runs on this thread.
    unsafe { no_denormals::no_denormals(processing) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::test_signal;
    use calldock_media::level::rms_dbfs;

    /// The far end's speech comes back into the microphone 60 ms later at −6 dB.
    fn echo_scene(seconds: f32) -> (Vec<f32>, Vec<f32>) {
        let far = test_signal::speech_like(seconds);
        let delay = SAMPLE_RATE as usize * 60 / 1000;
        let mut mic = vec![0.0f32; far.len()];
        for i in delay..far.len() {
            mic[i] = 0.5 * far[i - delay];
        }
        (far, mic)
    }

    fn run(switches: ProcessingSwitches, far: &[f32], mic: &[f32]) -> Vec<f32> {
        let mut p = AudioProcessor::new(switches);
        let mut out = Vec::with_capacity(mic.len());
        for (f, m) in far.chunks_exact(FRAME_10MS).zip(mic.chunks_exact(FRAME_10MS)) {
            p.render(f.try_into().unwrap()).unwrap();
            let mut frame: [f32; FRAME_10MS] = m.try_into().unwrap();
            p.capture(&mut frame, 60).unwrap();
            out.extend_from_slice(&frame);
        }
        out
    }

    #[test]
    fn echo_cancellation_removes_the_far_end_echo() {
        let (far, mic) = echo_scene(8.0);
        let tail = mic.len() / 2; // after the canceller converged
        let with = rms_dbfs(
            &run(ProcessingSwitches { echo_cancellation: true, ..ProcessingSwitches::OFF }, &far, &mic)[tail..],
        );
        let without = rms_dbfs(&run(ProcessingSwitches::OFF, &far, &mic)[tail..]);
        assert!(without - with > 20.0, "echo only {:.1} dB lower ({without:.1} → {with:.1} dBFS)", without - with);
    }

    /// When speech stops and digital silence follows (a WAV's pauses, a far end that went
    /// quiet), the filters' state decays towards zero through subnormal floats unless they are
    /// flushed; subnormal samples in the output show that the processing ran on them.
    #[test]
    fn silence_after_speech_leaves_no_subnormal_samples() {
        let mut far = test_signal::speech_like(1.0);
        far.resize(far.len() + 30 * SAMPLE_RATE as usize, 0.0);
        for switches in [ProcessingSwitches::OFF, ProcessingSwitches::default()] {
            let out = run(switches, &far, &far);
            let subnormal = out.iter().filter(|s| s.is_subnormal()).count();
            assert_eq!(subnormal, 0, "{subnormal} subnormal samples out of {} with {switches:?}", out.len());
        }
    }

    #[test]
    fn switches_change_at_runtime() {
        let mut p = AudioProcessor::new(ProcessingSwitches::OFF);
        p.set_switches(ProcessingSwitches::default());
        assert_eq!(p.switches(), ProcessingSwitches::default());
        let mut frame = [0.1f32; FRAME_10MS];
        p.render(&[0.0; FRAME_10MS]).unwrap();
        p.capture(&mut frame, 0).unwrap();
    }
}
