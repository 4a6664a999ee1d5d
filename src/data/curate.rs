//! The user's decisions ([`Curation`]) applied to a scanned folder: excluded files leave the
//! scan, relabelled ones move to their new class. The folder itself is never touched.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::Scan;
use crate::config::Curation;

/// What applying a curation did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The files left out (absolute).
    pub excluded: Vec<PathBuf>,
    /// How many files moved to another class.
    pub relabelled: usize,
    /// Decisions that could not be applied, in words.
    pub notes: Vec<String>,
}

/// Applies `curation` to `scan` (whose files are under `scan.root`).
pub fn apply(scan: &mut Scan, curation: &Curation) -> Applied {
    let mut applied = Applied::default();
    if curation.exclude.is_empty() && curation.relabel.is_empty() {
        return applied;
    }
    let root = scan.root.clone();
    let relative = |path: &Path| path.strip_prefix(&root).unwrap_or(path).to_path_buf();
    let present: HashSet<PathBuf> = scan.files.iter().map(|f| relative(&f.path)).collect();
    let mut targets: HashMap<&Path, &str> = HashMap::new();
    for r in curation
        .relabel
        .iter()
        .filter(|r| present.contains(&r.file))
    {
        match scan.classes.iter().position(|c| *c == r.class) {
            Some(_) => {
                targets.insert(r.file.as_path(), r.class.as_str());
            }
            None => applied.notes.push(format!(
                "{} was to be relabelled as `{}`, a class this folder does not have: it keeps its folder's class",
                r.file.display(),
                r.class
            )),
        }
    }
    let classes = &scan.classes;
    scan.files.retain_mut(|file| {
        let rel = relative(&file.path);
        if curation.exclude.contains(&rel) {
            applied.excluded.push(file.path.clone());
            return false;
        }
        let target = targets
            .get(rel.as_path())
            .and_then(|class| classes.iter().position(|c| c == class));
        if let Some(index) = target.filter(|i| *i != file.class) {
            file.class = index;
            applied.relabelled += 1;
        }
        true
    });
    let missing: Vec<&Path> = curation
        .exclude
        .iter()
        .map(PathBuf::as_path)
        .chain(curation.relabel.iter().map(|r| r.file.as_path()))
        .filter(|p| !present.contains(*p))
        .collect();
    if !missing.is_empty() {
        applied.notes.push(format!(
            "{} decision(s) name files that are no longer in the folder, e.g. {}",
            missing.len(),
            missing[0].display()
        ));
    }
    scan.files
        .sort_by(|a, b| (a.class, &a.path).cmp(&(b.class, &b.path)));
    applied
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Decision;
    use crate::data::scan::{FoundFile, Layout};

    fn scan() -> Scan {
        let root = PathBuf::from("/data");
        let file = |name: &str, class| FoundFile {
            path: root.join(name),
            class,
            in_val_folder: false,
            in_test_folder: false,
        };
        Scan {
            root: root.clone(),
            layout: Layout::Flat,
            classes: vec!["a".into(), "b".into()],
            files: vec![file("a/1.png", 0), file("a/2.png", 0), file("b/3.png", 1)],
            passed_over: Vec::new(),
            only_in_train: Vec::new(),
            only_in_val: Vec::new(),
        }
    }

    #[test]
    fn exclusions_leave_and_relabels_move() {
        let mut s = scan();
        let mut c = Curation::default();
        c.decide(Path::new("a/1.png"), Some(Decision::Exclude));
        c.decide(Path::new("a/2.png"), Some(Decision::Relabel("b".into())));
        c.decide(Path::new("b/3.png"), Some(Decision::Fine));
        let applied = apply(&mut s, &c);
        assert_eq!(applied.excluded, [PathBuf::from("/data/a/1.png")]);
        assert_eq!(applied.relabelled, 1);
        assert!(applied.notes.is_empty(), "{:?}", applied.notes);
        let classes: Vec<usize> = s.files.iter().map(|f| f.class).collect();
        assert_eq!(classes, [1, 1]);
    }

    #[test]
    fn unknown_classes_and_gone_files_are_said() {
        let mut s = scan();
        let mut c = Curation::default();
        c.decide(
            Path::new("a/1.png"),
            Some(Decision::Relabel("zebra".into())),
        );
        c.decide(Path::new("a/gone.png"), Some(Decision::Exclude));
        c.decide(
            Path::new("b/gone.png"),
            Some(Decision::Relabel("zebra".into())),
        );
        let applied = apply(&mut s, &c);
        assert_eq!(s.files.len(), 3);
        assert_eq!(applied.relabelled, 0);
        assert_eq!(applied.notes.len(), 2, "{:?}", applied.notes);
        assert!(applied.notes[0].contains("zebra"));
        assert!(
            applied.notes[1].starts_with("2 decision(s)"),
            "{:?}",
            applied.notes
        );
    }
}
