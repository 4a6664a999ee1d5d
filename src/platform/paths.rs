//! Paths as Graft keeps them: `PathBuf` from end to end, whatever bytes the file system allows,
//! shown lossily only for people. In JSON a path is a string when it is valid UTF-8 and
//! `{"bytes": [...]}` (its raw bytes, on Unix) when it is not, so that it reads back exactly.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Stored {
    Text(String),
    Bytes { bytes: Vec<u8> },
}

fn to_stored(path: &Path) -> Stored {
    match path.to_str() {
        Some(text) => Stored::Text(text.to_owned()),
        None => Stored::Bytes {
            bytes: raw_bytes(path),
        },
    }
}

fn from_stored(stored: Stored) -> PathBuf {
    match stored {
        Stored::Text(text) => PathBuf::from(text),
        Stored::Bytes { bytes } => from_raw_bytes(bytes),
    }
}

/// The path's bytes as the file system holds them (on Unix; elsewhere its lossy text).
pub fn raw_bytes(path: &Path) -> Vec<u8> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes().to_vec()
    }
    #[cfg(not(unix))]
    {
        path.to_string_lossy().into_owned().into_bytes()
    }
}

fn from_raw_bytes(bytes: Vec<u8>) -> PathBuf {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        PathBuf::from(std::ffi::OsString::from_vec(bytes))
    }
    #[cfg(not(unix))]
    {
        PathBuf::from(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// `#[serde(with = "as_path")]` for a `PathBuf` field.
pub mod as_path {
    use super::*;

    /// Writes the path as text, or as its bytes when it is not UTF-8.
    pub fn serialize<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
        to_stored(path).serialize(s)
    }

    /// Reads what [`serialize`] wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        Stored::deserialize(d).map(from_stored)
    }
}

/// `#[serde(with = "as_opt_path")]` for an `Option<PathBuf>` field.
pub mod as_opt_path {
    use super::*;

    /// Writes `null` or the path as [`as_path`] does.
    pub fn serialize<S: Serializer>(path: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        path.as_deref().map(to_stored).serialize(s)
    }

    /// Reads what [`serialize`] wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        Option::<Stored>::deserialize(d).map(|s| s.map(from_stored))
    }
}

/// `#[serde(with = "as_paths")]` for a `Vec<PathBuf>` field.
pub mod as_paths {
    use super::*;

    /// Writes each path as [`as_path`] does.
    pub fn serialize<S: Serializer>(paths: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(paths.iter().map(|p| to_stored(p)))
    }

    /// Reads what [`serialize`] wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
        Vec::<Stored>::deserialize(d).map(|v| v.into_iter().map(from_stored).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Holder {
        #[serde(with = "as_path")]
        path: PathBuf,
        #[serde(with = "as_opt_path")]
        maybe: Option<PathBuf>,
    }

    #[test]
    fn text_paths_stay_strings_and_others_read_back_exactly() {
        let plain = Holder {
            path: PathBuf::from("a/b.png"),
            maybe: None,
        };
        let json = serde_json::to_string(&plain).unwrap();
        assert_eq!(json, r#"{"path":"a/b.png","maybe":null}"#);
        assert_eq!(serde_json::from_str::<Holder>(&json).unwrap(), plain);
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let odd = PathBuf::from(std::ffi::OsStr::from_bytes(b"caf\xe9/x.png"));
            let holder = Holder {
                path: odd.clone(),
                maybe: Some(odd),
            };
            let json = serde_json::to_string(&holder).unwrap();
            assert!(json.contains("bytes"), "{json}");
            assert_eq!(serde_json::from_str::<Holder>(&json).unwrap(), holder);
        }
    }
}
