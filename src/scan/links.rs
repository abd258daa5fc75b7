//! Which symlinks below a folder the walk follows: those leading into a
//! configured folder, or all of them where `follow_links` says so.

use std::cell::OnceCell;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::FolderSpec;

/// Where the symlinks below a folder may lead and still be followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Links {
    /// `follow_links = true`: anywhere.
    Follow,
    /// Only into these folders: the canonical paths of every configured
    /// folder (the configured path may itself be a link).
    Within(Vec<PathBuf>),
    /// [`Links::Within`] these configured folders, resolved when the walk
    /// meets its first link: a folder without links needs none of it, and
    /// resolving 1,000 folders for each of 1,000 folders' scans was 6
    /// million `readlink` calls, 15 % of the daemon's CPU in a first start
    /// on a million tokens (BENCHMARKS.md, the million-credential rows).
    WithinLazily {
        folders: Vec<PathBuf>,
        canonical: OnceCell<Vec<PathBuf>>,
    },
}

impl Links {
    /// The rule for `folder`, one of the configured folders `all`.
    pub fn for_folder(folder: &FolderSpec, all: &[FolderSpec]) -> Links {
        if folder.follow_links {
            Links::Follow
        } else {
            Links::WithinLazily {
                folders: all.iter().map(|f| f.path.clone()).collect(),
                canonical: OnceCell::new(),
            }
        }
    }

    fn canonical<P: AsRef<Path>>(folders: impl IntoIterator<Item = P>) -> Vec<PathBuf> {
        folders
            .into_iter()
            .filter_map(|p| std::fs::canonicalize(p).ok())
            .collect()
    }

    /// Links may lead into `folders` (those that exist now).
    pub fn within<P: AsRef<Path>>(folders: impl IntoIterator<Item = P>) -> Links {
        Links::Within(Links::canonical(folders))
    }

    /// May the walk follow the link at `link`? Resolves every link on
    /// the way; a target that cannot be resolved is outside. When it may,
    /// gives the target's device and inode: the link can be swapped before
    /// the target is opened, and the file opened must be this one.
    pub(super) fn allows(&self, link: &Path) -> Option<(u64, u64)> {
        let roots = match self {
            Links::Follow => None,
            Links::Within(roots) => Some(roots),
            Links::WithinLazily { folders, canonical } => {
                Some(canonical.get_or_init(|| Links::canonical(folders)))
            }
        };
        let target = match roots {
            None => link.to_path_buf(),
            Some(roots) => {
                let target = std::fs::canonicalize(link).ok()?;
                if !roots.iter().any(|r| target.starts_with(r)) {
                    return None;
                }
                target
            }
        };
        std::fs::metadata(target).ok().map(|m| (m.dev(), m.ino()))
    }
}
