//! When a call whose media flowed loses its connection: when to restart ICE, and when to give
//! up. No user action: a network change or a few seconds of outage must not end a call.
//!
//! webrtc 0.21 does not recover by itself once the path is gone for good: after an outage the
//! candidate pairs it was checking have failed and are never checked again, and a restart
//! started during the outage fails the same way. So restarts repeat, with backoff, until one
//! reconnects or [`RestartPolicy::give_up_after`] passes; then the call ends `failed(ice)`.
//! Only the offerer restarts (it sends the restart offer); the answerer asks it to with
//! `ice.restart` on the same schedule, which also covers a loss only the answerer sees.
//!
//! Pure: time is an argument, so the schedule is tested on simulated time.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Wait after the first attempt (which is immediate); doubles per attempt.
    pub first_delay: Duration,
    pub max_delay: Duration,
    pub max_attempts: u32,
    /// Lost this long without reconnecting: the call ends `failed(ice)`. Shorter than the call
    /// core's 30 s reconnect timeout, so the call ends with the reason that says what failed.
    pub give_up_after: Duration,
}

impl Default for RestartPolicy {
    /// Attempts at 0, 1, 3, 5, … 17 s after the loss; failed at 20 s. On a working path a
    /// restart connects well within a second, and a restart costs one signaling round trip and
    /// a few STUN checks, so trying every 2 s brings a call back at most ~2 s after the
    /// network does.
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(2),
            max_attempts: 10,
            give_up_after: Duration::from_secs(20),
        }
    }
}

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartStep {
    /// Nothing before [`IceRestarts::deadline`].
    Wait,
    /// Restart (offerer) or ask for a restart (answerer); `attempt` counts from 1.
    Restart { attempt: u32 },
    /// The connection stayed lost past the policy's limit.
    GiveUp { attempts: u32, lost_for: Duration },
}

#[derive(Debug, Clone)]
pub struct IceRestarts {
    policy: RestartPolicy,
    lost_since: Option<Instant>,
    attempts: u32,
    next_attempt: Option<Instant>,
}

impl IceRestarts {
    pub fn new(policy: RestartPolicy) -> Self {
        Self { policy, lost_since: None, attempts: 0, next_attempt: None }
    }

    /// The connection is lost (or the other side says so). Starts the schedule with an
    /// immediate attempt; while already lost, changes nothing.
    pub fn lost(&mut self, now: Instant) {
        if self.lost_since.is_none() {
            self.lost_since = Some(now);
            self.attempts = 0;
            self.next_attempt = Some(now);
        }
    }

    /// Media flows again. Returns how long it was lost and the attempts it took.
    pub fn reconnected(&mut self, now: Instant) -> Option<(Duration, u32)> {
        let since = self.lost_since.take()?;
        self.next_attempt = None;
        Some((now.saturating_duration_since(since), self.attempts))
    }

    pub fn is_lost(&self) -> bool {
        self.lost_since.is_some()
    }

    /// When [`IceRestarts::poll`] next has something to do; `None` while connected.
    pub fn deadline(&self) -> Option<Instant> {
        let give_up = self.lost_since? + self.policy.give_up_after;
        Some(self.next_attempt.map_or(give_up, |next| next.min(give_up)))
    }

    pub fn poll(&mut self, now: Instant) -> RestartStep {
        let Some(since) = self.lost_since else { return RestartStep::Wait };
        let lost_for = now.saturating_duration_since(since);
        if lost_for >= self.policy.give_up_after {
            return RestartStep::GiveUp { attempts: self.attempts, lost_for };
        }
        match self.next_attempt {
            Some(at) if now >= at => {
                self.attempts += 1;
                self.next_attempt =
                    (self.attempts < self.policy.max_attempts).then(|| now + self.delay_after_attempt());
                RestartStep::Restart { attempt: self.attempts }
            }
            _ => RestartStep::Wait,
        }
    }

    fn delay_after_attempt(&self) -> Duration {
        let doubled = self.policy.first_delay.saturating_mul(1 << (self.attempts - 1).min(16));
        doubled.min(self.policy.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls at every deadline until the schedule gives up or `until` passes; returns what
    /// happened and when (seconds after `start`).
    fn run(restarts: &mut IceRestarts, start: Instant, until: Duration) -> Vec<(f64, RestartStep)> {
        let mut steps = Vec::new();
        while let Some(at) = restarts.deadline() {
            if at > start + until {
                break;
            }
            let step = restarts.poll(at);
            steps.push(((at - start).as_secs_f64(), step));
            if matches!(step, RestartStep::GiveUp { .. }) {
                break;
            }
        }
        steps
    }

    #[test]
    fn nothing_happens_while_connected() {
        let mut restarts = IceRestarts::new(RestartPolicy::default());
        let now = Instant::now();
        assert_eq!(restarts.deadline(), None);
        assert_eq!(restarts.poll(now + Duration::from_secs(100)), RestartStep::Wait);
        assert_eq!(restarts.reconnected(now), None);
    }

    #[test]
    fn restarts_back_off_then_give_up_at_the_deadline() {
        let mut restarts = IceRestarts::new(RestartPolicy::default());
        let start = Instant::now();
        restarts.lost(start);
        let steps = run(&mut restarts, start, Duration::from_secs(60));
        let attempts: Vec<f64> =
            steps.iter().filter(|(_, s)| matches!(s, RestartStep::Restart { .. })).map(|(t, _)| *t).collect();
        assert_eq!(attempts, [0.0, 1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.0, 17.0]);
        assert_eq!(
            steps.last().unwrap(),
            &(20.0, RestartStep::GiveUp { attempts: 10, lost_for: Duration::from_secs(20) })
        );
    }

    #[test]
    fn a_second_loss_report_does_not_restart_the_schedule() {
        let mut restarts = IceRestarts::new(RestartPolicy::default());
        let start = Instant::now();
        restarts.lost(start);
        assert_eq!(restarts.poll(start), RestartStep::Restart { attempt: 1 });
        restarts.lost(start + Duration::from_millis(500));
        assert_eq!(restarts.poll(start + Duration::from_millis(500)), RestartStep::Wait);
        assert_eq!(restarts.deadline(), Some(start + Duration::from_secs(1)));
    }

    #[test]
    fn reconnecting_resets_the_schedule() {
        let mut restarts = IceRestarts::new(RestartPolicy::default());
        let start = Instant::now();
        restarts.lost(start);
        let _ = run(&mut restarts, start, Duration::from_secs(4));
        assert_eq!(restarts.reconnected(start + Duration::from_secs(5)), Some((Duration::from_secs(5), 3)));
        assert!(!restarts.is_lost());
        assert_eq!(restarts.deadline(), None);
        // A later loss gets the whole schedule again.
        let later = start + Duration::from_secs(100);
        restarts.lost(later);
        assert_eq!(restarts.poll(later), RestartStep::Restart { attempt: 1 });
        assert_eq!(restarts.deadline(), Some(later + Duration::from_secs(1)));
    }

    #[test]
    fn the_wait_doubles_up_to_the_maximum() {
        let policy = RestartPolicy { max_delay: Duration::from_secs(4), ..RestartPolicy::default() };
        let mut restarts = IceRestarts::new(policy);
        let start = Instant::now();
        restarts.lost(start);
        let attempts: Vec<f64> = run(&mut restarts, start, Duration::from_secs(16))
            .iter()
            .filter(|(_, s)| matches!(s, RestartStep::Restart { .. }))
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(attempts, [0.0, 1.0, 3.0, 7.0, 11.0, 15.0]);
    }

    #[test]
    fn attempts_stop_at_the_limit_even_with_time_left() {
        let policy = RestartPolicy { max_attempts: 2, ..RestartPolicy::default() };
        let mut restarts = IceRestarts::new(policy);
        let start = Instant::now();
        restarts.lost(start);
        let steps = run(&mut restarts, start, Duration::from_secs(60));
        assert_eq!(
            steps,
            [
                (0.0, RestartStep::Restart { attempt: 1 }),
                (1.0, RestartStep::Restart { attempt: 2 }),
                (20.0, RestartStep::GiveUp { attempts: 2, lost_for: Duration::from_secs(20) }),
            ]
        );
    }
}
