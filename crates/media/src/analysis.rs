//! Comparing what was sent with what arrived: energy envelopes and their normalized
//! cross-correlation, which say whether speech made it through (NCC ≥ 0.8 in the call tests)
//! and how late (mouth-to-ear delay, echo-path delay). Envelopes make the comparison robust to
//! what codecs, resamplers and echo cancellers do to the waveform itself.

/// RMS energy per window of `window_ms`, one value per window.
pub fn envelope(samples: &[f32], sample_rate: u32, window_ms: u32) -> Vec<f32> {
    let window = (sample_rate as usize * window_ms as usize / 1000).max(1);
    samples
        .chunks(window)
        .map(|chunk| {
            let sum: f64 = chunk.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
            (sum / chunk.len() as f64).sqrt() as f32
        })
        .collect()
}

/// The normalized cross-correlation of `a` and `b` over their overlap (−1 … 1), or `None`
/// when either side is flat (no signal to compare).
pub fn ncc(a: &[f32], b: &[f32]) -> Option<f64> {
    let n = a.len().min(b.len());
    if n < 2 {
        return None;
    }
    let (a, b) = (&a[..n], &b[..n]);
    let mean = |x: &[f32]| x.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
    let (ma, mb) = (mean(a), mean(b));
    let (mut num, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (f64::from(x) - ma, f64::from(y) - mb);
        num += dx * dy;
        va += dx * dx;
        vb += dy * dy;
    }
    if va <= f64::EPSILON || vb <= f64::EPSILON {
        return None;
    }
    Some(num / (va * vb).sqrt())
}

/// Where `received` best matches `reference`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alignment {
    /// How many steps later `received` carries `reference` (≥ 0).
    pub lag: usize,
    pub ncc: f64,
}

/// Searches lags `0..=max_lag` for the best correlation of `received[lag..]` with `reference`.
/// At least half of the shorter sequence must overlap, so a tiny overlap cannot fake a match.
pub fn align(reference: &[f32], received: &[f32], max_lag: usize) -> Option<Alignment> {
    let min_overlap = (reference.len().min(received.len()) / 2).max(2);
    let mut best: Option<Alignment> = None;
    for lag in 0..=max_lag.min(received.len().saturating_sub(min_overlap)) {
        let shifted = &received[lag..];
        if shifted.len().min(reference.len()) < min_overlap {
            break;
        }
        if let Some(c) = ncc(reference, shifted)
            && best.is_none_or(|b| c > b.ncc)
        {
            best = Some(Alignment { lag, ncc: c });
        }
    }
    best
}

/// The delay of `received` behind `reference` in ms and the envelope correlation at that
/// delay: coarse on 10 ms envelopes, then refined on 1 ms envelopes around the coarse answer.
pub fn delay_ms(reference: &[f32], received: &[f32], sample_rate: u32, max_delay_ms: u32) -> Option<(f64, f64)> {
    let coarse =
        align(&envelope(reference, sample_rate, 10), &envelope(received, sample_rate, 10), max_delay_ms as usize / 10)?;
    let fine_ref = envelope(reference, sample_rate, 1);
    let fine_rx = envelope(received, sample_rate, 1);
    let from = (coarse.lag * 10).saturating_sub(10);
    let to = coarse.lag * 10 + 10;
    let mut best = (coarse.lag as f64 * 10.0, coarse.ncc);
    for lag in from..=to.min(fine_rx.len().saturating_sub(2)) {
        if let Some(c) = ncc(&fine_ref, &fine_rx[lag..])
            && c > best.1
        {
            best = (lag as f64, c);
        }
    }
    Some((best.0, coarse.ncc))
}

/// The envelope correlation of `received` with `reference` when the delay between them may
/// drift during the recording, as an adaptive jitter buffer and a sound server's latency make it
/// do: each `segment_ms` of the reference is aligned on its own, within `slack_ms` of `delay_ms`
/// (from [`delay_ms`]), and the segments' correlations are averaged, weighted by the
/// reference's energy in each, so silent stretches count for nothing. A single delay for the
/// whole recording scored a real-device call whose delay moved by 40 ms midway at 0.79, while its
/// half seconds, each at its own delay, scored 0.81–1.0 (tests/devices.rs).
pub fn drifting_ncc(
    reference: &[f32],
    received: &[f32],
    sample_rate: u32,
    delay_ms: f64,
    segment_ms: u32,
    slack_ms: u32,
) -> Option<f64> {
    let (reference, received) = (envelope(reference, sample_rate, 10), envelope(received, sample_rate, 10));
    let segment = (segment_ms as usize / 10).max(2);
    let (lag, slack) = ((delay_ms / 10.0).round().max(0.0) as usize, slack_ms as usize / 10);
    let (mut weighted, mut energy) = (0.0, 0.0);
    for (index, part) in reference.chunks_exact(segment).enumerate() {
        let start = index * segment;
        let best = (lag.saturating_sub(slack)..=lag + slack)
            .filter_map(|l| received.get(start + l..start + l + segment).and_then(|heard| ncc(part, heard)))
            .reduce(f64::max);
        if let Some(best) = best {
            let e: f64 = part.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
            weighted += best * e;
            energy += e;
        }
    }
    (energy > f64::EPSILON).then(|| weighted / energy)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Speech-like test signal: a tone switched on and off in syllable-length bursts.
    fn bursts(seconds: f32, sample_rate: u32) -> Vec<f32> {
        let n = (seconds * sample_rate as f32) as usize;
        (0..n)
            .map(|i| {
                let t = i as f32 / sample_rate as f32;
                let gate = if ((t * 7.0).sin() + (t * 3.1).sin()) > 0.3 { 1.0 } else { 0.05 };
                gate * 0.5 * (t * 2.0 * std::f32::consts::PI * 440.0).sin()
            })
            .collect()
    }

    #[test]
    fn a_delayed_copy_is_found_at_its_delay() {
        let sr = 48_000;
        let sent = bursts(3.0, sr);
        let mut received = vec![0.0; sr as usize * 137 / 1000];
        received.extend(sent.iter().map(|s| s * 0.3)); // quieter, 137 ms late
        let (delay, ncc) = delay_ms(&sent, &received, sr, 500).expect("aligned");
        assert!((delay - 137.0).abs() <= 1.0, "{delay}");
        assert!(ncc > 0.95, "{ncc}");
    }

    #[test]
    fn unrelated_audio_does_not_correlate() {
        let sr = 48_000;
        let sent = bursts(3.0, sr);
        let other: Vec<f32> = bursts(3.0, sr).iter().rev().copied().collect();
        let (_, ncc) = delay_ms(&sent, &other, sr, 500).expect("computable");
        assert!(ncc < 0.8, "{ncc}");
    }

    #[test]
    fn a_delay_that_moves_midway_still_correlates_segment_by_segment() {
        let sr = 48_000;
        let sent = bursts(4.0, sr);
        // 80 ms late for the first two seconds, then 140 ms: a jitter buffer that grew.
        let mut received = vec![0.0; sr as usize * 80 / 1000];
        received.extend(&sent[..2 * sr as usize]);
        received.extend(vec![0.0; sr as usize * 60 / 1000]);
        received.extend(&sent[2 * sr as usize..]);
        let (delay, whole) = delay_ms(&sent, &received, sr, 500).expect("aligned");
        let drifting = drifting_ncc(&sent, &received, sr, delay, 1000, 100).expect("computable");
        assert!(drifting > 0.95 && drifting > whole + 0.05, "one delay {whole:.3}, segment by segment {drifting:.3}");
        // Unrelated audio stays unrelated, and silence has nothing to compare.
        let other: Vec<f32> = sent.iter().rev().copied().collect();
        let unrelated = drifting_ncc(&sent, &other, sr, delay, 1000, 100).expect("computable");
        assert!(unrelated < 0.8, "{unrelated:.3}");
        assert_eq!(drifting_ncc(&[0.0; 48_000], &sent, sr, 0.0, 1000, 100), None);
    }

    #[test]
    fn silence_has_nothing_to_align() {
        assert!(align(&[0.0; 100], &[0.0; 100], 10).is_none());
        assert!(ncc(&[1.0], &[1.0]).is_none());
    }
}
