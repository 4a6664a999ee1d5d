//! Pause, resume and cancel, shared between the caller and the training thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

/// Requests from the caller, read by the training thread at batch boundaries.
#[derive(Debug, Default)]
pub struct Control {
    cancelled: AtomicBool,
    paused: Mutex<bool>,
    wake: Condvar,
}

impl Control {
    /// Asks the run to stop.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.wake.notify_all();
    }

    /// Whether a stop was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// The flag, for code that polls it (decoding).
    pub fn cancel_flag(&self) -> &AtomicBool {
        &self.cancelled
    }

    /// Asks the run to pause.
    pub fn pause(&self) {
        if let Ok(mut paused) = self.paused.lock() {
            *paused = true;
        }
    }

    /// Lets a paused run go on.
    pub fn resume(&self) {
        if let Ok(mut paused) = self.paused.lock() {
            *paused = false;
        }
        self.wake.notify_all();
    }

    fn is_paused(&self) -> bool {
        self.paused.lock().map(|p| *p).unwrap_or(false)
    }

    /// Blocks while paused (and not cancelled). `on_pause` runs once when a pause begins and
    /// `on_resume` when it ends.
    pub fn wait_while_paused(&self, on_pause: impl FnOnce(), on_resume: impl FnOnce()) {
        if !self.is_paused() || self.is_cancelled() {
            return;
        }
        on_pause();
        let Ok(mut paused) = self.paused.lock() else {
            return;
        };
        while *paused && !self.is_cancelled() {
            paused = match self.wake.wait(paused) {
                Ok(p) => p,
                Err(_) => return,
            };
        }
        drop(paused);
        on_resume();
    }
}
