//! Graft: transfer learning on images.
//!
//! Layers, bottom up; each imports only those below it:
//!
//! 1. [`platform`]: bundled assets and user folders, the compute device, atomic file writes.
//! 2. [`ops`]: Graft's own CPU tensor operations.
//! 3. [`models`]: pre-trained networks, their heads, layer groups and weight files.
//! 4. [`config`]: the one training configuration.
//! 5. [`data`]: image folders, decoding, splits and batches.
//! 6. [`run`]: the run folder and what reads it: predict, eval, export.
//! 7. [`doctor`]: what a folder's images say about its labels (features, cross-validation,
//!    duplicates), before any training.
//! 8. [`train`]: the background training engine and its benchmarks.
//! 9. [`cli`] and [`app`]: the command line and the window, both reading the engine's events.
//!
//! Only [`app`] uses egui.

pub mod app;
pub mod cli;
pub mod config;
pub mod data;
pub mod doctor;
pub mod models;
pub mod ops;
pub mod platform;
pub mod run;
pub mod train;

pub use config::TrainConfig;
