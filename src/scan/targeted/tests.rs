use super::*;
use crate::scan::tests::{sample, write};
use crate::scan::{scan_folder, scan_folder_inner};
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
                f.fingerprint.as_ref().map(|fp| fp.as_str().to_owned()),
                content,
            )
        })
        .collect()
}

fn first_scan(root: &Path) -> Vec<FoundFile> {
    scan_folder_inner(0, root, false, Vec::new(), Duration::ZERO).1
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
    assert_eq!(before.len(), 3);

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

    let (state, files) = rescan_paths(0, root, false, before, &named).expect("no full scan");
    let (full_state, full) = scan_folder(0, root, false);
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
    let (state, files) = rescan_paths(0, root, false, before.clone(), &named).unwrap();
    assert!(files.is_empty());
    assert_eq!(state.state, FolderState::Empty);
    let (state, _) = rescan_paths(0, root, true, before, &named).unwrap();
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
        let back = rescan_paths(0, root, false, before.clone(), &[named]);
        let files = back
            .err()
            .unwrap_or_else(|| panic!("{what}: no full scan asked for"));
        assert_eq!(
            summary(&files),
            summary(&before),
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
    let before = first_scan(&root);
    assert!(before.iter().any(|f| f.via_link));
    write(&root.join("c.vpptoken"), &sample("C"));
    assert!(rescan_paths(0, &root, false, before.clone(), &[root.join("c.vpptoken")]).is_err());

    let plain = first_scan(&root)
        .into_iter()
        .filter(|f| !f.via_link)
        .collect::<Vec<_>>();
    std::fs::remove_dir_all(&root).unwrap();
    assert!(rescan_paths(0, &root, false, plain, &[root.join("a.vpptoken")]).is_err());
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
    assert!(rescan_paths(0, root, false, before.clone(), &named[..MAX_PATHS]).is_ok());
    assert!(rescan_paths(0, root, false, before, &named).is_err());
}
