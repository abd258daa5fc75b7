//! Editing the config file for `tokenwatch account password-changed`.
//!
//! The edit goes through `toml_edit`, so every comment, blank line and key
//! order the operator wrote survives; only the `password_changed` line (or
//! a new `[[account]]` table) differs. The result is validated like any
//! config before it is written, and the file is replaced atomically with
//! its owner, group and mode kept: the daemon re-reads it on its own, and a
//! half-written or unreadable config must never be what it finds.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use toml_edit::{ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value};

use super::{parse, Config, ConfigError};

/// How far in the future `--at` may lie: clocks of the host and of the
/// person who changed the password drift a little, a typo drifts further.
pub const MAX_FUTURE_SKEW: Duration = Duration::minutes(5);

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("cannot read config {}: {cause}", file.display())]
    Read { file: PathBuf, cause: io::Error },
    #[error("{} not changed: {message}", file.display())]
    Refused { file: PathBuf, message: String },
    /// The config is (or would become) invalid; nothing was written.
    #[error("{} not changed: {error}", error.file.display())]
    Invalid { error: ConfigError },
    #[error("--at {text:?}: {message}")]
    BadTime { text: String, message: String },
    /// A step of the atomic replacement failed; the original file is
    /// untouched unless `action` is the final folder sync.
    #[error("cannot {action} {}: {cause}", file.display())]
    Write {
        action: &'static str,
        file: PathBuf,
        cause: io::Error,
    },
}

/// What happened to the `[[account]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `password_changed` added to an existing table.
    Set,
    /// An existing `password_changed` replaced; its old value as written.
    Replaced { previous: String },
    /// A new `[[account]]` table appended.
    Appended,
}

/// An edit made in memory and validated, not yet written.
#[derive(Debug, Clone)]
pub struct Edited {
    pub text: String,
    /// The edited text, validated.
    pub config: Config,
    pub at: DateTime<Utc>,
    pub change: Change,
}

/// An edit written to disk.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub edited: Edited,
    /// The file actually replaced (the target when the config is a symlink).
    pub written: PathBuf,
    /// The config path is a symlink: the daemon watches the link's folder
    /// and sees no event when the target is replaced.
    pub via_symlink: bool,
}

/// Records that `account`'s password changed at `at` (`--at`, default
/// `now`) in the config file `path`, keeping its layout, owner, group and
/// mode. Nothing is written unless the result is a valid config.
pub fn record_password_change(
    path: &Path,
    account: &str,
    at: Option<&str>,
    add: bool,
    now: DateTime<Utc>,
) -> Result<Recorded, EditError> {
    let file = super::absolute(path);
    let read_err = |cause| EditError::Read {
        file: file.clone(),
        cause,
    };
    let via_symlink = fs::symlink_metadata(&file)
        .map_err(read_err)?
        .file_type()
        .is_symlink();
    // Writing through the link would replace the link with a plain file.
    let target = fs::canonicalize(&file).map_err(read_err)?;
    let bytes = fs::read(&target).map_err(read_err)?;
    let text = String::from_utf8(bytes).map_err(|_| EditError::Refused {
        file: file.clone(),
        message: "it is not UTF-8 text".into(),
    })?;
    // Validated as the path the daemon loads, so relative paths resolve
    // against the same folder.
    let edited = edit_text(&text, &file, account, at, add, now)?;
    replace_file(&target, text.as_bytes(), edited.text.as_bytes())?;
    Ok(Recorded {
        edited,
        written: target,
        via_symlink,
    })
}

/// The pure part of [`record_password_change`]: config text in, edited
/// and validated text out.
pub fn edit_text(
    text: &str,
    file: &Path,
    account: &str,
    at: Option<&str>,
    add: bool,
    now: DateTime<Utc>,
) -> Result<Edited, EditError> {
    let refused = |message: String| EditError::Refused {
        file: file.to_path_buf(),
        message,
    };
    if account.trim().is_empty() || account.chars().any(char::is_control) {
        return Err(refused(format!(
            "{account:?} is not an account name (it must be non-empty, without control characters)"
        )));
    }
    let mut doc: DocumentMut = match text.parse() {
        Ok(doc) => doc,
        // Located, like every other config problem.
        Err(_) => return Err(invalid(text, file)),
    };
    let at = match at {
        None => now,
        Some(t) => {
            let tz = timezone_of(&doc).map_err(|message| EditError::BadTime {
                text: t.to_string(),
                message,
            })?;
            parse_at(t, tz).map_err(|message| EditError::BadTime {
                text: t.to_string(),
                message,
            })?
        }
    };
    // Whole seconds: finer than the config shows is noise.
    let at = at.with_nanosecond(0).unwrap_or(at);
    if at > now + MAX_FUTURE_SKEW {
        return Err(EditError::BadTime {
            text: crate::show::rfc3339(&at),
            message: format!(
                "is in the future (now is {}); record a password change once it has happened",
                crate::show::rfc3339(&now)
            ),
        });
    }
    let change = set_password_changed(&mut doc, account, at, add).map_err(refused)?;
    let new_text = doc.to_string();
    match parse(&new_text, file) {
        Ok(config) => Ok(Edited {
            text: new_text,
            config,
            at,
            change,
        }),
        Err(error) => match parse(text, file) {
            // Problems the file has already are reported with the file's
            // own line numbers, not those of a text that exists nowhere.
            Err(original) => Err(EditError::Invalid { error: original }),
            Ok(_) => Err(EditError::Invalid { error }),
        },
    }
}

fn invalid(text: &str, file: &Path) -> EditError {
    match parse(text, file) {
        Err(error) => EditError::Invalid { error },
        Ok(_) => EditError::Refused {
            file: file.to_path_buf(),
            message: "toml_edit cannot read it".into(),
        },
    }
}

/// The configured `timezone`, for `--at` in local time.
fn timezone_of(doc: &DocumentMut) -> Result<Tz, String> {
    match doc.get("timezone") {
        None => Ok(chrono_tz::UTC),
        Some(item) => item
            .as_str()
            .and_then(|s| s.parse::<Tz>().ok())
            .ok_or_else(|| {
                "the config's timezone is not valid, so a local time cannot be read: fix it, or give an RFC 3339 time such as 2026-10-01T12:00:00Z".to_string()
            }),
    }
}

/// `--at`: RFC 3339 (`2026-10-01T12:00:00Z`, `2026-10-01T14:00:00+02:00`),
/// or `YYYY-MM-DD HH:MM[:SS]` in `tz`. A local time skipped by a
/// daylight-saving change is refused; one that occurs twice (clocks go
/// back) means the earlier, which invalidates at least as many tokens.
pub fn parse_at(text: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = ["%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .ok_or_else(|| {
            "not a time: use RFC 3339 (2026-10-01T12:00:00Z, 2026-10-01T14:00:00+02:00) or YYYY-MM-DD HH:MM in the configured timezone".to_string()
        })?;
    match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(a, b) => Ok(a.min(b).with_timezone(&Utc)),
        chrono::LocalResult::None => Err(format!(
            "{local} does not exist in {tz} (the clocks skipped it at a daylight-saving change); give the time in RFC 3339 with its UTC offset"
        )),
    }
}

/// Sets `password_changed` on the `[[account]]` whose `id` is `account`,
/// appending that table when a folder or token refers to the account (or
/// `add` says it is new). An account nothing refers to is refused: a typo
/// must not pass silently.
pub fn set_password_changed(
    doc: &mut DocumentMut,
    account: &str,
    at: DateTime<Utc>,
    add: bool,
) -> Result<Change, String> {
    let stamp = at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let datetime: toml_edit::Datetime = stamp
        .parse()
        .map_err(|e| format!("cannot write {stamp} as a TOML date-time: {e}"))?;
    let new_value = Value::from(datetime);

    if let Some(table) = account_table(doc, account)? {
        return Ok(match table.get_mut("password_changed") {
            Some(Item::Value(old)) => {
                let mut bare = old.clone();
                bare.decor_mut().clear();
                let previous = bare.to_string();
                // The old value's spacing and trailing comment stay.
                let decor = old.decor().clone();
                *old = new_value;
                *old.decor_mut() = decor;
                Change::Replaced { previous }
            }
            _ => {
                table.insert("password_changed", Item::Value(new_value));
                Change::Set
            }
        });
    }

    if !add && !referenced(doc, account) {
        let mut known = known_accounts(doc);
        known.sort();
        known.dedup();
        let hint = match known.iter().find(|k| k.eq_ignore_ascii_case(account)) {
            Some(k) => format!("did you mean {k:?}? "),
            None if known.is_empty() => "no account is configured; ".to_string(),
            None => format!("known: {}; ", known.join(", ")),
        };
        return Err(format!(
            "no [[folder]], [[token]] or [[account]] refers to account {account:?}: {hint}give --add to record it anyway"
        ));
    }
    append_account(doc, account, new_value)?;
    Ok(Change::Appended)
}

/// The table of `[[account]]` (or an inline `account = [{...}]`) with this id.
fn account_table<'d>(
    doc: &'d mut DocumentMut,
    account: &str,
) -> Result<Option<&'d mut dyn toml_edit::TableLike>, String> {
    let Some(item) = doc.get_mut("account") else {
        return Ok(None);
    };
    let has_id = |t: &dyn toml_edit::TableLike| t.get("id").and_then(Item::as_str) == Some(account);
    match item {
        Item::ArrayOfTables(a) => Ok(a
            .iter_mut()
            .find(|t| has_id(*t))
            .map(|t| t as &mut dyn toml_edit::TableLike)),
        Item::Value(Value::Array(a)) => Ok(a
            .iter_mut()
            .filter_map(Value::as_inline_table_mut)
            .find(|t| has_id(*t))
            .map(|t| t as &mut dyn toml_edit::TableLike)),
        _ => Err("`account` is not a list of [[account]] tables".into()),
    }
}

fn append_account(doc: &mut DocumentMut, account: &str, at: Value) -> Result<(), String> {
    // Where the new table goes: right after the last [[account]], or after
    // the last table of the file.
    let last_position = max_position(doc.as_table());
    match doc.get_mut("account") {
        None => {
            let mut table = Table::new();
            table.insert("id", account.into());
            table.insert("password_changed", at.into());
            table.set_position(Some(last_position + 1));
            table.decor_mut().set_prefix("\n");
            let mut array = ArrayOfTables::new();
            array.push(table);
            doc.insert("account", Item::ArrayOfTables(array));
        }
        Some(Item::ArrayOfTables(array)) => {
            let after = array
                .iter()
                .filter_map(Table::position)
                .max()
                .unwrap_or(last_position);
            let mut table = Table::new();
            table.insert("id", account.into());
            table.insert("password_changed", at.into());
            // Ties keep document order, and the new table is visited last.
            table.set_position(Some(after));
            table.decor_mut().set_prefix("\n");
            array.push(table);
        }
        Some(Item::Value(Value::Array(array))) => {
            let mut table = InlineTable::new();
            table.insert("id", account.into());
            table.insert("password_changed", at);
            array.push(table);
        }
        Some(_) => return Err("`account` is not a list of [[account]] tables".into()),
    }
    Ok(())
}

fn max_position(table: &Table) -> isize {
    let mut max = table.position().unwrap_or(0);
    for (_, item) in table.iter() {
        match item {
            Item::Table(t) => max = max.max(max_position(t)),
            Item::ArrayOfTables(a) => {
                for t in a.iter() {
                    max = max.max(max_position(t));
                }
            }
            _ => {}
        }
    }
    max
}

/// Every `key` string in the tables of `[[name]]` (or `name = [{...}]`).
fn strings_in(doc: &DocumentMut, name: &str, key: &str) -> Vec<String> {
    let tables: Vec<&dyn toml_edit::TableLike> = match doc.get(name) {
        Some(Item::ArrayOfTables(a)) => a.iter().map(|t| t as &dyn toml_edit::TableLike).collect(),
        Some(Item::Value(Value::Array(a))) => a
            .iter()
            .filter_map(Value::as_inline_table)
            .map(|t| t as &dyn toml_edit::TableLike)
            .collect(),
        _ => Vec::new(),
    };
    tables
        .into_iter()
        .filter_map(|t| t.get(key).and_then(Item::as_str).map(str::to_string))
        .collect()
}

fn known_accounts(doc: &DocumentMut) -> Vec<String> {
    let mut all = strings_in(doc, "folder", "account");
    all.extend(strings_in(doc, "token", "account"));
    all.extend(strings_in(doc, "account", "id"));
    all
}

fn referenced(doc: &DocumentMut, account: &str) -> bool {
    known_accounts(doc).iter().any(|a| a == account)
}

/// Replaces `target`, which held `was` when it was read, with `bytes` so
/// that a reader sees the old file or the new one, never a mix, and the new
/// one survives a crash: a temp file in the same folder gets the original's
/// owner, group and mode, is synced, renamed over, and the folder is synced.
///
/// Just before the rename the file is read again: if someone saved it in
/// the meantime (an editor, a second `tokenwatch account`), nothing is
/// written and the error says so, rather than their change being lost.
/// Only a save within the moment between that read and the rename can
/// still be overwritten; editors take no lock that could close it.
pub fn replace_file(target: &Path, was: &[u8], bytes: &[u8]) -> Result<(), EditError> {
    let fail = |action: &'static str, file: &Path| {
        let file = file.to_path_buf();
        move |cause| EditError::Write {
            action,
            file,
            cause,
        }
    };
    let meta = fs::metadata(target).map_err(fail("read the owner and mode of", target))?;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tokenwatch-{}-{:08x}.tmp",
        std::process::id(),
        rand::random::<u32>()
    ));
    // Private until it has the original's owner and mode.
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail("create a temp file", &tmp))?;
    let written = (|| {
        f.write_all(bytes).map_err(fail("write", &tmp))?;
        // chown before chmod: chown may clear set-id bits.
        std::os::unix::fs::fchown(&f, Some(meta.uid()), Some(meta.gid())).map_err(|cause| {
            EditError::Write {
                action: "keep the owner and group (chown) of",
                file: target.to_path_buf(),
                cause,
            }
        })?;
        f.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(fail("keep the mode (chmod) of", target))?;
        f.sync_all().map_err(fail("sync", &tmp))?;
        let now = fs::read(target).map_err(fail("read again", target))?;
        if now != was {
            return Err(EditError::Refused {
                file: target.to_path_buf(),
                message: "it was changed by someone else while tokenwatch edited it; \
                          run the command again"
                    .into(),
            });
        }
        fs::rename(&tmp, target).map_err(fail("replace", target))
    })();
    drop(f);
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(fail("sync the folder", &dir))
}

#[cfg(test)]
mod tests;
