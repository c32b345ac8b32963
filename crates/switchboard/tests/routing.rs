//! Scenario suite for the call router, on simulated time.
//!
//! The harness plays the server's driver: it attaches sessions, sends requests, drains
//! outputs (Persist records to a log, Sends to per-session inboxes), and when time advances
//! it feeds `Input::Timeout` exactly at the instants `poll_output` asked for.

use std::collections::HashMap;

use calldock_protocol::{
    CallId, CallPhase, CallSnapshot, ClientMessage, ConversationId, DeclineReason, DeviceId, EndReason, ErrorCode,
    FailureKind, Media, ParticipantState, PresenceEntry, PresenceStatus, RequestId, SdpKind, ServerMessage, UnixMillis,
    UserId, glare_winner,
};
use calldock_switchboard::{Input, Output, Record, SessionId, Switchboard, SwitchboardConfig};

const T0: UnixMillis = UnixMillis(1_700_000_000_000);
const RING: u64 = calldock_protocol::RING_TIMEOUT_MS;
const GRACE: u64 = 30_000;
const RETENTION: u64 = 10 * 60_000;

struct Harness {
    sb: Switchboard,
    now: UnixMillis,
    next_session: u64,
    next_request: u64,
    /// Messages delivered to each session and not yet taken.
    inbox: HashMap<SessionId, Vec<ServerMessage>>,
    /// Every Persist and Send, in the order the switchboard produced them.
    log: Vec<Output>,
    /// The instant poll_output last asked to be woken at.
    wake_at: Option<UnixMillis>,
}

impl Harness {
    fn new() -> Self {
        Self::at(T0)
    }

    fn at(now: UnixMillis) -> Self {
        let config = SwitchboardConfig::default();
        assert_eq!(
            (config.ring_timeout_ms, config.detach_grace_ms, config.ended_retention_ms),
            (RING, GRACE, RETENTION)
        );
        Self {
            sb: Switchboard::new(config),
            now,
            next_session: 1,
            next_request: 1,
            inbox: HashMap::new(),
            log: Vec::new(),
            wake_at: None,
        }
    }

    fn input(&mut self, input: Input) {
        self.sb.handle_input(self.now, input);
        self.drain();
    }

    fn drain(&mut self) {
        for _ in 0..100_000 {
            match self.sb.poll_output() {
                Output::Persist(r) => self.log.push(Output::Persist(r)),
                Output::Send { session, message } => {
                    self.inbox.entry(session).or_default().push(message.clone());
                    self.log.push(Output::Send { session, message });
                }
                Output::Timeout(at) => {
                    self.wake_at = Some(at);
                    return;
                }
                Output::Idle => {
                    self.wake_at = None;
                    return;
                }
            }
        }
        panic!("the switchboard never ran out of outputs");
    }

    /// Registers a user whose display name is its id, capitalized.
    fn user(&mut self, user: &str) {
        let mut name = user.to_owned();
        name[..1].make_ascii_uppercase();
        self.input(Input::Register { user: user.into(), display_name: name });
    }

    fn attach(&mut self, user: &str, device: &str) -> SessionId {
        let session = SessionId(self.next_session);
        self.next_session += 1;
        self.input(Input::Attach { session, user: user.into(), device: device.into() });
        session
    }

    fn detach(&mut self, session: SessionId) {
        self.input(Input::Detach { session });
    }

    /// Sends a request and returns its one reply; other messages stay in the inboxes.
    fn request(&mut self, session: SessionId, message: ClientMessage) -> ServerMessage {
        let id = RequestId::new(format!("r{}", self.next_request));
        self.next_request += 1;
        self.input(Input::Request { session, id: id.clone(), message });
        let mut replies = Vec::new();
        for (s, msgs) in &mut self.inbox {
            let (mine, rest): (Vec<_>, Vec<_>) = msgs.drain(..).partition(|m| m.reply_to() == Some(&id));
            *msgs = rest;
            for m in mine {
                assert_eq!(*s, session, "reply to {id} went to another session: {m:?}");
                replies.push(m);
            }
        }
        assert_eq!(replies.len(), 1, "request {id} needs exactly one reply, got {replies:?}");
        replies.pop().unwrap()
    }

    fn ok(&mut self, session: SessionId, message: ClientMessage) {
        let kind = message.kind();
        let reply = self.request(session, message);
        assert!(matches!(reply, ServerMessage::Ok { .. }), "{kind}: expected ok, got {reply:?}");
    }

    fn refused(&mut self, session: SessionId, message: ClientMessage) -> ErrorCode {
        let kind = message.kind();
        match self.request(session, message) {
            ServerMessage::Error { code, .. } => code,
            other => panic!("{kind}: expected an error, got {other:?}"),
        }
    }

    /// Takes the events delivered to a session so far.
    fn take(&mut self, session: SessionId) -> Vec<ServerMessage> {
        self.inbox.remove(&session).unwrap_or_default()
    }

    fn clear(&mut self) {
        self.inbox.clear();
    }

    /// Moves the clock to `t`, feeding `Input::Timeout` at each instant the switchboard asked for.
    fn advance_to(&mut self, t: UnixMillis) {
        assert!(t >= self.now);
        for _ in 0..10_000 {
            match self.wake_at {
                Some(at) if at <= t => {
                    self.now = self.now.max(at);
                    self.input(Input::Timeout);
                }
                _ => {
                    self.now = t;
                    return;
                }
            }
        }
        panic!("timeouts never settled");
    }

    fn advance(&mut self, ms: u64) {
        self.advance_to(self.now.saturating_add_ms(ms));
    }

    fn invite(&mut self, session: SessionId, call: &str, to: &str) -> ServerMessage {
        self.request(session, invite_msg(call, to, None))
    }

    fn invite_new(&mut self, session: SessionId, call: &str, to: &str) -> CallSnapshot {
        match self.invite(session, call, to) {
            ServerMessage::CallCreated { call, existing: false, .. } => call,
            other => panic!("expected a new call, got {other:?}"),
        }
    }

    fn call(&self, id: &str) -> CallSnapshot {
        self.sb.call(&id.into()).unwrap_or_else(|| panic!("no call {id}"))
    }

    fn sync(&mut self, session: SessionId) -> Vec<CallSnapshot> {
        match self.request(session, ClientMessage::CallSync {}) {
            ServerMessage::Calls { calls, .. } => calls,
            other => panic!("expected calls, got {other:?}"),
        }
    }

    /// The last stored snapshot of a call, as storage would hold it.
    fn stored(&self, id: &str) -> CallSnapshot {
        self.log
            .iter()
            .rev()
            .find_map(|o| match o {
                Output::Persist(Record::Call(c)) if c.call_id.as_str() == id => Some(c.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("call {id} was never persisted"))
    }
}

fn invite_msg(call: &str, to: &str, conversation: Option<&str>) -> ClientMessage {
    ClientMessage::CallInvite {
        call_id: call.into(),
        to: to.into(),
        media: Media::Audio,
        conversation: conversation.map(ConversationId::new),
    }
}

fn accept(call: &str) -> ClientMessage {
    ClientMessage::CallAccept { call_id: call.into(), media: Media::Audio }
}

fn decline(call: &str, reason: DeclineReason) -> ClientMessage {
    ClientMessage::CallDecline { call_id: call.into(), reason }
}

fn end(call: &str) -> ClientMessage {
    ClientMessage::CallEnd { call_id: call.into(), failure: None, reconnect_timeout: false }
}

fn sdp(call: &str, kind: SdpKind, text: &str) -> ClientMessage {
    ClientMessage::Sdp { call_id: call.into(), to: None, kind, sdp: text.into() }
}

fn ended(call: &str, reason: EndReason, by: Option<&str>, by_name: Option<&str>) -> ServerMessage {
    ServerMessage::CallEnded {
        call_id: call.into(),
        reason,
        by: by.map(UserId::new),
        by_name: by_name.map(str::to_owned),
        failure: None,
    }
}

fn accepted(call: &str, user: &str, device: &str) -> ServerMessage {
    ServerMessage::CallAccepted { call_id: call.into(), user: user.into(), device: device.into(), media: Media::Audio }
}

fn invites(msgs: &[ServerMessage]) -> Vec<CallSnapshot> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMessage::CallInvite { call } => Some(call.clone()),
            _ => None,
        })
        .collect()
}

fn call_ids(calls: &[CallSnapshot]) -> Vec<&str> {
    calls.iter().map(|c| c.call_id.as_str()).collect()
}

/// alice on a1; bob on b1 (phone) and b2 (laptop); carol on c1.
struct Cast {
    h: Harness,
    a1: SessionId,
    b1: SessionId,
    b2: SessionId,
    c1: SessionId,
}

fn cast() -> Cast {
    let mut h = Harness::new();
    for u in ["alice", "bob", "carol"] {
        h.user(u);
    }
    let a1 = h.attach("alice", "a1");
    let b1 = h.attach("bob", "b1");
    let b2 = h.attach("bob", "b2");
    let c1 = h.attach("carol", "c1");
    h.clear();
    Cast { h, a1, b1, b2, c1 }
}

/// alice calls bob (call `c1`); bob's phone answers; everyone's inbox is emptied.
fn answered() -> Cast {
    let mut c = cast();
    c.h.invite_new(c.a1, "c1", "bob");
    c.h.ok(c.b1, accept("c1"));
    c.h.clear();
    c
}

#[test]
fn invite_rings_every_device_of_the_callee() {
    let Cast { mut h, a1, b1, b2, c1 } = cast();
    let call = h.invite_new(a1, "c1", "bob");
    assert_eq!(call.call_id.as_str(), "c1");
    assert_eq!(call.phase, CallPhase::Ringing);
    assert_eq!(call.caller.as_str(), "alice");
    assert_eq!(call.caller_device.as_str(), "a1");
    assert_eq!(call.created_at, T0);
    assert_eq!(call.ring_deadline, T0.saturating_add_ms(RING));
    assert_eq!(call.conversation, ConversationId::direct(&"alice".into(), &"bob".into()));
    assert_eq!(call.participants.len(), 1);
    assert_eq!(call.participants[0].state, ParticipantState::Invited);
    for s in [b1, b2] {
        let got = h.take(s);
        assert_eq!(got.len(), 1, "{got:?}");
        let inv = &invites(&got)[0];
        assert_eq!((inv.call_id.as_str(), inv.caller_name.as_str()), ("c1", "Alice"));
        assert_eq!(inv.ring_deadline, T0.saturating_add_ms(RING));
    }
    assert!(h.take(a1).is_empty());
    assert!(h.take(c1).is_empty());
}

#[test]
fn callee_device_coming_online_while_ringing_rings_too() {
    let mut h = Harness::new();
    h.user("alice");
    h.user("bob");
    let a1 = h.attach("alice", "a1");
    let b1 = h.attach("bob", "b1");
    h.invite_new(a1, "c1", "bob");
    h.clear();
    h.advance(5_000);
    let b2 = h.attach("bob", "b2");
    let got = h.take(b2);
    assert_eq!(got.len(), 1, "{got:?}");
    let inv = &invites(&got)[0];
    assert_eq!(inv.call_id.as_str(), "c1");
    assert_eq!(inv.ring_deadline, T0.saturating_add_ms(RING), "a late device rings until the same deadline");
    assert!(h.take(b1).is_empty());
    assert!(h.take(a1).is_empty());
}

#[test]
fn ringing_is_reported_to_the_caller_once() {
    let Cast { mut h, a1, b1, b2, .. } = cast();
    h.invite_new(a1, "c1", "bob");
    h.clear();
    h.ok(b1, ClientMessage::CallRinging { call_id: "c1".into() });
    assert_eq!(h.take(a1), vec![ServerMessage::CallRinging { call_id: "c1".into(), user: "bob".into() }]);
    h.ok(b2, ClientMessage::CallRinging { call_id: "c1".into() });
    assert!(h.take(a1).is_empty(), "a second device ringing is not news to the caller");
    assert_eq!(h.call("c1").participants[0].state, ParticipantState::Ringing);
    assert_eq!(h.refused(a1, ClientMessage::CallRinging { call_id: "c1".into() }), ErrorCode::InvalidState);
}

#[test]
fn first_accept_wins_and_other_devices_hear_accepted_elsewhere() {
    let Cast { mut h, a1, b1, b2, .. } = cast();
    h.invite_new(a1, "c1", "bob");
    h.clear();
    h.ok(b1, accept("c1"));
    assert_eq!(h.take(a1), vec![accepted("c1", "bob", "b1")]);
    assert_eq!(h.take(b1), vec![accepted("c1", "bob", "b1")]);
    assert_eq!(h.take(b2), vec![ended("c1", EndReason::AcceptedElsewhere, None, None)]);
    let call = h.call("c1");
    assert_eq!(call.phase, CallPhase::Active);
    assert_eq!(call.answered_at, Some(T0));
    assert_eq!(call.participants[0].device, Some(DeviceId::new("b1")));
}

#[test]
fn second_device_accept_gets_invalid_state() {
    let Cast { mut h, a1, b1, b2, .. } = answered();
    assert_eq!(h.refused(b2, accept("c1")), ErrorCode::InvalidState);
    assert!(h.take(a1).is_empty());
    // A retry from the device that won is idempotent.
    h.ok(b1, accept("c1"));
    assert_eq!(h.call("c1").participants[0].device, Some(DeviceId::new("b1")));
    assert_eq!(h.refused(a1, accept("c1")), ErrorCode::InvalidState, "the caller cannot accept");
}

#[test]
fn decline_ends_call_for_caller_with_decliner_name_and_other_devices_hear_declined_elsewhere() {
    let Cast { mut h, a1, b1, b2, .. } = cast();
    h.invite_new(a1, "c1", "bob");
    h.clear();
    h.ok(b1, decline("c1", DeclineReason::Declined));
    assert_eq!(h.take(a1), vec![ended("c1", EndReason::Declined, Some("bob"), Some("Bob"))]);
    assert_eq!(h.take(b2), vec![ended("c1", EndReason::DeclinedElsewhere, Some("bob"), None)]);
    assert!(h.take(b1).is_empty());
    let call = h.call("c1");
    assert_eq!((call.phase, call.end_reason), (CallPhase::Ended, Some(EndReason::Declined)));
    assert_eq!(call.participants[0].state, ParticipantState::Declined);
    assert_eq!(h.refused(b2, accept("c1")), ErrorCode::InvalidState);
}

#[test]
fn busy_decline_reaches_caller_as_busy() {
    let Cast { mut h, a1, b1, b2, c1 } = answered();
    // carol calls bob while bob is in alice's call: it stacks, bob declines it as busy.
    h.invite_new(c1, "c2", "bob");
    assert_eq!(invites(&h.take(b1)).len(), 1, "a busy callee still rings");
    h.ok(b1, decline("c2", DeclineReason::Busy));
    assert_eq!(h.take(c1), vec![ended("c2", EndReason::Busy, Some("bob"), Some("Bob"))]);
    let laptop = h.take(b2);
    assert_eq!(call_ids(&invites(&laptop)), vec!["c2"]);
    assert_eq!(laptop[1..], [ended("c2", EndReason::DeclinedElsewhere, Some("bob"), None)]);
    assert_eq!(h.call("c2").end_reason, Some(EndReason::Busy));
    assert_eq!(h.call("c1").phase, CallPhase::Active, "the current call goes on");
    assert!(h.take(a1).is_empty());
}

#[test]
fn cancel_stops_every_ringing_device() {
    let Cast { mut h, a1, b1, b2, .. } = cast();
    h.invite_new(a1, "c1", "bob");
    h.clear();
    assert_eq!(h.refused(b1, ClientMessage::CallCancel { call_id: "c1".into() }), ErrorCode::NotParticipant);
    h.advance(3_000);
    h.ok(a1, ClientMessage::CallCancel { call_id: "c1".into() });
    let canceled = ended("c1", EndReason::Canceled, Some("alice"), Some("Alice"));
    assert_eq!(h.take(b1), vec![canceled.clone()]);
    assert_eq!(h.take(b2), vec![canceled.clone()]);
    assert_eq!(h.take(a1), vec![canceled]);
    let call = h.call("c1");
    assert_eq!((call.end_reason, call.ended_at), (Some(EndReason::Canceled), Some(T0.saturating_add_ms(3_000))));
    // Nothing rings after the deadline either.
    h.advance(RING);
    assert!(h.take(b1).is_empty());
}

#[test]
fn missed_after_exactly_ring_timeout() {
    let Cast { mut h, a1, b1, b2, c1 } = cast();
    h.invite_new(a1, "c1", "bob");
    h.clear();
    h.advance_to(T0.saturating_add_ms(RING - 1));
    assert_eq!(h.call("c1").phase, CallPhase::Ringing, "still ringing 1 ms before the timeout");
    assert!(h.take(a1).is_empty() && h.take(b1).is_empty());
    assert_eq!(h.wake_at, Some(T0.saturating_add_ms(RING)));
    h.advance(1);
    let missed = ended("c1", EndReason::Missed, None, None);
    assert_eq!(h.take(a1), vec![missed.clone()]);
    assert_eq!(h.take(b1), vec![missed.clone()]);
    assert_eq!(h.take(b2), vec![missed]);
    assert!(h.take(c1).is_empty());
    let call = h.call("c1");
    assert_eq!(call.end_reason, Some(EndReason::Missed));
    assert_eq!(call.ended_at, Some(call.created_at.saturating_add_ms(RING)));
    let missed_event = h
        .log
        .iter()
        .any(|o| matches!(o, Output::Persist(Record::Event(e)) if e.kind == "missed" && e.call_id.as_str() == "c1"));
    assert!(missed_event, "the missed call is recorded");
}

#[test]
fn caller_timeout_report_ends_call_as_missed() {
    let Cast { mut h, a1, b1, b2, .. } = cast();
    h.invite_new(a1, "c1", "bob");
    h.clear();
    h.advance(59_000);
    // A callee device's own timer only stops that device.
    h.ok(b2, ClientMessage::CallTimeout { call_id: "c1".into() });
    assert_eq!(h.call("c1").phase, CallPhase::Ringing);
    assert!(h.take(a1).is_empty());
    // The caller's timer (a clock a little ahead of the server's) ends the call for everyone.
    h.ok(a1, ClientMessage::CallTimeout { call_id: "c1".into() });
    let missed = ended("c1", EndReason::Missed, None, None);
    assert_eq!(h.take(a1), vec![missed.clone()]);
    assert_eq!(h.take(b1), vec![missed.clone()]);
    assert_eq!(h.take(b2), vec![missed]);
    assert_eq!(h.call("c1").end_reason, Some(EndReason::Missed));
    h.advance(5_000);
    assert!(h.take(a1).is_empty(), "the server's own timer does not end it twice");
}

#[test]
fn duplicate_invite_in_conversation_returns_active_call() {
    let Cast { mut h, a1, b1, b2, .. } = answered();
    match h.invite(a1, "c2", "bob") {
        ServerMessage::CallCreated { call, existing: true, .. } => assert_eq!(call.call_id.as_str(), "c1"),
        other => panic!("{other:?}"),
    }
    // From the other side too: the conversation is the same.
    match h.invite(b1, "c3", "alice") {
        ServerMessage::CallCreated { call, existing: true, .. } => assert_eq!(call.call_id.as_str(), "c1"),
        other => panic!("{other:?}"),
    }
    assert!(h.sb.call(&"c2".into()).is_none() && h.sb.call(&"c3".into()).is_none());
    assert!(h.take(b1).is_empty() && h.take(b2).is_empty() && h.take(a1).is_empty(), "nothing rang");
}

#[test]
fn retried_invite_with_same_call_id_returns_same_call() {
    let Cast { mut h, a1, b1, b2, c1 } = cast();
    h.invite_new(a1, "c1", "bob");
    match h.invite(a1, "c1", "bob") {
        ServerMessage::CallCreated { call, existing: true, .. } => {
            assert_eq!((call.call_id.as_str(), call.created_at), ("c1", T0))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(invites(&h.take(b1)).len(), 1, "rung once");
    assert_eq!(invites(&h.take(b2)).len(), 1, "rung once");
    // Someone else reusing the id is refused.
    assert_eq!(h.refused(c1, invite_msg("c1", "bob", None)), ErrorCode::InvalidState);
}

#[test]
fn glare_second_invite_rings_instead_of_returning_existing() {
    let Cast { mut h, a1, b1, b2, .. } = cast();
    h.invite_new(a1, "glare-b", "bob");
    h.clear();
    let bobs = h.invite_new(b1, "glare-a", "alice");
    assert_eq!(bobs.call_id.as_str(), "glare-a");
    let rung = invites(&h.take(a1));
    assert_eq!(call_ids(&rung), vec!["glare-a"]);
    // Both ends resolve it the same way: the smaller id wins, the loser cancels and accepts.
    let (win, lose) = ("glare-a", "glare-b");
    assert_eq!(glare_winner(&win.into(), &lose.into()).as_str(), win);
    h.ok(a1, ClientMessage::CallCancel { call_id: lose.into() });
    h.ok(a1, accept(win));
    assert_eq!(
        h.take(b1),
        vec![ended(lose, EndReason::Canceled, Some("alice"), Some("Alice")), accepted(win, "alice", "a1")]
    );
    assert_eq!(h.take(b2), vec![ended(lose, EndReason::Canceled, Some("alice"), Some("Alice"))]);
    assert_eq!(h.call(win).phase, CallPhase::Active);
}

#[test]
fn hangup_ends_call_for_the_other_joined_device_only() {
    let Cast { mut h, a1, b1, b2, .. } = answered();
    h.advance(10_000);
    h.ok(a1, end("c1"));
    let hangup = ended("c1", EndReason::Hangup, Some("alice"), Some("Alice"));
    assert_eq!(h.take(b1), vec![hangup.clone()]);
    assert!(h.take(b2).is_empty(), "bob's laptop already heard accepted-elsewhere");
    assert_eq!(h.take(a1), vec![hangup], "the hanger-up learns it is over too (hangup-local)");
    assert_eq!(h.call("c1").end_reason, Some(EndReason::Hangup));
}

#[test]
fn hangup_from_a_device_not_in_the_call_is_refused() {
    // Fixed: bob's laptop, which heard accepted-elsewhere, used to end bob's call on his phone.
    let Cast { mut h, a1, b1, b2, .. } = answered();
    assert_eq!(h.refused(b2, end("c1")), ErrorCode::InvalidState);
    assert_eq!(h.call("c1").phase, CallPhase::Active);
    assert!(h.take(a1).is_empty() && h.take(b1).is_empty());
    // The caller's cancel of an answered call is a hangup, from the device in the call only.
    let a2 = h.attach("alice", "a2");
    assert_eq!(h.refused(a2, ClientMessage::CallCancel { call_id: "c1".into() }), ErrorCode::InvalidState);
    h.ok(a1, ClientMessage::CallCancel { call_id: "c1".into() });
    assert_eq!(h.take(b1), vec![ended("c1", EndReason::Hangup, Some("alice"), Some("Alice"))]);
}

#[test]
fn sdp_and_ice_are_relayed_to_the_joined_device_only() {
    let Cast { mut h, a1, b1, b2, .. } = answered();
    h.ok(a1, sdp("c1", SdpKind::Offer, "v=0 offer"));
    let offer = ServerMessage::Sdp {
        call_id: "c1".into(),
        from: "alice".into(),
        from_device: "a1".into(),
        kind: SdpKind::Offer,
        sdp: "v=0 offer".into(),
    };
    assert_eq!(h.take(b1), vec![offer]);
    h.ok(
        b1,
        ClientMessage::Ice {
            call_id: "c1".into(),
            to: None,
            candidate: "candidate:1".into(),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
        },
    );
    let ice = ServerMessage::Ice {
        call_id: "c1".into(),
        from: "bob".into(),
        from_device: "b1".into(),
        candidate: "candidate:1".into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
    };
    assert_eq!(h.take(a1), vec![ice]);
    h.ok(b1, ClientMessage::IceRestart { call_id: "c1".into(), to: Some("alice".into()) });
    assert_eq!(
        h.take(a1),
        vec![ServerMessage::IceRestart { call_id: "c1".into(), from: "bob".into(), from_device: "b1".into() }]
    );
    assert!(h.take(b2).is_empty(), "bob's other device hears none of it");
    // The device that is not in the call cannot send any.
    assert_eq!(h.refused(b2, sdp("c1", SdpKind::Answer, "v=0")), ErrorCode::NotParticipant);
    // Nor can anyone send to themselves.
    let to_self =
        ClientMessage::Sdp { call_id: "c1".into(), to: Some("alice".into()), kind: SdpKind::Offer, sdp: "x".into() };
    assert_eq!(h.refused(a1, to_self), ErrorCode::BadRequest);
    assert!(h.take(a1).is_empty() && h.take(b1).is_empty());
}

#[test]
fn sdp_before_answer_is_refused() {
    let Cast { mut h, a1, b1, .. } = cast();
    h.invite_new(a1, "c1", "bob");
    h.clear();
    assert_eq!(h.refused(a1, sdp("c1", SdpKind::Offer, "v=0")), ErrorCode::InvalidState);
    assert!(h.take(b1).is_empty());
}

#[test]
fn relay_from_outsider_is_refused() {
    let Cast { mut h, a1, b1, b2, c1 } = answered();
    assert_eq!(h.refused(c1, sdp("c1", SdpKind::Offer, "v=0")), ErrorCode::CallNotFound);
    let ice = ClientMessage::Ice {
        call_id: "c1".into(),
        to: None,
        candidate: String::new(),
        sdp_mid: None,
        sdp_mline_index: None,
    };
    assert_eq!(h.refused(c1, ice), ErrorCode::CallNotFound);
    assert_eq!(h.refused(c1, ClientMessage::IceRestart { call_id: "c1".into(), to: None }), ErrorCode::CallNotFound);
    assert_eq!(h.refused(c1, accept("c1")), ErrorCode::CallNotFound);
    for s in [a1, b1, b2, c1] {
        assert!(h.take(s).is_empty());
    }
}

#[test]
fn request_for_unknown_call_gets_call_not_found() {
    let Cast { mut h, a1, .. } = cast();
    let id = || CallId::new("nope");
    let requests = vec![
        ClientMessage::CallRinging { call_id: id() },
        accept("nope"),
        decline("nope", DeclineReason::Declined),
        ClientMessage::CallCancel { call_id: id() },
        end("nope"),
        ClientMessage::CallTimeout { call_id: id() },
        ClientMessage::CallAddParticipant { call_id: id(), user: "bob".into() },
        sdp("nope", SdpKind::Offer, "v=0"),
        ClientMessage::Ice { call_id: id(), to: None, candidate: String::new(), sdp_mid: None, sdp_mline_index: None },
        ClientMessage::IceRestart { call_id: id(), to: None },
    ];
    for r in requests {
        let kind = r.kind();
        assert_eq!(h.refused(a1, r), ErrorCode::CallNotFound, "{kind}");
    }
}

#[test]
fn calling_unknown_user_gets_user_not_found() {
    let Cast { mut h, a1, .. } = cast();
    assert_eq!(h.refused(a1, invite_msg("c1", "zed", None)), ErrorCode::UserNotFound);
    assert!(h.sb.call(&"c1".into()).is_none());
    // A user that is only watched (never registered) does not exist either.
    h.request(a1, ClientMessage::PresenceWatch { users: vec!["ghost".into()] });
    assert_eq!(h.refused(a1, invite_msg("c1", "ghost", None)), ErrorCode::UserNotFound);
}

#[test]
fn calling_yourself_is_refused() {
    let Cast { mut h, a1, .. } = cast();
    let a2 = h.attach("alice", "a2");
    assert_eq!(h.refused(a1, invite_msg("c1", "alice", None)), ErrorCode::BadRequest);
    assert!(h.take(a2).is_empty(), "alice's other device does not ring");
    assert!(h.sb.call(&"c1".into()).is_none());
}

#[test]
fn outsider_cannot_reach_a_call_through_its_conversation_id() {
    // Fixed: naming another pair's conversation used to hand their call's snapshot to anyone.
    let Cast { mut h, c1, .. } = answered();
    let conversation = ConversationId::direct(&"alice".into(), &"bob".into());
    let code = h.refused(c1, invite_msg("c9", "bob", Some(conversation.as_str())));
    assert_eq!(code, ErrorCode::InvalidState);
    assert!(h.sb.call(&"c9".into()).is_none());
}

#[test]
fn joined_device_lost_beyond_grace_ends_call_with_signaling_failure() {
    let Cast { mut h, a1, b1, b2, .. } = answered();
    h.advance(1_000);
    h.detach(b1);
    h.advance(GRACE - 1);
    assert_eq!(h.call("c1").phase, CallPhase::Active);
    assert!(h.take(a1).is_empty());
    h.advance(1);
    let failed = ServerMessage::CallEnded {
        call_id: "c1".into(),
        reason: EndReason::Failed,
        by: Some("bob".into()),
        by_name: Some("Bob".into()),
        failure: Some(FailureKind::Signaling),
    };
    assert_eq!(h.take(a1), vec![failed]);
    assert!(h.take(b2).is_empty(), "bob's laptop is not in the call");
    let call = h.call("c1");
    assert_eq!((call.end_reason, call.ended_at), (Some(EndReason::Failed), Some(T0.saturating_add_ms(1_000 + GRACE))));
}

#[test]
fn joined_device_back_within_grace_keeps_call() {
    let Cast { mut h, a1, b1, .. } = answered();
    h.detach(b1);
    h.advance(GRACE / 2);
    // While bob's phone is away, relayed signaling is refused as retryable-later.
    assert_eq!(h.refused(a1, sdp("c1", SdpKind::Offer, "v=0")), ErrorCode::InvalidState);
    let b1_again = h.attach("bob", "b1");
    assert!(h.take(b1_again).is_empty(), "a joined device is not rung again");
    h.advance(GRACE * 2);
    assert_eq!(h.call("c1").phase, CallPhase::Active);
    assert!(h.take(a1).is_empty());
    h.ok(a1, sdp("c1", SdpKind::Offer, "v=0 restart"));
    assert_eq!(h.take(b1_again).len(), 1, "relay reaches the reconnected session");
}

#[test]
fn group_add_participant_shows_invited_then_joined() {
    let Cast { mut h, a1, b1, b2, c1 } = answered();
    h.advance(20_000);
    h.ok(a1, ClientMessage::CallAddParticipant { call_id: "c1".into(), user: "carol".into() });
    let invited =
        ServerMessage::ParticipantInvited { call_id: "c1".into(), user: "carol".into(), display_name: "Carol".into() };
    assert_eq!(h.take(a1), vec![invited.clone()]);
    assert_eq!(h.take(b1), vec![invited]);
    assert!(h.take(b2).is_empty());
    let rung = invites(&h.take(c1));
    assert_eq!(call_ids(&rung), vec!["c1"]);
    let carol = rung[0].participant(&"carol".into()).unwrap();
    assert_eq!(carol.state, ParticipantState::Invited);
    assert_eq!(rung[0].ring_deadline, T0.saturating_add_ms(20_000 + RING), "the invitee rings on its own clock");
    // bob cannot invite her twice.
    let again = ClientMessage::CallAddParticipant { call_id: "c1".into(), user: "carol".into() };
    assert_eq!(h.refused(b1, again), ErrorCode::InvalidState);
    h.ok(c1, ClientMessage::CallRinging { call_id: "c1".into() });
    let ringing = ServerMessage::CallRinging { call_id: "c1".into(), user: "carol".into() };
    assert_eq!(h.take(a1), vec![ringing.clone()]);
    assert_eq!(h.take(b1), vec![ringing]);
    h.ok(c1, accept("c1"));
    let joined = ServerMessage::ParticipantJoined {
        call_id: "c1".into(),
        user: "carol".into(),
        display_name: "Carol".into(),
        device: "c1".into(),
    };
    for s in [a1, b1] {
        assert_eq!(h.take(s), vec![accepted("c1", "carol", "c1"), joined.clone()]);
    }
    assert_eq!(h.call("c1").participant(&"carol".into()).unwrap().state, ParticipantState::Joined);
    // In a group, relayed signaling names its target.
    assert_eq!(h.refused(a1, sdp("c1", SdpKind::Offer, "v=0")), ErrorCode::BadRequest);
    let to_carol =
        ClientMessage::Sdp { call_id: "c1".into(), to: Some("carol".into()), kind: SdpKind::Offer, sdp: "o".into() };
    h.ok(a1, to_carol);
    assert_eq!(h.take(c1).len(), 2, "accepted + sdp");
    assert!(h.take(b1).is_empty());
}

#[test]
fn group_invitee_decline_removes_tile_and_call_goes_on() {
    let Cast { mut h, a1, b1, c1, .. } = answered();
    h.ok(a1, ClientMessage::CallAddParticipant { call_id: "c1".into(), user: "carol".into() });
    let c2 = h.attach("carol", "c2");
    h.clear();
    h.ok(c1, decline("c1", DeclineReason::Declined));
    let left = ServerMessage::ParticipantLeft {
        call_id: "c1".into(),
        user: "carol".into(),
        display_name: "Carol".into(),
        state: ParticipantState::Declined,
    };
    assert_eq!(h.take(a1), vec![left.clone()]);
    assert_eq!(h.take(b1), vec![left]);
    assert_eq!(h.take(c2), vec![ended("c1", EndReason::DeclinedElsewhere, Some("carol"), None)]);
    assert_eq!(h.call("c1").phase, CallPhase::Active);
    // Fixed: the decliner was still listed as in the call and rung again on reconnect.
    assert!(h.sync(c1).is_empty());
    let c3 = h.attach("carol", "c3");
    assert!(h.take(c3).is_empty());
    // Fixed: with the invitee gone it is a two-party call again, and `to` may be left out.
    h.ok(a1, sdp("c1", SdpKind::Offer, "still here"));
    assert_eq!(h.take(b1).len(), 1);
}

#[test]
fn group_invitee_call_end_declines() {
    // Fixed: call.end from a ringing group invitee was acknowledged and did nothing.
    let Cast { mut h, a1, c1, .. } = answered();
    h.ok(a1, ClientMessage::CallAddParticipant { call_id: "c1".into(), user: "carol".into() });
    h.clear();
    h.ok(c1, end("c1"));
    assert_eq!(h.call("c1").participant(&"carol".into()).unwrap().state, ParticipantState::Declined);
    assert!(matches!(&h.take(a1)[..], [ServerMessage::ParticipantLeft { state: ParticipantState::Declined, .. }]));
}

#[test]
fn group_invitee_missed_after_its_own_timeout() {
    let Cast { mut h, a1, b1, c1, .. } = answered();
    h.advance(20_000);
    h.ok(a1, ClientMessage::CallAddParticipant { call_id: "c1".into(), user: "carol".into() });
    h.clear();
    let deadline = T0.saturating_add_ms(20_000 + RING);
    h.advance_to(UnixMillis(deadline.0 - 1));
    assert!(h.take(c1).is_empty() && h.take(a1).is_empty(), "the call's own ring deadline passed without effect");
    h.advance(1);
    assert_eq!(h.take(c1), vec![ended("c1", EndReason::Missed, None, None)]);
    let left = ServerMessage::ParticipantLeft {
        call_id: "c1".into(),
        user: "carol".into(),
        display_name: "Carol".into(),
        state: ParticipantState::Left,
    };
    assert_eq!(h.take(a1), vec![left.clone()]);
    assert_eq!(h.take(b1), vec![left]);
    assert_eq!(h.call("c1").phase, CallPhase::Active);
}

#[test]
fn caller_who_left_a_group_can_be_invited_back() {
    // Fixed: a re-invited original caller was refused as "the caller" and could never rejoin.
    let Cast { mut h, a1, b1, c1, .. } = answered();
    h.ok(a1, ClientMessage::CallAddParticipant { call_id: "c1".into(), user: "carol".into() });
    h.ok(c1, accept("c1"));
    h.ok(a1, end("c1"));
    assert_eq!(h.call("c1").phase, CallPhase::Active, "bob and carol go on");
    h.ok(b1, ClientMessage::CallAddParticipant { call_id: "c1".into(), user: "alice".into() });
    assert_eq!(invites(&h.take(a1)).len(), 1);
    h.ok(a1, accept("c1"));
    h.ok(
        a1,
        ClientMessage::Sdp { call_id: "c1".into(), to: Some("bob".into()), kind: SdpKind::Offer, sdp: "o".into() },
    );
}

#[test]
fn restored_ringing_call_still_times_out_at_its_deadline() {
    let mut before = Harness::new();
    before.user("alice");
    before.user("bob");
    let a1 = before.attach("alice", "a1");
    let _b1 = before.attach("bob", "b1");
    before.invite_new(a1, "c1", "bob");
    before.advance(20_000);
    let stored = before.stored("c1");
    assert_eq!(stored.phase, CallPhase::Ringing);

    // The server restarts 20 s into the ring.
    let mut h = Harness::at(T0.saturating_add_ms(20_000));
    h.user("alice");
    h.user("bob");
    h.sb.restore_call(h.now, stored);
    h.drain();
    let a1 = h.attach("alice", "a1");
    let b1 = h.attach("bob", "b1");
    let rung = invites(&h.take(b1));
    assert_eq!(call_ids(&rung), vec!["c1"], "the reconnecting callee rings again");
    assert_eq!(rung[0].ring_deadline, T0.saturating_add_ms(RING));
    assert!(h.take(a1).is_empty());
    h.advance_to(T0.saturating_add_ms(RING - 1));
    assert_eq!(h.call("c1").phase, CallPhase::Ringing);
    h.advance(1);
    let missed = ended("c1", EndReason::Missed, None, None);
    assert_eq!(h.take(a1), vec![missed.clone()]);
    assert_eq!(h.take(b1), vec![missed]);
    assert_eq!(h.call("c1").ended_at, Some(T0.saturating_add_ms(RING)));
}

#[test]
fn restored_active_call_ends_if_devices_never_return() {
    let Cast { h: before, .. } = answered();
    let stored = before.stored("c1");
    assert_eq!(stored.phase, CallPhase::Active);
    let restart = T0.saturating_add_ms(5_000);
    let mut h = Harness::at(restart);
    h.user("alice");
    h.user("bob");
    h.sb.restore_call(h.now, stored);
    h.drain();
    let a1 = h.attach("alice", "a1");
    h.advance(GRACE - 1);
    assert_eq!(h.call("c1").phase, CallPhase::Active);
    h.advance(1);
    let failed = ServerMessage::CallEnded {
        call_id: "c1".into(),
        reason: EndReason::Failed,
        by: Some("bob".into()),
        by_name: Some("Bob".into()),
        failure: Some(FailureKind::Signaling),
    };
    assert_eq!(h.take(a1), vec![failed]);
    let call = h.call("c1");
    assert_eq!((call.phase, call.ended_at), (CallPhase::Ended, Some(restart.saturating_add_ms(GRACE))));
    assert_eq!(h.stored("c1").phase, CallPhase::Ended, "the end is persisted");
}

#[test]
fn persist_precedes_sends_for_each_request() {
    let Cast { mut h, a1, b1, b2, c1 } = cast();
    let check = |h: &mut Harness, session: SessionId, message: ClientMessage| {
        let kind = message.kind();
        let start = h.log.len();
        h.request(session, message);
        let outs = &h.log[start..];
        let first_send = outs.iter().position(|o| matches!(o, Output::Send { .. }));
        let persists: Vec<usize> = outs
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o, Output::Persist(Record::Call(_))))
            .map(|(i, _)| i)
            .collect();
        assert!(!persists.is_empty(), "{kind} changed a call without persisting it");
        let last_persist = *persists.last().unwrap();
        assert!(first_send.is_some_and(|s| s > last_persist), "{kind}: a send precedes a persist: {outs:#?}");
    };
    check(&mut h, a1, invite_msg("c1", "bob", None));
    check(&mut h, b1, ClientMessage::CallRinging { call_id: "c1".into() });
    check(&mut h, b2, decline("c1", DeclineReason::Declined));
    check(&mut h, a1, invite_msg("c2", "bob", None));
    check(&mut h, b2, accept("c2"));
    check(&mut h, a1, ClientMessage::CallAddParticipant { call_id: "c2".into(), user: "carol".into() });
    check(&mut h, c1, decline("c2", DeclineReason::Declined));
    check(&mut h, a1, ClientMessage::CallAddParticipant { call_id: "c2".into(), user: "carol".into() });
    check(&mut h, c1, accept("c2"));
    check(&mut h, c1, end("c2"));
    check(&mut h, a1, end("c2"));
    check(&mut h, a1, invite_msg("c3", "bob", None));
    check(&mut h, a1, ClientMessage::CallCancel { call_id: "c3".into() });
    check(&mut h, a1, invite_msg("c4", "bob", None));
    check(&mut h, a1, ClientMessage::CallTimeout { call_id: "c4".into() });
    // The server's own timeout too.
    h.invite_new(a1, "c5", "bob");
    let start = h.log.len();
    h.advance(RING);
    let outs = &h.log[start..];
    let first_send = outs.iter().position(|o| matches!(o, Output::Send { .. })).unwrap();
    assert!(matches!(outs[0], Output::Persist(Record::Call(_))) && first_send > 0);
}

#[test]
fn sync_returns_open_and_recently_ended_calls() {
    let Cast { mut h, a1, b1, c1, .. } = answered();
    h.invite_new(c1, "c2", "alice");
    h.ok(a1, decline("c2", DeclineReason::Busy));
    h.invite_new(c1, "c3", "bob");
    let alice = h.sync(a1);
    let mut ids = call_ids(&alice);
    ids.sort();
    assert_eq!(ids, vec!["c1", "c2"]);
    let c2 = alice.iter().find(|c| c.call_id.as_str() == "c2").unwrap();
    assert_eq!((c2.phase, c2.end_reason), (CallPhase::Ended, Some(EndReason::Busy)));
    assert_eq!(alice.iter().find(|c| c.call_id.as_str() == "c1").unwrap().phase, CallPhase::Active);
    let mut bob = call_ids(&h.sync(b1)).into_iter().map(str::to_owned).collect::<Vec<_>>();
    bob.sort();
    assert_eq!(bob, vec!["c1", "c3"]);
    let mut carol = call_ids(&h.sync(c1)).into_iter().map(str::to_owned).collect::<Vec<_>>();
    carol.sort();
    assert_eq!(carol, vec!["c2", "c3"]);
}

#[test]
fn presence_watch_reports_online_busy_offline() {
    let mut h = Harness::new();
    for u in ["alice", "bob", "dave"] {
        h.user(u);
    }
    let a1 = h.attach("alice", "a1");
    let d1 = h.attach("dave", "d1");
    let reply = h.request(d1, ClientMessage::PresenceWatch { users: vec!["alice".into(), "bob".into(), "zed".into()] });
    let entry = |u: &str, name: &str, status| PresenceEntry { user: u.into(), display_name: name.into(), status };
    match reply {
        ServerMessage::PresenceState { users, .. } => assert_eq!(
            users,
            vec![
                entry("alice", "Alice", PresenceStatus::Online),
                entry("bob", "Bob", PresenceStatus::Offline),
                entry("zed", "zed", PresenceStatus::Offline),
            ]
        ),
        other => panic!("{other:?}"),
    }
    let presence = |u: &str, status| ServerMessage::Presence { user: u.into(), status };
    let b1 = h.attach("bob", "b1");
    assert_eq!(h.take(d1), vec![presence("bob", PresenceStatus::Online)]);
    h.invite_new(a1, "c1", "bob");
    assert!(h.take(d1).is_empty(), "ringing is not busy");
    h.ok(b1, accept("c1"));
    // Fixed: the caller's busy status was never reported.
    let mut got = h.take(d1);
    got.sort_by_key(|m| format!("{m:?}"));
    assert_eq!(got, vec![presence("alice", PresenceStatus::Busy), presence("bob", PresenceStatus::Busy)]);
    h.ok(a1, end("c1"));
    let mut got = h.take(d1);
    got.sort_by_key(|m| format!("{m:?}"));
    assert_eq!(got, vec![presence("alice", PresenceStatus::Online), presence("bob", PresenceStatus::Online)]);
    h.detach(b1);
    assert_eq!(h.take(d1), vec![presence("bob", PresenceStatus::Offline)]);
}

#[test]
fn leaving_a_group_call_reports_presence() {
    // Fixed: a member who left a call that goes on stayed "busy" for its watchers.
    let Cast { mut h, a1, b1, c1, .. } = answered();
    h.ok(a1, ClientMessage::CallAddParticipant { call_id: "c1".into(), user: "carol".into() });
    h.ok(c1, accept("c1"));
    let d1 = h.attach("dave", "d1");
    h.request(d1, ClientMessage::PresenceWatch { users: vec!["bob".into()] });
    h.ok(b1, end("c1"));
    assert_eq!(h.take(d1), vec![ServerMessage::Presence { user: "bob".into(), status: PresenceStatus::Online }]);
}

#[test]
fn ended_calls_are_forgotten_after_retention() {
    let Cast { mut h, a1, b1, .. } = cast();
    h.invite_new(a1, "c1", "bob");
    h.ok(b1, decline("c1", DeclineReason::Declined));
    // Fixed: with nothing else pending the switchboard said Idle and never forgot the call.
    assert_eq!(h.wake_at, Some(T0.saturating_add_ms(RING)), "stale ring deadline first");
    h.advance(RING);
    assert_eq!(h.wake_at, Some(T0.saturating_add_ms(RETENTION)));
    h.advance_to(T0.saturating_add_ms(RETENTION - 1));
    assert_eq!(call_ids(&h.sync(a1)), vec!["c1"]);
    h.advance(1);
    assert!(h.sb.call(&"c1".into()).is_none());
    assert!(h.sync(a1).is_empty());
    assert_eq!(h.wake_at, None);
    // The id stays taken while retained, and is free once forgotten.
    h.invite_new(a1, "c1", "bob");
}

#[test]
fn oversized_ids_are_refused() {
    let Cast { mut h, a1, .. } = answered();
    let long = "x".repeat(129);
    let max = "y".repeat(128);
    assert_eq!(h.refused(a1, invite_msg(&long, "carol", None)), ErrorCode::BadRequest);
    assert_eq!(h.refused(a1, invite_msg("c9", &long, None)), ErrorCode::BadRequest);
    assert_eq!(h.refused(a1, invite_msg("c9", "carol", Some(&long))), ErrorCode::BadRequest);
    assert_eq!(h.refused(a1, invite_msg("c\u{7}", "carol", None)), ErrorCode::BadRequest);
    assert_eq!(h.refused(a1, invite_msg("", "carol", None)), ErrorCode::BadRequest);
    assert_eq!(
        h.refused(a1, ClientMessage::PresenceWatch { users: vec![long.as_str().into()] }),
        ErrorCode::BadRequest
    );
    let add = ClientMessage::CallAddParticipant { call_id: "c1".into(), user: long.as_str().into() };
    assert_eq!(h.refused(a1, add), ErrorCode::BadRequest);
    let many = ClientMessage::PresenceWatch { users: (0..1001).map(|i| UserId::new(format!("u{i}"))).collect() };
    assert_eq!(h.refused(a1, many), ErrorCode::BadRequest);
    assert!(matches!(h.invite(a1, &max, "carol"), ServerMessage::CallCreated { existing: false, .. }));
}

#[test]
fn connection_requests_and_unattached_sessions_get_error_replies() {
    let Cast { mut h, a1, .. } = cast();
    assert_eq!(h.refused(a1, ClientMessage::Ping {}), ErrorCode::Internal);
    assert_eq!(h.refused(SessionId(999), ClientMessage::CallSync {}), ErrorCode::NotAuthenticated);
}

#[test]
fn reused_session_id_is_rebound_to_its_new_device() {
    // Fixed: attaching an attached session id as another user left it in the old user's sessions,
    // so the old user's events went to the new user.
    let Cast { mut h, a1, b1, .. } = cast();
    h.input(Input::Attach { session: b1, user: "carol".into(), device: "c9".into() });
    h.clear();
    h.invite_new(a1, "c1", "bob");
    assert!(invites(&h.take(b1)).is_empty(), "carol's session is not rung for bob");
}

/// xorshift64*: deterministic, no dependencies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

#[test]
fn random_requests_never_panic_and_each_gets_one_reply() {
    for seed in [1_u64, 0x9e37_79b9_7f4a_7c15, 42, 7_777] {
        let mut rng = Rng(seed);
        let mut h = Harness::new();
        let users = ["alice", "bob", "carol", "dave"];
        for u in users {
            h.user(u);
        }
        let devices = [("alice", "a1"), ("bob", "b1"), ("bob", "b2"), ("carol", "c1"), ("dave", "d1"), ("alice", "a2")];
        let mut sessions: Vec<(SessionId, usize)> =
            devices.iter().enumerate().map(|(i, (u, d))| (h.attach(u, d), i)).collect();
        // Every call id ever used; requests mostly name one of the newest few.
        let mut calls: Vec<CallId> = vec!["k0".into()];
        let mut restored = false;
        // (accepts answered ok, group adds answered ok, calls seen ended): the walk must reach them.
        let mut reached = (0, 0, 0);
        for step in 0..5_000 {
            match rng.below(20) {
                0 => {
                    let max = if rng.below(8) == 0 { 70_000 } else { 3_000 };
                    h.advance(rng.below(max) as u64)
                }
                1 => {
                    // A device drops and (maybe later) reconnects as a new session.
                    let i = rng.below(sessions.len());
                    let (s, d) = sessions[i];
                    h.detach(s);
                    if rng.below(2) == 0 {
                        let (u, dev) = devices[d];
                        sessions[i] = (h.attach(u, dev), d);
                    }
                }
                2 if !restored && step > 1_500 => {
                    // Restore every known call into a fresh switchboard, as after a restart.
                    restored = true;
                    let snapshots: Vec<CallSnapshot> = calls.iter().filter_map(|c| h.sb.call(c)).collect();
                    let now = h.now;
                    h = Harness::at(now);
                    for u in users {
                        h.user(u);
                    }
                    for snap in snapshots {
                        h.sb.restore_call(now, snap);
                    }
                    h.drain();
                    sessions = devices.iter().enumerate().map(|(i, (u, d))| (h.attach(u, d), i)).collect();
                }
                _ => {
                    let (session, _) = *rng.pick(&sessions);
                    let open: Vec<CallId> = calls
                        .iter()
                        .filter(|c| h.sb.call(c).is_some_and(|c| c.phase != CallPhase::Ended))
                        .cloned()
                        .collect();
                    let recent = &calls[calls.len().saturating_sub(4)..];
                    let call_id = match rng.below(10) {
                        0 => rng.pick(&calls).clone(),
                        1..=2 => rng.pick(recent).clone(),
                        _ if !open.is_empty() => rng.pick(&open).clone(),
                        _ => rng.pick(recent).clone(),
                    };
                    let user: UserId = if rng.below(10) == 0 { "nobody" } else { *rng.pick(&users) }.into();
                    let to = if rng.below(4) == 0 { Some(user.clone()) } else { None };
                    let message = match rng.below(24) {
                        0..=3 => ClientMessage::CallInvite {
                            call_id: if rng.below(4) == 0 {
                                call_id
                            } else {
                                calls.push(CallId::new(format!("k{}", calls.len())));
                                calls[calls.len() - 1].clone()
                            },
                            to: user,
                            media: Media::Video,
                            conversation: match rng.below(4) {
                                0 => Some("group".into()),
                                _ => None,
                            },
                        },
                        4 => ClientMessage::CallRinging { call_id },
                        5..=9 => ClientMessage::CallAccept { call_id, media: Media::Audio },
                        10 => ClientMessage::CallDecline {
                            call_id,
                            reason: if rng.below(2) == 0 { DeclineReason::Busy } else { DeclineReason::Declined },
                        },
                        11 => ClientMessage::CallCancel { call_id },
                        12 => ClientMessage::CallEnd {
                            call_id,
                            failure: if rng.below(3) == 0 { Some(FailureKind::Ice) } else { None },
                            reconnect_timeout: rng.below(3) == 0,
                        },
                        13 => ClientMessage::CallTimeout { call_id },
                        14..=17 => ClientMessage::CallAddParticipant { call_id, user },
                        18 => ClientMessage::CallSync {},
                        19 => ClientMessage::Sdp { call_id, to, kind: SdpKind::Offer, sdp: "v=0".into() },
                        20 => ClientMessage::Ice {
                            call_id,
                            to,
                            candidate: String::new(),
                            sdp_mid: None,
                            sdp_mline_index: None,
                        },
                        21 => ClientMessage::IceRestart { call_id, to },
                        22 => ClientMessage::PresenceWatch { users: vec![user] },
                        _ => ClientMessage::Ping {},
                    };
                    // `request` asserts exactly one reply, to this session.
                    let kind = message.kind();
                    let reply = h.request(session, message);
                    if matches!(reply, ServerMessage::Ok { .. }) {
                        match kind {
                            "call.accept" => reached.0 += 1,
                            "call.add_participant" => reached.1 += 1,
                            _ => {}
                        }
                    }
                }
            }
            reached.2 += h
                .log
                .iter()
                .filter(|o| matches!(o, Output::Persist(Record::Call(c)) if c.phase == CallPhase::Ended))
                .count();
            h.log.clear();
            h.clear();
            // Whatever happened, the switchboard's view stays coherent.
            for c in &calls[calls.len().saturating_sub(8)..] {
                if let Some(snap) = h.sb.call(c) {
                    assert_eq!(
                        snap.phase == CallPhase::Ended,
                        snap.ended_at.is_some(),
                        "seed {seed} step {step}: {snap:?}"
                    );
                    assert_eq!(snap.phase == CallPhase::Ended, snap.end_reason.is_some());
                    if snap.phase != CallPhase::Ended {
                        assert!(snap.participants.iter().all(|p| p.user != snap.caller));
                        assert!(snap.participants.len() <= 16);
                    }
                }
            }
        }
        assert!(reached.0 > 20 && reached.1 > 3 && reached.2 > 50, "seed {seed} explored too little: {reached:?}");
    }
}
