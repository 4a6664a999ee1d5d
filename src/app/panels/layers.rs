//! The layer list: one row per layer group, input to head, each frozen or trainable.

use eframe::egui;

use crate::app::state::AppState;
use crate::config::LayerRates;
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
    // A resizable panel keeps the width of its content; without this it would keep the width
    // of the first frame's "Reading the model …".
    ui.set_min_width(300.0);
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
            stage2_button(ui, state, &layers);
        });
        rate_mode(ui, &mut state.project.config.optimizer);
        ui.separator();
        layer_rows(ui, state, &layers);
    });
}

/// "Stage 2 thaws from here": the fine-tuning stage unfreezes the last clicked group and
/// every one after it.
fn stage2_button(ui: &mut egui::Ui, state: &mut AppState, layers: &[LayerGroup]) {
    let from = state.live.last_layer_click;
    let enabled = from.is_some() && state.project.config.fine_tune.is_some();
    let button = ui
        .add_enabled(enabled, egui::Button::new("Stage 2 thaws from here"))
        .on_hover_text("In the fine-tuning stage, unfreeze the last clicked group and everything after it (the rest stays frozen).")
        .on_disabled_hover_text("Turn on Fine-tune in the training settings and click a layer first.");
    if button.clicked()
        && let (Some(from), Some(ft)) = (from, &mut state.project.config.fine_tune)
    {
        ft.unfreeze = layers[from..].iter().map(|g| g.name.clone()).collect();
    }
}

/// How stage 1's rate is shared out: the same everywhere, a range, or a factor per group.
fn rate_mode(ui: &mut egui::Ui, optimizer: &mut crate::config::OptimizerConfig) {
    let lr = optimizer.lr;
    let rates = &mut optimizer.layer_rates;
    ui.horizontal_wrapped(|ui| {
        let label = ui.label("Rates:").on_hover_text(
            "Discriminative rates: lower layers, which hold general features, can learn slower than the head.",
        );
        let mode = match rates {
            LayerRates::Same => 0,
            LayerRates::Range { .. } => 1,
            LayerRates::Factors { .. } => 2,
        };
        let mut chosen = mode;
        egui::ComboBox::from_id_salt("rate_mode")
            .selected_text(["the same for all", "a range", "a factor per group"][mode])
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut chosen, 0, "the same for all");
                ui.selectable_value(&mut chosen, 1, "a range");
                ui.selectable_value(&mut chosen, 2, "a factor per group");
            })
            .response
            .labelled_by(label.id);
        if chosen != mode {
            *rates = match chosen {
                1 => LayerRates::Range { low: lr / 100.0, high: lr },
                2 => LayerRates::Factors { factors: Default::default() },
                _ => LayerRates::Same,
            };
        }
        if let LayerRates::Range { low, high } = rates {
            ui.label("lowest thawed group");
            ui.add(rate_drag(low));
            ui.label("head");
            ui.add(rate_drag(high));
            *low = low.min(*high);
        }
    });
}

fn rate_drag(value: &mut f64) -> egui::DragValue<'_> {
    egui::DragValue::new(value)
        .range(1e-7..=1.0)
        .speed(1e-5)
        .custom_formatter(|v, _| format!("{v:.1e}"))
}

/// What the latest run measured per group: (weight change, gradient norm) by name, and the
/// largest change (for the bars' scale).
struct Telemetry<'a> {
    groups: &'a crate::run::GroupTelemetry,
    epoch: usize,
    largest: f64,
}

fn latest_telemetry(state: &AppState) -> Option<Telemetry<'_>> {
    let run = state
        .live
        .active_run
        .or(state.project.runs.len().checked_sub(1))
        .and_then(|i| state.project.runs.get(i))?;
    let epoch = run.epochs.last().filter(|e| !e.groups.is_empty())?;
    let largest = epoch
        .groups
        .0
        .iter()
        .map(|(_, s)| s.weight_change)
        .fold(0.0, f64::max);
    Some(Telemetry {
        groups: &epoch.groups,
        epoch: epoch.epoch,
        largest,
    })
}

/// One row per group: its state, its name (the toggle), its output shape and parameters, its
/// stage-2 plan, its rate and how much it has learnt.
fn layer_rows(ui: &mut egui::Ui, state: &mut AppState, layers: &[LayerGroup]) {
    let frozen = state.frozen();
    let names: Vec<String> = layers.iter().map(|g| g.name.clone()).collect();
    let config = &state.project.config;
    let rates = config
        .optimizer
        .layer_rates
        .resolve(config.optimizer.lr, &frozen, &names);
    let stage2 = config
        .fine_tune
        .as_ref()
        .map(|ft| ft.frozen(&names, &frozen));
    let telemetry = latest_telemetry(state);
    let mut clicked = None;
    let mut factor_edit = None;
    // Both ways: the rows' extra columns scroll rather than widen the panel.
    egui::ScrollArea::both()
        .auto_shrink([false, true])
        .show(ui, |ui| {
            egui::Grid::new("layers")
                .num_columns(7)
                .striped(true)
                .show(ui, |ui| {
                    for (i, group) in layers.iter().enumerate() {
                        let is_frozen = frozen[i];
                        if let Some(range) = name_cell(ui, state, group, i, is_frozen) {
                            clicked = Some((range, !is_frozen, i));
                        }
                        // What changes as you plan and train first; the fixed facts after.
                        learning_cell(ui, telemetry.as_ref(), &group.name, is_frozen);
                        if let Some(f) = rate_cell(
                            ui,
                            &state.project.config.optimizer.layer_rates,
                            &group.name,
                            rates[i],
                        ) {
                            factor_edit = Some((group.name.clone(), f));
                        }
                        match &stage2 {
                            Some(plan) => stage2_cell(ui, plan[i]),
                            None => ui.label(""),
                        };
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
    if let Some((range, freeze, i)) = clicked {
        state.set_frozen(range, freeze);
        state.live.last_layer_click = Some(i);
    }
    if let Some((name, factor)) = factor_edit {
        let rates = &mut state.project.config.optimizer.layer_rates;
        if !matches!(rates, LayerRates::Factors { .. }) {
            *rates = LayerRates::Factors {
                factors: Default::default(),
            };
        }
        if let LayerRates::Factors { factors } = rates {
            factors.insert(name, factor);
        }
    }
}

/// The frozen/trainable icon and the name that toggles it; the rows a click changes.
fn name_cell(
    ui: &mut egui::Ui,
    state: &AppState,
    group: &LayerGroup,
    i: usize,
    is_frozen: bool,
) -> Option<std::ops::RangeInclusive<usize>> {
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
    if !response.clicked() {
        return None;
    }
    let shift = ui.input(|inp| inp.modifiers.shift);
    Some(match (shift, state.live.last_layer_click) {
        (true, Some(j)) => i.min(j)..=i.max(j),
        _ => i..=i,
    })
}

fn stage2_cell(ui: &mut egui::Ui, frozen: bool) -> egui::Response {
    let (icon, tip) = if frozen {
        ("2 ❄", "stays frozen in stage 2")
    } else {
        ("2 🔥", "trains in stage 2")
    };
    ui.label(icon).on_hover_text(tip)
}

/// A thawed group's stage-1 rate; with a factor per group (or the same for all), its factor
/// can be changed here. Returns a changed factor.
fn rate_cell(ui: &mut egui::Ui, rates: &LayerRates, name: &str, rate: f64) -> Option<f64> {
    match rates {
        LayerRates::Range { .. } => {
            if rate > 0.0 {
                ui.label(format!("{rate:.1e}"));
            } else {
                ui.label("");
            }
            None
        }
        _ if rate == 0.0
            && !matches!(rates, LayerRates::Factors { factors } if factors.contains_key(name)) =>
        {
            ui.label("");
            None
        }
        _ => {
            let mut factor = match rates {
                LayerRates::Factors { factors } => factors.get(name).copied().unwrap_or(1.0),
                _ => 1.0,
            };
            let before = factor;
            ui.add(
                egui::DragValue::new(&mut factor)
                    .range(0.0..=10.0)
                    .speed(0.01)
                    .prefix("×"),
            )
            .on_hover_text(format!(
                "rate {rate:.1e}: the learning rate × this factor (0 holds the group still)"
            ));
            (factor != before).then_some(factor)
        }
    }
}

/// A bar of how far the group's weights have moved since the run started (scaled to the group
/// that moved most), with the figures on hover.
fn learning_cell(ui: &mut egui::Ui, telemetry: Option<&Telemetry>, name: &str, is_frozen: bool) {
    let Some(stats) = telemetry.and_then(|t| t.groups.get(name).map(|s| (t, s))) else {
        ui.label("");
        return;
    };
    let (t, s) = stats;
    let fraction = if t.largest > 0.0 {
        s.weight_change / t.largest
    } else {
        0.0
    };
    // Drawn by hand: egui's progress bar shows a dot at 0, and a frozen group must read as 0.
    let (rect, response) = ui.allocate_exact_size(egui::vec2(56.0, 10.0), egui::Sense::hover());
    let painter = ui.painter();
    painter.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
    let mut filled = rect;
    filled.set_width(rect.width() * fraction.clamp(0.0, 1.0) as f32);
    painter.rect_filled(filled, 2.0, ui.visuals().selection.bg_fill);
    let percent = format!("{:.2} %", s.weight_change * 100.0);
    response.widget_info(|| {
        let mut info = egui::WidgetInfo::labeled(egui::Role::ProgressIndicator, true, &percent);
        info.value = Some(fraction);
        info
    });
    response.on_hover_text(format!(
            "after epoch {}: weights moved {:.2} % since the run started (‖W − W₀‖ / ‖W₀‖); mean gradient norm {:.2e}{}",
            t.epoch,
            s.weight_change * 100.0,
            s.grad_norm,
            if is_frozen && s.weight_change == 0.0 { " (frozen)" } else { "" }
        ));
}
