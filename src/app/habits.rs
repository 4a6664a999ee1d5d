//! What a person who lives in the app expects of it: keyboard shortcuts (listed in the Help
//! menu), a light, dark or system theme that persists, and a first-run hint that can be
//! dismissed.

use eframe::egui;
use serde::{Deserialize, Serialize};

use super::actions::Action;
use super::dialogs::Dialog;
use super::state::AppState;

/// The colour theme the user chose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    /// Follow the system.
    #[default]
    System,
    /// Always light.
    Light,
    /// Always dark.
    Dark,
}

impl Theme {
    /// Every choice, with its menu text.
    pub const ALL: [(Theme, &'static str); 3] = [
        (Theme::System, "Follow the system"),
        (Theme::Light, "Light"),
        (Theme::Dark, "Dark"),
    ];

    fn preference(self) -> egui::ThemePreference {
        match self {
            Theme::System => egui::ThemePreference::System,
            Theme::Light => egui::ThemePreference::Light,
            Theme::Dark => egui::ThemePreference::Dark,
        }
    }
}

/// The user's preferences, saved with the window's state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Preferences {
    /// The colour theme.
    pub theme: Theme,
    /// The first-run hint was dismissed.
    pub hint_dismissed: bool,
}

/// One shortcut: its keys, what it does, and its text in the Help menu.
struct Shortcut {
    keys: egui::KeyboardShortcut,
    what: &'static str,
}

const fn shortcut(modifiers: egui::Modifiers, key: egui::Key, what: &'static str) -> Shortcut {
    Shortcut {
        keys: egui::KeyboardShortcut::new(modifiers, key),
        what,
    }
}

const COMMAND: egui::Modifiers = egui::Modifiers::COMMAND;
const COMMAND_SHIFT: egui::Modifiers = egui::Modifiers {
    shift: true,
    ..egui::Modifiers::COMMAND
};

/// The shortcuts, in the Help menu's order. Space and Esc act only when no text field has the
/// keyboard.
const SHORTCUTS: [Shortcut; 5] = [
    shortcut(
        egui::Modifiers::NONE,
        egui::Key::Space,
        "Start training, or pause and resume it",
    ),
    shortcut(
        egui::Modifiers::NONE,
        egui::Key::Escape,
        "Stop training (the best checkpoint stays)",
    ),
    shortcut(COMMAND, egui::Key::O, "Open a data set folder"),
    shortcut(COMMAND, egui::Key::S, "Save the project"),
    shortcut(COMMAND_SHIFT, egui::Key::S, "Save the project as…"),
];

/// Applies the chosen theme (cheap: egui only repaints when it changes).
pub fn apply_theme(ctx: &egui::Context, preferences: &Preferences) {
    let wanted = preferences.theme.preference();
    if ctx.options(|o| o.theme_preference) != wanted {
        ctx.set_theme(wanted);
    }
}

/// The actions this frame's key presses ask for.
pub fn shortcut_actions(ui: &egui::Ui, state: &AppState) -> Vec<Action> {
    let typing = ui.ctx().egui_wants_keyboard_input();
    let mut actions = Vec::new();
    // Ctrl+Shift+S first: consuming Ctrl+S would also match it.
    let order = [4, 3, 2, 1, 0];
    for index in order {
        let s = &SHORTCUTS[index];
        let plain = s.keys.modifiers.is_none();
        if (plain && typing) || !ui.input_mut(|i| i.consume_shortcut(&s.keys)) {
            continue;
        }
        actions.push(match index {
            0 => match state.active_status_paused() {
                None => Action::StartTraining,
                Some(false) => Action::Pause,
                Some(true) => Action::Resume,
            },
            1 if state.is_training() => Action::Stop,
            1 => continue,
            2 => Action::Ask(Dialog::DataFolder),
            3 => Action::SaveProject,
            _ => Action::Ask(Dialog::SaveProject),
        });
    }
    actions
}

/// The Help menu: the shortcuts, zoom and the theme.
pub fn help_menu(ui: &mut egui::Ui, preferences: &mut Preferences) {
    ui.menu_button("Help", |ui| {
        ui.strong("Keyboard");
        egui::Grid::new("shortcuts").num_columns(2).show(ui, |ui| {
            for s in &SHORTCUTS {
                ui.monospace(ui.ctx().format_shortcut(&s.keys));
                ui.label(s.what);
                ui.end_row();
            }
            ui.monospace(format!(
                "{} / {}",
                zoom_keys(egui::Key::Plus),
                zoom_keys(egui::Key::Minus)
            ));
            ui.label("Zoom in / out");
            ui.end_row();
        });
        ui.separator();
        ui.strong("Theme");
        for (theme, name) in Theme::ALL {
            ui.radio_value(&mut preferences.theme, theme, name);
        }
        ui.separator();
        if ui.button("Show the first-run hint").clicked() {
            preferences.hint_dismissed = false;
        }
    });
}

fn zoom_keys(key: egui::Key) -> String {
    format!(
        "{}{}",
        if cfg!(target_os = "macos") {
            "⌘"
        } else {
            "Ctrl+"
        },
        key.symbol_or_name()
    )
}

/// A strip saying what to do first, until it is dismissed.
pub fn first_run_hint(ui: &mut egui::Ui, preferences: &mut Preferences) {
    if preferences.hint_dismissed {
        return;
    }
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.horizontal_wrapped(|ui| {
            ui.label("👋");
            ui.label(
                "To begin, drag a folder with one sub-folder per class (bird/, cat/, …) onto this window, or press Start (Space) to try the bundled demo set. Freeze or thaw layers on the right; curves appear as it trains.",
            );
            if ui.button("Got it").clicked() {
                preferences.hint_dismissed = true;
            }
        });
    });
}
