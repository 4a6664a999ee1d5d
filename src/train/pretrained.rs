//! A run's second phase: the pre-trained weights found (or downloaded) and the network built.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use burn::tensor::Device;

use super::error::TrainError;
use super::events::TrainEvent;
use super::{Control, EventSink};
use crate::config::TrainConfig;
use crate::models::Network;
use crate::models::download::{self, DownloadError};
use crate::models::zoo;
use crate::platform::assets::weight_search_dirs;

/// The pre-trained weight file for `config`, or `None` when it trains from random weights: the
/// file it names, one already here, or one downloaded now (with progress events).
pub(super) fn pretrained_weights(
    config: &TrainConfig,
    control: &Control,
    events: &EventSink,
) -> Result<Option<PathBuf>, TrainError> {
    if config.from_scratch || config.model.weights_file_name().is_none() {
        return Ok(None);
    }
    if let Some(path) = &config.weights {
        return Ok(Some(path.clone()));
    }
    let no_weights = || TrainError::NoWeights {
        model: config.model.name(),
        file: config.model.weights_file_name().unwrap_or_default().into(),
        searched: weight_search_dirs()
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };
    let entry = zoo::entry(config.model).ok_or_else(no_weights)?;
    let last = AtomicU64::new(0);
    let progress = |done: u64, total: Option<u64>| {
        // About one event per percent (or per MB when the size is unknown).
        let step = total.map_or(1 << 20, |t| (t / 100).max(1));
        let at_end = total == Some(done);
        if at_end || done >= last.load(Ordering::Relaxed) + step {
            last.store(done, Ordering::Relaxed);
            events.send(TrainEvent::Downloading {
                file: entry.file_name.to_string(),
                done,
                total,
            });
        }
    };
    for rejected in config.model.rejected_weights() {
        events.send(TrainEvent::Warning(format!(
            "{} has the name of the {} weights but not their content (its sha256 is not the catalogue's): not used",
            rejected.display(),
            config.model.name()
        )));
    }
    // Found here (bundled or cached) or downloaded; without an address, it must be picked.
    match download::ensure(entry, &progress, control.cancel_flag()) {
        Ok(path) => Ok(Some(path)),
        Err(DownloadError::NoUrl(_)) => Err(no_weights()),
        Err(e) => Err(e.into()),
    }
}

/// Builds the network the config asks for: the pre-trained backbone in `weights` (or random
/// weights without one) and a new head.
pub(super) fn build_network(
    config: &TrainConfig,
    classes: usize,
    device: &Device,
    weights: Option<&Path>,
) -> Result<Network, TrainError> {
    let spec = config.network_spec(classes);
    Ok(match weights {
        Some(path) => Network::pretrained(&spec, path, false, Some(config.seed), device)?.0,
        None => Network::new_seeded(&spec, device, config.seed),
    })
}
