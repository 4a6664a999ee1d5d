//! Training: settings, controls, progress and the live curves.

use eframe::egui;
use egui_plot::{Legend, Line, Plot, Points};

use crate::app::actions::Action;
use crate::app::run_view::{RunStatus, RunView};
use crate::app::state::{AppState, HealthState};
use crate::config::{ClassBalance, DevicePreference, FineTuneConfig, OptimizerKind, TrainConfig};
use crate::run::advice::{self, Advice, Remedy};

/// A label with a tooltip, and the widget it names (so screen readers read the label).
fn row(
    ui: &mut egui::Ui,
    label: &str,
    tip: &str,
    widget: impl FnOnce(&mut egui::Ui) -> egui::Response,
) {
    let label = ui.label(label).on_hover_text(tip);
    widget(ui).labelled_by(label.id);
    ui.end_row();
}

fn settings(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    let c = &mut state.project.config;
    let finder = &state.live.lr_finder;
    egui::Grid::new("settings").num_columns(2).show(ui, |ui| {
        row(ui, "Epochs", "Passes over the training images in stage 1.", |ui| {
            ui.add(egui::DragValue::new(&mut c.epochs).range(1..=500))
        });
        row(
            ui,
            "Batch size",
            "Images per step. Larger is faster per image but needs more memory.",
            |ui| ui.add(egui::DragValue::new(&mut c.batch_size).range(1..=512)),
        );
        row(
            ui,
            "Learning rate",
            "Step size. The default 3e-3 suits a new head; fine-tuning uses a lower one.",
            |ui| {
                ui.add(
                    egui::DragValue::new(&mut c.optimizer.lr)
                        .range(1e-6..=1.0)
                        .speed(1e-4)
                        .custom_formatter(|v, _| format!("{v:.1e}")),
                )
            },
        );
        ui.label("");
        ui.vertical(|ui| finder.ui(ui, &mut c.optimizer.lr, true, actions));
        ui.end_row();
        row(ui, "Optimiser", "AdamW suits most runs; SGD uses momentum 0.9.", |ui| {
            let kinds = [OptimizerKind::AdamW, OptimizerKind::Adam, OptimizerKind::Sgd];
            combo(ui, "optimizer", &mut c.optimizer.kind, &kinds, |k| format!("{k:?}"))
        });
        row(
            ui,
            "Augmentation",
            "Random crops and flips: more variety from the same images.",
            |ui| ui.checkbox(&mut c.augment.enabled, "random crop + flip"),
        );
        if c.augment.enabled {
            augment_rows(ui, c);
        }
        row(
            ui,
            "Balance",
            "A class-weighted loss weighs each image by how rare its class is, so that every class counts the same. Automatic turns it on when the largest class has 3× the images of the smallest.",
            |ui| {
                let modes = ClassBalance::NAMES.map(|(_, mode)| mode);
                combo(ui, "balance", &mut c.balance, &modes, |m| balance_name(m).into())
            },
        );
        run_rows(ui, c);
        let mut two_stage = c.fine_tune.is_some();
        row(
            ui,
            "Fine-tune",
            "Stage 2: after the head is trained, unfreeze every layer and train on at a lower learning rate.",
            |ui| ui.checkbox(&mut two_stage, "then unfreeze all"),
        );
        if two_stage != c.fine_tune.is_some() {
            c.fine_tune = two_stage.then(FineTuneConfig::default);
        }
        if let Some(ft) = &mut c.fine_tune {
            row(ui, "  its epochs", "Epochs of stage 2.", |ui| {
                ui.add(egui::DragValue::new(&mut ft.epochs).range(1..=500))
            });
            row(ui, "  its LR factor", "Stage-2 learning rate = stage 1's × this.", |ui| {
                ui.add(egui::DragValue::new(&mut ft.lr_factor).range(0.001..=1.0).speed(0.01))
            });
            row(
                ui,
                "  BatchNorm",
                "Keep every BatchNorm layer on its ImageNet statistics while fine-tuning: the statistics of a few images per batch would shift what the pre-trained layers see. Untick to let them learn.",
                |ui| ui.checkbox(&mut ft.freeze_batch_norm, "keep pre-trained statistics"),
            );
        }
    });
}

/// Colour jitter, rotation and the views the feature cache keeps.
fn augment_rows(ui: &mut egui::Ui, c: &mut TrainConfig) {
    let a = &mut c.augment;
    for (label, tip, value) in [
        (
            "  brightness",
            "Each view's pixels × a random factor in [1 − s, 1 + s]; 0 is off.",
            &mut a.brightness,
        ),
        (
            "  contrast",
            "Each view's distance from its mean grey × a random factor in [1 − s, 1 + s].",
            &mut a.contrast,
        ),
        (
            "  saturation",
            "Each view's colourfulness × a random factor in [1 − s, 1 + s].",
            &mut a.saturation,
        ),
    ] {
        row(ui, label, tip, |ui| {
            ui.add(egui::Slider::new(value, 0.0..=1.0).fixed_decimals(2))
        });
    }
    row(
        ui,
        "  rotation",
        "Turn each view by a random angle up to this many degrees either way.",
        |ui| {
            ui.add(
                egui::Slider::new(&mut a.rotation_degrees, 0.0..=45.0)
                    .suffix("°")
                    .fixed_decimals(0),
            )
        },
    );
    row(
        ui,
        "  cached views",
        "With frozen layers, the frozen part's output is computed once per view and reused: epoch e trains on view e mod this. More views, more variety, more first-pass time.",
        |ui| ui.add(egui::DragValue::new(&mut c.feature_cache.augmented_views).range(1..=64)),
    );
    row(
        ui,
        "  head fit passes",
        "After the first pass over the images, fit the head on their cached features up to this many times (until its loss stops falling): a useful model after one pass. Skipped when a fine-tuning stage follows; 0 turns it off.",
        |ui| ui.add(egui::DragValue::new(&mut c.feature_cache.fit_passes).range(0..=200)),
    );
}

/// Seed, early stopping and device: how a run is repeated, ended and placed.
fn run_rows(ui: &mut egui::Ui, c: &mut TrainConfig) {
    row(
        ui,
        "Seed",
        "The same seed gives the same split, order, augmentation and starting head: change it to see how much a result owes to chance.",
        |ui| ui.add(egui::DragValue::new(&mut c.seed)),
    );
    let mut early = c.early_stopping_patience.is_some();
    row(
        ui,
        "Early stopping",
        "Stop when the validation loss has not improved for this many epochs; the best checkpoint is kept either way.",
        |ui| {
            ui.horizontal(|ui| {
                let check = ui.checkbox(&mut early, "after");
                let mut patience = c.early_stopping_patience.unwrap_or(3);
                ui.add_enabled(early, egui::DragValue::new(&mut patience).range(1..=100))
                    .labelled_by(check.id);
                ui.label("epochs without progress");
                c.early_stopping_patience = early.then_some(patience);
            })
            .response
        },
    );
    row(
        ui,
        "Device",
        "Automatic trains on a GPU when one is found and on the CPU otherwise.",
        |ui| {
            let devices = [
                DevicePreference::Auto,
                DevicePreference::Cpu,
                DevicePreference::Gpu,
            ];
            combo(ui, "device", &mut c.device, &devices, |d| {
                device_name(d).into()
            })
        },
    );
}

/// A drop-down choosing `value` among `options`, each shown by `name`.
fn combo<T: Copy + PartialEq>(
    ui: &mut egui::Ui,
    id: &str,
    value: &mut T,
    options: &[T],
    name: impl Fn(T) -> String,
) -> egui::Response {
    egui::ComboBox::from_id_salt(id)
        .selected_text(name(*value))
        .show_ui(ui, |ui| {
            for &option in options {
                ui.selectable_value(value, option, name(option));
            }
        })
        .response
}

fn device_name(device: DevicePreference) -> &'static str {
    match device {
        DevicePreference::Auto => "automatic",
        DevicePreference::Cpu => "CPU",
        DevicePreference::Gpu => "GPU (wgpu)",
    }
}

fn balance_name(mode: ClassBalance) -> &'static str {
    match mode {
        ClassBalance::Auto => "automatic (weighted from 3:1)",
        ClassBalance::Off => "every image the same",
        ClassBalance::WeightedLoss => "class-weighted loss",
    }
}

fn progress(ui: &mut egui::Ui, run: &RunView) {
    match &run.status {
        RunStatus::Preparing { done, total: 0 } => {
            ui.add(egui::ProgressBar::new(0.0).text(format!("finding images: {done} so far")));
        }
        RunStatus::Preparing { done, total } => {
            ui.add(
                egui::ProgressBar::new(*done as f32 / (*total).max(1) as f32)
                    .text(format!("decoding images {done}/{total}")),
            );
        }
        RunStatus::Downloading { file, done, total } => {
            let mb = |b: u64| b as f64 / 1e6;
            let (fraction, text) = match total {
                Some(t) => (
                    *done as f32 / (*t).max(1) as f32,
                    format!("downloading {file}: {:.1} of {:.1} MB", mb(*done), mb(*t)),
                ),
                None => (0.0, format!("downloading {file}: {:.1} MB", mb(*done))),
            };
            ui.add(egui::ProgressBar::new(fraction).text(text));
        }
        RunStatus::CompilingKernels => {
            ui.add(egui::ProgressBar::new(run.fraction_done()).text(
                "preparing GPU kernels: the first step compiles them, the next ones are fast",
            ));
        }
        RunStatus::Training | RunStatus::Paused => {
            let eta = run
                .progress_note
                .as_ref()
                .map_or(String::new(), |t| format!(", {t}"));
            let paused = if run.status == RunStatus::Paused {
                " — paused"
            } else {
                ""
            };
            ui.add(egui::ProgressBar::new(run.fraction_done()).text(format!(
                "epoch {}/{}, batch {}/{}  ·  {:.1} img/s{eta}{paused}",
                run.epoch, run.total_epochs, run.batch, run.batches, run.images_per_sec
            )));
        }
        RunStatus::Finished(s) => {
            let how = if s.cancelled {
                "Stopped"
            } else if s.early_stopped {
                "Stopped early"
            } else {
                "Finished"
            };
            let val_images: usize = run.data.as_ref().map_or(0, |d| d.val_counts.iter().sum());
            let acc = s.best_val_accuracy.map_or(String::new(), |a| {
                format!(
                    ", best val accuracy {}",
                    crate::platform::interval::describe_share(a, val_images)
                )
            });
            let test = s.test.map_or(String::new(), |t| {
                format!("; test accuracy (scored once) {}", t.describe())
            });
            ui.label(format!(
                "{how} after {} epochs in {:.0} s{acc}{test}",
                s.epochs, s.seconds
            ));
        }
        RunStatus::Failed(m) => {
            ui.colored_label(ui.visuals().error_fg_color, format!("Failed: {m}"));
        }
    }
}

/// Every warning of the run: files left out, classes left out or unmeasured, frozen layers
/// that stay random.
fn warnings(ui: &mut egui::Ui, run: &RunView) {
    if let Some(d) = run
        .data
        .as_ref()
        .filter(|d| !d.excluded.is_empty() || d.relabelled > 0)
    {
        ui.label(format!(
            "Trained with your Data health decisions: {} file(s) left out, {} relabelled.",
            d.excluded.len(),
            d.relabelled
        ));
    }
    if run.warnings.is_empty() {
        return;
    }
    let title = format!(
        "⚠ {} warning{} for {}",
        run.warnings.len(),
        if run.warnings.len() == 1 { "" } else { "s" },
        run.label
    );
    egui::CollapsingHeader::new(title)
        .id_salt("run_warnings")
        .default_open(run.warnings.len() <= 5)
        .show(ui, |ui| {
            egui::ScrollArea::vertical()
                .id_salt("run_warnings_scroll")
                .max_height(120.0)
                .show(ui, |ui| {
                    for w in &run.warnings {
                        ui.colored_label(ui.visuals().warn_fg_color, w);
                    }
                });
        });
}

/// Colour of run `i` on the plots.
pub fn run_color(i: usize) -> egui::Color32 {
    const COLORS: [egui::Color32; 6] = [
        egui::Color32::from_rgb(66, 133, 244),
        egui::Color32::from_rgb(234, 67, 53),
        egui::Color32::from_rgb(52, 168, 83),
        egui::Color32::from_rgb(251, 188, 5),
        egui::Color32::from_rgb(171, 71, 188),
        egui::Color32::from_rgb(0, 172, 193),
    ];
    COLORS[i % COLORS.len()]
}

/// The id of the loss plot (the Train and Compare pages, one shown at a time, share it).
pub const LOSS_PLOT: &str = "graft_loss_plot";
/// The id of the accuracy plot.
pub const ACCURACY_PLOT: &str = "graft_accuracy_plot";

/// The loss and accuracy plots over the visible runs, one above the other, sharing their x
/// range (and their pan and zoom).
pub fn curves(ui: &mut egui::Ui, runs: &[RunView], height: f32) {
    let x_max = runs
        .iter()
        .filter(|r| r.visible)
        .map(RunView::x_extent)
        .fold(1.0, f64::max);
    let link = egui::Id::unique("train_curves_x");
    Plot::new("loss")
        .id(egui::Id::NULL.with(LOSS_PLOT))
        .legend(Legend::default())
        .height(height)
        .x_axis_label("epoch")
        .y_axis_label("loss")
        .include_x(0.0)
        .include_x(x_max)
        .include_y(0.0)
        .include_y(1.0)
        .link_axis(link, [true, false])
        .show(ui, |plot| {
            for (i, run) in runs.iter().enumerate().filter(|(_, r)| r.visible) {
                loss_lines(plot, run, run_color(i));
            }
        });
    Plot::new("accuracy")
        .id(egui::Id::NULL.with(ACCURACY_PLOT))
        .legend(Legend::default())
        .height(height)
        .x_axis_label("epoch")
        .y_axis_label("accuracy % (val solid, train dashed)")
        .include_x(0.0)
        .include_x(x_max)
        .include_y(0.0)
        .include_y(100.0)
        .link_axis(link, [true, false])
        .show(ui, |plot| {
            for (i, run) in runs.iter().enumerate().filter(|(_, r)| r.visible) {
                let color = run_color(i);
                plot.line(Line::new(run.label.clone(), run.val_accuracy.clone()).color(color));
                plot.line(
                    Line::new(format!("{} (train)", run.label), run.train_accuracy.clone())
                        .color(color)
                        .style(egui_plot::LineStyle::dashed_loose()),
                );
                plot.points(
                    Points::new(run.label.clone(), run.val_accuracy.clone())
                        .color(color)
                        .radius(3.0),
                );
            }
        });
}

fn loss_lines(plot: &mut egui_plot::PlotUi, run: &RunView, color: egui::Color32) {
    plot.line(
        Line::new(
            format!("{} · batch loss", run.label),
            run.batch_loss.clone(),
        )
        .color(color.gamma_multiply(0.35)),
    );
    plot.line(
        Line::new(
            format!("{} · smoothed", run.label),
            run.smoothed_loss.clone(),
        )
        .color(color)
        .width(2.0),
    );
    plot.line(
        Line::new(format!("{} · val loss", run.label), run.val_loss.clone())
            .color(color)
            .style(egui_plot::LineStyle::dashed_loose()),
    );
    plot.points(
        Points::new(format!("{} · val loss", run.label), run.val_loss.clone())
            .color(color)
            .radius(3.0),
    );
}

/// The advice for a finished run, from its curves, its data and the data doctor's findings.
fn run_advice(state: &AppState, run: &RunView) -> Vec<Advice> {
    let (Some(summary), Some(config)) = (run.summary(), run.config.as_ref()) else {
        return Vec::new();
    };
    let label_issues = match (&state.live.health.state, &run.data) {
        (HealthState::Ready(report), Some(data)) if report.root == data.root => {
            Some(report.label_issues.len())
        }
        _ => None,
    };
    advice::advise(&advice::RunFacts {
        config,
        epochs: &run.epochs,
        data: run.data.as_ref(),
        summary: Some(summary),
        label_issues,
    })
}

/// Each piece of advice: its evidence and next step, with a button where Graft can take it.
fn advice_list(ui: &mut egui::Ui, advice: &[Advice], actions: &mut Vec<Action>) {
    ui.strong("What the run says");
    for a in advice {
        ui.horizontal_wrapped(|ui| {
            ui.label(format!("• {} {}", a.evidence, a.suggestion));
            if !matches!(a.remedy, Remedy::AddImages(_)) && ui.button(a.remedy.label()).clicked() {
                actions.push(Action::ApplyRemedy(a.remedy.clone()));
            }
        });
    }
}

/// Draws the train panel.
pub fn show(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    let training = state.is_training();
    egui::CollapsingHeader::new("Settings")
        .default_open(true)
        .show(ui, |ui| {
            ui.add_enabled_ui(!training, |ui| settings(ui, state, actions));
        });
    let active = state
        .live
        .active_run
        .and_then(|i| state.project.runs.get(i));
    let paused = active.is_some_and(|r| r.status == RunStatus::Paused);
    ui.horizontal(|ui| {
        if ui
            .add_enabled(!training, egui::Button::new("▶ Start"))
            .clicked()
        {
            actions.push(Action::StartTraining);
        }
        if paused {
            if ui.button("▶ Resume").clicked() {
                actions.push(Action::Resume);
            }
        } else if ui
            .add_enabled(training, egui::Button::new("⏸ Pause"))
            .clicked()
        {
            actions.push(Action::Pause);
        }
        if ui
            .add_enabled(training, egui::Button::new("⏹ Stop"))
            .clicked()
        {
            actions.push(Action::Stop);
        }
    });
    if let Some(message) = &state.live.messages.train {
        ui.colored_label(ui.visuals().error_fg_color, message);
    }
    if let Some(run) = active {
        progress(ui, run);
    }
    if let Some(run) = active.or(state.project.runs.last()) {
        warnings(ui, run);
    }
    if !state.project.runs.is_empty() {
        ui.horizontal_wrapped(|ui| {
            ui.label("Runs:");
            for (i, run) in state.project.runs.iter_mut().enumerate() {
                ui.checkbox(
                    &mut run.visible,
                    egui::RichText::new(&run.label).color(run_color(i)),
                );
            }
        });
    }
    let advice = state
        .project
        .runs
        .last()
        .map_or_else(Vec::new, |run| run_advice(state, run));
    // Room under the plots for the advice, two lines a piece.
    let reserved = if advice.is_empty() {
        0.0
    } else {
        24.0 + 40.0 * advice.len() as f32
    };
    let height = ((ui.available_height() - reserved) / 2.0 - 10.0).max(120.0);
    curves(ui, &state.project.runs, height);
    if !advice.is_empty() {
        advice_list(ui, &advice, actions);
    }
}
