use super::*;
use crate::token::Fingerprint;
use chrono::{TimeZone, Utc};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::SystemTime;

// Also used by the tests of `targeted`.
pub(super) fn sample(org: &str) -> String {
    token::sample_token(org, Utc.with_ymd_and_hms(2027, 5, 1, 0, 0, 0).unwrap())
}

pub(super) fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn names(files: &[FoundFile], root: &Path) -> Vec<String> {
    files
        .iter()
        .map(|f| {
            f.path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

#[test]
fn token_names_match_any_case_and_skip_hidden() {
    let folder = FolderSpec::new("/t");
    let is_token_name = |name: &[u8]| folder.kind_of(name).is_some();
    assert!(is_token_name(b"sToken_for_Berlin.vpptoken"));
    assert!(is_token_name(b"A.VPPTOKEN"));
    assert!(!is_token_name(b".hidden.vpptoken"));
    assert!(!is_token_name(b".vpptoken"));
    assert!(!is_token_name(b"a.vpptoken~"));
    assert!(!is_token_name(b"a.vpptoken.swp"));
    assert!(!is_token_name(b"a.vpptoken.tmp"));
    assert!(!is_token_name(b"a.p7m"));
}

#[test]
fn walks_recursively_and_skips_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(&root.join("a.vpptoken"), &sample("A"));
    write(&root.join("sub/deeper/b.VppToken"), &sample("B"));
    write(&root.join(".hidden/c.vpptoken"), &sample("C"));
    write(&root.join(".d.vpptoken"), &sample("D"));
    write(&root.join("e.vpptoken~"), &sample("E"));
    write(&root.join("notes.txt"), "hello");
    let (state, files) = scan_folder(0, &spec(root, false), &Links::within([root]));
    assert_eq!(state.state, FolderState::Ok);
    assert_eq!(state.tokens, 2);
    assert_eq!(names(&files, root), ["a.vpptoken", "sub/deeper/b.VppToken"]);
}

#[test]
fn missing_empty_and_not_a_directory_folders() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = scan_folder(
        0,
        &spec(&dir.path().join("nope"), false),
        &Links::within([&dir.path().join("nope")]),
    );
    assert_eq!(s.state, FolderState::Missing);
    let (s, _) = scan_folder(0, &spec(dir.path(), false), &Links::within([dir.path()]));
    assert_eq!(s.state, FolderState::Empty);
    let (s, _) = scan_folder(0, &spec(dir.path(), true), &Links::within([dir.path()]));
    assert_eq!(s.state, FolderState::Ok);
    write(&dir.path().join("file"), "x");
    let (s, _) = scan_folder(
        0,
        &spec(&dir.path().join("file"), false),
        &Links::within([&dir.path().join("file")]),
    );
    assert_eq!(s.state, FolderState::Unreadable);
}

#[test]
fn fifo_with_a_token_name_is_reported_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.vpptoken");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let (_, files) = scan_folder(0, &spec(dir.path(), false), &Links::within([dir.path()]));
    assert_eq!(files.len(), 1);
    assert_eq!(
        files[0].content.as_ref().unwrap_err(),
        &FileError::NotRegular("a FIFO")
    );
    // Reading it directly must not block either.
    assert!(matches!(
        read_limited(&fifo),
        Err(FileError::NotRegular("a FIFO"))
    ));
}

#[test]
fn symlink_loops_and_broken_links_are_reported_and_never_loop() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("sub")).unwrap();
    symlink(root, root.join("sub/up")).unwrap();
    symlink(root.join("loop.vpptoken"), root.join("loop.vpptoken")).unwrap();
    symlink(root.join("gone"), root.join("broken.vpptoken")).unwrap();
    write(&root.join("a.vpptoken"), &sample("A"));
    let (_, files) = scan_folder(0, &spec(root, false), &Links::within([root]));
    let files = dedup(files);
    assert_eq!(
        names(&files, root),
        ["a.vpptoken", "broken.vpptoken", "loop.vpptoken"]
    );
    assert_eq!(
        files[1].content.as_ref().unwrap_err(),
        &FileError::BrokenLink
    );
    assert_eq!(files[2].content.as_ref().unwrap_err(), &FileError::LinkLoop);
}

#[test]
fn a_token_reached_twice_is_one_token_under_its_real_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let text = sample("A");
    write(&root.join("z-real.vpptoken"), &text);
    symlink(root.join("z-real.vpptoken"), root.join("a-link.vpptoken")).unwrap();
    // The same bytes re-wrapped under another name: same fingerprint.
    write(&root.join("y-copy.vpptoken"), &text.replace('\n', "\r\n"));
    let (_, files) = scan_folder(0, &spec(root, false), &Links::within([root]));
    let files = dedup(files);
    assert_eq!(names(&files, root), ["y-copy.vpptoken"]);
}

#[test]
fn an_unreadable_file_is_reported_with_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("empty.vpptoken"), "");
    let (_, files) = scan_folder(0, &spec(dir.path(), false), &Links::within([dir.path()]));
    assert!(matches!(files[0].content, Err(FileError::Token(_))));
    assert!(files[0].fingerprint().is_some());
}

#[test]
fn a_directory_named_like_a_token_is_reported_and_searched() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("x.vpptoken/inner.vpptoken"), &sample("A"));
    let (_, files) = scan_folder(0, &spec(dir.path(), false), &Links::within([dir.path()]));
    assert_eq!(
        names(&files, dir.path()),
        ["x.vpptoken", "x.vpptoken/inner.vpptoken"]
    );
    assert_eq!(
        files[0].content.as_ref().unwrap_err(),
        &FileError::NotRegular("a directory")
    );
}

#[test]
fn world_readable_tokens_are_flagged() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.vpptoken");
    write(&p, &sample("A"));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(read_one(&p, None).world_readable);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(!read_one(&p, None).world_readable);
}

/// Scans `root` with no settling margin, so files written by the test
/// itself count as settled.
fn rescan(root: &Path, previous: Vec<FoundFile>) -> Vec<FoundFile> {
    scan_folder_inner(
        0,
        &spec(root, false),
        &Links::within([root]),
        previous,
        Duration::ZERO,
        &|| {},
    )
    .1
}

/// Waits until the filesystem clock has moved past `path`'s change time,
/// so the next write to it gets a new stamp. File timestamps are coarse;
/// without this a fast test could rewrite within the same tick (the racy
/// case that [`SETTLED`] guards against in real scans).
fn next_tick(path: &Path) {
    let ctime = |p: &Path| {
        let m = std::fs::metadata(p).unwrap();
        (m.ctime(), m.ctime_nsec())
    };
    let was = ctime(path);
    let scratch = path.with_extension("tick");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        std::fs::write(&scratch, "x").unwrap();
        if ctime(&scratch) > was {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "file clock stuck");
    }
    std::fs::remove_file(scratch).unwrap();
}

fn org(f: &FoundFile) -> &str {
    &f.token().expect("a readable token").org_name
}

/// Marks every cached result, so a test can tell reused from re-read.
fn marked(mut files: Vec<FoundFile>) -> Vec<FoundFile> {
    for f in &mut files {
        if let Ok(t) = &mut f.content {
            t.org_name = format!("cached {}", t.org_name);
        }
    }
    files
}

#[test]
fn a_rescan_reuses_unchanged_files_and_rereads_changed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(&root.join("a.vpptoken"), &sample("A"));
    write(&root.join("b.vpptoken"), &sample("B"));
    let first = rescan(root, Vec::new());
    assert!(first.iter().all(|f| f.stamp.is_some()));
    next_tick(&root.join("b.vpptoken"));
    write(&root.join("b.vpptoken"), &sample("C"));
    let second = rescan(root, marked(first));
    assert_eq!(org(&second[0]), "cached A");
    assert_eq!(org(&second[1]), "C");
}

#[test]
fn a_same_size_rewrite_with_the_old_mtime_is_reread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.vpptoken");
    write(&path, &sample("Old"));
    let first = rescan(dir.path(), Vec::new());
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    // Same length, other content, modification time put back: only the
    // change time tells.
    assert_eq!(sample("Old").len(), sample("New").len());
    next_tick(&path);
    write(&path, &sample("New"));
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);
    let second = rescan(dir.path(), marked(first));
    assert_eq!(org(&second[0]), "New");
}

#[test]
fn a_file_replaced_by_rename_or_touched_is_reread() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(&root.join("a.vpptoken"), &sample("A"));
    write(&root.join("b.vpptoken"), &sample("B"));
    let first = rescan(root, Vec::new());
    // An editor's atomic save: new inode under the old name.
    write(&root.join("a.tmp"), &sample("A2"));
    std::fs::rename(root.join("a.tmp"), root.join("a.vpptoken")).unwrap();
    // Only the modification time moves.
    let later = SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(root.join("b.vpptoken"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    let second = rescan(root, marked(first));
    assert_eq!(org(&second[0]), "A2");
    assert_eq!(org(&second[1]), "B");
}

#[test]
fn recently_changed_files_are_not_trusted_to_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("a.vpptoken"), &sample("A"));
    // With the real margin, a file written just now is read again next time.
    let (_, first) = scan_folder_cached(
        0,
        &spec(dir.path(), false),
        &Links::within([dir.path()]),
        Vec::new(),
        &|| {},
    );
    assert!(first[0].stamp.is_none());
    let (_, second) = scan_folder_cached(
        0,
        &spec(dir.path(), false),
        &Links::within([dir.path()]),
        marked(first),
        &|| {},
    );
    assert_eq!(org(&second[0]), "A");
}

#[test]
fn removed_files_leave_the_cache_and_unreadable_ones_are_kept_as_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(&root.join("a.vpptoken"), &sample("A"));
    write(&root.join("bad.vpptoken"), "not a token");
    let first = rescan(root, Vec::new());
    std::fs::remove_file(root.join("a.vpptoken")).unwrap();
    let second = rescan(root, marked(first));
    assert_eq!(names(&second, root), ["bad.vpptoken"]);
    assert!(matches!(second[0].content, Err(FileError::Token(_))));
}

#[test]
fn the_bearer_is_read_from_the_file_only_while_it_holds_the_scanned_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.vpptoken");
    let text = sample("A");
    write(&path, &text);
    let (_, files) = scan_folder(0, &spec(dir.path(), false), &Links::within([dir.path()]));
    let fp = files[0].fingerprint().cloned().unwrap();
    let bearer = read_bearer(&path, fp.as_str()).expect("same token");
    let normalised: String = text.split_ascii_whitespace().collect();
    assert_eq!(bearer.expose(), normalised);

    write(&path, &sample("B"));
    let err = read_bearer(&path, fp.as_str()).unwrap_err();
    assert_eq!(err, NoBearer::Changed);
    assert!(err.to_string().contains("changed since it was scanned"));

    let json = r#"{"token":"dGVzdA==","expDate":"2027-05-01T00:00:00+0000","orgName":"Raw"}"#;
    write(&path, json);
    let raw_fp = Fingerprint::of(json.as_bytes());
    let err = read_bearer(&path, raw_fp.as_str()).unwrap_err();
    assert_eq!(err, NoBearer::RawJson);
    assert!(err.to_string().contains("raw JSON"));

    std::fs::remove_file(&path).unwrap();
    let err = read_bearer(&path, fp.as_str()).unwrap_err();
    assert!(matches!(err, NoBearer::Unreadable(_)), "{err:?}");
    assert!(err.to_string().contains("cannot be read"), "{err}");
}

/// A folder `tokens` and, next to it, a place no folder covers.
fn tokens_and_elsewhere() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tokens");
    let elsewhere = dir.path().join("elsewhere");
    write(&root.join("good.vpptoken"), &sample("Good"));
    write(&elsewhere.join("far.vpptoken"), &sample("Far"));
    write(&elsewhere.join("deeper/x.vpptoken"), &sample("Deeper"));
    write(&elsewhere.join("secret"), "hunter2-password");
    (dir, root, elsewhere)
}

#[test]
fn links_out_of_every_folder_are_reported_and_never_read() {
    let (_dir, root, elsewhere) = tokens_and_elsewhere();
    symlink(elsewhere.join("far.vpptoken"), root.join("far.vpptoken")).unwrap();
    symlink(elsewhere.join("secret"), root.join("pw.vpptoken")).unwrap();
    symlink(&elsewhere, root.join("away")).unwrap();
    symlink("/", root.join("slash")).unwrap();
    // Links out of the folder that a scan would skip anyway stay silent.
    symlink(elsewhere.join("secret"), root.join("notes.txt")).unwrap();
    symlink(&elsewhere, root.join(".hidden")).unwrap();
    let (state, files) = scan_folder(0, &spec(&root, false), &Links::within([&root]));
    assert_eq!(
        names(&files, &root),
        [
            "away",
            "far.vpptoken",
            "good.vpptoken",
            "pw.vpptoken",
            "slash"
        ]
    );
    for f in files.iter().filter(|f| !f.path.ends_with("good.vpptoken")) {
        assert_eq!(
            f.content.as_ref().unwrap_err(),
            &FileError::LinkOutsideFolder,
            "{}",
            f.path.display()
        );
        assert_eq!(
            f.content.as_ref().unwrap_err().to_string(),
            "link_outside_folder"
        );
        // Nothing of the target's bytes: no fingerprint, no size.
        assert!(f.fingerprint().is_none() && f.size == 0, "{f:?}");
        assert!(f.via_link);
    }
    assert_eq!(state.tokens, 1);
    assert!(!state.folder_links, "no folder link was followed");
}

#[test]
fn links_into_any_configured_folder_are_followed_and_deduplicated() {
    let (dir, root, _) = tokens_and_elsewhere();
    let other = dir.path().join("other");
    write(&other.join("o.vpptoken"), &sample("Other"));
    // The other folder is configured through a link of its own.
    symlink(&other, dir.path().join("other-link")).unwrap();
    symlink(&other, root.join("to-other")).unwrap();
    symlink(root.join("good.vpptoken"), root.join("again.vpptoken")).unwrap();
    let links = Links::within([root.clone(), dir.path().join("other-link")]);
    let (state, files) = scan_folder(0, &spec(&root, false), &links);
    assert!(files.iter().all(|f| f.content.is_ok()), "{files:?}");
    assert!(state.folder_links);
    let files = dedup(files);
    assert_eq!(
        names(&files, &root),
        ["good.vpptoken", "to-other/o.vpptoken"]
    );
}

#[test]
fn follow_links_follows_links_out_of_the_folder() {
    let (_dir, root, elsewhere) = tokens_and_elsewhere();
    symlink(&elsewhere, root.join("away")).unwrap();
    let (_, files) = scan_folder(0, &spec(&root, false), &Links::Follow);
    assert_eq!(
        names(&files, &root),
        [
            "away/deeper/x.vpptoken",
            "away/far.vpptoken",
            "good.vpptoken"
        ]
    );
}

#[test]
fn a_configured_folder_that_is_a_link_is_scanned_and_its_links_judged_by_its_target() {
    let (dir, root, elsewhere) = tokens_and_elsewhere();
    let alias = dir.path().join("alias");
    symlink(&root, &alias).unwrap();
    symlink("good.vpptoken", root.join("same.vpptoken")).unwrap();
    symlink(elsewhere.join("far.vpptoken"), root.join("far.vpptoken")).unwrap();
    let (state, files) = scan_folder(0, &spec(&alias, false), &Links::within([&alias]));
    assert_eq!(state.state, FolderState::Ok);
    let files = dedup(files);
    assert_eq!(names(&files, &alias), ["far.vpptoken", "good.vpptoken"]);
    assert_eq!(
        files[0].content.as_ref().unwrap_err(),
        &FileError::LinkOutsideFolder
    );
    assert!(files[1].content.is_ok());
}

#[test]
fn scan_judges_links_against_every_configured_folder() {
    let (dir, root, elsewhere) = tokens_and_elsewhere();
    symlink(elsewhere.join("far.vpptoken"), root.join("far.vpptoken")).unwrap();
    let folder = |path: &Path, follow_links: bool| FolderSpec {
        path: path.to_path_buf(),
        allow_empty: false,
        follow_links,
        kinds: vec![KindId::Vpp],
        ade_key: None,
    };
    let alone = scan(&[folder(&root, false)]);
    assert!(matches!(
        alone.files[0].content,
        Err(FileError::LinkOutsideFolder)
    ));
    // Once `elsewhere` is configured too, the link leads into a folder:
    // one token, shown under its real path.
    let both = scan(&[folder(&root, false), folder(&elsewhere, false)]);
    let shown: Vec<_> = both.files.iter().map(|f| f.path.clone()).collect();
    assert_eq!(
        shown,
        [
            elsewhere.join("deeper/x.vpptoken"),
            elsewhere.join("far.vpptoken"),
            root.join("good.vpptoken")
        ]
    );
    let _ = dir;
    let followed = scan(&[folder(&root, true)]);
    assert!(followed.files.iter().all(|f| f.content.is_ok()));
}

/// Whoever can write to a token folder swaps an entry between the scan's
/// look at it and the read: a plain file becomes a link to the secret.
#[test]
fn a_file_that_became_a_link_after_the_check_is_not_read() {
    let (_dir, root, elsewhere) = tokens_and_elsewhere();
    let path = root.join("good.vpptoken");
    let checked = std::fs::symlink_metadata(&path).unwrap();
    assert!(checked.is_file());

    std::fs::remove_file(&path).unwrap();
    symlink(elsewhere.join("secret"), &path).unwrap();
    let found = read_found(
        path,
        0,
        false,
        &checked,
        Expect::Plain((checked.dev(), checked.ino())),
        Duration::ZERO,
        &mut Vec::new(),
    );

    assert_eq!(found.content.as_ref().unwrap_err(), &FileError::Changed);
    assert!(
        found.fingerprint().is_none() && found.size == 0,
        "{found:?}"
    );
    assert!(found.stamp.is_none(), "the next scan must look again");
}

/// A folder on the way swapped for a link: the name at the end is a plain
/// file, but not the one looked at.
#[test]
fn a_file_behind_a_folder_swapped_for_a_link_is_not_read() {
    let (_dir, root, elsewhere) = tokens_and_elsewhere();
    let path = root.join("sub/far.vpptoken");
    write(&path, &sample("Near"));
    let checked = std::fs::symlink_metadata(&path).unwrap();

    std::fs::remove_dir_all(root.join("sub")).unwrap();
    symlink(&elsewhere, root.join("sub")).unwrap();
    let found = read_found(
        path,
        0,
        false,
        &checked,
        Expect::Plain((checked.dev(), checked.ino())),
        Duration::ZERO,
        &mut Vec::new(),
    );

    assert_eq!(found.content.as_ref().unwrap_err(), &FileError::Changed);
    assert!(found.fingerprint().is_none(), "{found:?}");
}

/// The same with a link: it led into the folder when checked, and to the
/// secret when opened.
#[test]
fn a_link_that_leads_elsewhere_after_the_check_is_not_read() {
    let (_dir, root, elsewhere) = tokens_and_elsewhere();
    let path = root.join("alias.vpptoken");
    symlink(root.join("good.vpptoken"), &path).unwrap();
    let links = Links::within([&root]);
    let target = links
        .allows(&path)
        .expect("a link into the folder is allowed");
    let checked = std::fs::metadata(&path).unwrap();

    std::fs::remove_file(&path).unwrap();
    symlink(elsewhere.join("secret"), &path).unwrap();
    let found = read_found(
        path.clone(),
        0,
        true,
        &checked,
        Expect::Target(target),
        Duration::ZERO,
        &mut Vec::new(),
    );

    assert_eq!(found.content.as_ref().unwrap_err(), &FileError::Changed);
    assert!(
        found.fingerprint().is_none() && found.size == 0,
        "{found:?}"
    );

    // Unswapped, the same check and read do read it.
    std::fs::remove_file(&path).unwrap();
    symlink(root.join("good.vpptoken"), &path).unwrap();
    let target = links.allows(&path).unwrap();
    let found = read_found(
        path,
        0,
        true,
        &checked,
        Expect::Target(target),
        Duration::ZERO,
        &mut Vec::new(),
    );
    assert_eq!(found.token().unwrap().org_name, "Good");
}
