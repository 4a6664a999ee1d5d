//! The desktop window. Until the full app lands it says what works today.

use eframe::egui;

struct PlaceholderApp {
    demo: String,
}

impl eframe::App for PlaceholderApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        egui::CentralPanel::default().show(ui, |ui| {
            ui.heading("Graft");
            ui.label("Transfer learning on your own images.");
            ui.add_space(8.0);
            ui.label(
                "The training window is not built yet. The engine works today from the command line:",
            );
            ui.code(format!("graft train --data {}", self.demo));
            ui.code("graft predict --run RUN_FOLDER IMAGE...");
        });
    }
}

/// Opens the window; returns the process exit code.
pub fn run() -> i32 {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Graft")
            .with_inner_size([640.0, 360.0]),
        ..Default::default()
    };
    let demo = graft::assets::demo_dataset().display().to_string();
    match eframe::run_native(
        "Graft",
        options,
        Box::new(|_cc| Ok(Box::new(PlaceholderApp { demo }))),
    ) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: cannot open the window: {e}");
            1
        }
    }
}
