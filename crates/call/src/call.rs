//! One call as the UI sees it: its state, why it ended, and the read-only view.

use calldock_protocol::{CallId, DeviceId, EndReason as WireEndReason, FailureKind, Media, UnixMillis, UserId};

/// Where a call is in its life (SPEC §2). The crate docs draw the transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallState {
    /// We invited the remote user and wait for an answer. Moves on `call.accepted` (to
    /// [`Connecting`](Self::Connecting)), on glare when their call wins (replaced by theirs),
    /// or ends: hangup (canceled), ring deadline (missed), `call.ended`.
    OutgoingRinging,
    /// The remote user invites us and this device rings. Moves on [`Command::Accept`](crate::Command::Accept)
    /// (to [`Connecting`](Self::Connecting)), or ends: decline, ring deadline (missed), another
    /// device answering or declining, the caller canceling.
    IncomingRinging,
    /// Answered; the media connection is being set up. Moves on `MediaEvent::Connected`, or ends
    /// when the connect deadline passes (`Failed(Ice)`).
    Connecting,
    /// Media flows. Moves to [`Reconnecting`](Self::Reconnecting) on `MediaEvent::Disconnected`.
    Connected,
    /// Media was lost; waiting for it to come back. Moves back to [`Connected`](Self::Connected)
    /// on `MediaEvent::Connected`, or ends when the reconnect deadline passes (`TimeoutReconnect`).
    Reconnecting,
    /// Over. Final.
    Ended(EndReason),
}

impl CallState {
    /// Still ringing, on either side.
    pub fn is_ringing(self) -> bool {
        matches!(self, Self::OutgoingRinging | Self::IncomingRinging)
    }

    /// Answered and not over: the call holds (or is setting up) media. A device has at most one.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Connecting | Self::Connected | Self::Reconnecting)
    }

    pub fn is_ended(self) -> bool {
        matches!(self, Self::Ended(_))
    }
}

/// Why a call ended, from this device's point of view: the closed list of SPEC §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// This user hung up an answered call.
    HangupLocal,
    /// The other party hung up an answered call.
    HangupRemote,
    /// The callee declined (on the callee's side: this user declined).
    Declined,
    /// The callee was in another call and declined this one as busy.
    Busy,
    /// Nobody answered before the ring deadline.
    Missed,
    /// The caller hung up while it was ringing.
    Canceled,
    /// Another device of this user answered the call.
    AcceptedElsewhere,
    /// Another device of this user declined the call.
    DeclinedElsewhere,
    /// Something broke: the media connection, or signaling (a call the server no longer knows).
    Failed(FailureKind),
    /// The media connection was lost and did not come back in time.
    TimeoutReconnect,
}

impl EndReason {
    /// The reason for a `call.ended` the server reports. `by_me` tells a hangup of ours (from
    /// another device, or echoed back) from the other party's; `failure` is what failed.
    ///
    /// `replaced` reaches a visible call only when the remote replaced its call (glare) in a way
    /// this device did not see; for this device that call will not be answered, so it counts as
    /// canceled. The replacing call arrives on its own.
    pub(crate) fn from_wire(reason: WireEndReason, by_me: bool, failure: Option<FailureKind>) -> Self {
        match reason {
            WireEndReason::Hangup if by_me => Self::HangupLocal,
            WireEndReason::Hangup => Self::HangupRemote,
            WireEndReason::Declined => Self::Declined,
            WireEndReason::Busy => Self::Busy,
            WireEndReason::Missed => Self::Missed,
            WireEndReason::Canceled | WireEndReason::Replaced => Self::Canceled,
            WireEndReason::AcceptedElsewhere => Self::AcceptedElsewhere,
            WireEndReason::DeclinedElsewhere => Self::DeclinedElsewhere,
            // A failure report without a kind still means the call broke; signaling is the only
            // part both sides certainly shared.
            WireEndReason::Failed => Self::Failed(failure.unwrap_or(FailureKind::Signaling)),
            WireEndReason::TimeoutReconnect => Self::TimeoutReconnect,
        }
    }
}

/// Who placed the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Outgoing,
    Incoming,
}

/// A read-only snapshot of one call, for UIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallView {
    pub id: CallId,
    pub direction: Direction,
    /// The other party.
    pub remote: UserId,
    /// The other party's display name; the user id until the server tells us the name.
    pub remote_name: String,
    /// The other party's device, once known (the caller's device, or the device that answered).
    pub remote_device: Option<DeviceId>,
    /// What the call carries; on accept, what this device accepted with.
    pub media: Media,
    pub state: CallState,
    /// When this device learned of the call.
    pub started_at: UnixMillis,
    /// When ringing stops with missed; set for every call that rang here (the callee's countdown).
    pub ring_deadline: Option<UnixMillis>,
    /// When media first connected.
    pub connected_at: Option<UnixMillis>,
    /// When the call ended on this device.
    pub ended_at: Option<UnixMillis>,
    /// A callee device acknowledged the invite and rings (caller side).
    pub remote_ringing: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hangup_is_told_apart_by_who() {
        assert_eq!(EndReason::from_wire(WireEndReason::Hangup, true, None), EndReason::HangupLocal);
        assert_eq!(EndReason::from_wire(WireEndReason::Hangup, false, None), EndReason::HangupRemote);
    }

    #[test]
    fn failure_without_kind_is_signaling() {
        assert_eq!(EndReason::from_wire(WireEndReason::Failed, false, None), EndReason::Failed(FailureKind::Signaling));
        assert_eq!(
            EndReason::from_wire(WireEndReason::Failed, false, Some(FailureKind::Dtls)),
            EndReason::Failed(FailureKind::Dtls)
        );
    }

    #[test]
    fn other_reasons_map_one_to_one() {
        let pairs = [
            (WireEndReason::Declined, EndReason::Declined),
            (WireEndReason::Busy, EndReason::Busy),
            (WireEndReason::Missed, EndReason::Missed),
            (WireEndReason::Canceled, EndReason::Canceled),
            (WireEndReason::AcceptedElsewhere, EndReason::AcceptedElsewhere),
            (WireEndReason::DeclinedElsewhere, EndReason::DeclinedElsewhere),
            (WireEndReason::TimeoutReconnect, EndReason::TimeoutReconnect),
        ];
        for (wire, local) in pairs {
            assert_eq!(EndReason::from_wire(wire, false, None), local);
        }
    }
}
