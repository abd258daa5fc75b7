//! Filesystem events as hints: every event means "something at these paths
//! changed, look again". The daemon's loop debounces them per folder (a
//! quiet window, capped), so an editor's save or a half-written upload
//! becomes one look once the file has settled: at just the named files when
//! that settles it (`scan::rescan_paths`), else at the whole folder. Events
//! that say a file is finished (renamed into place, closed after writing,
//! removed) need no quiet window: nothing more is coming for that path, so
//! they are told apart ([`WatchEvent::Finished`]) and looked at at once.
//!
//! notify's raw watcher is used instead of a debouncer crate because the
//! loop needs the `Rescan` flag (event queue overflow) and watcher errors
//! (watch limit reached) as they happen, which the mini debouncer drops.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc::{self, error::TrySendError};

/// Events waiting for the loop. A burst beyond this (a folder of 100,000
/// files copied in) is not queued event by event: it becomes one rescan of
/// every folder, which is what so many events would cause anyway.
pub const QUEUE: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// Something at these paths changed, and may still be changing (a
    /// file created or written to and not closed yet, new metadata).
    Changed(Vec<PathBuf>),
    /// These paths were just given their final content or removed: a file
    /// renamed into place or closed after writing, a file deleted or
    /// renamed away. Nothing more is coming for them.
    Finished(Vec<PathBuf>),
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
    tx: mpsc::Sender<WatchEvent>,
    plain: notify::RecommendedWatcher,
    following: Option<notify::RecommendedWatcher>,
    /// Path, mode, and whether `following` holds the watch.
    watched: Vec<(PathBuf, RecursiveMode, bool)>,
    overflowed: Arc<AtomicBool>,
}

/// Hands one event to the loop from notify's thread, which must never
/// block. When the queue is full the event is dropped and `overflowed`
/// set. Nothing more is sent: the queue was just full, so no send could
/// succeed now. The [`QUEUE`] events that filled it are still waiting, and
/// the loop checks the flag before handling each event it takes, so the
/// next one it takes brings the overflow to its attention.
fn forward(tx: &mpsc::Sender<WatchEvent>, overflowed: &AtomicBool, msg: WatchEvent) {
    if let Err(TrySendError::Full(_)) = tx.try_send(msg) {
        overflowed.store(true, Ordering::SeqCst);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Says {
    Nothing,
    Changing,
    Finished,
}

/// Whether an event kind leaves its path settled. A rename into place
/// (`IN_MOVED_TO`, how uploads and atomic saves end) and a close after
/// writing (`IN_CLOSE_WRITE`) mean the content is final; a removal or a
/// rename away means there is nothing left to wait for. A creation, a
/// write or a metadata change may be followed by more.
fn what_it_says(kind: &EventKind) -> Says {
    use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Says::Finished,
        EventKind::Access(_) => Says::Nothing,
        EventKind::Modify(ModifyKind::Name(
            RenameMode::To | RenameMode::Both | RenameMode::From,
        ))
        | EventKind::Remove(_) => Says::Finished,
        _ => Says::Changing,
    }
}

fn new_watcher(
    tx: mpsc::Sender<WatchEvent>,
    overflowed: Arc<AtomicBool>,
    follow_links: bool,
) -> Result<notify::RecommendedWatcher, String> {
    let handler = move |res: notify::Result<notify::Event>| {
        let msg = match res {
            Ok(ev) if ev.need_rescan() => WatchEvent::Overflow,
            Ok(ev) => match what_it_says(&ev.kind) {
                // Reads and opens change nothing; skip them cheaply.
                Says::Nothing => return,
                Says::Changing => WatchEvent::Changed(ev.paths),
                Says::Finished => WatchEvent::Finished(ev.paths),
            },
            Err(e) => WatchEvent::Failed(e.to_string()),
        };
        forward(&tx, &overflowed, msg);
    };
    let config = notify::Config::default().with_follow_symlinks(follow_links);
    notify::RecommendedWatcher::new(handler, config)
        .map_err(|e| format!("cannot start the filesystem watcher: {e}"))
}

impl Watcher {
    /// Events go to `tx`; make it `mpsc::channel(QUEUE)`.
    pub fn new(tx: mpsc::Sender<WatchEvent>) -> Result<Watcher, String> {
        let overflowed = Arc::new(AtomicBool::new(false));
        Ok(Watcher {
            plain: new_watcher(tx.clone(), overflowed.clone(), false)?,
            tx,
            following: None,
            watched: Vec::new(),
            overflowed,
        })
    }

    /// Whether events were dropped since the last call because the queue
    /// was full: then every folder must be rescanned.
    pub fn take_overflow(&self) -> bool {
        self.overflowed.swap(false, Ordering::SeqCst)
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
            None => new_watcher(self.tx.clone(), self.overflowed.clone(), true)?,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a rename into place, a close after writing and removals say a
    /// path is finished; opens and reads say nothing.
    #[test]
    fn events_are_told_apart_by_whether_their_file_is_finished() {
        use notify::event::*;
        let finished = [
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Remove(RemoveKind::File),
        ];
        for k in &finished {
            assert_eq!(what_it_says(k), Says::Finished, "{k:?}");
        }
        let changing = [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
            EventKind::Any,
        ];
        for k in &changing {
            assert_eq!(what_it_says(k), Says::Changing, "{k:?}");
        }
        for k in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
        ] {
            assert_eq!(what_it_says(&k), Says::Nothing, "{k:?}");
        }
    }

    fn changed(name: &str) -> WatchEvent {
        WatchEvent::Changed(vec![PathBuf::from(name)])
    }

    #[test]
    fn a_full_queue_drops_events_and_raises_the_overflow_flag() {
        let (tx, mut rx) = mpsc::channel(2);
        let flag = AtomicBool::new(false);
        forward(&tx, &flag, changed("/a"));
        forward(&tx, &flag, changed("/b"));
        assert!(!flag.load(Ordering::SeqCst));
        for i in 0..1000 {
            forward(&tx, &flag, changed(&format!("/c{i}")));
        }
        assert!(flag.load(Ordering::SeqCst));
        assert_eq!(rx.try_recv().ok(), Some(changed("/a")));
        assert_eq!(rx.try_recv().ok(), Some(changed("/b")));
        assert!(rx.try_recv().is_err());
        // The flag stays up until the loop takes it.
        forward(&tx, &flag, changed("/d"));
        assert_eq!(rx.try_recv().ok(), Some(changed("/d")));
        assert!(flag.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_burst_on_a_real_folder_beyond_the_queue_reports_an_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let mut w = Watcher::new(tx).unwrap();
        w.watch(dir.path(), false, false).unwrap();
        // Nobody reads while the files are made: the queue fills.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut i = 0;
        while !w.overflowed.load(Ordering::SeqCst) {
            assert!(
                std::time::Instant::now() < deadline,
                "no overflow after {i} files"
            );
            std::fs::write(dir.path().join(format!("f{i}")), b"x").unwrap();
            i += 1;
            tokio::task::yield_now().await;
        }
        let mut got = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            got.push(ev);
        }
        assert!(got.len() <= 4, "the queue holds at most 4 events");
        assert!(w.take_overflow());
        assert!(!w.take_overflow(), "taking the flag clears it");
    }
}
