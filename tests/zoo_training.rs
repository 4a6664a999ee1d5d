//! Every architecture trains through the same engine: a few steps from random weights on a tiny
//! folder, with the layer list, freezing and the checkpoint working as for EfficientNet-Lite.

mod common;

use std::time::Duration;

use common::TempDir;
use graft::config::FreezePlan;
use graft::models::ModelKind;
use graft::run::predict::Predictor;
use graft::train::{self, TrainEvent};

#[test]
fn each_architecture_trains_a_few_steps_and_reloads() {
    let data = TempDir::new("zoo-train-data");
    common::demo_subset(data.path(), &["bird", "fruit"], 4);
    let runs = TempDir::new("zoo-train-runs");
    for kind in ModelKind::ALL {
        let mut config = common::small_config(data.path(), runs.path());
        config.model = kind;
        config.input_size = Some(32);
        config.batch_size = 4;
        config.epochs = 1;
        config.from_scratch = true;
        // Half the groups frozen, so freezing and the feature cache are exercised too.
        let groups = graft::models::describe_layers(kind, 2);
        let frozen: Vec<String> = groups[..groups.len() / 2]
            .iter()
            .map(|g| g.name.clone())
            .collect();
        config.freeze = FreezePlan::Groups(frozen.into_iter().collect());
        let mut handle = train::spawn(config, None);
        let mut summary = None;
        let mut steps = 0;
        let mut warned = false;
        while let Some(e) = handle.next_timeout(Duration::from_secs(600)) {
            match e {
                TrainEvent::Batch(b) => {
                    assert!(b.loss.is_finite(), "{}: loss {}", kind.name(), b.loss);
                    steps += 1;
                }
                TrainEvent::Warning(w) if w.contains("stay random") => warned = true,
                TrainEvent::Finished(s) => {
                    summary = Some(s);
                    break;
                }
                TrainEvent::Failed(m) => panic!("{}: {m}", kind.name()),
                _ => {}
            }
        }
        let summary = summary.unwrap_or_else(|| panic!("{}: no result", kind.name()));
        assert!(steps >= 1, "{}", kind.name());
        assert!(
            warned || kind == ModelKind::TinyTest,
            "{}: frozen random layers are pointed out",
            kind.name()
        );
        let predictor = Predictor::from_run(&summary.run_dir, &burn::tensor::Device::flex())
            .unwrap_or_else(|e| panic!("{}: {e}", kind.name()));
        assert_eq!(predictor.classes().len(), 2);
        eprintln!("{}: {steps} steps, {:.1} s", kind.name(), summary.seconds);
    }
}
