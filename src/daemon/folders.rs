//! The configured folders ([`FolderSet`]): one [`Slot`] per folder, the
//! watcher that watches them, and the rescans events and polls ask for.

mod slot;

use std::path::Path;
use std::time::Instant;

use super::Timing;
use crate::config::{Config, Folder};
use crate::scan::{self, FolderScan, FolderSpec, FolderState, FoundFile};
use crate::watch::{WatchEvent, Watcher};
use slot::folder_id;
pub use slot::{Mode, Slot};

/// What a watch event says about the config file, whose folder is
/// watched too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigNews {
    /// An event named it.
    Changed,
    /// Events were lost: it may have changed.
    EventsLost,
}

/// The configured folders: one slot each, in config order, and the watcher
/// that watches them (and the config file's folder).
pub struct FolderSet {
    slots: Vec<Slot>,
    /// What a scan of each slot looks for, in the same order; a folder's
    /// links are judged against all of them.
    specs: Vec<FolderSpec>,
    /// None: inotify could not be set up, and every folder is polled.
    watcher: Option<Watcher>,
    /// Debounces, poll intervals and the re-arm interval.
    timing: Timing,
}

impl FolderSet {
    /// No folders yet; see [`FolderSet::configure`].
    pub fn new(watcher: Option<Watcher>, timing: Timing) -> FolderSet {
        FolderSet {
            slots: Vec::new(),
            specs: Vec::new(),
            watcher,
            timing,
        }
    }

    /// Each folder's latest scan, in config order.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// Every file the latest scans found.
    pub fn files(&self) -> impl Iterator<Item = &FoundFile> {
        self.slots.iter().flat_map(|s| &s.files)
    }

    /// A pass is reading every slot as it is now.
    pub fn mark_passed(&mut self) {
        for slot in &mut self.slots {
            slot.mark_passed();
        }
    }

    /// Watches the folder holding the config file (not recursively), so
    /// an edit is noticed without SIGHUP.
    pub fn watch_config_dir(&mut self, config_file: &Path) {
        let Some(dir) = config_file.parent() else {
            return;
        };
        if let Some(w) = self.watcher.as_mut() {
            if let Err(e) = w.watch(dir, false, false) {
                tracing::warn!(error = %e, "config changes are picked up on SIGHUP only");
            }
        }
    }

    /// Rebuilds the slots from `cfg`: folders kept keep their watch,
    /// removed ones are unwatched, new ones are scanned at the next pass.
    pub fn configure(&mut self, cfg: &Config) {
        let mut old = std::mem::take(&mut self.slots);
        for slot in &old {
            if !cfg.folders.iter().any(|f| f.path == slot.folder.path) {
                if let Some(w) = self.watcher.as_mut() {
                    w.unwatch(&slot.folder.path);
                }
            }
        }
        for folder in cfg.folders.clone() {
            let slot = match old
                .iter()
                .position(|s| s.folder.path == folder.path && s.folder.poll == folder.poll)
            {
                Some(i) => {
                    let mut s = old.swap_remove(i);
                    if s.folder.follow_links != folder.follow_links && s.mode == Mode::Inotify {
                        // Its watch must follow links, or stop following
                        // them, as its scan now does.
                        s.mode = Mode::Waiting;
                        s.armed_on = None;
                    }
                    if s.folder.kinds != folder.kinds {
                        // Files of an added kind were never named by an
                        // event: only a full scan finds them.
                        s.named = None;
                    }
                    let key = |f: &Folder| f.ade_key.as_ref().and_then(|k| k.key.clone());
                    if key(&s.folder) != key(&folder) {
                        // What a file says depends on the key it was read
                        // with: the next scan reads them again.
                        for f in &mut s.files {
                            f.stamp = None;
                        }
                        s.named = None;
                    }
                    s.folder = folder;
                    s
                }
                None => Slot::new(folder),
            };
            self.slots.push(slot);
        }
        self.specs = cfg.folder_specs();
    }

    /// Marks the folders an event concerns, for a rescan once they are
    /// quiet; says whether the event concerns the config file too.
    pub fn on_event(
        &mut self,
        ev: WatchEvent,
        config_file: &Path,
        now: Instant,
    ) -> Option<ConfigNews> {
        // Events dropped on a full queue: whatever they named, look again
        // everywhere (the flag is taken, so this happens once per burst).
        let lost = if self.watcher.as_ref().is_some_and(Watcher::take_overflow) {
            self.on_event(WatchEvent::Overflow, config_file, now)
        } else {
            None
        };
        let finished = matches!(ev, WatchEvent::Finished(_));
        let news = match ev {
            WatchEvent::Changed(paths) | WatchEvent::Finished(paths) => {
                let mut news = None;
                for p in &paths {
                    if p == config_file {
                        news = Some(ConfigNews::Changed);
                    }
                    for slot in &mut self.slots {
                        if p != &slot.folder.path && p.starts_with(&slot.folder.path) {
                            slot.mark_path(now, p, finished);
                        } else if slot.folder.path.starts_with(p) || slot.follows_links() {
                            // A folder with a link into another one lists
                            // files that change with that one's events.
                            slot.mark_dirty(now);
                        }
                    }
                }
                news
            }
            WatchEvent::Overflow => {
                tracing::warn!(
                    "filesystem events were lost (queue overflow); rescanning every folder"
                );
                for slot in &mut self.slots {
                    slot.watch_lost(now);
                }
                Some(ConfigNews::EventsLost)
            }
            WatchEvent::Failed(e) => {
                tracing::error!(error = %e, "the filesystem watcher failed; polling every folder");
                for slot in &mut self.slots {
                    slot.fall_back(&e);
                }
                None
            }
        };
        news.or(lost)
    }

    /// When the earliest folder must be scanned: events have settled, or a
    /// poll or a look for a missing folder is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|s| s.next_due(&self.timing))
            .min()
    }

    /// Whether a folder that is not polled is due at `now`. Such a rescan
    /// is a one-off (events, the look after arming the watch), so the
    /// memory it freed is worth handing back even when no pass follows; a
    /// polled folder's rescan comes back every few seconds and reuses it.
    pub fn unpolled_due(&self, now: Instant) -> bool {
        self.slots
            .iter()
            .any(|s| !s.folder.poll && s.is_due(now, &self.timing))
    }

    /// Rescans the folders due at `now`; true when one now looks different
    /// to a pass.
    pub fn rescan_due(&mut self, now: Instant, progress: &dyn Fn()) -> bool {
        let mut changed = false;
        for i in 0..self.slots.len() {
            if self.slots[i].is_due(now, &self.timing) {
                changed |= self.rescan(i, progress);
            }
        }
        changed
    }

    /// Rescans every folder, whole (start-up, reload, the scheduled check).
    /// Asks `stop` before each folder; false when it said yes, and the
    /// folders after it were not scanned.
    pub fn rescan_all(&mut self, progress: &dyn Fn(), stop: &dyn Fn() -> bool) -> bool {
        for i in 0..self.slots.len() {
            if stop() {
                return false;
            }
            self.slots[i].mark_dirty(Instant::now());
            self.rescan(i, progress);
        }
        true
    }

    /// Rescans one folder (just the paths events named, when they can tell)
    /// and makes sure it is watched the way it should be. True when the
    /// folder now looks different to a pass (files, their contents, the
    /// folder's state or how it is watched); false lets the caller skip the
    /// pass, so a poll that found nothing new writes nothing.
    fn rescan(&mut self, i: usize, progress: &dyn Fn()) -> bool {
        // Missing as a pass saw it; not merely not scanned yet (at start-up
        // or after a reload every folder is scanned anyway).
        let Some(was_missing) = self
            .slots
            .get(i)
            .map(|s| s.passed_digest.is_some() && !s.is_present())
        else {
            return false;
        };
        self.rescan_inner(i, progress);
        if was_missing && self.slots[i].is_present() {
            // While it was missing, links into it counted as leading out of
            // every folder (see `Links::within`), and nothing else tells the
            // folders holding them that it is back: look at them again.
            let now = Instant::now();
            for slot in &mut self.slots {
                if slot.files.iter().any(FoundFile::is_link_outside) {
                    slot.mark_dirty(now);
                }
            }
        }
        self.slots[i].changed_since_pass()
    }

    fn rescan_inner(&mut self, i: usize, progress: &dyn Fn()) {
        let (Some(slot), Some(spec)) = (self.slots.get_mut(i), self.specs.get(i)) else {
            return;
        };
        let previous = std::mem::take(&mut slot.files);
        let started = std::time::Instant::now();
        // Events on a watched folder that named only files: look at those.
        // Otherwise (and whenever they cannot settle it) scan it all,
        // reusing what was read before for every file whose stamp is
        // unchanged.
        let named = match (slot.dirty.is_some(), &slot.mode, slot.named.take()) {
            (true, Mode::Inotify, Some(paths)) if !paths.is_empty() => Some(paths),
            _ => None,
        };
        let folder = &slot.folder;
        let targeted = match &named {
            Some(paths) => scan::rescan_paths(i, spec, &slot.scan, previous, paths),
            None => Err(previous),
        };
        let how = if targeted.is_ok() {
            "named paths"
        } else {
            "full"
        };
        let (scan, files) = targeted.unwrap_or_else(|previous| {
            let links = scan::Links::for_folder(spec, &self.specs);
            scan::scan_folder_cached(i, spec, &links, previous, progress)
        });
        tracing::debug!(folder = %folder.path.display(), how, files = files.len(), scan_ms = started.elapsed().as_millis() as u64, "folder scanned");
        slot.dirty = None;
        slot.named = Some(Vec::new());
        slot.unsettled.clear();
        slot.last_scan = std::time::Instant::now();
        let present = matches!(scan.state, FolderState::Ok | FolderState::Empty);
        log_folder_state(slot, &scan);
        slot.scanned = true;
        slot.follows_links = scan.folder_links || files.iter().any(FoundFile::followed_a_link);
        slot.scan = scan;
        slot.files = files;
        // Kept until the next scan: without this a Vec grown by doubling
        // holds up to twice its files (1.4 MiB of 3.7 at 10,000 files).
        slot.files.shrink_to_fit();

        if slot.folder.poll {
            slot.mode = Mode::Poll;
            return;
        }
        if !present {
            if let Some(w) = self.watcher.as_mut() {
                w.unwatch(&slot.folder.path);
            }
            slot.mode = Mode::Waiting;
            slot.armed_on = None;
            return;
        }
        let id = folder_id(&slot.folder.path);
        let needs_arming = match &slot.mode {
            Mode::Inotify => slot.armed_on != id,
            Mode::Waiting => true,
            Mode::Poll => true,
            Mode::Fallback { since, .. } => since.elapsed() >= self.timing.rearm_every,
        };
        if !needs_arming {
            return;
        }
        match self.watcher.as_mut() {
            Some(w) => match w.watch(&slot.folder.path, true, slot.folder.follow_links) {
                Ok(()) => {
                    if let Mode::Fallback { why, .. } = &slot.mode {
                        tracing::info!(folder = %slot.folder.path.display(), was = %why, "watching with inotify again");
                    }
                    slot.mode = Mode::Inotify;
                    slot.armed_on = id;
                    // Changes made between the scan and the watch would be
                    // missed: look once more right away.
                    slot.mark_dirty(std::time::Instant::now());
                }
                Err(e) => {
                    // Once per cause, not at every retry.
                    if !matches!(&slot.mode, Mode::Fallback { why, .. } if *why == e) {
                        tracing::warn!(error = %e, "watch failed");
                    }
                    slot.mode = Mode::Fallback {
                        why: e,
                        since: Instant::now(),
                    };
                }
            },
            None => {
                slot.mode = Mode::Fallback {
                    why: "no filesystem watcher".into(),
                    since: Instant::now(),
                }
            }
        }
    }

    /// One line per folder: how it is watched and what it holds; one per
    /// unreadable or world-readable token file.
    pub fn log_watching(&self) {
        for slot in &self.slots {
            tracing::info!(
                folder = %slot.folder.path.display(),
                state = ?slot.scan.state,
                tokens = slot.scan.tokens,
                unreadable = slot.files.iter().filter(|f| f.content.is_err()).count(),
                mode = slot.mode_name(),
                "watching"
            );
            for f in &slot.files {
                if let Err(e) = &f.content {
                    tracing::warn!(file = %f.path.display(), error = %e, "unreadable token file");
                }
                if f.world_readable {
                    tracing::warn!(file = %f.path.display(), "token file is readable by every user of this host; restrict it (chmod o-r)");
                }
            }
        }
    }
}

/// Logs a folder's scanned state where ops need to hear of it. At start a
/// folder found as expected says nothing (the "watching" line counts it;
/// with a thousand folders a line each would bury the rest) and one that
/// cannot be read warns; afterwards every change is logged, going missing
/// or unreadable as a warning.
fn log_folder_state(slot: &Slot, scan: &FolderScan) {
    let folder = slot.folder.path.display();
    let error = scan.error.as_deref().unwrap_or("");
    let bad = matches!(scan.state, FolderState::Missing | FolderState::Unreadable);
    if !slot.scanned {
        match scan.state {
            FolderState::Ok => {}
            FolderState::Empty => tracing::info!(folder = %folder, "folder is empty"),
            FolderState::Missing | FolderState::Unreadable => {
                tracing::warn!(folder = %folder, state = ?scan.state, error, "folder cannot be read yet; it is picked up when it can")
            }
        }
    } else if scan.state != slot.scan.state {
        if bad {
            tracing::warn!(folder = %folder, from = ?slot.scan.state, to = ?scan.state, error, "folder state changed");
        } else {
            tracing::info!(folder = %folder, from = ?slot.scan.state, to = ?scan.state, "folder state changed");
        }
    }
}

#[cfg(test)]
mod tests;
