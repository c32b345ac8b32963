//! Call scenarios on simulated time, one per behaviour of SPEC §2. The local user is alice on
//! device `alice-dev`; the other parties are bob (`bob-dev`) and carol (`carol-dev`).

mod common;

use calldock_call::{CallEvent, CallState, Command, CommandError, EndReason, Input, MediaEvent};
use calldock_protocol::{
    CallId, CallPhase, ClientMessage, DeclineReason, EndReason as WireEndReason, ErrorCode, FailureKind, Media,
    ParticipantState, RequestId, SdpKind, ServerMessage,
};
use common::{Relay, T0, TestPhone, snapshot};

fn alice() -> TestPhone {
    TestPhone::new("alice", "alice-dev")
}

fn state_changed(call_id: &str, state: CallState) -> CallEvent {
    CallEvent::StateChanged { call_id: call_id.into(), state }
}

fn ended(call_id: &str, reason: EndReason) -> CallEvent {
    CallEvent::Ended { call_id: call_id.into(), reason, by_name: None }
}

fn call_end(call_id: &str) -> ClientMessage {
    ClientMessage::CallEnd { call_id: call_id.into(), failure: None, reconnect_timeout: false }
}

fn accepted(call_id: &str, user: &str, device: &str) -> ServerMessage {
    ServerMessage::CallAccepted {
        call_id: call_id.into(),
        user: user.into(),
        device: device.into(),
        media: Media::Video,
    }
}

/// Alice calls bob with `a1`; bob answers on `bob-dev`; media connects. Output so far is taken.
fn in_call_with_bob() -> TestPhone {
    let mut phone = alice();
    phone.call("a1", "bob");
    phone.server(accepted("a1", "bob", "bob-dev"));
    phone.media("a1", MediaEvent::Connected);
    assert_eq!(phone.state("a1"), CallState::Connected);
    phone.take_sent();
    phone.take_events();
    phone
}

/// Bob calls alice with `b1`; it rings. Output so far is taken.
fn ringing_from_bob() -> TestPhone {
    let mut phone = alice();
    phone.invite_from("b1", "bob");
    phone.take_sent();
    phone.take_events();
    phone
}

// --- outgoing ---

#[test]
fn outgoing_call_sends_invite_and_rings() {
    let mut phone = alice();
    phone.call("a1", "bob");
    assert_eq!(
        phone.take_sent(),
        [ClientMessage::CallInvite { call_id: "a1".into(), to: "bob".into(), media: Media::Video, conversation: None }]
    );
    assert_eq!(phone.sent[0].id, RequestId::new("c1"), "request ids count from c1");
    assert_eq!(phone.take_events(), [state_changed("a1", CallState::OutgoingRinging)]);
    let view = phone.phone.call(&"a1".into()).expect("the call is visible");
    assert_eq!(view.state, CallState::OutgoingRinging);
    assert_eq!(view.ring_deadline, Some(T0.saturating_add_ms(60_000)));
    assert_eq!(phone.wake_at, Some(T0.saturating_add_ms(60_000)));
}

#[test]
fn remote_ringing_is_reported() {
    let mut phone = alice();
    phone.call("a1", "bob");
    phone.take_events();
    let ringing = ServerMessage::CallRinging { call_id: "a1".into(), user: "bob".into() };
    phone.server(ringing.clone());
    phone.server(ringing);
    assert_eq!(phone.take_events(), [CallEvent::RemoteRinging { call_id: "a1".into() }], "reported once");
    assert!(phone.phone.call(&"a1".into()).is_some_and(|view| view.remote_ringing));
    assert_eq!(phone.state("a1"), CallState::OutgoingRinging);
}

#[test]
fn a_video_call_answered_with_audio_only_starts_audio_media() {
    let mut phone = alice();
    phone.call("a1", "bob");
    phone.take_events();
    phone.server(ServerMessage::CallAccepted {
        call_id: "a1".into(),
        user: "bob".into(),
        device: "bob-dev".into(),
        media: Media::Audio,
    });
    let events = phone.take_events();
    let media = events.iter().find_map(|e| match e {
        CallEvent::StartMedia { media, .. } => Some(*media),
        _ => None,
    });
    assert_eq!(media, Some(Media::Audio), "{events:?}");
}

#[test]
fn accepted_call_starts_media_as_offerer() {
    let mut phone = alice();
    phone.call("a1", "bob");
    phone.take_events();
    phone.advance(5_000);
    phone.server(accepted("a1", "bob", "bob-dev"));
    assert_eq!(
        phone.take_events(),
        [
            state_changed("a1", CallState::Connecting),
            CallEvent::StartMedia {
                call_id: "a1".into(),
                remote: "bob".into(),
                remote_device: "bob-dev".into(),
                offerer: true,
                media: Media::Video,
            },
        ]
    );
    assert_eq!(phone.wake_at, Some(T0.saturating_add_ms(5_000 + 30_000)), "the connect deadline");
    phone.media("a1", MediaEvent::Connected);
    assert_eq!(phone.take_events(), [state_changed("a1", CallState::Connected)]);
    assert_eq!(phone.phone.call(&"a1".into()).and_then(|view| view.connected_at), Some(phone.now));
    assert_eq!(phone.wake_at, None);
}

// --- incoming ---

#[test]
fn incoming_call_sends_ringing_and_notifies() {
    let mut phone = alice();
    phone.invite_from("b1", "bob");
    assert_eq!(phone.take_sent(), [ClientMessage::CallRinging { call_id: "b1".into() }]);
    assert_eq!(
        phone.take_events(),
        [CallEvent::Incoming {
            call_id: "b1".into(),
            from: "bob".into(),
            from_name: "Bob".into(),
            media: Media::Video,
            stacked: false,
            ring_deadline: T0.saturating_add_ms(60_000),
        }]
    );
    assert_eq!(phone.state("b1"), CallState::IncomingRinging);
}

#[test]
fn accept_starts_media_as_answerer() {
    let mut phone = ringing_from_bob();
    phone.command(Command::Accept { call_id: "b1".into(), media: Media::Audio });
    assert_eq!(phone.take_sent(), [ClientMessage::CallAccept { call_id: "b1".into(), media: Media::Audio }]);
    assert_eq!(phone.take_events(), [state_changed("b1", CallState::Connecting)], "media waits for the server's ok");
    phone.reply_ok("call.accept");
    let start = CallEvent::StartMedia {
        call_id: "b1".into(),
        remote: "bob".into(),
        remote_device: "bob-dev".into(),
        offerer: false,
        media: Media::Audio,
    };
    assert_eq!(phone.take_events(), [start]);
    // The server also tells the accepting device; media is not started twice.
    phone.server(accepted("b1", "alice", "alice-dev"));
    assert_eq!(phone.take_events(), []);
    assert_eq!(phone.phone.call(&"b1".into()).map(|view| view.media), Some(Media::Audio));
}

#[test]
fn decline_sends_declined() {
    let mut phone = ringing_from_bob();
    phone.command(Command::Decline { call_id: "b1".into() });
    assert_eq!(
        phone.take_sent(),
        [ClientMessage::CallDecline { call_id: "b1".into(), reason: DeclineReason::Declined }]
    );
    assert_eq!(phone.take_events(), [ended("b1", EndReason::Declined)]);
    assert_eq!(phone.state("b1"), CallState::Ended(EndReason::Declined), "ended calls stay visible");
    assert_eq!(phone.wake_at, None);
}

#[test]
fn decline_while_in_call_sends_busy() {
    let mut phone = in_call_with_bob();
    phone.invite_from("c1", "carol");
    phone.take_sent();
    phone.command(Command::Decline { call_id: "c1".into() });
    assert_eq!(phone.take_sent(), [ClientMessage::CallDecline { call_id: "c1".into(), reason: DeclineReason::Busy }]);
    assert_eq!(phone.end_reasons(), [("c1".into(), EndReason::Declined)]);
    assert_eq!(phone.state("a1"), CallState::Connected);
}

#[test]
fn second_incoming_while_connected_is_stacked() {
    let mut phone = in_call_with_bob();
    phone.invite_from("c1", "carol");
    assert_eq!(phone.take_sent(), [ClientMessage::CallRinging { call_id: "c1".into() }]);
    let events = phone.take_events();
    assert!(
        matches!(&events[..], [CallEvent::Incoming { call_id, stacked: true, .. }] if call_id.as_str() == "c1"),
        "{events:?}"
    );
    assert_eq!(phone.state("a1"), CallState::Connected);
}

#[test]
fn accepting_stacked_call_ends_current() {
    let mut phone = in_call_with_bob();
    phone.invite_from("c1", "carol");
    phone.take_sent();
    phone.take_events();
    phone.accept("c1");
    assert_eq!(
        phone.take_sent(),
        [call_end("a1"), ClientMessage::CallAccept { call_id: "c1".into(), media: Media::Video }]
    );
    assert_eq!(phone.take_events(), [ended("a1", EndReason::HangupLocal), state_changed("c1", CallState::Connecting)]);
}

#[test]
fn declined_call_names_the_decliner() {
    let mut phone = alice();
    phone.call("a1", "bob");
    phone.take_events();
    phone.ended("a1", WireEndReason::Declined, Some("bob"));
    assert_eq!(
        phone.take_events(),
        [CallEvent::Ended { call_id: "a1".into(), reason: EndReason::Declined, by_name: Some("Bob".into()) }]
    );
    assert_eq!(
        phone.take_sent(),
        [ClientMessage::CallInvite { call_id: "a1".into(), to: "bob".into(), media: Media::Video, conversation: None }]
    );
}

// --- hanging up ---

#[test]
fn caller_cancel_while_ringing() {
    let mut phone = alice();
    phone.call("a1", "bob");
    phone.take_sent();
    phone.take_events();
    phone.command(Command::Hangup { call_id: "a1".into() });
    assert_eq!(phone.take_sent(), [ClientMessage::CallCancel { call_id: "a1".into() }]);
    assert_eq!(phone.take_events(), [ended("a1", EndReason::Canceled)]);
    assert_eq!(phone.wake_at, None, "no ring deadline is left");
}

#[test]
fn remote_hangup_ends_with_hangup_remote() {
    let mut phone = in_call_with_bob();
    phone.ended("a1", WireEndReason::Hangup, Some("bob"));
    assert_eq!(phone.take_sent(), []);
    assert_eq!(
        phone.take_events(),
        [CallEvent::Ended { call_id: "a1".into(), reason: EndReason::HangupRemote, by_name: Some("Bob".into()) }]
    );
}

#[test]
fn local_hangup_ends_with_hangup_local() {
    let mut phone = in_call_with_bob();
    phone.command(Command::Hangup { call_id: "a1".into() });
    assert_eq!(phone.take_sent(), [call_end("a1")]);
    assert_eq!(phone.take_events(), [ended("a1", EndReason::HangupLocal)]);
    // The server's report of our own hangup changes nothing.
    phone.ended("a1", WireEndReason::Hangup, Some("alice"));
    assert_eq!(phone.take_events(), []);
    assert_eq!(phone.state("a1"), CallState::Ended(EndReason::HangupLocal));
}

// --- ring timeout ---

#[test]
fn missed_after_exactly_60s() {
    let mut phone = ringing_from_bob();
    phone.advance(60_000);
    assert_eq!(phone.take_sent(), [ClientMessage::CallTimeout { call_id: "b1".into() }]);
    assert_eq!(phone.take_events(), [ended("b1", EndReason::Missed)]);
    // The server ends it too; its report for a call already over is ignored.
    phone.ended("b1", WireEndReason::Missed, None);
    assert_eq!(phone.take_events(), []);
    assert_eq!(phone.take_sent(), []);
}

#[test]
fn not_missed_at_59_9s() {
    let mut phone = ringing_from_bob();
    phone.advance(59_900);
    assert_eq!(phone.state("b1"), CallState::IncomingRinging);
    phone.advance(99);
    assert_eq!(phone.state("b1"), CallState::IncomingRinging, "still ringing one millisecond before the deadline");
    assert_eq!(phone.take_sent(), []);
    assert_eq!(phone.take_events(), []);
    assert_eq!(phone.wake_at, Some(T0.saturating_add_ms(60_000)));
    phone.advance(1);
    assert_eq!(phone.state("b1"), CallState::Ended(EndReason::Missed));
}

#[test]
fn caller_gives_up_after_60s() {
    let mut phone = alice();
    phone.call("a1", "bob");
    phone.take_sent();
    phone.take_events();
    phone.advance(59_999);
    assert_eq!(phone.state("a1"), CallState::OutgoingRinging);
    phone.advance(1);
    assert_eq!(phone.take_sent(), [ClientMessage::CallTimeout { call_id: "a1".into() }]);
    assert_eq!(phone.take_events(), [ended("a1", EndReason::Missed)]);
}

#[test]
fn server_timeout_event_ends_as_missed() {
    let mut phone = alice();
    phone.call("a1", "bob");
    phone.take_sent();
    phone.take_events();
    phone.advance(59_000);
    phone.ended("a1", WireEndReason::Missed, None);
    assert_eq!(phone.take_events(), [ended("a1", EndReason::Missed)]);
    phone.advance(1_000);
    assert_eq!(phone.take_sent(), [], "the server ended it; no call.timeout follows");
    assert_eq!(phone.take_events(), []);
}

#[test]
fn accept_at_the_deadline_is_too_late() {
    let mut phone = ringing_from_bob();
    phone.now = T0.saturating_add_ms(60_000);
    let result = phone.input(Input::Command(Command::Accept { call_id: "b1".into(), media: Media::Video }));
    assert_eq!(
        result,
        Err(CommandError::WrongState {
            call_id: "b1".into(),
            state: CallState::Ended(EndReason::Missed),
            command: "accept"
        })
    );
    assert_eq!(phone.take_sent(), [ClientMessage::CallTimeout { call_id: "b1".into() }]);
}

// --- glare ---

#[test]
fn glare_loser_accepts_winner() {
    let mut phone = alice();
    phone.call("b-alice", "bob");
    phone.take_sent();
    phone.take_events();
    // Bob's call id is smaller: it wins.
    phone.invite_from("a-bob", "bob");
    assert_eq!(
        phone.take_sent(),
        [
            ClientMessage::CallCancel { call_id: "b-alice".into() },
            ClientMessage::CallAccept { call_id: "a-bob".into(), media: Media::Video },
        ]
    );
    assert_eq!(
        phone.take_events(),
        [
            CallEvent::Replaced { old: "b-alice".into(), new: "a-bob".into() },
            state_changed("a-bob", CallState::Connecting),
        ]
    );
    assert!(phone.phone.call(&"b-alice".into()).is_none(), "the replaced call is gone, not ended");
    phone.ended("b-alice", WireEndReason::Canceled, Some("alice"));
    phone.reply_ok("call.accept");
    assert_eq!(
        phone.take_events(),
        [CallEvent::StartMedia {
            call_id: "a-bob".into(),
            remote: "bob".into(),
            remote_device: "bob-dev".into(),
            offerer: false,
            media: Media::Video,
        }]
    );
    assert_eq!(phone.end_reasons(), []);
}

#[test]
fn glare_winner_keeps_ringing_and_connects() {
    let mut phone = alice();
    phone.call("a-alice", "bob");
    phone.take_sent();
    phone.take_events();
    phone.invite_from("b-bob", "bob");
    assert_eq!(phone.take_sent(), [], "no call.ringing for the losing call");
    assert_eq!(phone.take_events(), [], "no Incoming for the losing call");
    assert!(phone.phone.call(&"b-bob".into()).is_none());
    assert_eq!(phone.state("a-alice"), CallState::OutgoingRinging);
    // Bob lost: he cancels his call and accepts ours.
    phone.ended("b-bob", WireEndReason::Canceled, Some("bob"));
    assert_eq!(phone.take_events(), []);
    phone.server(accepted("a-alice", "bob", "bob-dev"));
    phone.media("a-alice", MediaEvent::Connected);
    let events = phone.take_events();
    assert!(
        events.contains(&CallEvent::StartMedia {
            call_id: "a-alice".into(),
            remote: "bob".into(),
            remote_device: "bob-dev".into(),
            offerer: true,
            media: Media::Video,
        }),
        "{events:?}"
    );
    assert_eq!(phone.state("a-alice"), CallState::Connected);
    assert_eq!(phone.end_reasons(), []);
}

#[test]
fn glare_is_decided_the_same_on_both_ends() {
    for (alice_id, bob_id) in [("7f3a", "2c91"), ("2c91", "7f3a")] {
        let winner = if alice_id < bob_id { alice_id } else { bob_id };
        let mut relay = Relay::default();
        let mut a = alice();
        let mut b = TestPhone::new("bob", "bob-dev");
        a.call(alice_id, "bob");
        b.call(bob_id, "alice");
        relay.run(&mut [&mut a, &mut b]);

        assert_eq!(a.state(winner), CallState::Connecting, "alice, winner {winner}");
        assert_eq!(b.state(winner), CallState::Connecting, "bob, winner {winner}");
        let offerers = |phone: &TestPhone| -> Vec<bool> {
            phone
                .events
                .iter()
                .filter_map(|event| match event {
                    CallEvent::StartMedia { call_id, offerer, .. } if call_id.as_str() == winner => Some(*offerer),
                    _ => None,
                })
                .collect()
        };
        // The winner's caller offers, the other answers: exactly one offer.
        let alice_offers = alice_id == winner;
        assert_eq!(offerers(&a), [alice_offers]);
        assert_eq!(offerers(&b), [!alice_offers]);

        a.media(winner, MediaEvent::Connected);
        b.media(winner, MediaEvent::Connected);
        assert_eq!(a.state(winner), CallState::Connected);
        assert_eq!(b.state(winner), CallState::Connected);
        assert_eq!(a.end_reasons(), [], "no ended call shown to alice");
        assert_eq!(b.end_reasons(), [], "no ended call shown to bob");
        assert_eq!(a.phone.calls().count() + b.phone.calls().count(), 2, "one call on each side, no ghost");
    }
}

// --- multi-device ---

#[test]
fn second_device_accept_loses_race() {
    let mut phone = ringing_from_bob();
    phone.accept("b1");
    phone.take_sent();
    phone.take_events();
    phone.reply_error("call.accept", ErrorCode::InvalidState);
    assert_eq!(phone.take_events(), [ended("b1", EndReason::AcceptedElsewhere)]);
    assert_eq!(phone.take_sent(), [], "the other device's call goes on");
    phone.ended("b1", WireEndReason::AcceptedElsewhere, None);
    assert_eq!(phone.take_events(), []);
}

#[test]
fn accepted_elsewhere_stops_ringing() {
    let mut phone = ringing_from_bob();
    phone.ended("b1", WireEndReason::AcceptedElsewhere, None);
    assert_eq!(phone.take_events(), [ended("b1", EndReason::AcceptedElsewhere)]);
    assert_eq!(phone.take_sent(), []);
    assert_eq!(phone.wake_at, None, "the ring timer stops");
}

#[test]
fn declined_elsewhere_stops_ringing() {
    let mut phone = ringing_from_bob();
    phone.ended("b1", WireEndReason::DeclinedElsewhere, Some("alice"));
    assert_eq!(
        phone.take_events(),
        [CallEvent::Ended {
            call_id: "b1".into(),
            reason: EndReason::DeclinedElsewhere,
            by_name: Some("Alice".into())
        }]
    );
    assert_eq!(phone.take_sent(), []);
    assert_eq!(phone.wake_at, None);
}

// --- media ---

#[test]
fn connect_timeout_fails_with_ice() {
    let mut phone = alice();
    phone.call("a1", "bob");
    phone.server(accepted("a1", "bob", "bob-dev"));
    phone.take_sent();
    phone.take_events();
    phone.advance(29_999);
    assert_eq!(phone.state("a1"), CallState::Connecting);
    phone.advance(1);
    assert_eq!(
        phone.take_sent(),
        [ClientMessage::CallEnd { call_id: "a1".into(), failure: Some(FailureKind::Ice), reconnect_timeout: false }]
    );
    assert_eq!(phone.take_events(), [ended("a1", EndReason::Failed(FailureKind::Ice))]);
}

#[test]
fn media_loss_enters_reconnecting_and_recovers() {
    let mut phone = in_call_with_bob();
    let connected_at = phone.phone.call(&"a1".into()).and_then(|view| view.connected_at);
    phone.advance(10_000);
    phone.media("a1", MediaEvent::Disconnected);
    assert_eq!(phone.take_events(), [state_changed("a1", CallState::Reconnecting)]);
    assert_eq!(phone.wake_at, Some(phone.now.saturating_add_ms(30_000)));
    phone.advance(5_000);
    phone.media("a1", MediaEvent::Connected);
    assert_eq!(phone.take_events(), [state_changed("a1", CallState::Connected)]);
    assert_eq!(phone.wake_at, None);
    assert_eq!(phone.take_sent(), []);
    assert_eq!(phone.phone.call(&"a1".into()).and_then(|view| view.connected_at), connected_at, "first connect");
}

#[test]
fn reconnect_timeout_ends_call() {
    let mut phone = in_call_with_bob();
    phone.media("a1", MediaEvent::Disconnected);
    phone.take_events();
    phone.advance(29_999);
    assert_eq!(phone.state("a1"), CallState::Reconnecting);
    phone.advance(1);
    assert_eq!(
        phone.take_sent(),
        [ClientMessage::CallEnd { call_id: "a1".into(), failure: None, reconnect_timeout: true }]
    );
    assert_eq!(phone.take_events(), [ended("a1", EndReason::TimeoutReconnect)]);
}

#[test]
fn media_failure_reports_kind() {
    let mut phone = in_call_with_bob();
    phone.media("a1", MediaEvent::Failed(FailureKind::Dtls));
    assert_eq!(
        phone.take_sent(),
        [ClientMessage::CallEnd { call_id: "a1".into(), failure: Some(FailureKind::Dtls), reconnect_timeout: false }]
    );
    assert_eq!(phone.take_events(), [ended("a1", EndReason::Failed(FailureKind::Dtls))]);
    phone.media("a1", MediaEvent::Failed(FailureKind::Dtls));
    assert_eq!(phone.take_events(), [], "a repeated report changes nothing");
}

// --- duplicates and idempotency ---

#[test]
fn duplicate_invite_is_ignored() {
    let mut phone = alice();
    phone.invite_from("b1", "bob");
    phone.invite_from("b1", "bob");
    assert_eq!(phone.take_sent(), [ClientMessage::CallRinging { call_id: "b1".into() }]);
    assert_eq!(phone.take_events().len(), 1);
    phone.command(Command::Decline { call_id: "b1".into() });
    phone.take_events();
    phone.invite_from("b1", "bob");
    assert_eq!(phone.take_events(), [], "an invite for a call already over is ignored too");
    assert_eq!(phone.phone.calls().count(), 1);
}

#[test]
fn start_in_active_conversation_adopts_existing_call() {
    let mut phone = alice();
    phone.call("a2", "bob");
    phone.take_sent();
    phone.take_events();
    // The conversation already has a1, started earlier by alice.
    let mut existing = snapshot("a1", "alice", "bob", T0);
    existing.caller_device = "alice-dev".into();
    let re = phone.request_id("call.invite");
    phone.server(ServerMessage::CallCreated { re, call: existing, existing: true });
    assert_eq!(phone.take_events(), [CallEvent::Replaced { old: "a2".into(), new: "a1".into() }]);
    assert!(phone.phone.call(&"a2".into()).is_none());
    let view = phone.phone.call(&"a1".into()).expect("adopted");
    assert_eq!(view.state, CallState::OutgoingRinging);
    assert_eq!(view.remote_name, "Bob");
    phone.server(accepted("a1", "bob", "bob-dev"));
    assert_eq!(phone.state("a1"), CallState::Connecting);
    assert_eq!(phone.end_reasons(), []);
}

#[test]
fn start_in_conversation_they_ring_accepts_their_call() {
    let mut phone = alice();
    phone.call("a2", "bob");
    phone.take_sent();
    phone.take_events();
    let re = phone.request_id("call.invite");
    phone.server(ServerMessage::CallCreated { re, call: snapshot("b1", "bob", "alice", T0), existing: true });
    assert_eq!(phone.take_sent(), [ClientMessage::CallAccept { call_id: "b1".into(), media: Media::Video }]);
    assert_eq!(
        phone.take_events(),
        [CallEvent::Replaced { old: "a2".into(), new: "b1".into() }, state_changed("b1", CallState::Connecting)]
    );
    // Its invite, arriving late, is a duplicate.
    phone.invite_from("b1", "bob");
    assert_eq!(phone.take_events(), []);
}

#[test]
fn calling_back_a_ringing_caller_accepts_their_call() {
    let mut phone = ringing_from_bob();
    phone.call("a1", "bob");
    assert_eq!(phone.take_sent(), [ClientMessage::CallAccept { call_id: "b1".into(), media: Media::Video }]);
    assert_eq!(
        phone.take_events(),
        [CallEvent::Replaced { old: "a1".into(), new: "b1".into() }, state_changed("b1", CallState::Connecting)]
    );
}

#[test]
fn commands_that_make_no_sense_fail_without_effect() {
    let mut phone = in_call_with_bob();
    let mut try_command = |command| phone.input(Input::Command(command));
    assert_eq!(try_command(Command::Hangup { call_id: "zz".into() }), Err(CommandError::UnknownCall("zz".into())));
    assert_eq!(
        try_command(Command::Accept { call_id: "a1".into(), media: Media::Audio }),
        Err(CommandError::WrongState { call_id: "a1".into(), state: CallState::Connected, command: "accept" })
    );
    assert_eq!(
        try_command(Command::Call { call_id: "a9".into(), to: "carol".into(), media: Media::Audio }),
        Err(CommandError::Busy { active: "a1".into() })
    );
    assert_eq!(
        try_command(Command::Call { call_id: "a1".into(), to: "carol".into(), media: Media::Audio }),
        Err(CommandError::DuplicateCallId("a1".into()))
    );
    assert_eq!(
        try_command(Command::Call { call_id: "a9".into(), to: "alice".into(), media: Media::Audio }),
        Err(CommandError::CallingSelf)
    );
    phone.command(Command::Hangup { call_id: "a1".into() });
    phone.take_sent();
    assert_eq!(
        phone.input(Input::Command(Command::Hangup { call_id: "a1".into() })),
        Err(CommandError::WrongState {
            call_id: "a1".into(),
            state: CallState::Ended(EndReason::HangupLocal),
            command: "hang up"
        })
    );
    assert_eq!(phone.take_sent(), []);
}

// --- signaling loss ---

/// Drops and restores signaling; returns the id of the `call.sync` request.
fn resync(phone: &mut TestPhone) -> RequestId {
    phone.input(Input::SignalingLost).expect("never fails");
    phone.advance(3_000);
    phone.input(Input::SignalingRestored).expect("never fails");
    assert_eq!(phone.take_sent(), [ClientMessage::CallSync {}]);
    phone.request_id("call.sync")
}

#[test]
fn signaling_loss_changes_no_call() {
    let mut phone = in_call_with_bob();
    phone.input(Input::SignalingLost).expect("never fails");
    assert_eq!(phone.take_events(), []);
    assert_eq!(phone.state("a1"), CallState::Connected);
}

#[test]
fn resync_restores_ringing_call() {
    let mut phone = ringing_from_bob();
    let re = resync(&mut phone);
    // b1 still rings; carol's invite was lost with the connection.
    let from_carol = snapshot("c1", "carol", "alice", phone.now);
    phone.server(ServerMessage::Calls { re, calls: vec![snapshot("b1", "bob", "alice", T0), from_carol] });
    assert_eq!(phone.state("b1"), CallState::IncomingRinging);
    assert_eq!(phone.take_sent(), [ClientMessage::CallRinging { call_id: "c1".into() }]);
    let events = phone.take_events();
    assert!(matches!(&events[..], [CallEvent::Incoming { call_id, .. }] if call_id.as_str() == "c1"), "{events:?}");
    assert_eq!(phone.state("c1"), CallState::IncomingRinging);
}

#[test]
fn resync_ends_ghost_call_with_signaling_failure() {
    let mut phone = in_call_with_bob();
    let re = resync(&mut phone);
    phone.server(ServerMessage::Calls { re, calls: vec![] });
    assert_eq!(phone.take_events(), [ended("a1", EndReason::Failed(FailureKind::Signaling))]);
    assert_eq!(phone.take_sent(), []);
    assert_eq!(phone.phone.calls().filter(|view| !view.state.is_ended()).count(), 0);
}

#[test]
fn resync_spares_calls_newer_than_the_request() {
    let mut phone = alice();
    let re = resync(&mut phone);
    phone.call("a1", "bob");
    phone.take_events();
    phone.server(ServerMessage::Calls { re, calls: vec![] });
    assert_eq!(phone.take_events(), []);
    assert_eq!(phone.state("a1"), CallState::OutgoingRinging);
}

#[test]
fn resync_marks_call_answered_elsewhere() {
    let mut phone = ringing_from_bob();
    let re = resync(&mut phone);
    let mut call = snapshot("b1", "bob", "alice", T0);
    call.phase = CallPhase::Active;
    call.participants[0].state = ParticipantState::Joined;
    call.participants[0].device = Some("alice-laptop".into());
    phone.server(ServerMessage::Calls { re, calls: vec![call] });
    assert_eq!(phone.take_events(), [ended("b1", EndReason::AcceptedElsewhere)]);
    assert_eq!(phone.take_sent(), []);
}

#[test]
fn resync_repeats_a_hangup_the_server_missed() {
    let mut phone = in_call_with_bob();
    phone.input(Input::SignalingLost).expect("never fails");
    phone.command(Command::Hangup { call_id: "a1".into() });
    assert_eq!(phone.take_sent(), [call_end("a1")], "sent into the void");
    phone.input(Input::SignalingRestored).expect("never fails");
    phone.take_sent();
    let re = phone.request_id("call.sync");
    let mut call = snapshot("a1", "alice", "bob", T0);
    call.phase = CallPhase::Active;
    phone.server(ServerMessage::Calls { re, calls: vec![call] });
    assert_eq!(phone.take_sent(), [call_end("a1")]);
}

#[test]
fn stale_sync_reply_is_ignored() {
    let mut phone = in_call_with_bob();
    let re = resync(&mut phone);
    phone.server(ServerMessage::Calls { re: re.clone(), calls: vec![] });
    phone.take_events();
    phone.command(Command::Call { call_id: "a2".into(), to: "bob".into(), media: Media::Audio });
    phone.take_events();
    phone.server(ServerMessage::Calls { re, calls: vec![] });
    assert_eq!(phone.take_events(), [], "a second reply to the same request finds nothing");
}

// --- robustness ---

#[test]
fn unknown_call_events_are_ignored() {
    let mut phone = in_call_with_bob();
    let unknown: CallId = "nope".into();
    let messages = [
        ServerMessage::CallRinging { call_id: unknown.clone(), user: "bob".into() },
        accepted("nope", "bob", "bob-dev"),
        ServerMessage::CallEnded {
            call_id: unknown.clone(),
            reason: WireEndReason::Hangup,
            by: None,
            by_name: None,
            failure: None,
        },
        ServerMessage::Ok { re: "c999".into() },
        ServerMessage::Ok { re: "weird".into() },
        ServerMessage::error(Some("c1".into()), ErrorCode::InvalidState, "late"),
        ServerMessage::error(None, ErrorCode::Internal, "connection-level"),
        ServerMessage::CallCreated { re: "c42".into(), call: snapshot("x", "alice", "bob", T0), existing: true },
        ServerMessage::Calls { re: "c43".into(), calls: vec![] },
        ServerMessage::Sdp {
            call_id: unknown.clone(),
            from: "bob".into(),
            from_device: "bob-dev".into(),
            kind: SdpKind::Offer,
            sdp: "v=0".into(),
        },
        // A replayed invite for our own call and one whose ring deadline already passed.
        ServerMessage::CallInvite { call: snapshot("a1", "bob", "alice", T0) },
        ServerMessage::CallInvite { call: snapshot("old", "bob", "alice", T0) },
    ];
    phone.advance(60_000);
    for message in messages {
        phone.server(message);
    }
    for event in [MediaEvent::Connected, MediaEvent::Disconnected, MediaEvent::Failed(FailureKind::Media)] {
        phone.media("nope", event);
    }
    // A connected call ignores a second "connected".
    phone.media("a1", MediaEvent::Connected);
    assert_eq!(phone.take_sent(), []);
    assert_eq!(phone.take_events(), []);
    assert_eq!(phone.state("a1"), CallState::Connected);
}

#[test]
fn poll_output_reports_earliest_deadline() {
    let mut phone = in_call_with_bob();
    assert_eq!(phone.wake_at, None, "a connected call has no deadline: idle");
    phone.advance(10_000);
    phone.invite_from("c1", "carol");
    assert_eq!(phone.wake_at, Some(T0.saturating_add_ms(70_000)));
    // The server's deadline is earlier than our own 60 s: the earlier one counts.
    let mut hurried = snapshot("d1", "dave", "alice", T0);
    hurried.ring_deadline = T0.saturating_add_ms(40_000);
    hurried.participants[0].ring_deadline = Some(hurried.ring_deadline);
    phone.server(ServerMessage::CallInvite { call: hurried });
    assert_eq!(phone.wake_at, Some(T0.saturating_add_ms(40_000)));
    phone.media("a1", MediaEvent::Disconnected);
    assert_eq!(phone.wake_at, Some(T0.saturating_add_ms(40_000)), "reconnect deadline is at 40 s too");
    phone.advance(30_000);
    assert_eq!(phone.state("d1"), CallState::Ended(EndReason::Missed));
    assert_eq!(phone.state("a1"), CallState::Ended(EndReason::TimeoutReconnect));
    assert_eq!(phone.wake_at, Some(T0.saturating_add_ms(70_000)));
    phone.advance(30_000);
    assert_eq!(phone.wake_at, None);
}

#[test]
fn ended_calls_are_kept_bounded() {
    let mut phone = alice();
    for n in 0..40 {
        let id = format!("b{n}");
        phone.invite_from(&id, "bob");
        phone.command(Command::Decline { call_id: id.as_str().into() });
    }
    assert_eq!(phone.phone.calls().count(), 16);
    assert!(phone.phone.call(&"b39".into()).is_some());
    assert!(phone.phone.call(&"b0".into()).is_none());
}
