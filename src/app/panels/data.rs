//! The data panel: the folder, its classes and balance, the split, the problem files.

use eframe::egui;

use crate::app::dispatch::Action;
use crate::app::state::{AppState, FolderState};
use crate::data::{Layout, val_count};

/// Draws the data panel.
pub fn show(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    ui.heading("Data");
    ui.horizontal(|ui| {
        if ui.button("Open folder…").clicked() {
            actions.push(Action::PickDataFolder);
        }
        ui.weak("or drop a folder on the window");
    });
    if let Some(message) = &state.live.messages.data {
        ui.colored_label(ui.visuals().error_fg_color, message);
    }
    let val_fraction = state.project.config.split.val_fraction;
    match &state.live.folder {
        FolderState::None => {
            ui.label("No data set chosen.");
        }
        FolderState::Scanning(path) => {
            ui.label(format!("Reading {} …", path.display()));
        }
        FolderState::Error(e) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        FolderState::Ready(report) => {
            ui.label(egui::RichText::new(report.root.display().to_string()).monospace());
            ui.label(format!(
                "{} images in {} classes{}",
                report.total(),
                report.classes.len(),
                if report.layout == Layout::TrainVal {
                    " (train/ and val/ given)"
                } else {
                    ""
                }
            ));
            let largest = report
                .classes
                .iter()
                .map(|c| c.files.len())
                .max()
                .unwrap_or(1)
                .max(1);
            let total = report.total().max(1);
            egui::Grid::new("classes")
                .striped(true)
                .num_columns(4)
                .show(ui, |ui| {
                    ui.strong("class");
                    ui.strong("images");
                    ui.strong("train / val");
                    ui.strong("balance");
                    ui.end_row();
                    for class in &report.classes {
                        let n = class.files.len();
                        let val = match report.layout {
                            Layout::TrainVal => class.in_val_folder,
                            Layout::Flat => val_count(n, val_fraction),
                        };
                        ui.label(&class.name);
                        ui.label(n.to_string());
                        ui.label(format!("{} / {val}", n - val));
                        ui.add(
                            egui::ProgressBar::new(n as f32 / largest as f32)
                                .desired_width(100.0)
                                .text(format!("{:.0} %", 100.0 * n as f64 / total as f64)),
                        );
                        ui.end_row();
                    }
                });
            if !report.problems.is_empty() {
                egui::CollapsingHeader::new(format!(
                    "{} files will be skipped",
                    report.problems.len()
                ))
                .id_salt("problems")
                .show(ui, |ui| {
                    egui::ScrollArea::vertical()
                        .max_height(150.0)
                        .show(ui, |ui| {
                            for p in &report.problems {
                                ui.label(format!("{}: {}", p.path.display(), p.reason));
                            }
                        });
                });
            }
        }
    }
    if !matches!(state.live.folder, FolderState::Ready(ref r) if r.layout == Layout::TrainVal) {
        ui.add_enabled(
            !state.is_training(),
            egui::Slider::new(&mut state.project.config.split.val_fraction, 0.05..=0.5)
                .text("validation share")
                .custom_formatter(|v, _| format!("{:.0} %", v * 100.0)),
        )
        .on_hover_text(
            "Share of each class held out to measure accuracy on images the model never trains on.",
        );
    }
}
