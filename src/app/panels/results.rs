//! One finished run: accuracy, per-class scores, the confusion matrix as a heat map (click a
//! cell to see its images), the mistakes gallery, "try it" and export.

use eframe::egui;

use std::path::Path;

use crate::app::actions::Action;
use crate::app::class_maps::{MapKey, MapSource};
use crate::app::dialogs::Dialog;
use crate::app::state::{AppState, EvalState, Live, Results};
use crate::app::thumbnails::SIDE;
use crate::run::eval::{Evaluation, Prediction};

/// Images shown in the gallery at most (the worst first).
const GALLERY_MAX: usize = 120;
/// Side of a class map in the gallery and in Try it.
const MAP_SIDE: f32 = 96.0;

/// Draws the Results page.
pub fn show(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    let finished = state.finished_runs();
    let Some(&latest) = finished.last() else {
        ui.label("Results appear here when a run finishes with a checkpoint.");
        return;
    };
    let results = &mut state.live.results;
    if !results.run.is_some_and(|r| finished.contains(&r)) {
        results.run = Some(latest);
        results.tries.clear();
    }
    // Wrapped, so that the map controls stay on screen in a narrow window.
    ui.horizontal_wrapped(|ui| {
        let label = ui.label("Run");
        let current = results.run.unwrap_or(latest);
        egui::ComboBox::from_id_salt("results_run")
            .selected_text(&state.project.runs[current].label)
            .show_ui(ui, |ui| {
                for &i in &finished {
                    if ui
                        .selectable_label(current == i, &state.project.runs[i].label)
                        .clicked()
                    {
                        results.run = Some(i);
                        results.tries.clear();
                    }
                }
            })
            .response
            .labelled_by(label.id);
        if ui
            .button("Export…")
            .on_hover_text(
                "Safetensors with PyTorch names, labels.json and preprocessing.json; the export is reloaded and re-scored.",
            )
            .clicked()
        {
            actions.push(Action::Ask(Dialog::ExportFolder));
        }
        ui.separator();
        state.live.maps.controls(ui);
    });
    if let Some(message) = &results.export {
        ui.label(message);
    }
    let Some(run_dir) = state.results_run_dir() else {
        return;
    };
    let results = &mut state.live.results;
    if results
        .evaluation
        .as_ref()
        .is_none_or(|(d, _)| *d != run_dir)
    {
        actions.push(Action::Evaluate(run_dir));
        return;
    }
    egui::ScrollArea::vertical()
        .id_salt("results_scroll")
        .show(ui, |ui| {
            if let Some((_, evaluation)) = &state.live.results.evaluation {
                match evaluation.clone() {
                    EvalState::Running => {
                        ui.label("Scoring the validation images…");
                    }
                    EvalState::Failed(e) => {
                        ui.colored_label(
                            ui.visuals().error_fg_color,
                            format!("Cannot score this run: {e}"),
                        );
                    }
                    EvalState::Ready(evaluation) => {
                        scores(ui, &evaluation, &mut state.live.results);
                        ui.separator();
                        gallery(ui, &evaluation, &run_dir, &mut state.live, actions);
                    }
                }
            }
            ui.separator();
            try_it(ui, &run_dir, &mut state.live, actions);
        });
}

/// Accuracy, per-class table and the confusion heat map.
fn scores(ui: &mut egui::Ui, evaluation: &Evaluation, results: &mut Results) {
    let m = &evaluation.metrics;
    let images: usize = m.per_class.iter().map(|c| c.support).sum();
    let right: usize = (0..m.classes.len()).map(|c| m.confusion[c][c]).sum();
    ui.heading(format!(
        "Accuracy {} of validation",
        crate::platform::interval::describe(right, images)
    ));
    for w in &evaluation.warnings {
        ui.colored_label(ui.visuals().warn_fg_color, format!("⚠ {w}"));
    }
    for s in &evaluation.skipped {
        ui.weak(format!("skipped {s}"));
    }
    // Beside the table when the map fits there at its smallest cells; under it otherwise.
    let heat_width = 90.0 + m.classes.len() as f32 * (MIN_CELL.x + 2.0);
    let mut below = false;
    ui.horizontal_top(|ui| {
        per_class_table(ui, m);
        ui.add_space(24.0);
        if ui.available_width() >= heat_width {
            ui.vertical(|ui| confusion(ui, m, &mut results.cell));
        } else {
            below = true;
        }
    });
    if below {
        confusion(ui, m, &mut results.cell);
    }
}

fn per_class_table(ui: &mut egui::Ui, m: &crate::run::eval::Metrics) {
    egui::Grid::new("per_class")
        .striped(true)
        .num_columns(5)
        .show(ui, |ui| {
            for h in ["class", "precision", "recall", "F1", "images"] {
                ui.strong(h);
            }
            ui.end_row();
            for c in &m.per_class {
                ui.label(&c.name);
                ui.label(format!("{:.2}", c.precision));
                ui.label(format!("{:.2}", c.recall));
                ui.label(format!("{:.2}", c.f1));
                ui.label(c.support.to_string());
                ui.end_row();
            }
        });
}

/// The heat map with its caption; never clipped: cells shrink to fit, and below their smallest
/// the map scrolls.
fn confusion(ui: &mut egui::Ui, m: &crate::run::eval::Metrics, cell: &mut Option<(usize, usize)>) {
    ui.weak("Rows: true class · columns: predicted · click a cell for its images");
    let room = ui.available_width();
    egui::ScrollArea::horizontal()
        .id_salt("confusion_scroll")
        .show(ui, |ui| heat_map(ui, &m.classes, &m.confusion, cell, room));
}

/// The smallest and largest confusion cell.
const MIN_CELL: egui::Vec2 = egui::vec2(26.0, 22.0);
const MAX_CELL: egui::Vec2 = egui::vec2(44.0, 28.0);

fn short(name: &str) -> String {
    if name.chars().count() <= 8 {
        name.to_string()
    } else {
        name.chars().take(7).chain(['…']).collect()
    }
}

fn heat_map(
    ui: &mut egui::Ui,
    classes: &[String],
    confusion: &[Vec<usize>],
    selected: &mut Option<(usize, usize)>,
    room: f32,
) {
    let n = classes.len().max(1) as f32;
    let width = ((room - 80.0) / n - 2.0).clamp(MIN_CELL.x, MAX_CELL.x);
    let size = egui::vec2(
        width,
        if width < MAX_CELL.x {
            MIN_CELL.y
        } else {
            MAX_CELL.y
        },
    );
    egui::Grid::new("confusion")
        .spacing(egui::vec2(2.0, 2.0))
        .show(ui, |ui| {
            ui.label("");
            for name in classes {
                ui.label(egui::RichText::new(short(name)).small())
                    .on_hover_text(name);
            }
            ui.end_row();
            for (t, row) in confusion.iter().enumerate() {
                ui.label(short(&classes[t])).on_hover_text(&classes[t]);
                let total: usize = row.iter().sum();
                for (p, &count) in row.iter().enumerate() {
                    let label = format!("{} as {}: {count}", classes[t], classes[p]);
                    let (rect, response) = ui.allocate_exact_size(size, egui::Sense::click());
                    let share = if total == 0 {
                        0.0
                    } else {
                        count as f32 / total as f32
                    };
                    let hue = if t == p {
                        egui::Color32::from_rgb(52, 168, 83)
                    } else {
                        egui::Color32::from_rgb(234, 67, 53)
                    };
                    let fill = ui.visuals().faint_bg_color.lerp_to_gamma(hue, share);
                    let painter = ui.painter();
                    painter.rect_filled(rect, 3.0, fill);
                    if *selected == Some((t, p)) {
                        painter.rect_stroke(
                            rect,
                            3.0,
                            ui.visuals().selection.stroke,
                            egui::StrokeKind::Inside,
                        );
                    }
                    painter.text(
                        rect.center(),
                        egui::Align2::CENTER_CENTER,
                        count.to_string(),
                        egui::FontId::proportional(13.0),
                        ui.visuals().strong_text_color(),
                    );
                    let response = response.on_hover_text(&label);
                    response.widget_info(|| {
                        egui::WidgetInfo::labeled(egui::Role::Button, true, &label)
                    });
                    if response.clicked() {
                        *selected = if *selected == Some((t, p)) {
                            None
                        } else {
                            Some((t, p))
                        };
                    }
                }
                ui.end_row();
            }
        });
}

/// The images of the selected confusion cell, or every mistake, highest loss first.
fn gallery_images(evaluation: &Evaluation, cell: Option<(usize, usize)>) -> Vec<&Prediction> {
    match cell {
        None => evaluation.mistakes.iter().collect(),
        Some((t, p)) => {
            let mut images: Vec<_> = evaluation
                .predictions
                .iter()
                .filter(|x| x.truth == t && x.predicted == p)
                .collect();
            images.sort_by(|a, b| b.loss.total_cmp(&a.loss));
            images
        }
    }
}

fn gallery(
    ui: &mut egui::Ui,
    evaluation: &Evaluation,
    run_dir: &Path,
    live: &mut Live,
    actions: &mut Vec<Action>,
) {
    let classes = &evaluation.metrics.classes;
    let cell = live.results.cell;
    let images = gallery_images(evaluation, cell);
    ui.horizontal(|ui| {
        match cell {
            None => ui.strong(format!("Mistakes ({}), worst first", images.len())),
            Some((t, p)) => ui.strong(format!(
                "{} predicted as {} ({})",
                classes[t],
                classes[p],
                images.len()
            )),
        };
        if cell.is_some() && ui.button("Show all mistakes").clicked() {
            live.results.cell = None;
        }
    });
    if images.is_empty() {
        ui.weak("None.");
        return;
    }
    let mut wanted = Vec::new();
    let mut wanted_maps = Vec::new();
    let source = MapSource::Run(run_dir.to_path_buf());
    ui.horizontal_wrapped(|ui| {
        for x in images.iter().take(GALLERY_MAX) {
            let caption = format!(
                "true: {} · predicted: {} ({:.0} %)",
                classes[x.truth],
                classes[x.predicted],
                x.confidence * 100.0
            );
            if !live.maps.enabled {
                ui.allocate_ui(egui::vec2(SIDE as f32 + 60.0, SIDE as f32 + 44.0), |ui| {
                    ui.vertical(|ui| {
                        live.thumbs.show(ui, &x.path, &mut wanted);
                        ui.add(egui::Label::new(egui::RichText::new(&caption).small()).wrap())
                            .on_hover_text(x.path.display().to_string());
                    });
                });
                continue;
            }
            // A mistake: the evidence for the true class beside the evidence for the guess.
            let shown: Vec<usize> = if x.truth == x.predicted {
                vec![x.predicted]
            } else {
                vec![x.truth, x.predicted]
            };
            let width = shown.len() as f32 * (MAP_SIDE + 4.0) + 16.0;
            ui.allocate_ui(
                egui::vec2(width.max(MAP_SIDE + 60.0), MAP_SIDE + 44.0),
                |ui| {
                    ui.vertical(|ui| {
                        ui.horizontal(|ui| {
                            for &class in &shown {
                                let key = MapKey {
                                    source: source.clone(),
                                    image: x.path.clone(),
                                    class: Some(class),
                                };
                                let name = |c: usize| classes[c].clone();
                                live.maps.show(ui, &key, MAP_SIDE, &name, &mut wanted_maps);
                            }
                        });
                        ui.add(egui::Label::new(egui::RichText::new(&caption).small()).wrap())
                            .on_hover_text(x.path.display().to_string());
                    });
                },
            );
        }
    });
    if images.len() > GALLERY_MAX {
        ui.weak(format!("…and {} more", images.len() - GALLERY_MAX));
    }
    let missing = live.thumbs.take_missing(wanted.into_iter());
    if !missing.is_empty() {
        actions.push(Action::LoadThumbnails(missing));
    }
    let missing = live.maps.take_missing(wanted_maps);
    if !missing.is_empty() {
        actions.push(Action::ExplainImages(missing));
    }
}

fn try_it(ui: &mut egui::Ui, run_dir: &Path, live: &mut Live, actions: &mut Vec<Action>) {
    ui.strong("Try it");
    ui.horizontal(|ui| {
        ui.label("Drop images or a folder on the window, or");
        if ui.button("Choose images…").clicked() {
            actions.push(Action::Ask(Dialog::TryImages));
        }
    });
    if live.results.trying {
        ui.label("Classifying…");
    }
    let classes = evaluated_classes(live);
    let mut wanted_maps = Vec::new();
    egui::Grid::new("tries").striped(true).show(ui, |ui| {
        for (path, top) in &live.results.tries {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            ui.label(name).on_hover_text(path.display().to_string());
            match top {
                Ok(top) => {
                    let text = top
                        .iter()
                        .take(3)
                        .map(|(c, p)| format!("{c} {:.1} %", p * 100.0))
                        .collect::<Vec<_>>()
                        .join("   ");
                    ui.label(text);
                    if live.maps.enabled {
                        let key = MapKey {
                            source: MapSource::Run(run_dir.to_path_buf()),
                            image: path.clone(),
                            class: None,
                        };
                        let name =
                            |c: usize| classes.get(c).cloned().unwrap_or_else(|| format!("#{c}"));
                        live.maps.show(ui, &key, MAP_SIDE, &name, &mut wanted_maps);
                    }
                }
                Err(e) => {
                    ui.colored_label(ui.visuals().error_fg_color, e);
                }
            }
            ui.end_row();
        }
    });
    let missing = live.maps.take_missing(wanted_maps);
    if !missing.is_empty() {
        actions.push(Action::ExplainImages(missing));
    }
}

/// The class names of the run shown, from its evaluation.
fn evaluated_classes(live: &Live) -> Vec<String> {
    match &live.results.evaluation {
        Some((_, EvalState::Ready(e))) => e.metrics.classes.clone(),
        _ => Vec::new(),
    }
}
