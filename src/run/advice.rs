//! Advice in words when a run ends: what its own curves and data say, with the evidence and one
//! next step (a change to the settings the window applies in a click and the CLI prints as a
//! flag).

use std::path::Path;

use super::records::{DataSummary, EpochMetrics, RunSummary};
use crate::config::{ClassBalance, FineTuneConfig, FreezePlan, TrainConfig};
use crate::platform::interval;

/// Epochs validation loss must keep above its best for overfitting to be named.
const OVERFIT_EPOCHS: usize = 3;
/// How far above its best (relative) validation loss must end for overfitting.
const OVERFIT_RISE: f64 = 0.10;
/// Training accuracy at the end below which the model is called underfitted.
const UNDERFIT_ACCURACY: f64 = 0.75;
/// An epoch's training loss above this multiple of the previous epoch's is a spike.
const SPIKE_FACTOR: f64 = 1.5;
/// Fewer training images than this in a class is too few (Create ML asks for at least 10).
const MIN_CLASS_IMAGES: usize = 10;
/// A validation interval wider than this (in accuracy, both sides together) means little.
const MAX_INTERVAL_WIDTH: f64 = 0.20;

/// What a piece of advice is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finding {
    /// Validation loss rose while training loss fell.
    Overfitting,
    /// Training accuracy stayed low.
    Underfitting,
    /// The loss spiked or diverged.
    RateTooHigh,
    /// A class has too few training images.
    FewImages,
    /// The largest class dwarfs the smallest.
    Imbalance,
    /// The validation set is too small for its accuracy to mean much.
    SmallValidation,
    /// The data doctor found images whose label looks wrong.
    LabelIssues,
}

/// One next step.
#[derive(Clone, Debug, PartialEq)]
pub enum Remedy {
    /// Train stage 1 for this many epochs.
    Epochs(usize),
    /// Train stage 1 at this rate.
    LearningRate(f64),
    /// Add a fine-tuning stage of this many epochs (pre-trained layers thawed).
    FineTune(usize),
    /// Fine-tune for this many epochs.
    FineTuneEpochs(usize),
    /// Fine-tune at this fraction of stage 1's rate.
    FineTuneLrFactor(f64),
    /// Balance the classes this way.
    Balance(ClassBalance),
    /// Hold out this share of the images for validation.
    ValFraction(f64),
    /// Examine the data (the cross-validated accuracy rests on every image; label issues).
    ExamineData,
    /// Add images to these classes (nothing Graft can do for the user).
    AddImages(Vec<String>),
}

impl Remedy {
    /// Applies the step to `config`; `false` when it is not a settings change.
    pub fn apply(&self, config: &mut TrainConfig) -> bool {
        match self {
            Self::Epochs(n) => config.epochs = *n,
            Self::LearningRate(lr) => config.optimizer.lr = *lr,
            Self::FineTune(n) | Self::FineTuneEpochs(n) => stage2(config).epochs = *n,
            Self::FineTuneLrFactor(f) => stage2(config).lr_factor = *f,
            Self::Balance(b) => config.balance = *b,
            Self::ValFraction(f) => config.split.val_fraction = *f,
            Self::ExamineData | Self::AddImages(_) => return false,
        }
        true
    }

    /// The step as `graft` arguments, for the data set in `data`.
    pub fn command(&self, data: &Path) -> Option<String> {
        let flag = match self {
            Self::Epochs(n) => format!("--epochs {n}"),
            Self::LearningRate(lr) => format!("--lr {lr:.1e}"),
            Self::FineTune(n) | Self::FineTuneEpochs(n) => format!("--fine-tune-epochs {n}"),
            Self::FineTuneLrFactor(f) => format!("--fine-tune-lr-factor {f:.3}"),
            Self::Balance(b) => format!("--balance {}", b.name()),
            Self::ValFraction(f) => format!("--val-fraction {f:.2}"),
            Self::ExamineData => return Some(format!("graft doctor --data {}", data.display())),
            Self::AddImages(_) => return None,
        };
        Some(format!("graft train --data {} {flag}", data.display()))
    }

    /// A button's words.
    pub fn label(&self) -> String {
        match self {
            Self::Epochs(n) => format!("Set epochs to {n}"),
            Self::LearningRate(lr) => format!("Set the learning rate to {lr:.1e}"),
            Self::FineTune(n) => format!("Add {n} fine-tuning epochs"),
            Self::FineTuneEpochs(n) => format!("Set fine-tuning epochs to {n}"),
            Self::FineTuneLrFactor(f) => format!("Set the fine-tuning rate factor to {f:.3}"),
            Self::Balance(b) => format!("Set balance to {}", b.name()),
            Self::ValFraction(f) => format!("Hold out {:.0} % for validation", f * 100.0),
            Self::ExamineData => "Examine the data".into(),
            Self::AddImages(classes) => format!("Add images to {}", quoted(classes)),
        }
    }
}

/// The fine-tuning stage, added with its defaults when there is none.
fn stage2(config: &mut TrainConfig) -> &mut FineTuneConfig {
    config.fine_tune.get_or_insert_with(FineTuneConfig::default)
}

fn quoted(names: &[String]) -> String {
    let list: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    list.join(", ")
}

/// One piece of advice.
#[derive(Clone, Debug, PartialEq)]
pub struct Advice {
    /// What it is about.
    pub finding: Finding,
    /// What the run showed, with figures ("validation loss rose from 0.31 to 0.44 over epochs
    /// 6–9 …").
    pub evidence: String,
    /// What to do, in words.
    pub suggestion: String,
    /// The step, as a settings change or command.
    pub remedy: Remedy,
}

/// What the advice is drawn from.
#[derive(Clone, Copy, Debug)]
pub struct RunFacts<'a> {
    /// The settings the run trained with.
    pub config: &'a TrainConfig,
    /// Its epochs, in order.
    pub epochs: &'a [EpochMetrics],
    /// The data as it trained on it.
    pub data: Option<&'a DataSummary>,
    /// How it ended.
    pub summary: Option<&'a RunSummary>,
    /// Images the data doctor flagged as likely mislabelled, when it has examined the folder.
    pub label_issues: Option<usize>,
}

/// Every piece of advice the run's facts support, most important first; empty for a healthy
/// run.
pub fn advise(facts: &RunFacts) -> Vec<Advice> {
    let rules: [fn(&RunFacts) -> Option<Advice>; 7] = [
        rate_too_high,
        overfitting,
        underfitting,
        few_images,
        imbalance,
        small_validation,
        label_issues,
    ];
    rules.iter().filter_map(|rule| rule(facts)).collect()
}

fn overfitting(facts: &RunFacts) -> Option<Advice> {
    let val: Vec<(&EpochMetrics, f64)> = facts
        .epochs
        .iter()
        .filter_map(|m| m.val_loss.map(|v| (m, v)))
        .collect();
    let (best, best_loss) = *val.iter().min_by(|a, b| a.1.total_cmp(&b.1))?;
    let (last, last_loss) = *val.last()?;
    let rose =
        last.epoch >= best.epoch + OVERFIT_EPOCHS && last_loss > best_loss * (1.0 + OVERFIT_RISE);
    if !rose || last.train_loss >= best.train_loss {
        return None;
    }
    let stage1 = facts.config.epochs;
    let remedy = if best.stage == 1 {
        Remedy::Epochs(best.epoch)
    } else {
        Remedy::FineTuneEpochs(best.epoch.saturating_sub(stage1).max(1))
    };
    Some(Advice {
        finding: Finding::Overfitting,
        evidence: format!(
            "Validation loss rose from {best_loss:.2} to {last_loss:.2} over epochs {}–{} while \
             training loss fell from {:.2} to {:.2}: the model began to memorise the training \
             images.",
            best.epoch, last.epoch, best.train_loss, last.train_loss
        ),
        suggestion: format!(
            "The saved model is the one from epoch {}; stop there next time, or add images or \
             augmentation.",
            best.epoch
        ),
        remedy,
    })
}

fn underfitting(facts: &RunFacts) -> Option<Advice> {
    let with_accuracy: Vec<(&EpochMetrics, f64)> = facts
        .epochs
        .iter()
        .filter_map(|m| m.train_accuracy.map(|a| (m, a)))
        .collect();
    let &(last, accuracy) = with_accuracy.last()?;
    if accuracy >= UNDERFIT_ACCURACY {
        return None;
    }
    let rising =
        with_accuracy.len() >= 2 && accuracy - with_accuracy[with_accuracy.len() - 2].1 > 0.02;
    let config = facts.config;
    let no_stage2 = config.fine_tune.as_ref().is_none_or(|f| f.epochs == 0);
    let (suggestion, remedy) = if rising {
        (
            "It was still improving when the run ended: train for more epochs.".to_string(),
            Remedy::Epochs(config.epochs * 2),
        )
    } else if no_stage2 && config.freeze == FreezePlan::AllButHead && !config.from_scratch {
        (
            "Only the head trained: add a fine-tuning stage that thaws the pre-trained layers."
                .to_string(),
            Remedy::FineTune(FineTuneConfig::default().epochs),
        )
    } else {
        (
            "It stopped improving: try a higher learning rate.".to_string(),
            Remedy::LearningRate(config.optimizer.lr * 3.0),
        )
    };
    Some(Advice {
        finding: Finding::Underfitting,
        evidence: format!(
            "Training accuracy ended at {:.1} % after {} epochs: the model does not yet fit even \
             the images it trains on.",
            accuracy * 100.0,
            last.epoch
        ),
        suggestion,
        remedy,
    })
}

/// The first epoch whose training loss is not finite or jumped from the epoch before.
fn first_spike(epochs: &[EpochMetrics]) -> Option<(Option<&EpochMetrics>, &EpochMetrics)> {
    if let Some(bad) = epochs.iter().find(|m| !m.train_loss.is_finite()) {
        return Some((None, bad));
    }
    epochs.windows(2).find_map(|w| {
        let jumped = w[0].stage == w[1].stage
            && w[1].train_loss > w[0].train_loss * SPIKE_FACTOR
            && w[1].train_loss - w[0].train_loss > 0.1;
        jumped.then_some((Some(&w[0]), &w[1]))
    })
}

fn rate_too_high(facts: &RunFacts) -> Option<Advice> {
    let (before, spike) = first_spike(facts.epochs)?;
    let config = facts.config;
    let evidence = match before {
        None => format!(
            "Training loss became {} at epoch {}: training diverged.",
            spike.train_loss, spike.epoch
        ),
        Some(b) => format!(
            "Training loss jumped from {:.2} to {:.2} at epoch {}.",
            b.train_loss, spike.train_loss, spike.epoch
        ),
    };
    let (rate, remedy) = if spike.stage == 1 {
        let lr = config.optimizer.lr / 3.0;
        (lr, Remedy::LearningRate(lr))
    } else {
        let factor = config.fine_tune.as_ref().map_or(0.1, |f| f.lr_factor) / 3.0;
        (
            config.optimizer.lr * factor,
            Remedy::FineTuneLrFactor(factor),
        )
    };
    Some(Advice {
        finding: Finding::RateTooHigh,
        evidence,
        suggestion: format!(
            "The learning rate is too high for this stage: lower it about 3× (to {rate:.1e})."
        ),
        remedy,
    })
}

fn few_images(facts: &RunFacts) -> Option<Advice> {
    let data = facts.data?;
    let small: Vec<(String, usize)> = data
        .classes
        .iter()
        .zip(&data.train_counts)
        .filter(|(_, n)| **n < MIN_CLASS_IMAGES)
        .map(|(c, n)| (c.clone(), *n))
        .collect();
    if small.is_empty() {
        return None;
    }
    let listed: Vec<String> = small
        .iter()
        .map(|(c, n)| format!("'{c}' has {n}"))
        .collect();
    Some(Advice {
        finding: Finding::FewImages,
        evidence: format!(
            "{} training images (fewer than {MIN_CLASS_IMAGES}).",
            listed.join(", ")
        ),
        suggestion: "Add images to these classes: at least 10 each, 20 or more is better.".into(),
        remedy: Remedy::AddImages(small.into_iter().map(|(c, _)| c).collect()),
    })
}

fn imbalance(facts: &RunFacts) -> Option<Advice> {
    let data = facts.data?;
    let (largest, most) = data
        .classes
        .iter()
        .zip(&data.train_counts)
        .max_by_key(|(_, n)| **n)?;
    let (smallest, fewest) = data
        .classes
        .iter()
        .zip(&data.train_counts)
        .min_by_key(|(_, n)| **n)?;
    let ratio = *most as f64 / (*fewest).max(1) as f64;
    if ratio < ClassBalance::AUTO_RATIO {
        return None;
    }
    let evidence = format!(
        "'{largest}' has {most} training images and '{smallest}' {fewest} ({ratio:.1}:1): the \
         model learns to favour the large classes."
    );
    let (suggestion, remedy) = if facts.config.balance == ClassBalance::Off {
        (
            "Turn class balancing on (a class-weighted loss).".to_string(),
            Remedy::Balance(ClassBalance::Auto),
        )
    } else {
        (
            format!("Balancing is on; more images of '{smallest}' would help most."),
            Remedy::AddImages(vec![smallest.clone()]),
        )
    };
    Some(Advice {
        finding: Finding::Imbalance,
        evidence,
        suggestion,
        remedy,
    })
}

fn small_validation(facts: &RunFacts) -> Option<Advice> {
    let data = facts.data?;
    let images: usize = data.val_counts.iter().sum();
    let accuracy = facts
        .summary
        .and_then(|s| s.best_val_accuracy)
        .or_else(|| {
            facts
                .epochs
                .iter()
                .filter_map(|m| m.val_accuracy)
                .next_back()
        })?;
    let right = (accuracy * images as f64).round() as usize;
    let (lo, hi) = interval::wilson95(right, images);
    if images == 0 || hi - lo <= MAX_INTERVAL_WIDTH {
        return None;
    }
    let (suggestion, remedy) = if data.layout.is_given() || facts.config.split.val_fraction >= 0.3 {
        (
            "Read the cross-validated accuracy on Data health instead: it rests on every image."
                .to_string(),
            Remedy::ExamineData,
        )
    } else {
        (
            "Hold out more images for validation, or read the cross-validated accuracy on Data \
             health, which rests on every image."
                .to_string(),
            Remedy::ValFraction(0.3),
        )
    };
    Some(Advice {
        finding: Finding::SmallValidation,
        evidence: format!(
            "Validation accuracy is {}: the true figure could be anywhere in a range {:.0} points \
             wide.",
            interval::describe(right, images),
            (hi - lo) * 100.0
        ),
        suggestion,
        remedy,
    })
}

fn label_issues(facts: &RunFacts) -> Option<Advice> {
    let n = facts.label_issues.filter(|n| *n > 0)?;
    Some(Advice {
        finding: Finding::LabelIssues,
        evidence: format!(
            "The data doctor flags {n} image{} whose label looks wrong.",
            if n == 1 { "" } else { "s" }
        ),
        suggestion: "Check them on Data health: exclude or relabel, then train again.".into(),
        remedy: Remedy::ExamineData,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Layout;

    fn epoch(epoch: usize, train_loss: f64, val_loss: f64, train_accuracy: f64) -> EpochMetrics {
        EpochMetrics {
            stage: 1,
            epoch,
            train_loss,
            train_accuracy: Some(train_accuracy),
            val_loss: Some(val_loss),
            val_accuracy: Some(0.95),
            images_per_sec: 50.0,
            seconds: 1.0,
            cached_images: 0,
            groups: Default::default(),
        }
    }

    /// Losses falling together, training accuracy high.
    fn healthy_curve() -> Vec<EpochMetrics> {
        (1..=8)
            .map(|e| {
                let t = e as f64;
                epoch(e, 1.2 / t, 1.0 / t + 0.2, 0.80 + 0.02 * t)
            })
            .collect()
    }

    fn data(train_counts: Vec<usize>, val_counts: Vec<usize>) -> DataSummary {
        DataSummary {
            root: "/photos".into(),
            layout: Layout::Flat,
            classes: (0..train_counts.len()).map(|i| format!("c{i}")).collect(),
            train_counts,
            val_counts,
            test_counts: Vec::new(),
            excluded: Vec::new(),
            relabelled: 0,
            skipped: Vec::new(),
            empty_classes: Vec::new(),
            fingerprint: String::new(),
        }
    }

    /// The advice for a run without a summary.
    fn advice_for(
        config: &TrainConfig,
        epochs: &[EpochMetrics],
        data: Option<&DataSummary>,
        label_issues: Option<usize>,
    ) -> Vec<Advice> {
        advise(&RunFacts {
            config,
            epochs,
            data,
            summary: None,
            label_issues,
        })
    }

    fn findings(
        config: &TrainConfig,
        epochs: &[EpochMetrics],
        data: &DataSummary,
        issues: Option<usize>,
    ) -> Vec<Finding> {
        advice_for(config, epochs, Some(data), issues)
            .into_iter()
            .map(|a| a.finding)
            .collect()
    }

    fn healthy_data() -> DataSummary {
        data(vec![40, 40, 40], vec![40, 40, 40])
    }

    #[test]
    fn a_healthy_run_gets_no_advice() {
        let config = TrainConfig::default();
        let found = findings(&config, &healthy_curve(), &healthy_data(), Some(0));
        assert_eq!(found, []);
    }

    #[test]
    fn rising_validation_loss_with_falling_training_loss_is_overfitting() {
        let config = TrainConfig::default();
        let mut curve = healthy_curve();
        for (i, m) in curve.iter_mut().enumerate().skip(4) {
            m.val_loss = Some(0.45 + 0.05 * (i - 3) as f64);
        }
        let advice = advice_for(&config, &curve, Some(&healthy_data()), None);
        assert_eq!(advice.len(), 1, "{advice:?}");
        assert_eq!(advice[0].finding, Finding::Overfitting);
        // The best validation loss is epoch 4's (0.45); it rose to 0.65 by epoch 8.
        assert!(
            advice[0]
                .evidence
                .contains("from 0.45 to 0.65 over epochs 4–8"),
            "{}",
            advice[0].evidence
        );
        assert_eq!(advice[0].remedy, Remedy::Epochs(4));
    }

    #[test]
    fn low_final_training_accuracy_is_underfitting() {
        let config = TrainConfig::default();
        let mut curve = healthy_curve();
        for m in &mut curve {
            m.train_accuracy = Some(0.55);
        }
        let found = findings(&config, &curve, &healthy_data(), None);
        assert_eq!(found, [Finding::Underfitting]);
        // Flat accuracy with only the head trained: thaw the backbone.
        assert_eq!(
            advice_for(&config, &curve, None, None)[0].remedy,
            Remedy::FineTune(3)
        );
    }

    #[test]
    fn a_loss_spike_or_divergence_says_the_rate_is_too_high() {
        let config = TrainConfig::default();
        let mut spiked = healthy_curve();
        spiked[3].train_loss = 1.4;
        let found = findings(&config, &spiked, &healthy_data(), None);
        assert_eq!(found, [Finding::RateTooHigh]);
        let mut diverged = healthy_curve();
        diverged[5].train_loss = f64::NAN;
        let advice = advice_for(&config, &diverged, None, None);
        assert_eq!(advice[0].finding, Finding::RateTooHigh);
        let Remedy::LearningRate(lr) = advice[0].remedy else {
            panic!("{:?}", advice[0].remedy);
        };
        assert!((lr - 1e-3).abs() < 1e-12, "{lr}");
    }

    #[test]
    fn a_class_with_few_images_is_named() {
        let config = TrainConfig::default();
        let found = findings(
            &config,
            &healthy_curve(),
            &data(vec![40, 40, 15], vec![40, 40, 40]),
            None,
        );
        assert_eq!(found, []);
        let few = data(vec![40, 40, 6], vec![40, 40, 40]);
        let advice = advice_for(&config, &healthy_curve(), Some(&few), None);
        assert_eq!(advice[0].finding, Finding::FewImages);
        assert!(
            advice[0].evidence.contains("'c2' has 6"),
            "{}",
            advice[0].evidence
        );
        // 40:6 is also strong imbalance.
        assert_eq!(advice[1].finding, Finding::Imbalance);
    }

    #[test]
    fn strong_imbalance_suggests_balancing_when_it_is_off() {
        let mut config = TrainConfig::default();
        let lopsided = data(vec![90, 40, 25], vec![40, 40, 40]);
        assert_eq!(
            findings(&config, &healthy_curve(), &lopsided, None),
            [Finding::Imbalance]
        );
        config.balance = ClassBalance::Off;
        let advice = advice_for(&config, &healthy_curve(), Some(&lopsided), None);
        assert_eq!(advice[0].remedy, Remedy::Balance(ClassBalance::Auto));
        assert!(
            advice[0].evidence.contains("3.6:1"),
            "{}",
            advice[0].evidence
        );
    }

    #[test]
    fn a_small_validation_set_is_called_small() {
        let config = TrainConfig::default();
        let small = data(vec![40, 40, 40], vec![5, 5, 5]);
        assert_eq!(
            findings(&config, &healthy_curve(), &small, None),
            [Finding::SmallValidation]
        );
    }

    #[test]
    fn label_issues_from_the_doctor_are_passed_on() {
        let config = TrainConfig::default();
        let found = findings(&config, &healthy_curve(), &healthy_data(), Some(7));
        assert_eq!(found, [Finding::LabelIssues]);
    }

    #[test]
    fn remedies_change_the_settings_and_read_as_flags() {
        let mut config = TrainConfig::default();
        assert!(Remedy::FineTuneLrFactor(0.03).apply(&mut config));
        assert_eq!(config.fine_tune.as_ref().map(|f| f.lr_factor), Some(0.03));
        assert!(Remedy::Epochs(4).apply(&mut config));
        assert_eq!(config.epochs, 4);
        assert!(!Remedy::ExamineData.apply(&mut config));
        let data = Path::new("/photos");
        assert_eq!(
            Remedy::Balance(ClassBalance::Auto).command(data).as_deref(),
            Some("graft train --data /photos --balance auto")
        );
        assert_eq!(
            Remedy::ExamineData.command(data).as_deref(),
            Some("graft doctor --data /photos")
        );
    }
}
