//! "How much data do I need?" on the Compare page: accuracy (with its interval) against images
//! per class for the frozen pre-trained network.

use eframe::egui;
use egui_plot::{Line, Plot, PlotPoints, Points};

use crate::app::actions::Action;
use crate::app::state::{AppState, CurveState, FolderState};
use crate::doctor::curve::{Curve, HELD_OUT};

/// Draws the button, its progress and the curve.
pub fn show(ui: &mut egui::Ui, state: &AppState, actions: &mut Vec<Action>) {
    let ready = matches!(state.live.folder, FolderState::Ready(_));
    let measuring = matches!(state.live.curve, CurveState::Measuring(..));
    ui.horizontal(|ui| {
        let button = ui
            .add_enabled(ready && !measuring, egui::Button::new("How much data do I need?"))
            .on_hover_text(format!(
                "Accuracy of the frozen pre-trained model with a new linear head, trained on 1, 2, 5, 10, 25 and all images per class and scored on {:.0} % of each class held out, averaged over 5 random splits. Uses the data doctor's cached features, so it takes seconds once they exist.",
                HELD_OUT * 100.0
            ));
        if button.clicked() {
            actions.push(Action::MeasureCurve);
        }
        match &state.live.curve {
            CurveState::Measuring(done, total) => {
                ui.add(
                    egui::ProgressBar::new(*done as f32 / (*total).max(1) as f32)
                        .desired_width(200.0)
                        .text(format!("features {done}/{total}")),
                );
            }
            CurveState::Failed(why) => {
                ui.colored_label(ui.visuals().error_fg_color, why);
            }
            _ => {}
        }
    });
    if let CurveState::Done(curve) = &state.live.curve {
        plot(ui, curve);
    }
}

fn plot(ui: &mut egui::Ui, curve: &Curve) {
    let x = |per_class: usize| (per_class as f64).log10();
    let mean: Vec<[f64; 2]> = curve
        .points
        .iter()
        .map(|p| [x(p.per_class), p.accuracy * 100.0])
        .collect();
    let last = curve.points.last();
    ui.label(format!(
        "{}: {:.1} % with every image ({} per class at most), scored on {} held-out images per split",
        curve.model,
        last.map_or(0.0, |p| p.accuracy * 100.0),
        last.map_or(0, |p| p.per_class),
        last.map_or(0, |p| p.tested),
    ));
    Plot::new("data_efficiency")
        .height(160.0)
        .x_axis_label("images per class")
        .y_axis_label("accuracy %")
        .x_axis_formatter(|mark, _| format!("{:.0}", 10f64.powf(mark.value)))
        .include_y(0.0)
        .include_y(100.0)
        .allow_scroll(false)
        .show(ui, |plot| {
            for p in &curve.points {
                let bar = PlotPoints::new(vec![
                    [x(p.per_class), p.ci95[0] * 100.0],
                    [x(p.per_class), p.ci95[1] * 100.0],
                ]);
                plot.line(Line::new("95 % interval", bar).width(1.0));
            }
            plot.line(Line::new("accuracy", mean.clone()));
            plot.points(Points::new("accuracy", mean).radius(3.0));
        });
}
