use super::*;
use crate::scan::tests::{sample, write};
use crate::scan::FileError;
use crate::scan::FolderSpec;
use crate::scan::{scan_folder, scan_folder_inner, spec, Links};
use crate::token::KindId;
use std::os::unix::fs::symlink;
use std::time::Duration;

/// What a scan says of each file, comparable across scans.
fn summary(files: &[FoundFile]) -> Vec<(PathBuf, bool, Option<String>, String)> {
    files
        .iter()
        .map(|f| {
            let content = match &f.content {
                Ok(t) => format!("token of {}", t.org_name),
                Err(e) => e.to_string(),
            };
            (
                f.path.clone(),
                f.via_link,
                f.fingerprint().map(|fp| fp.as_str().to_owned()),
                content,
            )
        })
        .collect()
}

type Scanned = (FolderScan, Vec<FoundFile>);

/// A first scan of a folder with `follow_links = true`.
fn followed(root: &Path) -> Scanned {
    scan_folder_inner(
        0,
        &spec(root, false),
        &Links::Follow,
        Vec::new(),
        Duration::ZERO,
        &|| {},
    )
}

fn first_scan(root: &Path) -> Scanned {
    scan_folder_inner(
        0,
        &spec(root, false),
        &Links::within([root]),
        Vec::new(),
        Duration::ZERO,
        &|| {},
    )
}

/// [`rescan_paths`] after `before`, for a folder at `root`.
fn update(
    root: &Path,
    allow_empty: bool,
    before: &Scanned,
    named: &[PathBuf],
) -> Result<Scanned, Vec<FoundFile>> {
    let folder = FolderSpec {
        path: root.to_path_buf(),
        allow_empty,
        follow_links: false,
        kinds: vec![KindId::Vpp],
        ade_key: None,
    };
    rescan_paths(0, &folder, &before.0, before.1.clone(), named)
}

#[test]
fn named_paths_give_what_a_full_scan_gives() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(&root.join("a.vpptoken"), &sample("A"));
    write(&root.join("sub/b.vpptoken"), &sample("B"));
    write(&root.join("sub/keep.vpptoken"), &sample("Keep"));
    write(&root.join("old-notes.txt"), "x");
    std::fs::create_dir(root.join("empty")).unwrap();
    let before = first_scan(root);
    assert_eq!(before.1.len(), 3);

    // Added, rewritten, removed, renamed in from outside, a FIFO, and names
    // a scan ignores.
    write(&root.join("c.vpptoken"), &sample("C"));
    write(&root.join("a.vpptoken"), &sample("A2"));
    std::fs::remove_file(root.join("sub/b.vpptoken")).unwrap();
    let outside = tempfile::tempdir().unwrap();
    write(&outside.path().join("moved.vpptoken"), &sample("Moved"));
    std::fs::rename(
        outside.path().join("moved.vpptoken"),
        root.join("sub/moved.vpptoken"),
    )
    .unwrap();
    let fifo = std::ffi::CString::new(root.join("pipe.vpptoken").as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    write(&root.join("notes.txt"), "hello");
    write(&root.join(".hidden.vpptoken"), &sample("Hidden"));
    write(&root.join("sub/b.vpptoken.swp"), "x");
    std::fs::remove_file(root.join("old-notes.txt")).unwrap();
    std::fs::remove_dir(root.join("empty")).unwrap();
    let named: Vec<PathBuf> = [
        "c.vpptoken",
        "a.vpptoken",
        "sub/b.vpptoken",
        "sub/moved.vpptoken",
        "pipe.vpptoken",
        "notes.txt",
        ".hidden.vpptoken",
        "sub/b.vpptoken.swp",
        "old-notes.txt",
        "empty",
        "a.vpptoken",
    ]
    .iter()
    .map(|n| root.join(n))
    .collect();

    let (state, files) = update(root, false, &before, &named).expect("no full scan");
    let (full_state, full) = scan_folder(0, &spec(root, false), &Links::within([root]));
    assert_eq!(summary(&files), summary(&full));
    assert_eq!(
        (state.state, state.tokens),
        (full_state.state, full_state.tokens)
    );
    assert_eq!(state.tokens, 4, "{:#?}", summary(&files));
}

#[test]
fn the_last_token_removed_leaves_an_empty_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(&root.join("a.vpptoken"), &sample("A"));
    let before = first_scan(root);
    std::fs::remove_file(root.join("a.vpptoken")).unwrap();
    let named = [root.join("a.vpptoken")];
    let (state, files) = update(root, false, &before, &named).unwrap();
    assert!(files.is_empty());
    assert_eq!(state.state, FolderState::Empty);
    let (state, _) = update(root, true, &before, &named).unwrap();
    assert_eq!(state.state, FolderState::Ok);
}

/// Each case: what to do to the folder, and the path the watcher names.
#[test]
fn what_the_named_paths_cannot_settle_asks_for_a_full_scan() {
    type Case = (&'static str, fn(&Path) -> PathBuf);
    let cases: [Case; 8] = [
        ("the folder itself", |root| root.to_path_buf()),
        ("a new folder", |root| {
            write(&root.join("new/x.vpptoken"), &sample("X"));
            root.join("new")
        }),
        ("a folder with tokens removed", |root| {
            std::fs::remove_dir_all(root.join("sub")).unwrap();
            root.join("sub")
        }),
        ("a new symlink", |root| {
            symlink(root.join("a.vpptoken"), root.join("link.vpptoken")).unwrap();
            root.join("link.vpptoken")
        }),
        ("a folder named like a token", |root| {
            std::fs::create_dir(root.join("dir.vpptoken")).unwrap();
            root.join("dir.vpptoken")
        }),
        ("a path outside the folder", |root| {
            root.parent().unwrap().join("elsewhere.vpptoken")
        }),
        ("a path with ..", |root| root.join("sub/../a.vpptoken")),
        ("a file in a folder replaced since", |root| {
            std::fs::remove_dir_all(root.join("sub")).unwrap();
            symlink(root.join("real"), root.join("sub")).unwrap();
            root.join("sub/b.vpptoken")
        }),
    ];
    for (what, change) in cases {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(&root.join("a.vpptoken"), &sample("A"));
        write(&root.join("sub/b.vpptoken"), &sample("B"));
        write(&root.join("real/r.vpptoken"), &sample("R"));
        let before = first_scan(root);
        let named = change(root);
        let back = update(root, false, &before, &[named]);
        let files = back
            .err()
            .unwrap_or_else(|| panic!("{what}: no full scan asked for"));
        assert_eq!(
            summary(&files),
            summary(&before.1),
            "{what}: files not given back"
        );
    }
}

#[test]
fn a_folder_reached_through_a_link_or_gone_asks_for_a_full_scan() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tokens");
    write(&root.join("a.vpptoken"), &sample("A"));
    write(&dir.path().join("elsewhere/b.vpptoken"), &sample("B"));
    symlink(dir.path().join("elsewhere"), root.join("linked")).unwrap();
    let before = followed(&root);
    assert!(before.0.folder_links && before.1.iter().any(|f| f.via_link));
    write(&root.join("c.vpptoken"), &sample("C"));
    assert!(update(&root, false, &before, &[root.join("c.vpptoken")]).is_err());

    // A linked folder with no token in it (yet) is enough.
    let (state, plain) = followed(&root);
    let plain = (
        state,
        plain
            .into_iter()
            .filter(|f| !f.via_link)
            .collect::<Vec<_>>(),
    );
    assert!(update(&root, false, &plain, &[root.join("c.vpptoken")]).is_err());

    let (mut state, files) = plain;
    state.folder_links = false;
    let unlinked = (state, files);
    assert!(update(&root, false, &unlinked, &[root.join("c.vpptoken")]).is_ok());
    std::fs::remove_dir_all(&root).unwrap();
    assert!(update(&root, false, &unlinked, &[root.join("a.vpptoken")]).is_err());
}

#[test]
fn too_many_named_paths_ask_for_a_full_scan() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(&root.join("a.vpptoken"), &sample("A"));
    let before = first_scan(root);
    let named: Vec<PathBuf> = (0..=MAX_PATHS)
        .map(|i| root.join(format!("n{i}.txt")))
        .collect();
    assert!(update(root, false, &before, &named[..MAX_PATHS]).is_ok());
    assert!(update(root, false, &before, &named).is_err());
}

#[test]
fn a_file_with_several_names_asks_for_a_full_scan() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(&root.join("a.vpptoken"), &sample("A"));
    std::fs::hard_link(root.join("a.vpptoken"), root.join("b.vpptoken")).unwrap();
    let before = first_scan(root);
    // Written in place through one name: the other changes too.
    std::fs::write(root.join("b.vpptoken"), sample("B")).unwrap();
    assert!(update(root, false, &before, &[root.join("b.vpptoken")]).is_err());
}

#[test]
fn files_read_too_soon_after_a_change_are_read_again_with_the_named_ones() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(&root.join("a.vpptoken"), &sample("A"));
    // A real (settling) scan: the file was just written, so its stamp is
    // not trusted.
    let before = scan_folder(0, &spec(root, false), &Links::within([root]));
    assert!(before.1[0].stamp.is_none());
    // Rewritten without an event reaching us; another file is named.
    write(&root.join("a.vpptoken"), &sample("A2"));
    write(&root.join("c.vpptoken"), &sample("C"));
    let (_, files) = update(root, false, &before, &[root.join("c.vpptoken")]).unwrap();
    assert_eq!(
        summary(&files),
        summary(&scan_folder(0, &spec(root, false), &Links::within([root])).1)
    );
    assert_eq!(summary(&files)[0].3, "token of A2");
}

#[test]
fn a_link_out_of_the_folders_does_not_force_full_scans() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tokens");
    write(&root.join("a.vpptoken"), &sample("A"));
    write(&dir.path().join("elsewhere/b.vpptoken"), &sample("B"));
    symlink(
        dir.path().join("elsewhere/b.vpptoken"),
        root.join("out.vpptoken"),
    )
    .unwrap();
    symlink(dir.path().join("elsewhere"), root.join("away")).unwrap();
    let before = first_scan(&root);
    assert!(!before.0.folder_links);
    assert!(before
        .1
        .iter()
        .any(|f| matches!(f.content, Err(FileError::LinkOutsideFolder))));
    // Nothing written anywhere can change what a link out of every
    // folder shows, so named paths settle it.
    write(&root.join("c.vpptoken"), &sample("C"));
    let (_, files) = update(&root, false, &before, &[root.join("c.vpptoken")]).unwrap();
    assert_eq!(summary(&files), summary(&first_scan(&root).1));
    // The link itself, named: the full scan judges where it leads now.
    std::fs::remove_file(root.join("out.vpptoken")).unwrap();
    symlink("a.vpptoken", root.join("out.vpptoken")).unwrap();
    assert!(update(&root, false, &before, &[root.join("out.vpptoken")]).is_err());
}
