//! Mutexes a panic does not poison for good.

/// Locks a mutex whose holder may have panicked: what it guards (notes, buffers, queues) is
/// still good, and one task's panic must not take the run down.
pub(crate) trait LockUnpoisoned<T> {
    fn lock_unpoisoned(&self) -> std::sync::MutexGuard<'_, T>;
}

impl<T> LockUnpoisoned<T> for std::sync::Mutex<T> {
    fn lock_unpoisoned(&self) -> std::sync::MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
