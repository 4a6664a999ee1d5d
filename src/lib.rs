//! Graft: transfer learning on images.
//!
//! The engine — [`data`] (image folders), [`models`] (pre-trained networks and their layer groups),
//! [`train`] (the background training engine) — never imports egui: it runs the same from the
//! GUI, the CLI and tests. The window is [`app`], the only module that uses egui.

pub mod app;
pub mod assets;
pub mod bench;
pub mod config;
pub mod data;
pub mod device;
pub mod eval;
pub mod export;
pub mod fsutil;
pub mod models;
pub mod ops;
pub mod predict;
pub mod run_dir;
pub mod train;

pub use config::TrainConfig;
