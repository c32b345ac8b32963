//! What goes into a [`Phone`](crate::Phone) and what comes out.

use calldock_protocol::{CallId, ClientFrame, DeviceId, FailureKind, Media, ServerMessage, UnixMillis, UserId};

use crate::call::{CallState, EndReason};

/// Everything that can happen to a phone. Each comes with the time it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The user asked for something.
    Command(Command),
    /// A frame from the server: events and replies alike.
    Server(ServerMessage),
    /// The peer connection driver reports on a call's media.
    Media { call_id: CallId, event: MediaEvent },
    /// The WebSocket dropped. No call changes state: media may continue without signaling.
    SignalingLost,
    /// The WebSocket is back and authenticated. The phone sends `call.sync` and reconciles its
    /// calls with the `calls` reply.
    SignalingRestored,
    /// Nothing happened but time passed (the deadline from [`Output::Timeout`] was reached).
    Timeout,
}

/// What the user can ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Call a user. The caller's client chooses the call id (random, 128 bits).
    Call { call_id: CallId, to: UserId, media: Media },
    /// Answer a ringing incoming call, with audio only or with video.
    Accept { call_id: CallId, media: Media },
    /// Refuse a ringing incoming call (as busy when another call is active).
    Decline { call_id: CallId },
    /// Leave a call in any state: cancels a ringing outgoing call, declines a ringing incoming one.
    Hangup { call_id: CallId },
}

/// What the peer connection driver reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaEvent {
    /// ICE and DTLS are up; media flows.
    Connected,
    /// Media stopped (ICE disconnected); it may come back.
    Disconnected,
    /// The connection cannot work.
    Failed(FailureKind),
}

/// What a phone wants done. Drain with [`Phone::poll_output`](crate::Phone::poll_output) until
/// [`Output::Timeout`] or [`Output::Idle`].
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send this frame to the signaling server.
    Send(ClientFrame),
    /// Tell the UI or the media driver.
    Event(CallEvent),
    /// Nothing more to do now; give [`Input::Timeout`] at this instant unless another input
    /// comes first.
    Timeout(UnixMillis),
    /// Nothing more to do and no deadline pending.
    Idle,
}

/// What happened to a call. Every state a call enters is reported once: by
/// [`StateChanged`](Self::StateChanged), or by [`Incoming`](Self::Incoming) for
/// `IncomingRinging` and [`Ended`](Self::Ended) for `Ended`, which carry more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    StateChanged {
        call_id: CallId,
        state: CallState,
    },
    /// A new incoming call rings. `stacked` is true when another call is active (call waiting):
    /// accepting ends that call, declining says busy.
    Incoming {
        call_id: CallId,
        from: UserId,
        from_name: String,
        media: Media,
        stacked: bool,
        ring_deadline: UnixMillis,
    },
    /// A device of the callee is ringing (caller side). Reported once per call.
    RemoteRinging {
        call_id: CallId,
    },
    /// Start the peer connection. The caller offers; the callee answers. `media` is what the
    /// call carries as answered: a video call the callee accepted with audio only is audio.
    StartMedia {
        call_id: CallId,
        remote: UserId,
        remote_device: DeviceId,
        offerer: bool,
        media: Media,
    },
    /// The call `old` continues as `new`: glare turned our outgoing call into accepting theirs, or
    /// the conversation already had a call that ours was folded into. `old` is gone without an
    /// `Ended`.
    Replaced {
        old: CallId,
        new: CallId,
    },
    /// The call is over. `by_name` names who ended it, when the server says.
    Ended {
        call_id: CallId,
        reason: EndReason,
        by_name: Option<String>,
    },
}
