//! The training engine: runs on its own thread, reports through a channel of [`TrainEvent`]s,
//! and can be paused, resumed and cancelled.
//!
//! This file spawns a run and hands back its [`TrainHandle`]. The run itself ([`run()`]) goes
//! `prepare` (decode and split the data) → `pretrained` (find or download the weights, build
//! the network) → `stage` (epochs of `step`s, validated by `evaluate`, stage 1 then stage 2)
//! → the outcome written to the run folder. [`events`] lists every message a run sends;
//! [`TrainError`] every way it can fail. [`bench`] times the engine.

pub mod bench;
mod control;
mod error;
mod eta;
mod evaluate;
pub mod events;
pub mod feature_cache;
mod loss;
pub mod lr_find;
pub mod optim;
mod prepare;
mod pretrained;
mod run;
mod stage;
mod step;
mod telemetry;
mod test_set;

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError, channel};
use std::thread::JoinHandle;
use std::time::Duration;

pub use control::Control;
pub use error::TrainError;
pub use evaluate::{ValidationScore, evaluate};
pub use events::{BatchProgress, RunInfo, TrainEvent};
pub use loss::cross_entropy;
pub use run::run;

pub use crate::run::{DataSummary, EpochMetrics, RunSummary};

use crate::config::TrainConfig;

/// Called after every event is sent, from the training thread: the GUI asks for a repaint here.
pub type Notify = Arc<dyn Fn() + Send + Sync>;

/// Sends events to the caller and pokes it.
#[derive(Clone)]
pub struct EventSink {
    tx: std::sync::mpsc::Sender<TrainEvent>,
    notify: Option<Notify>,
}

impl EventSink {
    /// Sends `event`; a caller that stopped listening is not an error for the engine.
    pub fn send(&self, event: TrainEvent) {
        let _ = self.tx.send(event);
        if let Some(notify) = &self.notify {
            notify();
        }
    }
}

/// A running (or finished) training run.
pub struct TrainHandle {
    events: Receiver<TrainEvent>,
    control: Arc<Control>,
    thread: Option<JoinHandle<()>>,
    ended: bool,
}

impl TrainHandle {
    /// Pauses at the next batch boundary.
    pub fn pause(&self) {
        self.control.pause();
    }

    /// Resumes a paused run.
    pub fn resume(&self) {
        self.control.resume();
    }

    /// Stops at the next batch boundary; the best checkpoint so far stays whole.
    pub fn cancel(&self) {
        self.control.cancel();
    }

    /// The next event if one is waiting. A thread that died without a final event yields a
    /// `Failed` event once.
    pub fn try_next(&mut self) -> Option<TrainEvent> {
        match self.events.try_recv() {
            Ok(event) => Some(self.note(event)),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => self.lost(),
        }
    }

    /// Waits up to `timeout` for the next event; `None` on time-out or after the last event.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<TrainEvent> {
        match self.events.recv_timeout(timeout) {
            Ok(event) => Some(self.note(event)),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => self.lost(),
        }
    }

    /// Blocks until the next event; `None` after the last one.
    pub fn next_blocking(&mut self) -> Option<TrainEvent> {
        match self.events.recv() {
            Ok(event) => Some(self.note(event)),
            Err(_) => self.lost(),
        }
    }

    /// Whether the terminal event was delivered.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    fn note(&mut self, event: TrainEvent) -> TrainEvent {
        if event.is_terminal() {
            self.ended = true;
        }
        event
    }

    fn lost(&mut self) -> Option<TrainEvent> {
        if self.ended {
            return None;
        }
        self.ended = true;
        let why = match self.thread.take().map(JoinHandle::join) {
            Some(Err(panic)) => panic_message(&*panic),
            _ => "the training thread stopped without a result".to_string(),
        };
        Some(TrainEvent::Failed(why))
    }
}

impl Drop for TrainHandle {
    fn drop(&mut self) {
        self.control.cancel();
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    format!("internal error in the training thread: {text}")
}

/// Starts a run on a new thread.
pub fn spawn(config: TrainConfig, notify: Option<Notify>) -> TrainHandle {
    spawn_job(notify, move |control, events| {
        run(&config, control, events).map(TrainEvent::Finished)
    })
}

/// Starts a learning-rate sweep on a new thread; it ends with [`TrainEvent::LrSwept`].
pub fn spawn_lr_find(
    config: TrainConfig,
    settings: lr_find::SweepSettings,
    notify: Option<Notify>,
) -> TrainHandle {
    spawn_job(notify, move |control, events| {
        lr_find::find_lr(&config, &settings, control, events).map(TrainEvent::LrSwept)
    })
}

/// Runs `job` on the training thread; its outcome (or its panic) is the last event.
fn spawn_job(
    notify: Option<Notify>,
    job: impl FnOnce(&Control, &EventSink) -> Result<TrainEvent, TrainError> + Send + 'static,
) -> TrainHandle {
    let (tx, rx) = channel();
    let control = Arc::new(Control::default());
    let sink = EventSink { tx, notify };
    let thread_control = control.clone();
    let thread = std::thread::Builder::new()
        .name("graft-train".into())
        .spawn(move || {
            let events = sink.clone();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                job(&thread_control, &events)
            }));
            match outcome {
                Ok(Ok(last)) => sink.send(last),
                Ok(Err(e)) => sink.send(TrainEvent::Failed(e.to_string())),
                Err(panic) => sink.send(TrainEvent::Failed(panic_message(&*panic))),
            }
        });
    let thread = match thread {
        Ok(t) => Some(t),
        Err(e) => {
            // Nothing will send; leave a Failed event for the caller.
            let (tx, rx) = channel();
            let _ = tx.send(TrainEvent::Failed(format!(
                "cannot start the training thread: {e}"
            )));
            return TrainHandle {
                events: rx,
                control,
                thread: None,
                ended: false,
            };
        }
    };
    TrainHandle {
        events: rx,
        control,
        thread,
        ended: false,
    }
}
