//! Request ids, and what each outstanding request was, so replies can be acted on.

use std::collections::BTreeMap;

use calldock_protocol::{CallId, RequestId};

/// The requests whose reply changes a call. Replies to the others (`ok` to a cancel, say) need
/// no action, so those requests are not remembered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pending {
    /// Answered by `call.created`: the call we asked for, or the conversation's existing one.
    Invite(CallId),
    /// Answered by `ok` (this device won) or `error{invalid_state}` (another device did).
    Accept(CallId),
    /// Answered by `calls`. `before` is the sequence number of the first call this device
    /// learned of after sending it: the reply cannot know those.
    Sync { before: u64 },
}

/// Replies may never come (the connection drops, the server misbehaves); past this many
/// outstanding requests the oldest are forgotten so memory stays bounded.
const MAX_PENDING: usize = 256;

const PREFIX: &str = "c";

/// Issues ids `c1`, `c2`, … and remembers the pending ones.
#[derive(Debug, Default)]
pub(crate) struct Requests {
    issued: u64,
    pending: BTreeMap<u64, Pending>,
}

impl Requests {
    pub(crate) fn issue(&mut self, pending: Option<Pending>) -> RequestId {
        self.issued += 1;
        if let Some(pending) = pending {
            self.pending.insert(self.issued, pending);
            while self.pending.len() > MAX_PENDING {
                self.pending.pop_first();
            }
        }
        RequestId(format!("{PREFIX}{}", self.issued))
    }

    /// The request `re` answers, once: a second reply to the same id finds nothing.
    pub(crate) fn take(&mut self, re: &RequestId) -> Option<Pending> {
        let number = re.as_str().strip_prefix(PREFIX)?.parse::<u64>().ok()?;
        self.pending.remove(&number)
    }

    /// Forgets every outstanding request: their replies died with the connection.
    pub(crate) fn clear(&mut self) {
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_count_up_and_replies_are_taken_once() {
        let mut requests = Requests::default();
        let first = requests.issue(None);
        let second = requests.issue(Some(Pending::Accept("k".into())));
        assert_eq!(first.as_str(), "c1");
        assert_eq!(second.as_str(), "c2");
        assert_eq!(requests.take(&first), None);
        assert_eq!(requests.take(&second), Some(Pending::Accept("k".into())));
        assert_eq!(requests.take(&second), None);
    }

    #[test]
    fn foreign_ids_are_ignored() {
        let mut requests = Requests::default();
        requests.issue(Some(Pending::Sync { before: 0 }));
        for re in ["", "c", "x1", "c-1", "c99999999999999999999999", "c1 "] {
            assert_eq!(requests.take(&RequestId::new(re)), None, "{re:?}");
        }
    }

    #[test]
    fn pending_is_bounded() {
        let mut requests = Requests::default();
        let first = requests.issue(Some(Pending::Sync { before: 0 }));
        for _ in 0..MAX_PENDING {
            requests.issue(Some(Pending::Sync { before: 0 }));
        }
        assert_eq!(requests.pending.len(), MAX_PENDING);
        assert_eq!(requests.take(&first), None, "the oldest is forgotten first");
    }
}
