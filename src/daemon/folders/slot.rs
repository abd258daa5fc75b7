//! One configured folder as the daemon holds it: its latest scan, how it
//! is watched, and when it must be scanned again.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::super::Timing;
use crate::config::Folder;
use crate::scan::{self, FolderScan, FolderState, FoundFile};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Inotify,
    /// `poll = true` in the config.
    Poll,
    /// inotify could not be used for this folder: why, and since when
    /// (it is tried again every [`Timing::rearm_every`]).
    Fallback {
        why: String,
        since: Instant,
    },
    /// Not watched right now (missing or unreadable); looked for regularly.
    Waiting,
}

pub struct Slot {
    pub folder: Folder,
    pub scan: FolderScan,
    pub files: Vec<FoundFile>,
    pub mode: Mode,
    /// (first, last) event since the last scan.
    pub(super) dirty: Option<(Instant, Instant)>,
    /// The paths those events named, or None when the whole folder must be
    /// scanned (its own events, lost events, a re-armed watch).
    pub(super) named: Option<Vec<PathBuf>>,
    /// Those of the named paths whose latest event said they may still be
    /// changing (created or written to, not closed yet). While it is empty
    /// every named path is finished, and the folder needs no quiet window.
    pub(super) unsettled: Vec<PathBuf>,
    pub(super) last_scan: Instant,
    /// Device and inode of the folder when its watch was armed: a folder
    /// deleted and re-created needs a new watch.
    pub(super) armed_on: Option<(u64, u64)>,
    /// Kept with each scan: asked for every event of every other folder.
    pub(super) follows_links: bool,
    /// [`Slot::view_digest`] as the last pass saw it (None before the
    /// first). A rescan runs a pass when the digest differs from this, not
    /// from the digest just before the rescan: the watch mode also changes
    /// outside rescans (the watcher failed), and such a change must reach
    /// `status` at the next rescan, not at the next scheduled pass.
    pub(super) passed_digest: Option<u64>,
    /// The folder has been scanned once: before that, `scan` holds a
    /// placeholder state that the first scan does not "change".
    pub(super) scanned: bool,
}

impl Slot {
    pub(super) fn new(folder: Folder) -> Slot {
        Slot {
            scan: FolderScan {
                path: folder.path.clone(),
                state: FolderState::Missing,
                tokens: 0,
                error: None,
                folder_links: false,
            },
            folder,
            files: Vec::new(),
            mode: Mode::Waiting,
            dirty: None,
            named: Some(Vec::new()),
            unsettled: Vec::new(),
            last_scan: Instant::now(),
            armed_on: None,
            follows_links: false,
            passed_digest: None,
            scanned: false,
        }
    }

    /// Something in the folder changed: scan all of it.
    pub fn mark_dirty(&mut self, now: Instant) {
        self.touch(now);
        self.named = None;
    }

    /// The watcher named `path`, somewhere below the folder; `finished`
    /// when its event said nothing more is coming for it
    /// ([`WatchEvent::Finished`](crate::watch::WatchEvent::Finished)).
    pub fn mark_path(&mut self, now: Instant, path: &Path, finished: bool) {
        self.touch(now);
        if let Some(named) = &mut self.named {
            if named.len() >= scan::MAX_PATHS {
                self.named = None;
            } else if !named.iter().any(|p| p == path) {
                named.push(path.to_path_buf());
            }
        }
        if self.named.is_none() {
            // A whole scan waits for the quiet window anyway.
            self.unsettled.clear();
        } else if finished {
            self.unsettled.retain(|p| p != path);
        } else if !self.unsettled.iter().any(|p| p == path) {
            self.unsettled.push(path.to_path_buf());
        }
    }

    /// Every event since the last scan named a path below the folder, and
    /// the latest event for each said it is finished: the scan need not
    /// wait for the folder to be quiet.
    fn settled(&self) -> bool {
        self.named.as_ref().is_some_and(|n| !n.is_empty()) && self.unsettled.is_empty()
    }

    /// Its last scan followed a symlink (to a file or a folder): what it
    /// lists may change with events anywhere else, which its own watch,
    /// not following links, does not see.
    pub fn follows_links(&self) -> bool {
        self.follows_links
    }

    fn touch(&mut self, now: Instant) {
        self.dirty = Some(match self.dirty {
            Some((first, _)) => (first, now),
            None => (now, now),
        });
    }

    /// Events were lost (queue overflow): rescan, and arm the watch afresh,
    /// since subfolders created while events were lost got no watch of
    /// their own (notify adds those only when it sees their creation;
    /// regression test: faults::overflow::an_event_queue_overflow_rescans_and_new_subfolders_stay_watched).
    pub fn watch_lost(&mut self, now: Instant) {
        if self.mode == Mode::Inotify {
            self.armed_on = None;
        }
        self.mark_dirty(now);
    }

    pub fn fall_back(&mut self, why: &str) {
        if self.mode == Mode::Inotify {
            self.mode = Mode::Fallback {
                why: why.to_string(),
                since: Instant::now(),
            };
        }
    }

    /// The folder was there at its last scan.
    pub(super) fn is_present(&self) -> bool {
        matches!(self.scan.state, FolderState::Ok | FolderState::Empty)
    }

    pub fn mode_name(&self) -> &'static str {
        match self.mode {
            Mode::Inotify => "inotify",
            Mode::Poll => "poll",
            Mode::Fallback { .. } => "poll (watcher failed)",
            Mode::Waiting => "waiting for the folder",
        }
    }

    pub fn next_due(&self, timing: &Timing) -> Option<Instant> {
        let dirty = self.dirty.map(|(first, last)| {
            let quiet = (last + timing.debounce_quiet).min(first + timing.debounce_max);
            if self.settled() {
                // At once; but a stream of finished files (an upload of
                // many) right after a look gathers for `finished_gap`, so
                // it costs a pass per gap, not one per file.
                last.max(self.last_scan + timing.finished_gap).min(quiet)
            } else {
                quiet
            }
        });
        let periodic = match self.mode {
            Mode::Inotify => None,
            Mode::Poll | Mode::Fallback { .. } => Some(self.last_scan + timing.poll_every),
            Mode::Waiting => Some(self.last_scan + timing.retry_missing_every),
        };
        match (dirty, periodic) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn is_due(&self, now: Instant, timing: &Timing) -> bool {
        self.next_due(timing).is_some_and(|t| now >= t)
    }

    /// A pass is reading this slot as it is now.
    pub fn mark_passed(&mut self) {
        self.passed_digest = Some(self.view_digest());
    }

    /// Whether a pass would see something the last one did not.
    pub fn changed_since_pass(&self) -> bool {
        self.passed_digest != Some(self.view_digest())
    }

    /// A hash of everything a pass reads from this slot: the folder's state
    /// and watch mode, and each file's path, identity, stamp and what it
    /// says. Equal digests mean a pass would compute what the last one
    /// did. A 64-bit hash can in theory hide a
    /// change (2^-64 a rescan); the next change, or the scheduled full
    /// scan, which always runs a pass, catches it.
    fn view_digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        use std::os::unix::ffi::OsStrExt;
        let mut h = std::hash::DefaultHasher::new();
        let s = &self.scan;
        (s.state, s.tokens, &s.error, s.folder_links).hash(&mut h);
        self.mode_name().hash(&mut h);
        self.files.len().hash(&mut h);
        for f in &self.files {
            // Bytes, not `Path::hash`, which walks every component.
            f.path.as_os_str().as_bytes().hash(&mut h);
            (f.folder, f.size, f.mtime, f.file_id).hash(&mut h);
            (f.via_link, f.world_readable, f.fingerprint()).hash(&mut h);
            match &f.content {
                Ok(t) => {
                    (&t.org_name, t.expires_at, t.created_at).hash(&mut h);
                    (&t.variants, t.sample).hash(&mut h);
                }
                Err(e) => e.to_string().hash(&mut h),
            }
        }
        h.finish()
    }
}

pub(super) fn folder_id(path: &std::path::Path) -> Option<(u64, u64)> {
    std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_dir())
        .map(|m| (m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn new_slot() -> Slot {
        Slot::new(Folder {
            path: "/t".into(),
            account: None,
            recipients: Vec::new(),
            allow_empty: false,
            poll: false,
            follow_links: false,
            kinds: vec![crate::token::KindId::Vpp],
            ade_key: None,
            expected_mdm: None,
            webhooks: Vec::new(),
        })
    }

    /// The debounce and the poll interval come from the `Timing` the slot
    /// is asked with, not from built-in values.
    #[test]
    fn an_injected_timing_sets_the_debounce_and_the_poll() {
        let ms = Duration::from_millis;
        let short = Timing {
            debounce_quiet: ms(10),
            debounce_max: ms(25),
            poll_every: ms(40),
            ..Timing::default()
        };
        let mut slot = new_slot();
        slot.mode = Mode::Inotify;
        let t0 = Instant::now();
        slot.mark_dirty(t0);
        assert_eq!(slot.next_due(&short), Some(t0 + ms(10)));
        assert_eq!(slot.next_due(&Timing::default()), Some(t0 + ms(300)));
        assert!(!slot.is_due(t0 + ms(9), &short));
        assert!(slot.is_due(t0 + ms(10), &short));
        // Events keep coming: the wait since the first is capped.
        slot.mark_dirty(t0 + ms(20));
        assert_eq!(slot.next_due(&short), Some(t0 + ms(25)));

        let mut polled = new_slot();
        polled.mode = Mode::Poll;
        assert_eq!(polled.next_due(&short), Some(polled.last_scan + ms(40)));
        assert_eq!(
            polled.next_due(&Timing::default()),
            Some(polled.last_scan + Duration::from_secs(5))
        );
    }

    /// Events that all say their files are finished make the folder due
    /// at once, unless it was looked at within `finished_gap` (a stream of
    /// uploads is gathered); one event of a file still being written puts
    /// the quiet window back.
    #[test]
    fn finished_files_skip_the_quiet_window_but_a_stream_of_them_is_gathered() {
        let ms = Duration::from_millis;
        let timing = Timing {
            debounce_quiet: ms(300),
            debounce_max: ms(1000),
            finished_gap: ms(200),
            ..Timing::default()
        };
        let mut slot = new_slot();
        slot.mode = Mode::Inotify;
        let t0 = slot.last_scan;
        let (a, b) = (Path::new("/t/a.vpptoken"), Path::new("/t/b.vpptoken"));
        // Long after the last look: at once.
        slot.mark_path(t0 + ms(5000), a, true);
        assert_eq!(slot.next_due(&timing), Some(t0 + ms(5000)));
        // A second file, still being written: the quiet window is back...
        slot.mark_path(t0 + ms(5010), b, false);
        assert_eq!(slot.next_due(&timing), Some(t0 + ms(5310)));
        // ...until it is closed.
        slot.mark_path(t0 + ms(5020), b, true);
        assert_eq!(slot.next_due(&timing), Some(t0 + ms(5020)));

        // Right after a look, finished files wait for the gap.
        let mut slot = new_slot();
        slot.mode = Mode::Inotify;
        let t0 = slot.last_scan;
        slot.mark_path(t0 + ms(50), a, true);
        assert_eq!(slot.next_due(&timing), Some(t0 + ms(200)));
        // A whole-folder event: the quiet window again.
        slot.mark_dirty(t0 + ms(60));
        assert_eq!(slot.next_due(&timing), Some(t0 + ms(360)));
    }
}
