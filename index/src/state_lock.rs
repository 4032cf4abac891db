//! The lock around a gallery's [`State`], safe to read from inside a rayon
//! scan.
//!
//! A scan holds a read guard while rayon splits the work. A worker that
//! waits in a join inside that scan may run another queued pool job, such
//! as a verify that reads the same gallery. parking_lot's plain `read`
//! blocks while a writer (an enroll) is queued, and the queued writer waits
//! for the scan's guard, which waits for the nested job: a deadlock seen
//! under mixed load. So a thread that already holds a read guard takes the
//! next one recursively (it cannot wait for a writer it is itself holding
//! back), while first reads stay fair to writers. Writers never run on the
//! search pool, so no thread asks to write while holding a read.

use std::cell::Cell;
use std::ops::Deref;

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::state::State;

thread_local! {
    /// Read guards this thread holds on any gallery.
    static READS_HELD: Cell<usize> = const { Cell::new(0) };
}

/// See the module documentation.
pub(crate) struct StateLock(RwLock<State>);

/// A read guard that keeps the thread's count.
pub(crate) struct StateRead<'a>(RwLockReadGuard<'a, State>);

impl StateLock {
    pub fn new(state: State) -> StateLock {
        StateLock(RwLock::new(state))
    }

    /// Shared access; recursive when this thread already reads.
    pub fn read(&self) -> StateRead<'_> {
        let held = READS_HELD.get();
        let guard = if held > 0 {
            self.0.read_recursive()
        } else {
            self.0.read()
        };
        READS_HELD.set(held + 1);
        StateRead(guard)
    }

    /// Exclusive access.
    pub fn write(&self) -> RwLockWriteGuard<'_, State> {
        debug_assert_eq!(READS_HELD.get(), 0, "a gallery write under a read guard would deadlock");
        self.0.write()
    }
}

impl Deref for StateRead<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        &self.0
    }
}

impl Drop for StateRead<'_> {
    fn drop(&mut self) {
        READS_HELD.set(READS_HELD.get() - 1);
    }
}
