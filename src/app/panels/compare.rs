//! All runs side by side, the one-click baseline comparison, and Re-run.

use eframe::egui;

use super::layers::format_params;
use super::train::{curves, run_color};
use crate::app::actions::Action;
use crate::app::run_view::{RunStatus, RunView};
use crate::app::state::{AppState, FolderState};

/// How a run started, for the table.
fn recipe(run: &RunView) -> String {
    let Some(c) = &run.config else {
        return "—".into();
    };
    let start = if c.from_scratch {
        "random weights"
    } else {
        "pre-trained"
    };
    let freeze = c.freeze.describe(None);
    let tune = if c.fine_tune.is_some() {
        ", then all fine-tuned"
    } else {
        ""
    };
    format!("{}, {start}, {freeze}{tune}", c.model.name())
}

fn table(ui: &mut egui::Ui, runs: &[RunView], training: bool, actions: &mut Vec<Action>) {
    egui::Grid::new("compare_runs")
        .striped(true)
        .num_columns(7)
        .show(ui, |ui| {
            for h in [
                "run",
                "",
                "best val accuracy",
                "time",
                "trainable params",
                "epochs",
                "recipe",
            ] {
                ui.strong(h);
            }
            ui.end_row();
            for (i, run) in runs.iter().enumerate() {
                ui.label(egui::RichText::new(format!("run {}", i + 1)).color(run_color(i)))
                    .on_hover_text(&run.label);
                let rerun = ui
                    .add_enabled(
                        !training && run.config.is_some(),
                        egui::Button::new(format!("Re-run {}", i + 1)),
                    )
                    .on_hover_text("Train again with exactly these settings, data and seed.");
                if rerun.clicked() {
                    actions.push(Action::Rerun(i));
                }
                let (accuracy, time, epochs) = match &run.status {
                    RunStatus::Finished(s) => (
                        s.best_val_accuracy.map_or("—".into(), |a| {
                            let test = s.test.map_or(String::new(), |t| {
                                format!(" (test {:.1} %)", t.accuracy() * 100.0)
                            });
                            format!("{:.1} %{test}", a * 100.0)
                        }),
                        format!("{:.0} s", s.seconds),
                        s.epochs.to_string(),
                    ),
                    RunStatus::Failed(_) => ("failed".into(), "—".into(), "—".into()),
                    _ => (
                        run.val_accuracy
                            .last()
                            .map_or("…".into(), |[_, a]| format!("{a:.1} % so far")),
                        "…".into(),
                        format!("{}/{}", run.epoch, run.total_epochs),
                    ),
                };
                ui.label(accuracy);
                ui.label(time);
                ui.label(if run.trainable_params == 0 {
                    "—".into()
                } else {
                    format_params(run.trainable_params)
                });
                ui.label(epochs);
                ui.label(recipe(run));
                ui.end_row();
            }
        });
}

/// Draws the Compare page.
pub fn show(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    let training = state.is_training();
    let ready = matches!(state.live.folder, FolderState::Ready(_));
    ui.horizontal(|ui| {
        let button = ui
            .add_enabled(!training && ready, egui::Button::new("Baseline comparison"))
            .on_hover_text(
                "Three runs on the same split and seed: pre-trained with all but the head frozen, the same then fine-tuned, and from random weights. They run one after another.",
            );
        if button.clicked() {
            actions.push(Action::BaselineComparison);
        }
        ui.weak("What does transfer learning buy on these images?");
    });
    if let Some(message) = &state.live.messages.train {
        ui.colored_label(ui.visuals().error_fg_color, message);
    }
    super::curve::show(ui, state, actions);
    ui.separator();
    if state.project.runs.is_empty() {
        ui.label("No runs yet.");
        return;
    }
    egui::ScrollArea::horizontal()
        .id_salt("compare_table")
        .show(ui, |ui| table(ui, &state.project.runs, training, actions));
    ui.separator();
    let height = (ui.available_height() / 2.0 - 10.0).max(120.0);
    curves(ui, &state.project.runs, height);
}
