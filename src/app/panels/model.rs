//! The model picker.

use eframe::egui;

use crate::app::dispatch::Action;
use crate::app::state::AppState;
use crate::models::ModelKind;

/// Draws the model panel.
pub fn show(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    ui.heading("Model");
    let locked = state.is_training();
    let current = state.project.config.model;
    ui.add_enabled_ui(!locked, |ui| {
        for kind in ModelKind::ALL {
            if kind == ModelKind::TinyTest {
                continue;
            }
            let weights = if kind.find_weights().is_some() {
                "pre-trained weights here"
            } else {
                "weights not here: train from scratch or open a weights file"
            };
            let text = format!("{}  ·  {} px", kind.name(), kind.input_size());
            if ui
                .radio(current == kind, text)
                .on_hover_text(weights)
                .clicked()
                && current != kind
            {
                actions.push(Action::ModelChanged(kind));
            }
        }
        let has_weights =
            current.find_weights().is_some() || state.project.config.weights.is_some();
        ui.checkbox(
            &mut state.project.config.from_scratch,
            "Start from random weights",
        )
        .on_hover_text("Train without ImageNet pre-training, to see what transfer learning buys.");
        if !has_weights && !state.project.config.from_scratch {
            ui.colored_label(
                ui.visuals().warn_fg_color,
                "No pre-trained weights for this model are here.",
            );
        }
    });
    ui.horizontal(|ui| {
        if ui
            .add_enabled(!locked, egui::Button::new("Open weights file…"))
            .on_hover_text("Start from a PyTorch .pth file of this architecture.")
            .clicked()
        {
            actions.push(Action::PickWeightsFile);
        }
        if ui
            .button("Try on an image…")
            .on_hover_text("See what the pre-trained model makes of an image, before any training. You can also drop an image on the window.")
            .clicked()
        {
            actions.push(Action::PickPreviewImage);
        }
    });
    if let Some(message) = &state.live.messages.model {
        ui.label(message);
    }
    match &state.live.preview {
        Some((path, Ok(top))) => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            ui.label(format!("ImageNet top-5 for {name}:"));
            egui::Grid::new("preview").num_columns(2).show(ui, |ui| {
                for (class, p) in top {
                    ui.label(format!("{:.1} %", p * 100.0));
                    ui.label(class);
                    ui.end_row();
                }
            });
        }
        Some((_, Err(e))) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        None => {}
    }
}
