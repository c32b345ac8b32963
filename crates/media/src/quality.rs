//! The MOS estimate of SPEC §5 (an E-model simplification) and Twilio's quality buckets.
//!
//! `EL = RTT/2 + 2·jitter + 10 ms`; `R = 93.2 − EL/40` when `EL < 160`, else
//! `93.2 − (EL − 120)/10`; `R −= 2.5 · loss%`; `MOS = 1 + 0.035·R + 7·10⁻⁶·R(R − 60)(100 − R)`.

use std::fmt;

/// What the network did to a call over the last interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetworkSample {
    pub rtt_ms: f64,
    pub jitter_ms: f64,
    /// Lost packets in percent (0–100).
    pub loss_percent: f64,
}

/// The quality label a person sees on the badge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QualityLabel {
    Bad,
    Poor,
    Fair,
    Good,
    Excellent,
}

impl QualityLabel {
    /// Twilio's buckets: excellent ≥ 4.2, good ≥ 4.0, fair ≥ 3.6, poor ≥ 3.0, bad below.
    pub fn of(mos: f64) -> Self {
        match mos {
            m if m >= 4.2 => Self::Excellent,
            m if m >= 4.0 => Self::Good,
            m if m >= 3.6 => Self::Fair,
            m if m >= 3.0 => Self::Poor,
            _ => Self::Bad,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Excellent => "excellent",
            Self::Good => "good",
            Self::Fair => "fair",
            Self::Poor => "poor",
            Self::Bad => "bad",
        }
    }
}

impl fmt::Display for QualityLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The R factor, before it is mapped to MOS. Non-finite or negative inputs count as zero, so a
/// bad sample from a peer cannot produce NaN on the badge.
pub fn r_factor(sample: NetworkSample) -> f64 {
    let clean = |v: f64| if v.is_finite() && v > 0.0 { v } else { 0.0 };
    let effective_latency = clean(sample.rtt_ms) / 2.0 + 2.0 * clean(sample.jitter_ms) + 10.0;
    let r = if effective_latency < 160.0 {
        93.2 - effective_latency / 40.0
    } else {
        93.2 - (effective_latency - 120.0) / 10.0
    };
    r - 2.5 * clean(sample.loss_percent).min(100.0)
}

/// The mean opinion score, 1.0 to about 4.4.
pub fn mos(sample: NetworkSample) -> f64 {
    let r = r_factor(sample).clamp(0.0, 100.0);
    1.0 + 0.035 * r + 7e-6 * r * (r - 60.0) * (100.0 - r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rtt_ms: f64, jitter_ms: f64, loss_percent: f64) -> NetworkSample {
        NetworkSample { rtt_ms, jitter_ms, loss_percent }
    }

    #[test]
    fn a_perfect_loopback_is_excellent() {
        let m = mos(sample(0.0, 0.0, 0.0));
        // EL = 10 → R = 92.95 → MOS ≈ 4.41
        assert!((m - 4.409).abs() < 0.01, "{m}");
        assert_eq!(QualityLabel::of(m), QualityLabel::Excellent);
    }

    #[test]
    fn formula_matches_a_hand_computed_point() {
        // RTT 100, jitter 20, loss 1 %: EL = 50 + 40 + 10 = 100; R = 93.2 − 2.5 − 2.5 = 88.2;
        // MOS = 1 + 3.087 + 7e-6·88.2·28.2·11.8 = 4.2924…
        let m = mos(sample(100.0, 20.0, 1.0));
        assert!((m - 4.2924).abs() < 1e-3, "{m}");
    }

    #[test]
    fn long_delay_uses_the_second_branch() {
        // EL = 200 → R = 93.2 − 8 = 85.2
        assert!((r_factor(sample(300.0, 20.0, 0.0)) - 85.2).abs() < 1e-9);
        // EL just under 160 uses the first branch.
        assert!((r_factor(sample(0.0, 74.95, 0.0)) - (93.2 - 159.9 / 40.0)).abs() < 1e-9);
    }

    #[test]
    fn loss_lowers_the_label() {
        let clean = QualityLabel::of(mos(sample(40.0, 5.0, 0.0)));
        let lossy = QualityLabel::of(mos(sample(40.0, 5.0, 5.0)));
        let awful = QualityLabel::of(mos(sample(40.0, 5.0, 20.0)));
        assert_eq!(clean, QualityLabel::Excellent);
        assert!(lossy < clean, "{lossy:?}");
        assert_eq!(awful, QualityLabel::Bad);
    }

    #[test]
    fn bucket_edges_follow_twilio() {
        assert_eq!(QualityLabel::of(4.2), QualityLabel::Excellent);
        assert_eq!(QualityLabel::of(4.19), QualityLabel::Good);
        assert_eq!(QualityLabel::of(4.0), QualityLabel::Good);
        assert_eq!(QualityLabel::of(3.6), QualityLabel::Fair);
        assert_eq!(QualityLabel::of(3.0), QualityLabel::Poor);
        assert_eq!(QualityLabel::of(2.99), QualityLabel::Bad);
    }

    #[test]
    fn garbage_inputs_never_give_nan() {
        for s in [sample(f64::NAN, 1.0, 1.0), sample(-5.0, f64::INFINITY, -1.0), sample(1e12, 1e12, 1e12)] {
            let m = mos(s);
            assert!(m.is_finite() && (1.0..=4.5).contains(&m), "{s:?} → {m}");
        }
    }
}
