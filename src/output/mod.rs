//! Output: the run folder, a contract other tools rely on.
//!
//! ```text
//! RUN/
//!   weights.safetensors   W [instances, features, hidden], b [instances, features] (+ W_dec)
//!   config.toml           the exact config that reproduces the run (`tms train RUN/config.toml`)
//!   metrics.json          per-instance metrics and the verdict
//!   loss.csv              training loss per instance, subsampled
//!   snapshots.safetensors W and b at the `[train].snapshots` steps (when asked for)
//!   snapshots.json        D_i, norms and D* at each snapshot
//!   stages/NAME/          later stages of a multi-stage experiment, each a run folder
//!   *.svg, *.png          figures
//! ```
//!
//! A folder is built under a temporary name beside its destination and renamed into place only
//! when every file is written, so a failure never leaves a half-written run folder.

pub(crate) mod bytes;
pub mod checkpoint;
pub mod foreign;
pub mod plots;
pub mod records;
pub mod report;
pub mod snapshots;
pub mod weights;

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

/// A run folder being written; becomes visible at its final path on [`RunFolder::commit`].
pub struct RunFolder {
    final_path: PathBuf,
    tmp: PathBuf,
    force: bool,
    committed: bool,
}

/// Check, before any work, that `path` can become a run folder.
pub fn check_out_path(path: &Path, force: bool) -> anyhow::Result<()> {
    if path.as_os_str().is_empty() {
        bail!("--out: the output path is empty");
    }
    if path.exists() {
        if !path.is_dir() {
            bail!("--out {}: exists and is not a folder", path.display());
        }
        let empty = std::fs::read_dir(path)
            .with_context(|| format!("--out {}: cannot read the folder", path.display()))?
            .next()
            .is_none();
        if !empty && !force {
            bail!(
                "--out {}: folder exists and is not empty (choose another path or pass --force to replace it)",
                path.display()
            );
        }
    }
    // The nearest existing ancestor must be a folder we can write in: probe it with a
    // temporary folder, removed at once, so a bad location fails before any training.
    let mut ancestor = path.parent();
    while let Some(a) = ancestor {
        let dir = if a.as_os_str().is_empty() {
            Path::new(".")
        } else {
            a
        };
        if dir.exists() {
            if !dir.is_dir() {
                bail!(
                    "--out {}: {} is not a folder",
                    path.display(),
                    dir.display()
                );
            }
            let probe = dir.join(format!(".tms-write-probe-{}", std::process::id()));
            std::fs::create_dir(&probe).with_context(|| {
                format!(
                    "--out {}: cannot write in {}",
                    path.display(),
                    dir.display()
                )
            })?;
            let _ = std::fs::remove_dir(&probe);
            break;
        }
        ancestor = a.parent();
    }
    Ok(())
}

/// `base/name`, or `base/name-2`, `base/name-3`, ... : the first that does not exist yet.
pub fn default_out_path(base: &Path, name: &str) -> PathBuf {
    let first = base.join(name);
    if !first.exists() {
        return first;
    }
    (2..)
        .map(|k| base.join(format!("{name}-{k}")))
        .find(|p| !p.exists())
        .expect("some numbered name is free")
}

impl RunFolder {
    /// Start writing a run folder that will end up at `final_path`.
    pub fn create(final_path: &Path, force: bool) -> anyhow::Result<Self> {
        check_out_path(final_path, force)?;
        let parent = match final_path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent)
            .with_context(|| format!("cannot create the folder {}", parent.display()))?;
        let name = final_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".into());
        let tmp = parent.join(format!(".{name}.partial-{}", std::process::id()));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)
                .with_context(|| format!("cannot remove the stale folder {}", tmp.display()))?;
        }
        std::fs::create_dir(&tmp)
            .with_context(|| format!("cannot create the folder {}", tmp.display()))?;
        Ok(RunFolder {
            final_path: final_path.to_path_buf(),
            tmp,
            force,
            committed: false,
        })
    }

    /// The path files are written under until commit.
    pub fn staging_path(&self) -> &Path {
        &self.tmp
    }

    /// Write one file of the folder.
    pub fn write(&self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let path = self.tmp.join(name);
        std::fs::write(&path, bytes).with_context(|| {
            format!(
                "cannot write {} (is the disk full or read-only?)",
                self.final_path.join(name).display()
            )
        })
    }

    /// Create a sub-folder (e.g. `stages/attack`) for files written with [`RunFolder::write`].
    pub fn create_dir(&self, name: &str) -> anyhow::Result<()> {
        std::fs::create_dir_all(self.tmp.join(name)).with_context(|| {
            format!(
                "cannot create {} (is the disk full or read-only?)",
                self.final_path.join(name).display()
            )
        })
    }

    /// Move the finished folder into place.
    pub fn commit(mut self) -> anyhow::Result<PathBuf> {
        if self.final_path.exists() {
            if !self.force && std::fs::read_dir(&self.final_path)?.next().is_some() {
                bail!(
                    "{} appeared while the run was going; not replacing it",
                    self.final_path.display()
                );
            }
            // Move the old folder aside and delete it only once the new one is in place: the
            // window without a folder at the path is two renames, not a recursive delete (a
            // periodic checkpoint replaces the last one this way every minute; a kill inside
            // the window leaves the old one in `.NAME.partial-PID.old`).
            let aside = self.tmp.with_file_name(format!(
                "{}.old",
                self.tmp.file_name().unwrap_or_default().to_string_lossy()
            ));
            if aside.exists() {
                std::fs::remove_dir_all(&aside)
                    .with_context(|| format!("cannot remove {}", aside.display()))?;
            }
            std::fs::rename(&self.final_path, &aside)
                .with_context(|| format!("cannot replace {}", self.final_path.display()))?;
            if let Err(e) = std::fs::rename(&self.tmp, &self.final_path) {
                // Put the earlier folder back where it was.
                let _ = std::fs::rename(&aside, &self.final_path);
                return Err(e).with_context(|| {
                    format!(
                        "cannot move the finished run to {}",
                        self.final_path.display()
                    )
                });
            }
            self.committed = true;
            let _ = std::fs::remove_dir_all(&aside);
            return Ok(self.final_path.clone());
        }
        std::fs::rename(&self.tmp, &self.final_path).with_context(|| {
            format!(
                "cannot move the finished run to {}",
                self.final_path.display()
            )
        })?;
        self.committed = true;
        Ok(self.final_path.clone())
    }
}

impl Drop for RunFolder {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a/b/run");
        let f = RunFolder::create(&target, false).unwrap();
        f.write("x.txt", b"hi").unwrap();
        assert!(!target.exists());
        let out = f.commit().unwrap();
        assert_eq!(std::fs::read(out.join("x.txt")).unwrap(), b"hi");
        // Not replaced without force, replaced with it.
        assert!(RunFolder::create(&target, false).is_err());
        let f = RunFolder::create(&target, true).unwrap();
        f.write("y.txt", b"2").unwrap();
        f.commit().unwrap();
        assert!(!target.join("x.txt").exists() && target.join("y.txt").exists());
    }

    #[test]
    fn a_failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("run");
        let f = RunFolder::create(&target, false).unwrap();
        f.write("a.txt", b"1").unwrap();
        // A folder where the file should go makes the write fail, as a full disk would.
        std::fs::create_dir(f.staging_path().join("b.txt")).unwrap();
        let e = f.write("b.txt", b"2").unwrap_err();
        assert!(format!("{e:#}").contains("cannot write"), "{e:#}");
        drop(f);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn unwritable_locations_are_refused_early() {
        let e = check_out_path(Path::new("/proc/tms-run"), false).unwrap_err();
        assert!(format!("{e:#}").contains("cannot write in /proc"), "{e:#}");
    }

    #[test]
    fn dropped_folder_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("run");
        {
            let f = RunFolder::create(&target, false).unwrap();
            f.write("x", b"1").unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn default_paths_are_numbered() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            default_out_path(dir.path(), "intro"),
            dir.path().join("intro")
        );
        std::fs::create_dir(dir.path().join("intro")).unwrap();
        assert_eq!(
            default_out_path(dir.path(), "intro"),
            dir.path().join("intro-2")
        );
    }
}
