//! Class activation maps in the window: asked for by the panels that show images, computed on a
//! job, kept per (model, image, class) as two textures (the crop and its colour-mapped map) so
//! that the opacity slider needs no recomputing.

use std::collections::HashMap;
use std::path::PathBuf;

use eframe::egui;

use crate::models::ModelKind;

/// The model a map is of.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MapSource {
    /// A trained run's best checkpoint, by its folder.
    Run(PathBuf),
    /// A model's own ImageNet classifier (with a weight file instead of the catalogue's).
    ImageNet(ModelKind, Option<PathBuf>),
}

/// One map: a model, an image, and the class (`None`: the predicted one).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MapKey {
    /// The model.
    pub source: MapSource,
    /// The image file.
    pub image: PathBuf,
    /// The class whose evidence is shown; `None` for the predicted class.
    pub class: Option<usize>,
}

/// A map as a job computed it, ready to become textures.
pub struct MapPicture {
    /// The crop the model saw.
    pub crop: egui::ColorImage,
    /// The map, upsampled and colour-mapped to the crop's size.
    pub heat: egui::ColorImage,
    /// The class the map is of.
    pub class: usize,
    /// Its probability.
    pub probability: f32,
}

enum Entry {
    Pending,
    Ready {
        crop: egui::TextureHandle,
        heat: egui::TextureHandle,
        class: usize,
        probability: f32,
    },
    Failed(String),
}

/// Maps kept before the cache is cleared (two 224² textures each, about 400 KB).
const MAX_CACHED: usize = 300;

/// The maps known so far, and how they are shown.
pub struct ClassMaps {
    /// Whether the gallery and Try it show maps instead of plain thumbnails.
    pub enabled: bool,
    /// Opacity of the map over the image.
    pub opacity: f32,
    entries: HashMap<MapKey, Entry>,
}

impl Default for ClassMaps {
    fn default() -> Self {
        Self {
            enabled: false,
            opacity: crate::run::overlay::DEFAULT_OPACITY,
            entries: HashMap::new(),
        }
    }
}

impl std::fmt::Debug for ClassMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClassMaps")
            .field("enabled", &self.enabled)
            .field("opacity", &self.opacity)
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl ClassMaps {
    /// The toggle and the opacity slider.
    pub fn controls(&mut self, ui: &mut egui::Ui) {
        ui.checkbox(&mut self.enabled, "Show where the model looks")
            .on_hover_text(
                "Class activation maps: bright where the evidence for the class is strongest. For a mistake, the true class's map and the predicted class's side by side.",
            );
        if self.enabled {
            ui.add(egui::Slider::new(&mut self.opacity, 0.0..=1.0).text("opacity"));
        }
    }

    /// Keys among `keys` not asked for yet; they are marked pending.
    pub fn take_missing(&mut self, keys: impl IntoIterator<Item = MapKey>) -> Vec<MapKey> {
        let mut missing = Vec::new();
        for key in keys {
            if !self.entries.contains_key(&key) {
                self.entries.insert(key.clone(), Entry::Pending);
                missing.push(key);
            }
        }
        missing
    }

    /// Stores a job's answer for `key`.
    pub fn insert(&mut self, ctx: &egui::Context, key: MapKey, result: Result<MapPicture, String>) {
        if self.entries.len() > MAX_CACHED {
            self.entries.retain(|_, e| matches!(e, Entry::Pending));
        }
        let entry = match result {
            Ok(p) => {
                let name = format!("map {} {:?}", key.image.display(), key.class);
                let options = egui::TextureOptions::LINEAR;
                Entry::Ready {
                    crop: ctx.load_texture(format!("{name} crop"), p.crop, options),
                    heat: ctx.load_texture(format!("{name} heat"), p.heat, options),
                    class: p.class,
                    probability: p.probability,
                }
            }
            Err(e) => Entry::Failed(e),
        };
        self.entries.insert(key, entry);
    }

    /// Marks every key still pending among `keys` as failed with `why` (a job that died).
    pub fn fail_pending(&mut self, keys: &[MapKey], why: &str) {
        for key in keys {
            if let Some(entry @ Entry::Pending) = self.entries.get_mut(key) {
                *entry = Entry::Failed(why.to_string());
            }
        }
    }

    /// How many maps are ready.
    pub fn ready(&self) -> usize {
        self.entries
            .values()
            .filter(|e| matches!(e, Entry::Ready { .. }))
            .count()
    }

    /// Draws the map of `key` in a `side`×`side` square (`class_name` names its class in the
    /// tooltip); a key not asked for yet goes into `wanted`.
    pub fn show(
        &self,
        ui: &mut egui::Ui,
        key: &MapKey,
        side: f32,
        class_name: &dyn Fn(usize) -> String,
        wanted: &mut Vec<MapKey>,
    ) {
        let size = egui::vec2(side, side);
        match self.entries.get(key) {
            Some(Entry::Ready {
                crop,
                heat,
                class,
                probability,
            }) => {
                let name = class_name(*class);
                let text = format!(
                    "where the evidence for {name} is ({:.0} %)",
                    probability * 100.0
                );
                let response = ui.add(
                    egui::Image::new(crop)
                        .fit_to_exact_size(size)
                        .alt_text(&text),
                );
                let alpha = (self.opacity.clamp(0.0, 1.0) * 255.0).round() as u8;
                egui::Image::new(heat)
                    .tint(egui::Color32::from_white_alpha(alpha))
                    .paint_at(ui, response.rect);
                response.on_hover_text(format!("{text}\n{}", key.image.display()));
            }
            other => {
                let (rect, response) = ui.allocate_exact_size(size, egui::Sense::hover());
                ui.painter()
                    .rect_filled(rect, 2.0, ui.visuals().faint_bg_color);
                match other {
                    Some(Entry::Failed(why)) => {
                        response.on_hover_text(format!("no map: {why}"));
                    }
                    Some(_) => {
                        ui.painter().text(
                            rect.center(),
                            egui::Align2::CENTER_CENTER,
                            "…",
                            egui::FontId::proportional(16.0),
                            ui.visuals().weak_text_color(),
                        );
                    }
                    None => wanted.push(key.clone()),
                }
            }
        }
    }
}
