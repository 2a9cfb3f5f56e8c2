//! A lock for kernel state on one vCPU.
//!
//! The kernel runs on one vCPU and is never preempted; the only way to find
//! a lock held is to re-enter it (a trap handler using what the interrupted
//! code was changing). That is a bug, and waiting would hang forever, so
//! [`Lock::lock`] panics instead and [`Lock::try_lock`] says no.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

/// A value behind a non-reentrant lock.
#[derive(Debug)]
pub struct Lock<T> {
    held: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reached only through a guard, and `held` lets at
// most one guard exist at a time.
unsafe impl<T: Send> Sync for Lock<T> {}

impl<T> Lock<T> {
    /// An unlocked `value`.
    pub const fn new(value: T) -> Lock<T> {
        Lock { held: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    /// The value, or `None` if it is locked already.
    pub fn try_lock(&self) -> Option<Guard<'_, T>> {
        (!self.held.swap(true, Ordering::Acquire)).then_some(Guard { lock: self })
    }

    /// The value. Panics if it is locked already (re-entry).
    pub fn lock(&self) -> Guard<'_, T> {
        match self.try_lock() {
            Some(g) => g,
            None => panic!("lock re-entered"),
        }
    }
}

/// Access to a locked value; unlocks when dropped.
#[derive(Debug)]
pub struct Guard<'a, T> {
    lock: &'a Lock<T>,
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard is the only one (see `try_lock`).
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this borrow unique.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.lock.held.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_guard_at_a_time() {
        let l = Lock::new(5);
        {
            let mut g = l.lock();
            *g += 1;
            assert!(l.try_lock().is_none());
        }
        assert_eq!(*l.try_lock().unwrap(), 6);
    }

    #[test]
    #[should_panic(expected = "re-entered")]
    fn re_entry_panics() {
        let l = Lock::new(());
        let _g = l.lock();
        let _h = l.lock();
    }
}
