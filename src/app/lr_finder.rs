//! The learning-rate finder as the window shows it: a button, the sweep's curve as it arrives
//! (loss against rate, log axis), the suggested rate and the rule behind it, and "use this
//! rate".

use eframe::egui;
use egui_plot::{Line, Plot, VLine};

use super::actions::Action;
use crate::train::TrainEvent;
use crate::train::lr_find::{LrPoint, LrSweep, SUGGESTION_RULE, SweepSettings};

/// Where the sweep stands.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum SweepStatus {
    /// Not run yet.
    #[default]
    Idle,
    /// Running; the points so far are in [`LrFinderView::points`].
    Sweeping,
    /// Done.
    Done(LrSweep),
    /// Failed with this message.
    Failed(String),
}

/// The finder's state and its widget.
#[derive(Clone, Debug, Default)]
pub struct LrFinderView {
    /// Where the sweep stands.
    pub status: SweepStatus,
    /// Points as they arrived.
    pub points: Vec<LrPoint>,
}

impl LrFinderView {
    /// A sweep is starting.
    pub fn start(&mut self) {
        self.status = SweepStatus::Sweeping;
        self.points.clear();
    }

    /// Folds one event of the sweep in.
    pub fn apply(&mut self, event: &TrainEvent) {
        match event {
            TrainEvent::LrPoint(p) => self.points.push(*p),
            TrainEvent::LrSwept(sweep) => self.status = SweepStatus::Done(sweep.clone()),
            TrainEvent::Failed(why) => self.status = SweepStatus::Failed(why.clone()),
            _ => {}
        }
    }

    /// Whether a sweep is running.
    pub fn is_sweeping(&self) -> bool {
        self.status == SweepStatus::Sweeping
    }

    /// The button, the curve and the suggestion; "use" writes the suggestion into `lr`.
    pub fn ui(&self, ui: &mut egui::Ui, lr: &mut f64, enabled: bool, actions: &mut Vec<Action>) {
        ui.horizontal(|ui| {
            if self.is_sweeping() {
                let steps = SweepSettings::default().steps;
                ui.add(
                    egui::ProgressBar::new(self.points.len() as f32 / steps as f32)
                        .desired_width(160.0)
                        .text(format!("sweeping {}/{steps}", self.points.len())),
                );
                if ui.button("Cancel").clicked() {
                    actions.push(Action::CancelLrFind);
                }
            } else if ui
                .add_enabled(enabled, egui::Button::new("Find a rate"))
                .on_hover_text("Sweeps the rate from 1e-6 to 1 over 100 steps on a throw-away copy of the model (on the frozen layers' output when they are frozen, so in seconds) and suggests one. The model you train next is not touched.")
                .clicked()
            {
                actions.push(Action::FindLr);
            }
            if let SweepStatus::Done(sweep) = &self.status
                && let Some(suggestion) = sweep.suggestion
                && ui
                    .add_enabled(enabled, egui::Button::new(format!("Use {suggestion:.1e}")))
                    .on_hover_text(format!("Suggested as {SUGGESTION_RULE}."))
                    .clicked()
            {
                *lr = suggestion;
            }
        });
        match &self.status {
            SweepStatus::Failed(why) => {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("The sweep failed: {why}"),
                );
            }
            SweepStatus::Done(sweep) if sweep.suggestion.is_none() => {
                ui.weak("The sweep was too short to show a minimum: no suggestion.");
            }
            _ => {}
        }
        if !self.points.is_empty() {
            self.plot(ui);
        }
    }

    fn plot(&self, ui: &mut egui::Ui) {
        let curve: Vec<[f64; 2]> = self
            .points
            .iter()
            .map(|p| [p.lr.log10(), p.smoothed])
            .collect();
        let suggestion = match &self.status {
            SweepStatus::Done(sweep) => sweep.suggestion,
            _ => None,
        };
        Plot::new("lr_finder")
            .height(120.0)
            .x_axis_label("learning rate")
            .y_axis_label("loss")
            .x_axis_formatter(|mark, _| format!("{:.0e}", 10f64.powf(mark.value)))
            .allow_scroll(false)
            .show(ui, |plot| {
                plot.line(Line::new("smoothed loss", curve));
                if let Some(lr) = suggestion {
                    plot.vline(VLine::new("suggested", lr.log10()));
                }
            });
    }
}
