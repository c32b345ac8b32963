//! The echo bot ("Echo test"): a contact on every reference server that answers each call at
//! once, so a new user can make a test call straight away. It is an ordinary member of calls to
//! the switchboard, attached as an in-process session; its media half comes with the WebRTC
//! peer. It holds no IO: messages in, requests out.

use std::collections::HashSet;

use calldock_protocol::{CallId, ClientMessage, ServerMessage};

pub const ECHO_DISPLAY_NAME: &str = "Echo test";

#[derive(Default)]
pub struct EchoBot {
    in_call: HashSet<CallId>,
}

impl EchoBot {
    /// Reacts to a message the switchboard sent the bot.
    pub fn on_message(&mut self, message: &ServerMessage) -> Vec<ClientMessage> {
        match message {
            ServerMessage::CallInvite { call } if !self.in_call.contains(&call.call_id) => {
                self.in_call.insert(call.call_id.clone());
                vec![
                    ClientMessage::CallRinging { call_id: call.call_id.clone() },
                    ClientMessage::CallAccept { call_id: call.call_id.clone(), media: call.media },
                ]
            }
            ServerMessage::CallEnded { call_id, .. } => {
                self.in_call.remove(call_id);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }
}
