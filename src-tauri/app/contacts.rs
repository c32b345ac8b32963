//! Contacts: the echo test, people added by hand (`contacts.json`) and people from the call
//! history, without duplicates. Kept by the shell because the protocol has no address book.

use serde::{Deserialize, Serialize};

use super::transport::RecentCallJson;

/// The file in the app config dir.
pub const FILE: &str = "contacts.json";

/// Whether someone can take a call: the server's presence for them, `unknown` until it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    Online,
    Offline,
    /// Online and in a call.
    Busy,
    Unknown,
}

impl From<calldock_protocol::PresenceStatus> for Presence {
    fn from(status: calldock_protocol::PresenceStatus) -> Self {
        match status {
            calldock_protocol::PresenceStatus::Online => Presence::Online,
            calldock_protocol::PresenceStatus::Offline => Presence::Offline,
            calldock_protocol::PresenceStatus::Busy => Presence::Busy,
        }
    }
}

/// What the server said of each watched user.
pub type PresenceBook = std::collections::HashMap<String, Presence>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Contact {
    pub user_id: String,
    pub display_name: String,
    pub presence: Presence,
    pub is_echo: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedContact {
    pub user_id: String,
    pub display_name: String,
}

/// What the user did to the list: added people, and people from the history they removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContactBook {
    pub added: Vec<SavedContact>,
    pub hidden: Vec<String>,
}

impl ContactBook {
    /// Adds or renames someone; an empty name falls back to the user id.
    pub fn add(&mut self, user_id: &str, display_name: &str) {
        let display_name = if display_name.trim().is_empty() { user_id } else { display_name.trim() };
        self.hidden.retain(|h| h != user_id);
        match self.added.iter_mut().find(|c| c.user_id == user_id) {
            Some(c) => c.display_name = display_name.to_owned(),
            None => {
                self.added.push(SavedContact { user_id: user_id.to_owned(), display_name: display_name.to_owned() })
            }
        }
    }

    /// Removes someone: added ones are forgotten, ones from the history no longer listed.
    pub fn remove(&mut self, user_id: &str) {
        self.added.retain(|c| c.user_id != user_id);
        if !self.hidden.iter().any(|h| h == user_id) {
            self.hidden.push(user_id.to_owned());
        }
    }

    /// The list the UI shows: the echo test first, then added people, then people from the
    /// history (newest first), each once; never the user themself.
    pub fn list(
        &self,
        me: &str,
        history: &[RecentCallJson],
        echo_online: bool,
        presence: &PresenceBook,
    ) -> Vec<Contact> {
        let echo = calldock_protocol::ECHO_USER;
        let mut out = vec![Contact {
            user_id: echo.to_owned(),
            display_name: calldock_server::ECHO_DISPLAY_NAME.to_owned(),
            presence: if echo_online { Presence::Online } else { Presence::Unknown },
            is_echo: true,
        }];
        let mut push = |user_id: &str, display_name: &str| {
            if user_id.is_empty() || user_id == me || out.iter().any(|c| c.user_id == user_id) {
                return;
            }
            out.push(Contact {
                user_id: user_id.to_owned(),
                display_name: display_name.to_owned(),
                presence: presence.get(user_id).copied().unwrap_or(Presence::Unknown),
                is_echo: false,
            });
        };
        for c in &self.added {
            push(&c.user_id, &c.display_name);
        }
        for call in history {
            if !self.hidden.contains(&call.remote) {
                push(&call.remote, &call.remote_name);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use calldock_protocol::{Direction, Media, UnixMillis};

    use super::*;

    fn recent(remote: &str, name: &str) -> RecentCallJson {
        RecentCallJson {
            call_id: "0".repeat(32),
            direction: Direction::Incoming,
            remote: remote.into(),
            remote_name: name.into(),
            media: Media::Audio,
            missed: true,
            started_at: UnixMillis(1),
            answered_at: None,
            ended_at: None,
            end_reason: None,
        }
    }

    #[test]
    fn echo_first_then_added_then_history_each_once() {
        let mut book = ContactBook::default();
        book.add("carol", "Carol C.");
        let history =
            [recent("bob", "Bob"), recent("carol", "Carol"), recent("alice", "Me"), recent("echo", "Echo test")];
        let list = book.list("alice", &history, true, &PresenceBook::new());
        let ids: Vec<_> = list.iter().map(|c| (c.user_id.as_str(), c.display_name.as_str())).collect();
        assert_eq!(ids, [("echo", "Echo test"), ("carol", "Carol C."), ("bob", "Bob")]);
        assert!(list[0].is_echo);
        assert_eq!(list[0].presence, Presence::Online);
        assert_eq!(list[2].presence, Presence::Unknown);
        let said = PresenceBook::from([("bob".to_owned(), Presence::Busy), ("carol".to_owned(), Presence::Offline)]);
        let list = book.list("alice", &history, true, &said);
        assert_eq!((list[1].presence, list[2].presence), (Presence::Offline, Presence::Busy));
    }

    #[test]
    fn removed_people_stay_removed_until_added_again() {
        let mut book = ContactBook::default();
        book.add("carol", "");
        book.remove("carol");
        book.remove("bob");
        let history = [recent("bob", "Bob")];
        assert_eq!(book.list("alice", &history, false, &PresenceBook::new()).len(), 1, "only the echo test");
        book.add("bob", "Bobby");
        let list = book.list("alice", &history, false, &PresenceBook::new());
        assert_eq!(list[1].display_name, "Bobby");
        book.add("dave", "  ");
        assert_eq!(book.list("alice", &[], false, &PresenceBook::new())[2].display_name, "dave");
    }

    #[test]
    fn the_book_round_trips_as_json() {
        let mut book = ContactBook::default();
        book.add("carol", "Carol");
        book.remove("bob");
        let json = serde_json::to_string(&book).unwrap();
        assert_eq!(serde_json::from_str::<ContactBook>(&json).unwrap(), book);
        assert_eq!(serde_json::from_str::<ContactBook>("{}").unwrap(), ContactBook::default());
    }
}
