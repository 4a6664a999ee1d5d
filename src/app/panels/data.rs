//! The data panel: the folder, its classes and balance, the split, the problem files.

use std::borrow::Borrow;

use eframe::egui;

use crate::app::actions::Action;
use crate::app::dialogs::Dialog;
use crate::app::state::{AppState, FolderState, Live};
use crate::app::thumbnails::SIDE;
use crate::data::inspect::{FolderReport, InspectProgress};
use crate::data::{Layout, SkippedFile, held_out_counts};

/// Draws the data panel.
pub fn show(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    ui.heading("Data");
    ui.horizontal(|ui| {
        if ui.button("Open folder…").clicked() {
            actions.push(Action::Ask(Dialog::DataFolder));
        }
        ui.weak("or drop a folder on the window");
    });
    if let Some(message) = &state.live.messages.data {
        ui.colored_label(ui.visuals().error_fg_color, message);
    }
    let split = state.project.config.split.clone();
    // Taken out while drawing, so the thumbnail grid can update the rest of the live state.
    let folder = std::mem::take(&mut state.live.folder);
    match &folder {
        FolderState::None => {
            ui.label("No data set chosen.");
        }
        FolderState::Scanning(path, at) => {
            ui.label(format!("Reading {} …", path.display()));
            ui.horizontal(|ui| {
                let (fraction, text) = match at {
                    None => (0.0, "listing folders".to_string()),
                    Some(InspectProgress::Found(n)) => (0.0, format!("{n} images found so far")),
                    Some(InspectProgress::Checked(done, total)) => (
                        *done as f32 / (*total).max(1) as f32,
                        format!("checking files {done}/{total}"),
                    ),
                };
                ui.add(
                    egui::ProgressBar::new(fraction)
                        .desired_width(200.0)
                        .text(text),
                );
                if ui.button("Cancel").clicked() {
                    actions.push(Action::CancelScan);
                }
            });
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
                match report.layout {
                    Layout::TrainVal => " (train/ and val/ given)",
                    Layout::TrainValTest => " (train/, val/ and test/ given)",
                    Layout::Flat => "",
                }
            ));
            class_table(ui, report, &split);
            egui::CollapsingHeader::new("Thumbnails")
                .id_salt("thumbnails")
                .default_open(true)
                .show(ui, |ui| thumbnails(ui, &mut state.live, report, actions));
            problems(ui, report);
            found_in_training(ui, state, report);
        }
    }
    let given_split = matches!(&folder, FolderState::Ready(r) if r.layout.is_given());
    state.live.folder = folder;
    if !given_split {
        ui.add_enabled(
            !state.is_training(),
            egui::Slider::new(&mut state.project.config.split.val_fraction, 0.05..=0.5)
                .text("validation share")
                .custom_formatter(|v, _| format!("{:.0} %", v * 100.0)),
        )
        .on_hover_text(
            "Share of each class held out to measure accuracy on images the model never trains on.",
        );
        ui.add_enabled(
            !state.is_training(),
            egui::Slider::new(&mut state.project.config.split.test_fraction, 0.0..=0.3)
                .text("test share")
                .custom_formatter(|v, _| format!("{:.0} %", v * 100.0)),
        )
        .on_hover_text(
            "Share of each class kept out of training and out of choosing the best epoch, scored once when the run ends: the one accuracy not tuned on.",
        );
    }
}

/// Each class with its image count, train/validation split and share of the whole.
fn class_table(ui: &mut egui::Ui, report: &FolderReport, split: &crate::config::SplitConfig) {
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
            ui.strong("train / val / test");
            ui.strong("balance");
            ui.end_row();
            for class in &report.classes {
                let n = class.files.len();
                let (val, test) = match report.layout {
                    Layout::TrainVal | Layout::TrainValTest => {
                        (class.in_val_folder, class.in_test_folder)
                    }
                    Layout::Flat => held_out_counts(n, split.val_fraction, split.test_fraction),
                };
                ui.label(&class.name);
                ui.label(n.to_string());
                ui.label(format!("{} / {val} / {test}", n - val - test));
                ui.add(
                    egui::ProgressBar::new(n as f32 / largest as f32)
                        .desired_width(100.0)
                        .text(format!("{:.0} %", 100.0 * n as f64 / total as f64)),
                );
                ui.end_row();
            }
        });
}

/// The files that will be skipped, with the reason.
fn problems(ui: &mut egui::Ui, report: &FolderReport) {
    for line in &report.class_mismatch {
        ui.colored_label(ui.visuals().warn_fg_color, format!("⚠ {line}"));
    }
    if !report.problems.is_empty() {
        egui::CollapsingHeader::new(format!("{} files will be skipped", report.problems.len()))
            .id_salt("problems")
            .show(ui, |ui| {
                skipped_list(ui, "problems_scroll", &report.problems)
            });
    }
}

/// Files with their reasons in a scroll area; only the rows on screen are laid out, so a folder
/// with thousands of them stays smooth.
fn skipped_list(ui: &mut egui::Ui, id: &str, files: &[impl Borrow<SkippedFile>]) {
    let row_height = ui.text_style_height(&egui::TextStyle::Body) + ui.spacing().item_spacing.y;
    egui::ScrollArea::vertical()
        .id_salt(id)
        .max_height(150.0)
        .show_rows(ui, row_height, files.len(), |ui, visible| {
            for file in &files[visible] {
                ui.label(file.borrow().to_string());
            }
        });
}

/// Files of this folder that the latest run on it could not use, whatever the header check says
/// (a cut-off image shows only when it is decoded in full).
fn found_in_training(ui: &mut egui::Ui, state: &AppState, report: &FolderReport) {
    let Some((label, data)) = state.project.runs.iter().rev().find_map(|r| {
        let data = r.data.as_ref()?;
        (data.root == report.root).then_some((&r.label, data))
    }) else {
        return;
    };
    let known: std::collections::HashSet<&std::path::Path> =
        report.problems.iter().map(|p| p.path.as_path()).collect();
    let new: Vec<&SkippedFile> = data
        .skipped
        .iter()
        .filter(|s| !known.contains(s.path.as_path()))
        .collect();
    if new.is_empty() {
        return;
    }
    egui::CollapsingHeader::new(format!(
        "{} more files could not be used when “{label}” trained",
        new.len()
    ))
    .id_salt("skipped_in_training")
    .show(ui, |ui| {
        skipped_list(ui, "skipped_in_training_scroll", &new)
    });
}

/// A grid of one class's images; only the rows on screen are laid out and decoded.
fn thumbnails(
    ui: &mut egui::Ui,
    live: &mut Live,
    report: &FolderReport,
    actions: &mut Vec<Action>,
) {
    if report.classes.is_empty() {
        return;
    }
    live.thumb_class = live.thumb_class.min(report.classes.len() - 1);
    let class = &report.classes[live.thumb_class];
    let label = ui.label("Images of");
    egui::ComboBox::from_id_salt("thumb_class")
        .selected_text(format!("{} ({})", class.name, class.files.len()))
        .show_ui(ui, |ui| {
            for (i, c) in report.classes.iter().enumerate() {
                ui.selectable_value(&mut live.thumb_class, i, &c.name);
            }
        })
        .response
        .labelled_by(label.id);
    let class = &report.classes[live.thumb_class];
    let cell = SIDE as f32 + 4.0;
    let columns = ((ui.available_width() / cell).floor() as usize).max(1);
    let rows = class.files.len().div_ceil(columns);
    let mut wanted = Vec::new();
    egui::ScrollArea::vertical()
        .id_salt("thumbs")
        .max_height(260.0)
        .show_rows(ui, cell, rows, |ui, visible| {
            for row in visible {
                ui.horizontal(|ui| {
                    for path in class.files.iter().skip(row * columns).take(columns) {
                        live.thumbs.show(ui, path, &mut wanted);
                    }
                });
            }
        });
    let missing = live.thumbs.take_missing(wanted.into_iter());
    if !missing.is_empty() {
        actions.push(Action::LoadThumbnails(missing));
    }
}
