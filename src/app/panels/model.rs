//! The model picker.

use eframe::egui;

use crate::app::actions::Action;
use crate::app::class_maps::{MapKey, MapSource};
use crate::app::dialogs::Dialog;
use crate::app::state::AppState;
use crate::models::ModelKind;

/// Draws the model panel.
pub fn show(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    ui.heading("Model");
    let locked = state.is_training();
    let current = state.project.config.model;
    ui.add_enabled_ui(!locked, |ui| {
        egui::Grid::new("models")
            .num_columns(4)
            .striped(true)
            .show(ui, |ui| {
                ui.strong("model");
                ui.strong("input");
                ui.strong("ImageNet");
                ui.strong("weights");
                ui.end_row();
                for kind in ModelKind::ALL {
                    if kind == ModelKind::TinyTest {
                        continue;
                    }
                    if ui.radio(current == kind, kind.name()).clicked() && current != kind {
                        actions.push(Action::ModelChanged(kind));
                    }
                    ui.label(format!("{} px", kind.input_size()));
                    ui.label(
                        kind.imagenet_top1()
                            .map_or("-".into(), |a| format!("{a:.1} %")),
                    );
                    weights_cell(ui, state, kind, actions);
                    ui.end_row();
                }
            });
        let has_weights =
            state.live.weights_size(current).is_some() || state.project.config.weights.is_some();
        ui.checkbox(
            &mut state.project.config.from_scratch,
            "Start from random weights",
        )
        .on_hover_text("Train without ImageNet pre-training, to see what transfer learning buys.");
        if !has_weights && !state.project.config.from_scratch {
            let downloadable = crate::models::zoo::entry(current).is_some_and(|e| e.url.is_some());
            ui.colored_label(
                ui.visuals().warn_fg_color,
                if downloadable {
                    "The pre-trained weights are not here yet: Start downloads them first."
                } else {
                    "No pre-trained weights for this model are here: open a weight file or start from random weights."
                },
            );
        }
    });
    ui.horizontal(|ui| {
        if ui
            .add_enabled(!locked, egui::Button::new("Open weights file…"))
            .on_hover_text("Start from a PyTorch (.pth) or safetensors file; the architecture is read from its keys.")
            .clicked()
        {
            actions.push(Action::Ask(Dialog::WeightsFile));
        }
        if ui
            .button("Try on an image…")
            .on_hover_text("See what the pre-trained model makes of an image, before any training. You can also drop an image on the window.")
            .clicked()
        {
            actions.push(Action::Ask(Dialog::PreviewImage));
        }
    });
    if let Some(message) = &state.live.messages.model {
        ui.label(message);
    }
    preview(ui, state, actions);
}

/// Whether `kind`'s weights are here (and their size), downloading, or can be downloaded.
fn weights_cell(ui: &mut egui::Ui, state: &AppState, kind: ModelKind, actions: &mut Vec<Action>) {
    let entry = crate::models::zoo::entry(kind);
    match (
        state.live.weights_size(kind),
        state.live.downloads.get(&kind),
        entry.filter(|e| e.url.is_some()),
    ) {
        (Some(bytes), _, _) => {
            ui.label(format!("here, {:.1} MB", bytes as f64 / 1e6));
        }
        (None, Some((done, total)), _) => {
            let fraction = total.map_or(0.0, |t| *done as f32 / t.max(1) as f32);
            ui.add(
                egui::ProgressBar::new(fraction)
                    .desired_width(110.0)
                    .text(format!("{:.1} MB", *done as f64 / 1e6)),
            );
            if ui
                .small_button("✖")
                .on_hover_text(
                    "Cancel the download (what arrived is kept, and the next one resumes)",
                )
                .clicked()
            {
                actions.push(Action::CancelDownload(kind));
            }
        }
        (None, None, Some(e)) => {
            if ui
                .small_button(format!("download {:.0} MB", e.size_mb))
                .on_hover_text(format!(
                    "{} ({}); also fetched when a run starts",
                    e.url.unwrap_or_default(),
                    e.licence
                ))
                .clicked()
            {
                actions.push(Action::DownloadWeights(kind));
            }
        }
        (None, None, None) => {
            ui.weak("not here: from scratch or a file");
        }
    }
}

/// The selected model's own ImageNet top-5 for the image last previewed, beside where it
/// looked for the first of them.
fn preview(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    let config = &state.project.config;
    let source = MapSource::ImageNet(config.model, config.weights.clone());
    let live = &mut state.live;
    match &live.preview {
        Some((path, Ok(top))) => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            ui.label(format!("ImageNet top-5 for {name}:"));
            let mut wanted = Vec::new();
            ui.horizontal_top(|ui| {
                egui::Grid::new("preview").num_columns(2).show(ui, |ui| {
                    for (class, p) in top {
                        ui.label(format!("{:.1} %", p * 100.0));
                        ui.label(class);
                        ui.end_row();
                    }
                });
                let key = MapKey {
                    source,
                    image: path.clone(),
                    class: None,
                };
                let first = top.first().map(|(c, _)| c.clone()).unwrap_or_default();
                live.maps
                    .show(ui, &key, 96.0, &|_| first.clone(), &mut wanted);
            });
            let missing = live.maps.take_missing(wanted);
            if !missing.is_empty() {
                actions.push(Action::ExplainImages(missing));
            }
        }
        Some((_, Err(e))) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        None => {}
    }
}
