//! Child processes that a test cannot leave behind: killed and reaped when dropped, as they are
//! when the test fails or panics, and killed by a watchdog if the test process itself dies.

use std::ops::{Deref, DerefMut};
use std::process::Child;

/// A spawned process, killed (SIGKILL) and waited for when dropped.
pub struct KillOnDrop(Child);

impl KillOnDrop {
    pub fn new(child: Child) -> KillOnDrop {
        super::after_exit(&format!("kill -9 {} 2>/dev/null", child.id()));
        KillOnDrop(child)
    }
}

impl Deref for KillOnDrop {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // Both fail harmlessly if the process has already exited and been waited for.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
