//! The layer list: one row per layer group, input to head, each frozen or trainable.

use eframe::egui;

use crate::app::state::AppState;
use crate::models::LayerGroup;

/// `1234567` → `1.23 M`.
pub fn format_params(n: usize) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.2} M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

/// Draws the layer list. Clicking a row's name freezes or thaws it; shift-click does the range
/// from the last clicked row.
pub fn show(ui: &mut egui::Ui, state: &mut AppState) {
    ui.heading("Layers");
    let Some(layers) = state.live.layers.clone() else {
        ui.label("Reading the model …");
        return;
    };
    let locked = state.is_training();
    let (trainable, total) = state.trainable_params();
    ui.label(format!(
        "{} of {} parameters trainable ({:.1} %)",
        format_params(trainable),
        format_params(total),
        100.0 * trainable as f64 / total.max(1) as f64
    ));
    if locked {
        ui.weak("Layers are locked while a run trains: stop it to change them.");
    }
    let last = layers.len().saturating_sub(1);
    ui.add_enabled_ui(!locked, |ui| {
        ui.horizontal_wrapped(|ui| {
            if ui.button("Freeze all but head").clicked() {
                state.set_frozen(0..=last, true);
                state.set_frozen(last..=last, false);
            }
            let from = state.live.last_layer_click;
            if ui
                .add_enabled(from.is_some(), egui::Button::new("Unfreeze from here"))
                .on_hover_text("Thaw the last clicked group and everything after it.")
                .on_disabled_hover_text("Click a layer first.")
                .clicked()
                && let Some(from) = from
            {
                state.set_frozen(from..=last, false);
            }
            if ui.button("Unfreeze all").clicked() {
                state.set_frozen(0..=last, false);
            }
        });
        ui.separator();
        layer_rows(ui, state, &layers);
    });
}

/// One row per group: its state, its name (the toggle), its output shape and parameters.
fn layer_rows(ui: &mut egui::Ui, state: &mut AppState, layers: &[LayerGroup]) {
    let frozen = state.frozen();
    egui::ScrollArea::vertical().show(ui, |ui| {
        egui::Grid::new("layers")
            .num_columns(4)
            .striped(true)
            .show(ui, |ui| {
                for (i, group) in layers.iter().enumerate() {
                    let is_frozen = frozen[i];
                    let icon = if is_frozen { "❄" } else { "🔥" };
                    ui.label(icon).on_hover_text(if is_frozen {
                        "frozen: keeps its pre-trained weights"
                    } else {
                        "trainable"
                    });
                    let response = ui
                        .add(egui::Button::selectable(!is_frozen, &group.name))
                        .on_hover_text(format!(
                            "{}\nclick: {}; shift-click: the range from the last click",
                            group.description,
                            if is_frozen { "unfreeze" } else { "freeze" }
                        ));
                    if response.clicked() {
                        let shift = ui.input(|inp| inp.modifiers.shift);
                        let range = match (shift, state.live.last_layer_click) {
                            (true, Some(j)) => i.min(j)..=i.max(j),
                            _ => i..=i,
                        };
                        state.set_frozen(range, !is_frozen);
                        state.live.last_layer_click = Some(i);
                    }
                    let weak = |text: String| {
                        let t = egui::RichText::new(text);
                        if is_frozen { t.weak() } else { t }
                    };
                    ui.label(weak(format!("{:?}", group.output_shape)));
                    ui.label(weak(format_params(group.params)));
                    ui.end_row();
                }
            });
    });
}
