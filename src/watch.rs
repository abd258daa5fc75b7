//! Filesystem events as hints: every event means "something at these paths
//! changed, look again". The daemon's loop debounces them per folder (a
//! quiet window, capped), so an editor's save or a half-written upload
//! becomes one look once the file has settled: at just the named files when
//! that settles it (`scan::rescan_paths`), else at the whole folder.
//!
//! notify's raw watcher is used instead of a debouncer crate because the
//! loop needs the `Rescan` flag (event queue overflow) and watcher errors
//! (watch limit reached) as they happen, which the mini debouncer drops.

use std::path::{Path, PathBuf};

use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc::UnboundedSender;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// Something at these paths changed.
    Changed(Vec<PathBuf>),
    /// Events were lost (queue overflow): everything must be rescanned.
    Overflow,
    /// The watcher reported an error; what it watches can't be trusted.
    Failed(String),
}

/// Owns the inotify watchers and the set of watched roots.
///
/// notify's recursive watch follows symlinks by default: a link to `/`
/// below a folder put a watch on every directory of the host and used up
/// the inotify limit. So folders are watched without following links, like
/// the scan; only a folder with `follow_links = true` gets a second watcher
/// (its own inotify instance) that follows them, as its scan does.
pub struct Watcher {
    tx: UnboundedSender<WatchEvent>,
    plain: notify::RecommendedWatcher,
    following: Option<notify::RecommendedWatcher>,
    /// Path, mode, and whether `following` holds the watch.
    watched: Vec<(PathBuf, RecursiveMode, bool)>,
}

fn new_watcher(
    tx: UnboundedSender<WatchEvent>,
    follow_links: bool,
) -> Result<notify::RecommendedWatcher, String> {
    let handler = move |res: notify::Result<notify::Event>| {
        let msg = match res {
            Ok(ev) if ev.need_rescan() => WatchEvent::Overflow,
            // Reads and opens change nothing; skip them cheaply.
            Ok(ev) if matches!(ev.kind, EventKind::Access(_)) => return,
            Ok(ev) => WatchEvent::Changed(ev.paths),
            Err(e) => WatchEvent::Failed(e.to_string()),
        };
        let _ = tx.send(msg);
    };
    let config = notify::Config::default().with_follow_symlinks(follow_links);
    notify::RecommendedWatcher::new(handler, config)
        .map_err(|e| format!("cannot start the filesystem watcher: {e}"))
}

impl Watcher {
    pub fn new(tx: UnboundedSender<WatchEvent>) -> Result<Watcher, String> {
        Ok(Watcher {
            plain: new_watcher(tx.clone(), false)?,
            tx,
            following: None,
            watched: Vec::new(),
        })
    }

    pub fn is_watched(&self, path: &Path) -> bool {
        self.watched.iter().any(|(p, _, _)| p == path)
    }

    fn inner(&mut self, follow_links: bool) -> Result<&mut notify::RecommendedWatcher, String> {
        if !follow_links {
            return Ok(&mut self.plain);
        }
        let following = match self.following.take() {
            Some(w) => w,
            None => new_watcher(self.tx.clone(), true)?,
        };
        Ok(self.following.insert(following))
    }

    /// Watches `path` (recursively or not; following symlinks below it only
    /// with `follow_links`). An error names the path and says when it is
    /// the inotify watch limit.
    pub fn watch(
        &mut self,
        path: &Path,
        recursive: bool,
        follow_links: bool,
    ) -> Result<(), String> {
        let mode = if recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        // A folder that was deleted and re-created has a dead watch: drop
        // any old one first.
        self.unwatch(path);
        let result = self
            .inner(follow_links)
            .map_err(|e| format!("cannot watch {}: {e}; polling instead", path.display()))?
            .watch(path, mode);
        match result {
            Ok(()) => {
                self.watched.push((path.to_path_buf(), mode, follow_links));
                Ok(())
            }
            Err(e) => {
                // A recursive watch that failed half-way (the watch limit)
                // keeps the watches it added; they would only use up the
                // limit for a folder that is polled anyway. Not when
                // another watched folder of the same watcher lies below, or
                // one watched with its subfolders above: inotify has one
                // watch per folder, and notify would remove theirs too.
                let nested = self.watched.iter().any(|(p, mode, follow)| {
                    *follow == follow_links
                        && (p.starts_with(path)
                            || (path.starts_with(p) && *mode == RecursiveMode::Recursive))
                });
                if !nested {
                    if let Ok(w) = self.inner(follow_links) {
                        let _ = w.unwatch(path);
                    }
                }
                Err(match e.kind {
                notify::ErrorKind::MaxFilesWatch => format!(
                    "cannot watch {}: the inotify watch limit is reached (raise fs.inotify.max_user_watches); polling instead",
                    path.display()
                ),
                _ => format!("cannot watch {}: {e}; polling instead", path.display()),
            })
            }
        }
    }

    pub fn unwatch(&mut self, path: &Path) {
        if let Some(i) = self.watched.iter().position(|(p, _, _)| p == path) {
            let (_, _, follow_links) = self.watched.remove(i);
            if let Ok(w) = self.inner(follow_links) {
                let _ = w.unwatch(path);
            }
        }
    }
}
