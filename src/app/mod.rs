//! The Graft window. Panels are thin views over [`state::AppState`]; effects go through the
//! [`dispatch::Dispatcher`], which folds the engine's events back into the state each frame.
//! This is the only part of the library that uses egui.

pub mod actions;
pub mod class_maps;
pub mod dialogs;
pub mod dispatch;
pub mod frame_times;
pub mod habits;
pub mod jobs;
pub mod lr_finder;
mod panels;
mod replies;
pub mod run_view;
pub mod state;
mod tasks;
pub mod thumbnails;

use std::process::ExitCode;
use std::time::Instant;

use eframe::egui;

pub use panels::train::{ACCURACY_PLOT, LOSS_PLOT};

use actions::Action;
use dialogs::Dialog;
use dispatch::Dispatcher;
use state::{AppState, Page};

/// The whole app: state plus the dispatcher that runs its effects.
pub struct GraftApp {
    /// What the window shows.
    pub state: AppState,
    /// Runs effects.
    pub dispatcher: Dispatcher,
    startup: Startup,
}

/// When the app was created, and whether the time until it was ready to train was reported.
struct Startup {
    created: Instant,
    reported: bool,
}

impl GraftApp {
    /// An app over `state`; an empty data folder becomes the bundled demo set.
    pub fn new(mut state: AppState) -> Self {
        let data = &state.project.config.data;
        if data.as_os_str().is_empty() || !data.exists() {
            state.project.config.data = crate::platform::assets::demo_dataset();
        }
        for run in &mut state.project.runs {
            if run.is_active() {
                run.status = run_view::RunStatus::Failed("the app closed during this run".into());
            }
        }
        Self {
            state,
            dispatcher: Dispatcher::default(),
            startup: Startup {
                created: Instant::now(),
                reported: false,
            },
        }
    }

    /// Mean and worst UI time per frame over the recent frames, in seconds.
    pub fn frame_time_stats(&self) -> (f64, f64) {
        self.state.live.frame_times.recent_stats()
    }

    /// Says once, when `GRAFT_STARTUP_LOG` is set, how long the window took to be ready to
    /// train.
    fn report_startup(&mut self) {
        if self.startup.reported
            || self.state.live.layers.is_none()
            || matches!(
                self.state.live.folder,
                state::FolderState::Scanning(..) | state::FolderState::None
            )
        {
            return;
        }
        self.startup.reported = true;
        if std::env::var_os("GRAFT_STARTUP_LOG").is_some() {
            eprintln!(
                "graft: ready to train {:.2} s after start",
                self.startup.created.elapsed().as_secs_f64()
            );
        }
    }

    /// Draws one frame and carries out what the user asked for.
    pub fn frame(&mut self, ui: &mut egui::Ui) {
        let started = Instant::now();
        if !self.dispatcher.is_started() {
            self.dispatcher.start(&mut self.state, ui.ctx());
        }
        self.dispatcher.poll(&mut self.state);

        let mut actions = Vec::new();
        let dropped: Vec<_> = ui.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        if !dropped.is_empty() {
            actions.push(Action::Dropped(dropped));
        }
        habits::apply_theme(ui.ctx(), &self.state.preferences);
        actions.extend(habits::shortcut_actions(ui, &self.state));

        let state = &mut self.state;
        egui::Panel::top("top").show(ui, |ui| top_bar(ui, state, &mut actions));
        egui::Panel::left("data_model")
            .resizable(true)
            .default_size(340.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    panels::data::show(ui, state, &mut actions);
                    ui.separator();
                    panels::model::show(ui, state, &mut actions);
                });
            });
        egui::Panel::right("layers")
            .resizable(true)
            .default_size(320.0)
            .show(ui, |ui| panels::layers::show(ui, state));
        egui::CentralPanel::default().show(ui, |ui| {
            ui.horizontal(|ui| {
                let page = &mut state.live.page;
                ui.selectable_value(page, Page::Train, egui::RichText::new("Train").heading());
                ui.selectable_value(
                    page,
                    Page::Results,
                    egui::RichText::new("Results").heading(),
                );
                ui.selectable_value(
                    page,
                    Page::Compare,
                    egui::RichText::new("Compare").heading(),
                );
                ui.selectable_value(
                    page,
                    Page::Health,
                    egui::RichText::new("Data health").heading(),
                );
            });
            ui.separator();
            habits::first_run_hint(ui, &mut state.preferences);
            match state.live.page {
                Page::Train => panels::train::show(ui, state, &mut actions),
                Page::Results => panels::results::show(ui, state, &mut actions),
                Page::Compare => panels::compare::show(ui, state, &mut actions),
                Page::Health => panels::health::show(ui, state, &mut actions),
            }
        });

        for action in actions {
            self.dispatcher.handle(action, &mut self.state);
        }
        self.report_startup();
        let dt = started.elapsed().as_secs_f64();
        self.state.live.frame_times.record(dt);
    }
}

fn top_bar(ui: &mut egui::Ui, state: &mut AppState, actions: &mut Vec<Action>) {
    ui.horizontal(|ui| {
        ui.menu_button("Project", |ui| {
            let keys = |ui: &egui::Ui, shift: bool, key: egui::Key| {
                let mut modifiers = egui::Modifiers::COMMAND;
                modifiers.shift = shift;
                ui.ctx()
                    .format_shortcut(&egui::KeyboardShortcut::new(modifiers, key))
            };
            let open_folder =
                egui::Button::new("Open data folder…").shortcut_text(keys(ui, false, egui::Key::O));
            if ui.add(open_folder).clicked() {
                actions.push(Action::Ask(Dialog::DataFolder));
            }
            if ui.button("Open project…").clicked() {
                actions.push(Action::Ask(Dialog::OpenProject));
            }
            let save = egui::Button::new("Save").shortcut_text(keys(ui, false, egui::Key::S));
            if ui.add(save).clicked() {
                actions.push(Action::SaveProject);
            }
            let save_as = egui::Button::new("Save as…").shortcut_text(keys(ui, true, egui::Key::S));
            if ui.add(save_as).clicked() {
                actions.push(Action::Ask(Dialog::SaveProject));
            }
            if !state.recent_projects.is_empty() {
                ui.separator();
                ui.weak("Recent");
                for path in state.recent_projects.clone() {
                    if ui.button(path.display().to_string()).clicked() {
                        actions.push(Action::OpenProject(path));
                    }
                }
            }
        });
        habits::help_menu(ui, &mut state.preferences);
        ui.strong("Graft");
        if let Some(message) = &state.live.messages.project {
            ui.weak(message);
        }
        if state.live.missing_data.is_some() && ui.button("Locate the data folder…").clicked() {
            actions.push(Action::Ask(Dialog::DataFolder));
        }
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            match &state.live.device {
                Some(d) => ui.label(format!("Device: {d}")),
                None => ui.weak("Looking for a GPU…"),
            };
        });
    });
}

impl eframe::App for GraftApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.frame(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.state);
    }
}

/// The window and taskbar icon, built into the executable.
fn window_icon() -> Option<egui::IconData> {
    let png = include_bytes!("../../assets/icons/graft-256.png");
    let image = image::load_from_memory(png).ok()?.into_rgba8();
    Some(egui::IconData {
        width: image.width(),
        height: image.height(),
        rgba: image.into_raw(),
    })
}

/// Opens the window (on the data folder `data`, when given); returns the process exit code.
pub fn run(data: Option<std::path::PathBuf>) -> ExitCode {
    let mut viewport = egui::ViewportBuilder::default()
        .with_title("Graft")
        .with_app_id("graft")
        .with_inner_size([1280.0, 800.0])
        .with_min_inner_size([960.0, 600.0])
        .with_drag_and_drop(true);
    if let Some(icon) = window_icon() {
        viewport = viewport.with_icon(icon);
    }
    let options = eframe::NativeOptions {
        viewport,
        ..Default::default()
    };
    let result = eframe::run_native(
        "Graft",
        options,
        Box::new(|cc| {
            let mut state: AppState = cc
                .storage
                .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
                .unwrap_or_default();
            if let Some(data) = data {
                state.project.config.data = data;
            }
            Ok(Box::new(GraftApp::new(state)))
        }),
    );
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot open the window: {e}");
            ExitCode::FAILURE
        }
    }
}
