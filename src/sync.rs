//! Locks that stay usable after a panic. A thread that panics while holding one of the
//! proxy's locks leaves data that is still whole (no lock here is held across a step that
//! can leave its data half-changed), so every lock is taken whether or not it is poisoned:
//! one panicking call must not make every later call on the same map panic too.
//!
//! Where this sits: beside everything, depending on nothing; `use crate::sync::Locked`.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Taking a `Mutex`, poisoned or not.
pub(crate) trait Locked<T: ?Sized> {
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T: ?Sized> Locked<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reading or writing a `RwLock`, poisoned or not.
pub(crate) trait RwLocked<T: ?Sized> {
    fn read_locked(&self) -> RwLockReadGuard<'_, T>;
    fn write_locked(&self) -> RwLockWriteGuard<'_, T>;
}

impl<T: ?Sized> RwLocked<T> for RwLock<T> {
    fn read_locked(&self) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_locked(&self) -> RwLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_poisoned_by_a_panic_is_still_taken_with_its_data() {
        let m = std::sync::Arc::new(Mutex::new(vec![1]));
        let r = std::sync::Arc::new(RwLock::new(1));
        let (m2, r2) = (m.clone(), r.clone());
        let _ = std::thread::spawn(move || {
            let _m = m2.lock();
            let _r = r2.write();
            panic!("poisons both");
        })
        .join();
        assert!(m.is_poisoned() && r.is_poisoned());
        m.locked().push(2);
        assert_eq!(*m.locked(), [1, 2]);
        *r.write_locked() += 1;
        assert_eq!(*r.read_locked(), 2);
    }
}
