//! Thumbnails for the data panel: decoded on worker threads, only for the rows on screen, and
//! kept as textures in a bounded cache.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use eframe::egui;

/// Thumbnail side in pixels.
pub const SIDE: u32 = 72;
/// Textures kept before the cache is cleared (about 20 MB at 72×72).
const MAX_CACHED: usize = 1000;

/// One thumbnail's state.
pub enum Thumb {
    /// Asked for, not decoded yet.
    Pending,
    /// On the GPU.
    Ready(egui::TextureHandle),
    /// Not an image the decoder could read.
    Failed,
}

impl std::fmt::Debug for Thumb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pending => "Pending",
            Self::Ready(_) => "Ready",
            Self::Failed => "Failed",
        })
    }
}

/// Decoded thumbnails on their way to the UI thread.
pub type Decoded = (PathBuf, Option<egui::ColorImage>);

/// The thumbnails known so far.
#[derive(Debug, Default)]
pub struct Thumbnails {
    /// By file.
    pub by_path: HashMap<PathBuf, Thumb>,
}

impl Thumbnails {
    /// Paths among `paths` that have not been asked for yet; they are marked pending.
    pub fn take_missing<'a>(&mut self, paths: impl Iterator<Item = &'a PathBuf>) -> Vec<PathBuf> {
        let mut missing = Vec::new();
        for path in paths {
            if !self.by_path.contains_key(path) {
                self.by_path.insert(path.clone(), Thumb::Pending);
                missing.push(path.clone());
            }
        }
        missing
    }

    /// Stores a decoded thumbnail as a texture.
    pub fn insert(&mut self, ctx: &egui::Context, path: PathBuf, image: Option<egui::ColorImage>) {
        if self.by_path.len() > MAX_CACHED {
            // Scrolling far: drop the finished ones; rows on screen ask again.
            self.by_path.retain(|_, t| matches!(t, Thumb::Pending));
        }
        let thumb = match image {
            Some(image) => Thumb::Ready(ctx.load_texture(
                path.to_string_lossy(),
                image,
                egui::TextureOptions::LINEAR,
            )),
            None => Thumb::Failed,
        };
        self.by_path.insert(path, thumb);
    }

    /// Draws the thumbnail of `path` (a grey square until it is decoded); a path not asked
    /// for yet goes into `wanted`.
    pub fn show<'a>(&self, ui: &mut egui::Ui, path: &'a PathBuf, wanted: &mut Vec<&'a PathBuf>) {
        let size = egui::vec2(SIDE as f32, SIDE as f32);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        match self.by_path.get(path) {
            Some(Thumb::Ready(texture)) => {
                ui.add(
                    egui::Image::new(texture)
                        .fit_to_exact_size(size)
                        .alt_text(name.as_ref()),
                )
                .on_hover_text(path.display().to_string());
            }
            other => {
                let (rect, response) = ui.allocate_exact_size(size, egui::Sense::hover());
                ui.painter()
                    .rect_filled(rect, 2.0, ui.visuals().faint_bg_color);
                if matches!(other, Some(Thumb::Failed)) {
                    response.on_hover_text(format!("{} cannot be decoded", path.display()));
                }
                if other.is_none() {
                    wanted.push(path);
                }
            }
        }
    }

    /// How many are on the GPU.
    pub fn ready(&self) -> usize {
        self.by_path
            .values()
            .filter(|t| matches!(t, Thumb::Ready(_)))
            .count()
    }
}

fn decode(path: &std::path::Path) -> Option<egui::ColorImage> {
    // Decoded straight to about the thumbnail's size, so a huge photo costs no more to keep.
    let rgb = crate::data::decode::decode_file_at(path, Some(SIDE)).ok()?;
    let small = image::imageops::thumbnail(&rgb, SIDE, SIDE);
    let (w, h) = small.dimensions();
    Some(egui::ColorImage::from_rgb(
        [w as usize, h as usize],
        small.as_raw(),
    ))
}

/// Starts `threads` decoders; send paths in, get thumbnails out. They stop when the sender drops.
pub fn spawn_decoders(
    threads: usize,
    done: Sender<Decoded>,
    ctx: Option<egui::Context>,
) -> Sender<PathBuf> {
    let (tx, rx): (Sender<PathBuf>, Receiver<PathBuf>) = channel();
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..threads.max(1) {
        let rx = rx.clone();
        let done = done.clone();
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            loop {
                let next = match rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok(path) = next else { return };
                let image = decode(&path);
                if done.send((path, image)).is_err() {
                    return;
                }
                if let Some(ctx) = &ctx {
                    ctx.request_repaint();
                }
            }
        });
    }
    tx
}
