//! The event queue: std's binary heap, ordered by the integer-nanosecond
//! time alone.
//!
//! Measured against the alternatives (`benches/simulator_core.rs`): a radix
//! heap lost (with ~40 ms service times each entry is redistributed ~25
//! times), and a hand-written 4-ary heap lost to `BinaryHeap` once the
//! entries compare by an 8-byte key instead of field by field. Ties come
//! out in an unspecified but deterministic order.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

#[derive(Debug, Clone, Copy)]
struct Keyed<T>(u64, T);

impl<T> PartialEq for Keyed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl<T> Eq for Keyed<T> {}
impl<T> PartialOrd for Keyed<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Keyed<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

/// A min-queue of `(time, payload)`.
#[derive(Debug, Clone)]
pub struct EventQueue<T> {
    heap: BinaryHeap<Reverse<Keyed<T>>>,
}

impl<T: Copy> Default for EventQueue<T> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
        }
    }
}

impl<T: Copy> EventQueue<T> {
    /// Adds an entry.
    #[inline]
    pub fn push(&mut self, key: u64, value: T) {
        self.heap.push(Reverse(Keyed(key, value)));
    }

    /// The smallest key.
    #[inline]
    pub fn peek_key(&self) -> Option<u64> {
        self.heap.peek().map(|r| r.0.0)
    }

    /// Removes and returns the entry with the smallest key.
    #[inline]
    pub fn pop(&mut self) -> Option<(u64, T)> {
        self.heap.pop().map(|Reverse(Keyed(k, v))| (k, v))
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn pops_in_order_like_a_binary_heap() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut q = EventQueue::default();
        let mut reference = std::collections::BinaryHeap::new();
        let mut now = 0u64;
        for step in 0..200_000u32 {
            if rng.random_bool(0.55) || reference.is_empty() {
                // Future times, with ties now and then.
                let k = now + rng.random_range(0..1_000_000u64) * u64::from(step % 7 != 0);
                q.push(k, step);
                reference.push(std::cmp::Reverse(k));
            } else {
                let (k, _) = q.pop().unwrap();
                let std::cmp::Reverse(want) = reference.pop().unwrap();
                assert_eq!(k, want);
                now = k;
            }
            assert_eq!(q.len(), reference.len());
            assert_eq!(q.peek_key(), reference.peek().map(|r| r.0));
        }
        while let Some(std::cmp::Reverse(want)) = reference.pop() {
            assert_eq!(q.pop().unwrap().0, want);
        }
        assert!(q.pop().is_none() && q.is_empty());
    }
}
