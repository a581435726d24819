//! The slots of one pool: a counting semaphore whose freed slots go to the waiter of highest
//! priority (the longest waiting among equals), not to the first come as in tokio's.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::sync::LockUnpoisoned as _;

/// A pool's slots, shared by every run in the process.
#[derive(Debug)]
pub struct Slots {
    name: String,
    size: usize,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    free: usize,
    /// Waiters, each with where its slot goes.
    waiters: BinaryHeap<Queued<oneshot::Sender<SlotGrant>>>,
    /// Tells waiters of equal priority apart by arrival.
    arrivals: u64,
}

/// An entry of a queue served by priority, the earliest among equals: the greatest is served
/// first. Pools queue their waiters so, and the executor its ready tasks.
#[derive(Debug)]
pub(crate) struct Queued<T> {
    rank: (i32, Reverse<u64>),
    pub value: T,
}

impl<T> Queued<T> {
    /// `value` of `priority`, the `arrival`-th to come.
    pub fn new(priority: i32, arrival: u64, value: T) -> Self {
        Queued {
            rank: (priority, Reverse(arrival)),
            value,
        }
    }
}

impl<T> PartialEq for Queued<T> {
    fn eq(&self, other: &Self) -> bool {
        self.rank == other.rank
    }
}
impl<T> Eq for Queued<T> {}
impl<T> PartialOrd for Queued<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Queued<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank.cmp(&other.rank)
    }
}

/// A slot in transit to a waiter. A grant that finds its waiter gone comes back to `release`
/// without being dropped (a drop would release it again while the lock is held); one that
/// reached its waiter just as it gave up is dropped with the channel, and frees its slot.
#[derive(Debug)]
struct SlotGrant(Option<Arc<Slots>>);

impl SlotGrant {
    fn into_slot(mut self) -> Option<Slot> {
        self.0.take().map(Slot)
    }
}

/// One slot of a pool, given back when dropped.
#[derive(Debug)]
pub struct Slot(Arc<Slots>);

impl Slots {
    /// A pool of `size` slots (at least one).
    pub fn new(name: impl Into<String>, size: usize) -> Arc<Slots> {
        let size = size.max(1);
        Arc::new(Slots {
            name: name.into(),
            size,
            state: Mutex::new(State {
                free: size,
                waiters: BinaryHeap::new(),
                arrivals: 0,
            }),
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many tasks may hold a slot at once.
    pub fn size(&self) -> usize {
        self.size
    }

    /// A free slot, if one is free now. A slot is only ever free while nobody waits: a freed
    /// slot goes straight to a waiter.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Slot> {
        let mut state = self.state.lock_unpoisoned();
        if state.free == 0 {
            return None;
        }
        state.free -= 1;
        Some(Slot(Arc::clone(self)))
    }

    /// A slot, once one is free for a waiter of `priority`. Dropping the future gives up the
    /// place in the queue.
    pub async fn acquire(self: &Arc<Self>, priority: i32) -> Slot {
        let receiver = {
            let mut state = self.state.lock_unpoisoned();
            if state.free > 0 {
                state.free -= 1;
                return Slot(Arc::clone(self));
            }
            let (handoff, receiver) = oneshot::channel();
            state.arrivals += 1;
            let arrival = state.arrivals;
            state.waiters.push(Queued::new(priority, arrival, handoff));
            receiver
        };
        match receiver.await.ok().and_then(SlotGrant::into_slot) {
            Some(slot) => slot,
            // The sender lives in the queue until it is served, and the queue lives as long as
            // the pool, which this future holds: not reached, but a wait again is no panic.
            None => Box::pin(self.acquire(priority)).await,
        }
    }

    /// Gives a slot back: to the best waiter still waiting, else to the free count.
    fn release(self: &Arc<Self>) {
        let mut state = self.state.lock_unpoisoned();
        let mut grant = SlotGrant(Some(Arc::clone(self)));
        while let Some(waiter) = state.waiters.pop() {
            match waiter.value.send(grant) {
                Ok(()) => return,
                // That waiter gave up: the next one.
                Err(back) => grant = back,
            }
        }
        state.free += 1;
        // Released above: the grant must not release it again.
        grant.0 = None;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl Drop for SlotGrant {
    fn drop(&mut self) {
        if let Some(slots) = self.0.take() {
            slots.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_freed_slot_goes_to_the_highest_priority_then_the_longest_waiting() {
        let slots = Slots::new("replica", 1);
        let held = slots.try_acquire().expect("one free slot");
        assert!(slots.try_acquire().is_none(), "the only slot is taken");
        let (order_tx, mut order) = tokio::sync::mpsc::unbounded_channel();
        let mut waiting = Vec::new();
        for (label, priority) in [
            ("low", 0),
            ("high first", 5),
            ("high second", 5),
            ("mid", 1),
        ] {
            let slots = Arc::clone(&slots);
            let order_tx = order_tx.clone();
            waiting.push(tokio::spawn(async move {
                let slot = slots.acquire(priority).await;
                order_tx.send(label).expect("the test listens");
                drop(slot);
            }));
            // Arrival order is the spawn order.
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        drop(held);
        for task in waiting {
            task.await.expect("a waiter");
        }
        let mut served = Vec::new();
        while let Ok(label) = order.try_recv() {
            served.push(label);
        }
        assert_eq!(served, ["high first", "high second", "mid", "low"]);
        assert!(slots.try_acquire().is_some(), "every slot came back");
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_does_not_keep_a_slot() {
        let slots = Slots::new("replica", 1);
        let held = slots.try_acquire().expect("one free slot");
        let gave_up =
            tokio::time::timeout(std::time::Duration::from_millis(10), slots.acquire(9)).await;
        assert!(gave_up.is_err(), "no slot was free");
        drop(held);
        let again = slots.try_acquire();
        assert!(again.is_some(), "the slot skipped the waiter that gave up");
    }
}
