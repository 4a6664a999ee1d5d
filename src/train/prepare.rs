//! A run's first phase: the data set decoded and split, with progress and warnings sent.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::events::TrainEvent;
use super::{Control, EventSink};
use crate::config::TrainConfig;
use crate::data::{self, Dataset, PrepareOptions, Sample};
use crate::run::DataSummary;

/// Decodes and splits the config's folder at `input_size`, reporting progress, the summary and
/// every file or class left out.
pub(super) fn prepare_data(
    config: &TrainConfig,
    input_size: u32,
    control: &Control,
    events: &EventSink,
) -> Result<(Dataset, DataSummary), data::DataError> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let last_report = AtomicUsize::new(0);
    let progress = |done: usize, total: usize| {
        if total == 0 {
            return events.send(TrainEvent::Scanning { found: done });
        }
        // About a hundred updates at most, and the last one always.
        let step = (total / 100).max(1);
        if done == total || done >= last_report.load(Ordering::Relaxed) + step {
            last_report.store(done, Ordering::Relaxed);
            events.send(TrainEvent::Preparing { done, total });
        }
    };
    let options = PrepareOptions::of_config(config, input_size, threads);
    let dataset = data::prepare(&config.data, &options, &progress, control.cancel_flag())?;
    let summary = summarize(&dataset);
    events.send(TrainEvent::DataReady(summary.clone()));
    for warning in dataset.warnings() {
        events.send(TrainEvent::Warning(warning));
    }
    Ok((dataset, summary))
}

fn summarize(dataset: &Dataset) -> DataSummary {
    let count = |samples: &[Sample]| {
        let mut counts = vec![0; dataset.classes.len()];
        for s in samples {
            counts[s.label] += 1;
        }
        counts
    };
    DataSummary {
        root: dataset.root.clone(),
        layout: dataset.layout,
        classes: dataset.classes.clone(),
        train_counts: count(&dataset.train),
        val_counts: count(&dataset.val),
        test_counts: if dataset.test.is_empty() {
            Vec::new()
        } else {
            count(&dataset.test)
        },
        excluded: dataset
            .excluded
            .iter()
            .map(|p| p.strip_prefix(&dataset.root).unwrap_or(p).to_path_buf())
            .collect(),
        relabelled: dataset.relabelled,
        skipped: dataset.skipped.clone(),
        empty_classes: dataset.empty_classes.clone(),
        fingerprint: dataset.fingerprint.clone(),
    }
}
