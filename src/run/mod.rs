//! A trained run and what reads it: the run folder ([`folder`]) and what it records
//! ([`records`]), classifying images with it ([`predict`]), scoring it ([`eval`]) and taking it
//! away ([`export`]).

pub mod advice;
pub mod eval;
pub mod explain;
pub mod export;
pub mod folder;
pub mod onnx;
pub mod overlay;
pub mod predict;
pub mod records;
pub mod scores;

pub use folder::{RunDir, RunError, RunSettings, files, read_run};
pub use records::{
    DataSummary, EpochMetrics, GroupStats, GroupTelemetry, RunRecord, RunSummary, TestScore,
};
