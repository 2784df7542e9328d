//! [`MessageMemory`]: the node-wide budget of bytes that large messages of inbound calls hold,
//! and [`Held`], one stream's share of it.
//!
//! Strangers choose the sizes of the requests they send and, through them, of the answers; the
//! number of streams bounds how many messages there are, not how large they are. Every large
//! message an inbound call receives or sends is charged here before it is buffered (as go-libp2p's
//! resource manager reserves memory on a stream's scope), and a message past the budget is
//! refused with [`RpcError::Busy`](crate::RpcError::Busy) instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Messages of at least this many bytes are charged; smaller ones are bounded by the streams
/// that carry them.
pub(crate) const LARGE_MESSAGE: usize = 64 << 10;

/// At most `limit` bytes of large messages at once.
#[derive(Debug)]
pub struct MessageMemory {
    limit: usize,
    used: AtomicUsize,
}

impl MessageMemory {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(MessageMemory {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// Bytes charged now.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn try_take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&after| after <= self.limit)
            })
            .is_ok()
    }

    fn give(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// What one stream holds of a [`MessageMemory`]; given back when dropped. Without a budget (the
/// calls this node makes) it holds nothing and grants everything.
#[derive(Debug, Default)]
pub(crate) struct Held {
    memory: Option<Arc<MessageMemory>>,
    bytes: usize,
}

/// A message refused because the node's budget for messages in flight is spent.
pub(crate) const SPENT: &str = "the node's memory for messages in flight is in use; retry later";

impl Held {
    /// A share of `memory`, holding nothing yet.
    pub(crate) fn of(memory: Arc<MessageMemory>) -> Self {
        Held {
            memory: Some(memory),
            bytes: 0,
        }
    }

    /// A share of the same budget, holding nothing yet.
    pub(crate) fn fresh(&self) -> Self {
        Held {
            memory: self.memory.clone(),
            bytes: 0,
        }
    }

    /// Holds `bytes` in all when they make a large message, nothing otherwise: more or less than
    /// before. False, holding what it held, when the budget cannot grant the difference.
    #[inline]
    pub(crate) fn hold(&mut self, bytes: usize) -> bool {
        let bytes = if bytes >= LARGE_MESSAGE { bytes } else { 0 };
        // Every frame passes here; a change of what is held is rare.
        bytes == self.bytes || self.change(bytes)
    }

    #[cold]
    fn change(&mut self, bytes: usize) -> bool {
        let Some(memory) = &self.memory else {
            return true;
        };
        if bytes > self.bytes {
            if !memory.try_take(bytes - self.bytes) {
                return false;
            }
        } else {
            memory.give(self.bytes - bytes);
        }
        self.bytes = bytes;
        true
    }

    /// At least `bytes`: grows to a large message, never shrinks.
    #[inline]
    pub(crate) fn hold_at_least(&mut self, bytes: usize) -> bool {
        bytes <= self.bytes || self.hold(bytes)
    }

    /// Gives everything back.
    pub(crate) fn release(&mut self) {
        self.hold(0);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_messages_are_charged_and_given_back() {
        let memory = MessageMemory::new(3 * LARGE_MESSAGE);
        let mut a = Held::of(memory.clone());
        let mut b = Held::of(memory.clone());
        assert!(a.hold(10), "small messages cost nothing");
        assert_eq!(memory.used(), 0);
        assert!(a.hold(2 * LARGE_MESSAGE));
        assert!(!b.hold(2 * LARGE_MESSAGE), "past the budget");
        assert!(b.hold(LARGE_MESSAGE));
        assert_eq!(memory.used(), 3 * LARGE_MESSAGE);
        assert!(a.hold_at_least(LARGE_MESSAGE), "never shrinks");
        assert_eq!(memory.used(), 3 * LARGE_MESSAGE);
        a.release();
        assert_eq!(memory.used(), LARGE_MESSAGE);
        drop(b);
        assert_eq!(memory.used(), 0);
    }

    #[test]
    fn without_a_budget_everything_is_granted() {
        let mut held = Held::default();
        assert!(held.hold(usize::MAX));
    }
}
