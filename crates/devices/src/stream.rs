//! Capture and playout streams. Each stream is built, played and dropped on a thread of its
//! own; the handle keeps the ring end and a [`StreamHealth`] shared with the callbacks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use cpal::traits::{DeviceTrait, StreamTrait};
use cpal::{FromSample, Sample, SampleFormat, SizedSample, StreamConfig, SupportedBufferSize};

use crate::{DeviceChoice, DeviceError, Direction, find};

/// The rate playout runs at: the pipeline's. Every desktop mixer (PulseAudio, PipeWire,
/// WASAPI shared mode, Core Audio) accepts it.
const PLAYOUT_RATE: u32 = 48_000;
/// Ring sizes: room for half a second, far more than either side ever lets pile up.
const RING_SECONDS_DIVISOR: usize = 2;
/// How long opening a device may take before it counts as broken.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// What the callbacks report, read by the owner of the handle. Only atomics are touched from
/// the data callbacks; the error callback (not real-time) may take the lock.
#[derive(Debug, Default)]
pub struct StreamHealth {
    failed: AtomicBool,
    failure: Mutex<Option<String>>,
    /// Data callbacks so far: a stream whose count stops moving has stalled.
    callbacks: AtomicU64,
    /// Samples dropped because the ring was full (capture) or missing when due (playout).
    dropped: AtomicU64,
    /// Non-fatal reports (xruns, reroutes to a new default device).
    glitches: AtomicU64,
}

impl StreamHealth {
    /// Why the stream stopped, once it has.
    pub fn failure(&self) -> Option<String> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        Some(self.failure.lock().map(|f| f.clone()).unwrap_or_default().unwrap_or_else(|| "stopped".into()))
    }

    pub fn callbacks(&self) -> u64 {
        self.callbacks.load(Ordering::Relaxed)
    }

    /// Capture: samples lost to a full ring. Playout: samples of silence played for want of audio.
    pub fn dropped_samples(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn glitches(&self) -> u64 {
        self.glitches.load(Ordering::Relaxed)
    }

    fn report(&self, error: cpal::Error) {
        match error.kind() {
            // The stream goes on: counted, not fatal.
            cpal::ErrorKind::Xrun | cpal::ErrorKind::DeviceChanged | cpal::ErrorKind::RealtimeDenied => {
                self.glitches.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                if let Ok(mut failure) = self.failure.lock() {
                    failure.get_or_insert_with(|| error.to_string());
                }
                self.failed.store(true, Ordering::Release);
            }
        }
    }
}

/// A running stream's thread: dropping this stops the stream and ends the thread.
struct StreamThread {
    stop: Option<mpsc::Sender<()>>,
}

impl Drop for StreamThread {
    fn drop(&mut self) {
        // Closing the channel wakes the thread, which drops the stream. Not joined: a backend
        // that blocks in its teardown must not stall a call.
        self.stop.take();
    }
}

/// A microphone: mono samples at the device's rate, read from a ring the callback fills.
pub struct Capture {
    ring: rtrb::Consumer<f32>,
    rate: u32,
    device_id: String,
    health: Arc<StreamHealth>,
    _thread: StreamThread,
}

impl Capture {
    /// Opens and starts a microphone. Blocks until the device is open (at most a few seconds).
    pub fn open(choice: &DeviceChoice) -> Result<Capture, DeviceError> {
        let (device, device_id) = find(Direction::Input, choice)?;
        let open_error =
            |reason: String| DeviceError::Open { direction: Direction::Input, id: device_id.clone(), reason };
        let supported = device.default_input_config().map_err(|e| open_error(open_failure(Direction::Input, &e)))?;
        let rate = supported.sample_rate();
        let config = StreamConfig {
            channels: supported.channels(),
            sample_rate: rate,
            buffer_size: ten_ms_buffer(supported.buffer_size(), rate),
        };
        let format = supported.sample_format();
        let (producer, ring) = rtrb::RingBuffer::new(rate as usize / RING_SECONDS_DIVISOR);
        let health = Arc::new(StreamHealth::default());
        let thread = spawn_stream(format!("mic {device_id}"), health.clone(), move |health| {
            build_input(&device, &config, format, producer, health)
                .map_err(|e| cpal::Error::with_message(e.kind(), open_failure(Direction::Input, &e)))
        })
        .map_err(open_error)?;
        tracing::info!(device = %device_id, rate, channels = config.channels, ?format, "microphone open");
        Ok(Capture { ring, rate, device_id, health, _thread: thread })
    }

    /// Sample rate of what [`Capture::read`] returns.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    pub fn health(&self) -> &StreamHealth {
        &self.health
    }

    /// Appends everything captured since the last read to `out`.
    pub fn read(&mut self, out: &mut Vec<f32>) -> usize {
        let available = self.ring.slots();
        if available == 0 {
            return 0;
        }
        let Ok(chunk) = self.ring.read_chunk(available) else { return 0 };
        let (first, second) = chunk.as_slices();
        out.extend_from_slice(first);
        out.extend_from_slice(second);
        chunk.commit_all();
        available
    }

    /// Throws away what is buffered (before media starts, so nothing stale is sent).
    pub fn discard(&mut self) {
        let available = self.ring.slots();
        if let Ok(chunk) = self.ring.read_chunk(available) {
            chunk.commit_all();
        }
    }
}

/// A speaker: mono 48 kHz samples written to a ring the callback drains.
pub struct Playout {
    ring: rtrb::Producer<f32>,
    device_id: String,
    health: Arc<StreamHealth>,
    _thread: StreamThread,
}

impl Playout {
    /// Opens and starts a speaker at 48 kHz. Blocks until the device is open.
    pub fn open(choice: &DeviceChoice) -> Result<Playout, DeviceError> {
        let (device, device_id) = find(Direction::Output, choice)?;
        let open_error =
            |reason: String| DeviceError::Open { direction: Direction::Output, id: device_id.clone(), reason };
        let configs = device.supported_output_configs().map_err(|e| open_error(open_failure(Direction::Output, &e)))?;
        // Prefer float, then the fewest channels, among configurations that run at 48 kHz.
        let supported = configs
            .filter_map(|c| c.try_with_sample_rate(PLAYOUT_RATE))
            .min_by_key(|c| (c.sample_format() != SampleFormat::F32, c.channels()))
            .ok_or_else(|| open_error("it does not play 48 kHz audio".into()))?;
        let config = StreamConfig {
            channels: supported.channels(),
            sample_rate: PLAYOUT_RATE,
            buffer_size: ten_ms_buffer(supported.buffer_size(), PLAYOUT_RATE),
        };
        let format = supported.sample_format();
        let (ring, consumer) = rtrb::RingBuffer::new(PLAYOUT_RATE as usize / RING_SECONDS_DIVISOR);
        let health = Arc::new(StreamHealth::default());
        let thread = spawn_stream(format!("speaker {device_id}"), health.clone(), move |health| {
            build_output(&device, &config, format, consumer, health)
                .map_err(|e| cpal::Error::with_message(e.kind(), open_failure(Direction::Output, &e)))
        })
        .map_err(open_error)?;
        tracing::info!(device = %device_id, channels = config.channels, ?format, "speaker open");
        Ok(Playout { ring, device_id, health, _thread: thread })
    }

    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    pub fn health(&self) -> &StreamHealth {
        &self.health
    }

    /// Samples written and not yet taken by the device: the playout queue.
    pub fn queued(&self) -> usize {
        self.ring.buffer().capacity() - self.ring.slots()
    }

    /// Queues samples; returns how many fit.
    pub fn write(&mut self, samples: &[f32]) -> usize {
        let (written, _) = self.ring.push_partial_slice(samples);
        written.len()
    }
}

/// Why a device would not open, for a person: when it is busy, the programs holding it where
/// `/proc` tells (an ALSA device held by a sound server or another program).
fn open_failure(direction: Direction, error: &cpal::Error) -> String {
    if error.kind() != cpal::ErrorKind::DeviceBusy {
        return error.to_string();
    }
    let holders = crate::processes_holding_sound(direction);
    format!(
        "another program{} is using it: close it or pick another {direction}",
        crate::holders::named_in_parentheses(&holders)
    )
}

/// 10 ms callbacks where the device allows: the PulseAudio host's server-chosen default is
/// seconds long.
fn ten_ms_buffer(supported: &SupportedBufferSize, rate: u32) -> cpal::BufferSize {
    let want = rate / 100;
    match supported {
        SupportedBufferSize::Range { min, max } => cpal::BufferSize::Fixed(want.clamp(*min, *max)),
        SupportedBufferSize::Unknown => cpal::BufferSize::Fixed(want),
    }
}

/// Starts the thread that owns a stream; returns once the stream plays or failed to start.
fn spawn_stream(
    name: String,
    health: Arc<StreamHealth>,
    build: impl FnOnce(Arc<StreamHealth>) -> Result<cpal::Stream, cpal::Error> + Send + 'static,
) -> Result<StreamThread, String> {
    let (started_tx, started_rx) = mpsc::channel::<Result<(), String>>();
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name(format!("calldock {name}"))
        .spawn(move || {
            let stream = match build(health.clone()) {
                Ok(stream) => stream,
                Err(e) => {
                    let _ = started_tx.send(Err(e.to_string()));
                    return;
                }
            };
            // Answer before `play`: on some hosts an input's `play` waits for the first data.
            let _ = started_tx.send(Ok(()));
            if let Err(e) = stream.play() {
                health.report(e);
                return;
            }
            // Until the handle is dropped.
            let _ = stopped.recv();
            drop(stream);
        })
        .map_err(|e| format!("no thread for the stream: {e}"))?;
    match started_rx.recv_timeout(OPEN_TIMEOUT) {
        Ok(Ok(())) => Ok(StreamThread { stop: Some(stop) }),
        Ok(Err(reason)) => Err(reason),
        Err(_) => Err(format!("the device did not open within {} s", OPEN_TIMEOUT.as_secs())),
    }
}

fn build_input(
    device: &cpal::Device,
    config: &StreamConfig,
    format: SampleFormat,
    producer: rtrb::Producer<f32>,
    health: Arc<StreamHealth>,
) -> Result<cpal::Stream, cpal::Error> {
    match format {
        SampleFormat::F32 => input_stream::<f32>(device, config, producer, health),
        SampleFormat::I16 => input_stream::<i16>(device, config, producer, health),
        SampleFormat::U16 => input_stream::<u16>(device, config, producer, health),
        SampleFormat::I32 => input_stream::<i32>(device, config, producer, health),
        SampleFormat::U8 => input_stream::<u8>(device, config, producer, health),
        SampleFormat::F64 => input_stream::<f64>(device, config, producer, health),
        other => Err(cpal::Error::with_message(
            cpal::ErrorKind::UnsupportedConfig,
            format!("sample format {other} is not supported"),
        )),
    }
}

fn input_stream<T>(
    device: &cpal::Device,
    config: &StreamConfig,
    mut producer: rtrb::Producer<f32>,
    health: Arc<StreamHealth>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let channels = usize::from(config.channels.max(1));
    let scale = 1.0 / channels as f32;
    let errors = health.clone();
    device.build_input_stream(
        *config,
        // Real-time: atomics and the ring only.
        move |data: &[T], _: &cpal::InputCallbackInfo| {
            health.callbacks.fetch_add(1, Ordering::Relaxed);
            let frames = data.len() / channels;
            let fit = producer.slots().min(frames);
            if let Ok(chunk) = producer.write_chunk_uninit(fit) {
                let mono = data
                    .chunks_exact(channels)
                    .map(|frame| frame.iter().map(|s| f32::from_sample(*s)).sum::<f32>() * scale);
                chunk.fill_from_iter(mono);
            }
            if fit < frames {
                health.dropped.fetch_add((frames - fit) as u64, Ordering::Relaxed);
            }
        },
        move |error| errors.report(error),
        None,
    )
}

fn build_output(
    device: &cpal::Device,
    config: &StreamConfig,
    format: SampleFormat,
    consumer: rtrb::Consumer<f32>,
    health: Arc<StreamHealth>,
) -> Result<cpal::Stream, cpal::Error> {
    match format {
        SampleFormat::F32 => output_stream::<f32>(device, config, consumer, health),
        SampleFormat::I16 => output_stream::<i16>(device, config, consumer, health),
        SampleFormat::U16 => output_stream::<u16>(device, config, consumer, health),
        SampleFormat::I32 => output_stream::<i32>(device, config, consumer, health),
        SampleFormat::U8 => output_stream::<u8>(device, config, consumer, health),
        SampleFormat::F64 => output_stream::<f64>(device, config, consumer, health),
        other => Err(cpal::Error::with_message(
            cpal::ErrorKind::UnsupportedConfig,
            format!("sample format {other} is not supported"),
        )),
    }
}

fn output_stream<T>(
    device: &cpal::Device,
    config: &StreamConfig,
    mut consumer: rtrb::Consumer<f32>,
    health: Arc<StreamHealth>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + FromSample<f32>,
{
    let channels = usize::from(config.channels.max(1));
    let errors = health.clone();
    device.build_output_stream(
        *config,
        // Real-time: atomics and the ring only; missing audio plays as silence.
        move |data: &mut [T], _: &cpal::OutputCallbackInfo| {
            health.callbacks.fetch_add(1, Ordering::Relaxed);
            let mut missing = 0u64;
            for frame in data.chunks_exact_mut(channels) {
                let sample = match consumer.pop() {
                    Ok(s) => s,
                    Err(_) => {
                        missing += 1;
                        0.0
                    }
                };
                frame.fill(T::from_sample(sample));
            }
            if missing > 0 {
                health.dropped.fetch_add(missing, Ordering::Relaxed);
            }
        },
        move |error| errors.report(error),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fatal_and_passing_errors_are_told_apart() {
        let health = StreamHealth::default();
        health.report(cpal::Error::with_message(cpal::ErrorKind::Xrun, "underrun"));
        assert_eq!(health.failure(), None);
        assert_eq!(health.glitches(), 1);
        health.report(cpal::Error::with_message(cpal::ErrorKind::DeviceNotAvailable, "unplugged"));
        let failure = health.failure().expect("a lost device is a failure");
        assert!(failure.contains("unplugged"), "{failure}");
    }

    #[test]
    fn busy_devices_say_to_close_the_program_holding_them() {
        let busy = cpal::Error::with_message(cpal::ErrorKind::DeviceBusy, "Device or resource busy");
        let reason = open_failure(Direction::Input, &busy);
        assert!(reason.starts_with("another program"), "{reason}");
        assert!(reason.ends_with("is using it: close it or pick another microphone"), "{reason}");
        let error = DeviceError::Open { direction: Direction::Output, id: "alsa:hw:0,0".into(), reason };
        assert!(error.to_string().starts_with("the speaker alsa:hw:0,0 cannot be opened: another program"), "{error}");
        let other = cpal::Error::with_message(cpal::ErrorKind::UnsupportedConfig, "no 48 kHz");
        assert_eq!(open_failure(Direction::Output, &other), "no 48 kHz");
    }

    #[test]
    fn callbacks_ask_for_ten_ms() {
        let range = SupportedBufferSize::Range { min: 64, max: 8192 };
        assert!(matches!(ten_ms_buffer(&range, 48_000), cpal::BufferSize::Fixed(480)));
        let tight = SupportedBufferSize::Range { min: 1024, max: 8192 };
        assert!(matches!(ten_ms_buffer(&tight, 48_000), cpal::BufferSize::Fixed(1024)));
    }
}
