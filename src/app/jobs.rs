//! Background jobs: the one place the window starts threads for its work. Each job answers
//! with a [`Reply`] through one channel; a job that panics answers with the failure it was
//! given, so no "…ing" state is left waiting forever.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use eframe::egui;

use super::class_maps::{MapKey, MapPicture};
use super::dialogs::Dialog;
use super::state::{Project, TopK};
use crate::data::inspect::{FolderReport, InspectProgress};
use crate::models::{LayerGroup, ModelKind};
use crate::run::eval::Evaluation;

/// Images a try classified, each with its top classes or why it could not be.
pub type Tries = Vec<(PathBuf, TopK)>;

/// An answer from background work.
pub enum Reply {
    /// A folder was inspected.
    Folder(PathBuf, Box<Result<FolderReport, String>>),
    /// How far the inspection of a folder is.
    FolderProgress(PathBuf, InspectProgress),
    /// Layer groups for the request with this number (older answers are dropped).
    Layers(u64, Result<Vec<LayerGroup>, String>),
    /// The device training will use.
    Device(String),
    /// The pre-trained weight files found, with their sizes.
    Weights(Vec<(ModelKind, u64)>),
    /// A dialog was answered.
    Picked(Dialog, Vec<PathBuf>),
    /// The project was saved (or why not).
    Saved(Result<PathBuf, String>),
    /// A project file was read.
    Opened(PathBuf, Result<Box<Project>, String>),
    /// The model's own ImageNet top-5 for an image.
    Preview(PathBuf, TopK),
    /// A run was scored.
    Evaluated(PathBuf, Result<Arc<Evaluation>, String>),
    /// Images were tried on a run.
    Tried(PathBuf, Result<Tries, String>),
    /// What an export did.
    Exported(String),
    /// A weight file's architecture was read.
    WeightsChecked(PathBuf, Result<ModelKind, String>),
    /// Bytes of a weight download so far, and in all.
    DownloadProgress(ModelKind, u64, Option<u64>),
    /// A weight download ended: the file's size, or why it failed.
    Downloaded(ModelKind, Result<u64, String>),
    /// Images the data doctor has read so far, and in all.
    ExamineProgress(PathBuf, usize, usize),
    /// The data doctor's report on a folder.
    Examined(PathBuf, Result<Arc<crate::doctor::Report>, String>),
    /// What a cleaned copy did.
    CleanedCopy(String),
    /// One class map, or why it could not be computed.
    Explained(MapKey, Result<MapPicture, String>),
    /// A map job died before answering for these keys.
    ExplainFailed(Vec<MapKey>, String),
    /// Images whose features the curve has so far, and in all.
    CurveProgress(PathBuf, usize, usize),
    /// The data-efficiency curve of a folder.
    CurveMeasured(PathBuf, Result<Arc<crate::doctor::curve::Curve>, String>),
}

/// Starts jobs and collects their replies.
pub struct Jobs {
    tx: Sender<Reply>,
    rx: Receiver<Reply>,
    ctx: Option<egui::Context>,
}

impl Default for Jobs {
    fn default() -> Self {
        let (tx, rx) = channel();
        Self { tx, rx, ctx: None }
    }
}

impl Jobs {
    /// Replies from now on ask `ctx` for a repaint.
    pub fn set_context(&mut self, ctx: &egui::Context) {
        self.ctx = Some(ctx.clone());
    }

    /// The window's context, once set.
    pub fn context(&self) -> Option<&egui::Context> {
        self.ctx.as_ref()
    }

    /// A reply waiting, if any. Never blocks.
    pub fn try_next(&self) -> Option<Reply> {
        self.rx.try_recv().ok()
    }

    /// Sends replies from inside a job (progress), each followed by a repaint.
    pub fn sender(&self) -> impl Fn(Reply) + Send + 'static {
        let tx = self.tx.clone();
        let ctx = self.ctx.clone();
        move |reply| {
            let _ = tx.send(reply);
            if let Some(ctx) = &ctx {
                ctx.request_repaint();
            }
        }
    }

    /// Runs `job` on a new thread and sends its reply. If it panics, `failed` turns the panic's
    /// message into the reply instead.
    pub fn spawn(
        &self,
        job: impl FnOnce() -> Option<Reply> + Send + 'static,
        failed: impl FnOnce(String) -> Reply + Send + 'static,
    ) {
        let send = self.sender();
        std::thread::spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            match outcome {
                Ok(Some(reply)) => send(reply),
                Ok(None) => {}
                Err(panic) => send(failed(format!("internal error: {}", panic_text(&*panic)))),
            }
        });
    }

    /// Asks `dialog` on a job; its answer comes back as [`Reply::Picked`].
    pub fn ask(&self, dialog: Dialog) {
        self.spawn(
            move || dialog.ask().map(|paths| Reply::Picked(dialog, paths)),
            move |_| Reply::Picked(dialog, Vec::new()),
        );
    }
}

/// The message a panic carried.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_job_answers_with_its_failure() {
        let jobs = Jobs::default();
        jobs.spawn(
            || panic!("boom"),
            |why| Reply::Evaluated(PathBuf::from("run"), Err(why)),
        );
        let reply = jobs.rx.recv_timeout(std::time::Duration::from_secs(10));
        match reply {
            Ok(Reply::Evaluated(_, Err(why))) => assert!(why.contains("boom"), "{why}"),
            _ => panic!("no failure reply"),
        }
    }
}
