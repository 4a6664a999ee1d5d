//! The user's decisions about single files after looking at them (the Data health view, or a
//! decisions file for the CLI): files left out and files trained under another class. They
//! live in the config, so every run applies them and its folder records them, while the data
//! folder itself stays exactly as it is.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::platform::paths::{as_path, as_paths};

/// Decisions about single files, each named by its path relative to the data root.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Curation {
    /// Files left out of training, validation and test.
    #[serde(with = "as_paths")]
    pub exclude: Vec<PathBuf>,
    /// Files trained (and scored) under another class than their folder's.
    pub relabel: Vec<Relabel>,
    /// Files the user looked at and judged fine as they are.
    #[serde(with = "as_paths")]
    pub fine: Vec<PathBuf>,
}

/// One file under another class.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relabel {
    /// Relative to the data root.
    #[serde(with = "as_path")]
    pub file: PathBuf,
    /// The class it belongs to.
    pub class: String,
}

/// What was decided about one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Leave it out.
    Exclude,
    /// Train it under this class.
    Relabel(String),
    /// Keep it as it is.
    Fine,
}

impl Curation {
    /// Whether nothing was decided.
    pub fn is_empty(&self) -> bool {
        self.exclude.is_empty() && self.relabel.is_empty() && self.fine.is_empty()
    }

    /// What was decided about `file` (relative to the data root), if anything.
    pub fn decision(&self, file: &Path) -> Option<Decision> {
        if self.exclude.iter().any(|p| p == file) {
            Some(Decision::Exclude)
        } else if let Some(r) = self.relabel.iter().find(|r| r.file == file) {
            Some(Decision::Relabel(r.class.clone()))
        } else if self.fine.iter().any(|p| p == file) {
            Some(Decision::Fine)
        } else {
            None
        }
    }

    /// Records `decision` for `file`, replacing any earlier one; `None` forgets it.
    pub fn decide(&mut self, file: &Path, decision: Option<Decision>) {
        self.exclude.retain(|p| p != file);
        self.relabel.retain(|r| r.file != file);
        self.fine.retain(|p| p != file);
        match decision {
            Some(Decision::Exclude) => self.exclude.push(file.to_path_buf()),
            Some(Decision::Relabel(class)) => self.relabel.push(Relabel {
                file: file.to_path_buf(),
                class,
            }),
            Some(Decision::Fine) => self.fine.push(file.to_path_buf()),
            None => {}
        }
    }

    /// The decisions that change a run, in words ("2 files excluded, 1 relabelled").
    pub fn describe(&self) -> Option<String> {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        let parts: Vec<String> = [
            (self.exclude.len(), "excluded"),
            (self.relabel.len(), "relabelled"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} file{} {what}", plural(n)))
        .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_decision_replaces_the_old_one() {
        let mut c = Curation::default();
        let file = Path::new("bird/x.png");
        c.decide(file, Some(Decision::Exclude));
        assert_eq!(c.decision(file), Some(Decision::Exclude));
        c.decide(file, Some(Decision::Relabel("bug".into())));
        assert_eq!(c.decision(file), Some(Decision::Relabel("bug".into())));
        assert!(c.exclude.is_empty());
        assert_eq!(c.describe().as_deref(), Some("1 file relabelled"));
        c.decide(file, None);
        assert!(c.is_empty() && c.describe().is_none());
    }

    #[test]
    fn decisions_round_trip_through_json() {
        let mut c = Curation::default();
        c.decide(Path::new("a/1.png"), Some(Decision::Exclude));
        c.decide(Path::new("a/2.png"), Some(Decision::Relabel("b".into())));
        c.decide(Path::new("b/3.png"), Some(Decision::Fine));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Curation>(&json).unwrap(), c);
    }
}
