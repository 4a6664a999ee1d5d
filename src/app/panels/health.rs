//! The Data health page: the data doctor's findings with thumbnails (pairs side by side), each
//! with "exclude", "relabel as …" or "fine". Decisions go into the project's config, so the
//! next run honours them and its folder records them; the data folder never changes.

use std::path::{Path, PathBuf};

use eframe::egui;

use super::super::actions::Action;
use super::super::dialogs::Dialog;
use super::super::state::{AppState, HealthState};
use super::super::thumbnails::Thumbnails;
use crate::config::{Curation, Decision};
use crate::doctor::Report;
use crate::platform::interval;

/// Draws the page.
pub fn show(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    ui.horizontal(|ui| {
        let examining = matches!(state.live.health.state, HealthState::Examining(..));
        if ui
            .add_enabled(!examining, egui::Button::new("Examine the data"))
            .on_hover_text("Cross-validate a linear head on the frozen backbone's features of every image: label issues, near-duplicates, outliers and balance, in seconds.")
            .clicked()
        {
            actions.push(Action::ExamineData);
        }
        if let HealthState::Examining(done, total) = state.live.health.state {
            let fraction = if total == 0 { 0.0 } else { done as f32 / total as f32 };
            ui.add(
                egui::ProgressBar::new(fraction)
                    .desired_width(200.0)
                    .text(format!("reading images {done}/{total}")),
            );
            if ui.button("Cancel").clicked() {
                actions.push(Action::CancelExamine);
            }
        }
    });
    decisions_bar(ui, state, actions);
    ui.separator();
    let report = match &state.live.health.state {
        HealthState::Ready(report) => report.clone(),
        HealthState::Failed(e) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
            return;
        }
        HealthState::None => {
            ui.weak("Nothing examined yet. Nothing in the data folder is ever changed: decisions are kept in the project.");
            return;
        }
        HealthState::Examining(..) => return,
    };
    summary(ui, &report);
    let mut wanted = Vec::new();
    let thumbs = &state.live.thumbs;
    let curation = &mut state.project.config.curation;
    egui::ScrollArea::vertical()
        .id_salt("health")
        .show(ui, |ui| {
            label_issues(ui, &report, thumbs, curation, &mut wanted);
            duplicates(ui, &report, thumbs, curation, &mut wanted);
            outliers(ui, &report, thumbs, curation, &mut wanted);
        });
    let missing = state.live.thumbs.take_missing(wanted.into_iter());
    if !missing.is_empty() {
        actions.push(Action::LoadThumbnails(missing));
    }
}

/// The decisions so far, and what can be done with them.
fn decisions_bar(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    let described = state.project.config.curation.describe();
    let any = !state.project.config.curation.is_empty();
    ui.horizontal(|ui| {
        match &described {
            Some(text) => ui.label(format!(
                "Decisions: {text}; the next run applies them, the folder stays as it is."
            )),
            None => ui.weak("No decisions yet."),
        };
        if ui
            .add_enabled(any, egui::Button::new("Forget all decisions"))
            .clicked()
        {
            state.project.config.curation = Curation::default();
        }
        if ui
            .add_enabled(described.is_some(), egui::Button::new("Export cleaned copy…"))
            .on_hover_text("Write a new folder elsewhere with the excluded files left out and the relabelled ones under their new class (hard links where possible).")
            .clicked()
        {
            actions.push(Action::Ask(Dialog::CleanedCopyFolder));
        }
    });
    if let Some(message) = &state.live.health.cleaned_copy {
        ui.label(message);
    }
}

fn summary(ui: &mut egui::Ui, report: &Report) {
    let cv = &report.cv_accuracy;
    ui.label(format!(
        "Cross-validated accuracy of a linear head on frozen features ({} folds): {}",
        cv.folds,
        interval::describe_share(cv.mean, report.images)
    ));
    let imbalance = &report.imbalance;
    if imbalance.ratio >= crate::config::ClassBalance::AUTO_RATIO {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            format!(
                "`{}` has {:.1}× the images of `{}`: Train → Balance weights the loss by class (on by default from 3:1).",
                imbalance.largest, imbalance.ratio, imbalance.smallest
            ),
        );
    }
    if !report.skipped.is_empty() {
        ui.weak(format!("{} files could not be read.", report.skipped.len()))
            .on_hover_text(report.skipped.join("\n"));
    }
}

/// A file's path relative to the report's folder: the key its decision is kept under.
fn relative<'a>(report: &Report, path: &'a Path) -> &'a Path {
    path.strip_prefix(&report.root).unwrap_or(path)
}

/// The decision on `file`, with Undo; `None` when there is none yet.
fn decided(ui: &mut egui::Ui, curation: &mut Curation, file: &Path) -> bool {
    let Some(decision) = curation.decision(file) else {
        return false;
    };
    let text = match decision {
        Decision::Exclude => "excluded".to_string(),
        Decision::Relabel(class) => format!("relabelled as {class}"),
        Decision::Fine => "fine".to_string(),
    };
    ui.strong(text);
    if ui.small_button("Undo").clicked() {
        curation.decide(file, None);
    }
    true
}

/// Exclude / Relabel as … / Fine for one file.
fn choices(
    ui: &mut egui::Ui,
    curation: &mut Curation,
    file: &Path,
    suggested: Option<&str>,
    classes: &[String],
) {
    if decided(ui, curation, file) {
        return;
    }
    if ui.button("Exclude").clicked() {
        curation.decide(file, Some(Decision::Exclude));
    }
    if let Some(class) = suggested
        && ui.button(format!("Relabel as {class}")).clicked()
    {
        curation.decide(file, Some(Decision::Relabel(class.to_string())));
    }
    ui.menu_button("Other class…", |ui| {
        for class in classes {
            if ui.button(class).clicked() {
                curation.decide(file, Some(Decision::Relabel(class.clone())));
                ui.close();
            }
        }
    });
    if ui.button("Fine").clicked() {
        curation.decide(file, Some(Decision::Fine));
    }
}

/// One file the doctor flagged: its thumbnail, name, what was found and the choices.
struct Finding<'a> {
    path: &'a PathBuf,
    name: &'a str,
    detail: String,
    suggested: Option<&'a str>,
}

impl<'a> Finding<'a> {
    fn show(
        &self,
        ui: &mut egui::Ui,
        report: &Report,
        thumbs: &Thumbnails,
        curation: &mut Curation,
        wanted: &mut Vec<&'a PathBuf>,
    ) {
        let file = relative(report, self.path);
        ui.horizontal(|ui| {
            thumbs.show(ui, self.path, wanted);
            ui.vertical(|ui| {
                ui.label(egui::RichText::new(self.name).monospace());
                ui.label(&self.detail);
                ui.horizontal(|ui| choices(ui, curation, file, self.suggested, &report.classes));
            });
        });
    }
}

fn label_issues<'a>(
    ui: &mut egui::Ui,
    report: &'a Report,
    thumbs: &Thumbnails,
    curation: &mut Curation,
    wanted: &mut Vec<&'a PathBuf>,
) {
    egui::CollapsingHeader::new(format!(
        "Label issues ({}): the given label is unlikely",
        report.label_issues.len()
    ))
    .id_salt("label_issues")
    .default_open(true)
    .show(ui, |ui| {
        for issue in &report.label_issues {
            let detail = format!(
                "labelled {}, looks like {} (score {:.2})",
                issue.given, issue.suggested, issue.score
            );
            let finding = Finding {
                path: &issue.path,
                name: &issue.file,
                detail,
                suggested: Some(&issue.suggested),
            };
            finding.show(ui, report, thumbs, curation, wanted);
        }
    });
}

fn duplicates<'a>(
    ui: &mut egui::Ui,
    report: &'a Report,
    thumbs: &Thumbnails,
    curation: &mut Curation,
    wanted: &mut Vec<&'a PathBuf>,
) {
    egui::CollapsingHeader::new(format!(
        "Near-duplicates ({}): the same picture twice",
        report.duplicates.len()
    ))
    .id_salt("duplicates")
    .default_open(true)
    .show(ui, |ui| {
        for pair in &report.duplicates {
            ui.horizontal(|ui| {
                for (path, name) in pair.paths.iter().zip(&pair.files) {
                    ui.vertical(|ui| {
                        thumbs.show(ui, path, wanted);
                        ui.label(egui::RichText::new(name).monospace().small());
                        let file = relative(report, path);
                        if !decided(ui, curation, file) && ui.button("Exclude").clicked() {
                            curation.decide(file, Some(Decision::Exclude));
                        }
                    });
                }
                ui.label(format!("{} · similarity {:.3}", pair.kind, pair.similarity));
            });
        }
    });
}

fn outliers<'a>(
    ui: &mut egui::Ui,
    report: &'a Report,
    thumbs: &Thumbnails,
    curation: &mut Curation,
    wanted: &mut Vec<&'a PathBuf>,
) {
    egui::CollapsingHeader::new(format!("Far from every class ({})", report.outliers.len()))
        .id_salt("outliers")
        .default_open(true)
        .show(ui, |ui| {
            for outlier in &report.outliers {
                let finding = Finding {
                    path: &outlier.path,
                    name: &outlier.file,
                    detail: format!("score {:.3}", outlier.score),
                    suggested: None,
                };
                finding.show(ui, report, thumbs, curation, wanted);
            }
        });
}
