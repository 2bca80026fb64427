//! The checkpoint rule: a folder's watermark is the highest UID below which
//! every fetched message is committed. Messages may commit out of order (many
//! parser threads); each carries the UID fetched before it, and the watermark
//! moves along those links only.

use std::collections::HashMap;

/// Per-folder watermark with the links committed ahead of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watermark {
    uidvalidity: u32,
    uid: u32,
    /// after → uid links committed while an earlier message was missing.
    ahead: HashMap<u32, u32>,
}

impl Watermark {
    /// Starts at a saved checkpoint (or 0).
    pub fn new(uidvalidity: u32, uid: u32) -> Self {
        Self {
            uidvalidity,
            uid,
            ahead: HashMap::new(),
        }
    }

    /// The current watermark.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// The UIDVALIDITY it belongs to.
    pub fn uidvalidity(&self) -> u32 {
        self.uidvalidity
    }

    /// Records that `uid` (fetched right after `after`) is committed, and
    /// advances as far as the links allow. A new UIDVALIDITY restarts the
    /// watermark from zero; links at or below the watermark are replays.
    pub fn commit(&mut self, uidvalidity: u32, after: u32, uid: u32) {
        if uidvalidity != self.uidvalidity {
            *self = Self::new(uidvalidity, 0);
        }
        if uid <= self.uid {
            return;
        }
        if after <= self.uid {
            // `after` at or below the watermark: nothing earlier is missing.
            self.uid = uid;
        } else {
            self.ahead.insert(after, uid);
        }
        while let Some(next) = self.ahead.remove(&self.uid) {
            self.uid = self.uid.max(next);
        }
        self.ahead.retain(|_, u| *u > self.uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advances_only_over_contiguous_links() {
        let mut w = Watermark::new(7, 10);
        w.commit(7, 12, 15); // 12 not yet committed
        assert_eq!(w.uid(), 10);
        w.commit(7, 10, 12);
        assert_eq!(w.uid(), 15);
        w.commit(7, 11, 12); // replay below the watermark
        assert_eq!(w.uid(), 15);
        w.commit(7, 15, 20);
        assert_eq!(w.uid(), 20);
    }

    #[test]
    fn a_restarted_session_below_the_watermark_still_advances() {
        let mut w = Watermark::new(7, 30);
        w.commit(7, 20, 25); // replayed
        w.commit(7, 25, 31); // its first new message
        assert_eq!(w.uid(), 31);
    }

    #[test]
    fn uidvalidity_change_restarts() {
        let mut w = Watermark::new(7, 30);
        w.commit(8, 0, 3);
        assert_eq!((w.uidvalidity(), w.uid()), (8, 3));
    }
}
