//! What Graft ships (demo data set, ImageNet class names, default weights) and where a user's
//! runs and downloaded weights live.

use std::path::PathBuf;

/// The folder of bundled assets: `$GRAFT_ASSETS`; then, beside the executable, `assets/` (a
/// portable folder, Windows), `../lib/graft/assets` (the Linux package: `/usr/bin/graft`),
/// `../share/graft/assets` or `../Resources/assets` (a macOS bundle); then the source tree's
/// `assets/` (`cargo run`).
pub fn assets_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GRAFT_ASSETS") {
        return PathBuf::from(dir);
    }
    let beside = |bin: &std::path::Path| {
        [
            "assets",
            "../lib/graft/assets",
            "../share/graft/assets",
            "../Resources/assets",
        ]
        .into_iter()
        .map(|relative| bin.join(relative))
        .find(|dir| dir.join("demo").is_dir())
        .map(|dir| std::fs::canonicalize(&dir).unwrap_or(dir))
    };
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().and_then(beside))
    {
        return dir;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets")
}

/// The bundled demo data set (`clipart5`: five classes of public-domain clip art).
pub fn demo_dataset() -> PathBuf {
    assets_dir().join("demo")
}

/// The user's data folder for Graft (`$XDG_DATA_HOME/graft`, `~/.local/share/graft`, or the
/// platform's equivalent).
pub fn user_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GRAFT_HOME") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    if cfg!(target_os = "windows") {
        if let Some(dir) = std::env::var_os("APPDATA") {
            return PathBuf::from(dir).join("Graft");
        }
    } else if cfg!(target_os = "macos") {
        if let Some(home) = &home {
            return home.join("Library/Application Support/Graft");
        }
    } else if let Some(dir) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(dir).join("graft");
    }
    match home {
        Some(home) => home.join(".local/share/graft"),
        None => std::env::temp_dir().join("graft"),
    }
}

/// Where runs go unless the config names another folder.
pub fn default_runs_dir() -> PathBuf {
    user_data_dir().join("runs")
}

/// Folders searched for pre-trained weight files, in order.
pub fn weight_search_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![assets_dir().join("weights"), weights_cache_dir()];
    dirs.extend(torch_hub_dir());
    dirs
}

/// Where Graft downloads pre-trained weights.
pub fn weights_cache_dir() -> PathBuf {
    user_data_dir().join("weights")
}

/// PyTorch's hub cache (`$TORCH_HOME/hub/checkpoints`, default `~/.cache/torch/hub/checkpoints`):
/// files torchvision already downloaded are used from there.
pub fn torch_hub_dir() -> Option<PathBuf> {
    let torch_home = match std::env::var_os("TORCH_HOME") {
        Some(home) => PathBuf::from(home),
        None => match std::env::var_os("XDG_CACHE_HOME") {
            Some(cache) => PathBuf::from(cache).join("torch"),
            None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/torch"),
        },
    };
    Some(torch_home.join("hub/checkpoints"))
}

/// The 1000 ImageNet-1k class names in index order.
pub fn imagenet_classes() -> std::io::Result<Vec<String>> {
    let path = assets_dir().join("imagenet_classes.txt");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    Ok(text.lines().map(|l| l.trim().to_string()).collect())
}
