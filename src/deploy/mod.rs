//! `rallypoint deploy DIR`: puts a new export live in one step. The export is checked
//! ([`export_check`]), copied next to the live one as a new release, given `.br`/`.gz` sidecars
//! ([`sidecars`]), and `web.root` is switched to it by replacing one symbolic link
//! ([`layout`]). The releases before it stay (`--keep`, and always the one live until then) for
//! players still loading them and for `rallypoint deploy --rollback [ID]`, which goes back to
//! what was live before ([`history`]) or to a release named from `--list`. The running server
//! needs no signal: it reads the link.

mod export_check;
mod history;
pub mod layout;
pub mod pages;
mod sidecars;

pub use sidecars::{Compressing, Effort};

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Why nothing was switched.
#[derive(Debug)]
pub enum DeployError {
    /// The folder is not a whole export; each problem says what to fix.
    Broken(Vec<String>),
    /// Another deploy holds the releases folder.
    Busy(PathBuf),
    /// `--rollback` with no release before the live one.
    NoPrevious,
    /// `--rollback ID` naming no kept release.
    NoSuchRelease(String),
    /// `--rollback ID` naming the live release.
    AlreadyLive(String),
    /// `--rollback` when `web.root` is no deployed release.
    NotDeployed(PathBuf),
    /// `web.root` exists and is neither a folder nor a link.
    RootNotAFolder(PathBuf),
    /// The export's files add up to more than `admin.max_release_size` (this many bytes).
    TooLarge(u64),
    Io(String, io::Error),
}

impl std::fmt::Display for DeployError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeployError::Broken(problems) => {
                write!(f, "not deployed, the export is not whole:")?;
                for p in problems {
                    write!(f, "\n  - {p}")?;
                }
                Ok(())
            }
            DeployError::Busy(dir) => write!(f, "another deploy is under way in {}", dir.display()),
            DeployError::NoPrevious => f.write_str("no release before the live one to go back to"),
            DeployError::NoSuchRelease(id) => write!(
                f,
                "no release {id:?} is kept (rallypoint deploy --list shows those that are)"
            ),
            DeployError::AlreadyLive(id) => write!(f, "{id} is already live"),
            DeployError::NotDeployed(root) => write!(
                f,
                "{} is not a deployed release (deploy one first: rallypoint deploy DIR)",
                root.display()
            ),
            DeployError::RootNotAFolder(root) => {
                write!(f, "web.root {} is a file, not a folder", root.display())
            }
            DeployError::TooLarge(max) => write!(
                f,
                "not deployed, the export is larger than admin.max_release_size ({max} bytes): \
                 leave out what the game does not load, or raise the limit"
            ),
            DeployError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl std::error::Error for DeployError {}

/// What a deploy or rollback did.
#[derive(Debug)]
pub struct Switched {
    /// The release now live.
    pub id: String,
    /// The one live before, if any.
    pub previous: Option<String>,
    /// Sidecars written.
    pub compressed: usize,
    /// Sidecars taken from the previous release (the same file there).
    pub reused: usize,
    /// Old releases removed (beyond `keep`).
    pub removed: Vec<String>,
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> DeployError {
    let what = what.into();
    move |e| DeployError::Io(what, e)
}

/// Checks `export`, copies it as a new release beside `root` (refused if its files add up to
/// more than `max_size` bytes, 0 = no limit), compresses it with `effort` (telling `progress`
/// how far it is), switches `root` to it, and keeps the `keep` newest releases (and the live
/// one, and the one live until now).
pub fn deploy(
    root: &Path,
    export: &Path,
    keep: usize,
    effort: Effort,
    max_size: u64,
    progress: &mut dyn FnMut(&Compressing),
) -> Result<Switched, DeployError> {
    let problems = export_check::problems(export);
    if !problems.is_empty() {
        return Err(DeployError::Broken(problems));
    }
    let releases = layout::releases_dir(root);
    std::fs::create_dir_all(&releases)
        .map_err(io_err(format!("cannot create {}", releases.display())))?;
    let _lock = lock(&releases)?;
    let started = SystemTime::now();
    let id = next_id(&layout::releases(root), started);
    let incoming = releases.join(format!(".incoming-{id}"));
    let _ = std::fs::remove_dir_all(&incoming);
    let prepared = (|| {
        let mut budget = Budget(if max_size == 0 { u64::MAX } else { max_size });
        copy_tree(export, &incoming, &mut budget).map_err(|e| match e.kind() {
            io::ErrorKind::FileTooLarge => DeployError::TooLarge(max_size),
            _ => DeployError::Io(format!("cannot copy {}", export.display()), e),
        })?;
        let live = layout::current(root).and_then(|id| layout::release(root, &id));
        let written = sidecars::write_all(&incoming, live.as_deref(), effort, progress)
            .map_err(io_err("cannot compress the export"))?;
        File::create(incoming.join(layout::RELEASED))
            .map_err(io_err("cannot stamp the release"))?;
        std::fs::rename(&incoming, releases.join(&id))
            .map_err(io_err("cannot name the release"))?;
        Ok(written)
    })();
    let written = prepared.inspect_err(|_| {
        // Nothing half-made stays behind.
        let _ = std::fs::remove_dir_all(&incoming);
    })?;
    let previous = layout::current(root);
    let kept = switch(root, &id, started - Duration::from_secs(1))?;
    let previous = previous.or(kept);
    let past = history::read(&releases);
    // Live already: a history that cannot be written costs only the rollback's memory of it.
    let _ = history::write(
        &releases,
        &history::went_live(past, previous.as_deref(), &id),
    );
    let spared: Vec<&str> = [Some(id.as_str()), previous.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    let removed = prune(root, keep, &spared);
    hand_over(root);
    Ok(Switched {
        id,
        previous,
        compressed: written.compressed,
        reused: written.reused,
        removed,
    })
}

/// Switches `root` to release `to`, or (`None`) back to the one live before the live one.
pub fn rollback(root: &Path, to: Option<&str>) -> Result<Switched, DeployError> {
    let releases = layout::releases_dir(root);
    let _lock = lock(&releases)?;
    let live = layout::current(root).ok_or_else(|| DeployError::NotDeployed(root.to_path_buf()))?;
    let past = history::read(&releases);
    let (id, history) = match to {
        Some(id) if id == live => return Err(DeployError::AlreadyLive(live)),
        Some(id) => match layout::release(root, id) {
            Some(_) => (id.to_string(), history::went_live(past, Some(&live), id)),
            None => return Err(DeployError::NoSuchRelease(id.to_string())),
        },
        None => match history::back(past, &live, |id| layout::release(root, id).is_some()) {
            Some(found) => found,
            // Deployed by a version that kept no history: the release sorting before.
            None => {
                let ids = layout::releases(root);
                let before = ids.iter().take_while(|id| **id != live).last();
                let id = before.ok_or(DeployError::NoPrevious)?.clone();
                (id.clone(), vec![id])
            }
        },
    };
    switch(root, &id, SystemTime::now())?;
    let _ = history::write(&releases, &history);
    hand_over(root);
    Ok(Switched {
        id,
        previous: Some(live),
        compressed: 0,
        reused: 0,
        removed: Vec::new(),
    })
}

/// A kept release, as `--list` shows it.
#[derive(Debug, PartialEq, Eq)]
pub struct Release {
    pub id: String,
    /// `web.root` links to it.
    pub live: bool,
    /// A plain `--rollback` would go to it.
    pub rollback: bool,
    pub files: u64,
    pub bytes: u64,
}

/// Every kept release, oldest first.
pub fn list(root: &Path) -> Vec<Release> {
    let live = layout::current(root);
    let exists = |id: &str| layout::release(root, id).is_some();
    let back = live.as_deref().and_then(|live| {
        let past = history::read(&layout::releases_dir(root));
        history::back(past, live, exists).map(|(id, _)| id)
    });
    let back = back.or_else(|| {
        let ids = layout::releases(root);
        ids.iter()
            .take_while(|id| Some(id.as_str()) != live.as_deref())
            .last()
            .filter(|_| live.is_some())
            .cloned()
    });
    layout::releases(root)
        .into_iter()
        .map(|id| {
            let (files, bytes) = size(&layout::releases_dir(root).join(&id));
            Release {
                live: live.as_deref() == Some(id.as_str()),
                rollback: back.as_deref() == Some(id.as_str()),
                id,
                files,
                bytes,
            }
        })
        .collect()
}

/// Files in `dir` and their bytes, `.br`/`.gz` sidecars included.
fn size(dir: &Path) -> (u64, u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    // Not the hidden stamp.
    let shown = entries
        .flatten()
        .filter(|e| !e.file_name().as_encoded_bytes().starts_with(b"."));
    shown.fold((0, 0), |(files, bytes), e| match e.file_type() {
        Ok(t) if t.is_dir() => {
            let (f, b) = size(&e.path());
            (files + f, bytes + b)
        }
        Ok(t) if t.is_file() => (files + 1, bytes + e.metadata().map_or(0, |m| m.len())),
        _ => (files, bytes),
    })
}

/// Points `root` at release `id` in one step: a new link renamed over the old one. A real
/// folder served until now (the first deploy) is exchanged with the link in one step too
/// (`renameat2` `RENAME_EXCHANGE`), then kept as a release named after its last change, or
/// `older_than` if that is later, so it sorts before `id` (there is no other release yet); its
/// id is returned.
fn switch(root: &Path, id: &str, older_than: SystemTime) -> Result<Option<String>, DeployError> {
    let name = root
        .file_name()
        .ok_or_else(|| DeployError::RootNotAFolder(root.to_path_buf()))?;
    let mut link_name = std::ffi::OsString::from(".");
    link_name.push(name);
    link_name.push(".switch");
    let link = root.with_file_name(link_name);
    let _ = std::fs::remove_file(&link);
    let target = Path::new(layout::releases_dir(root).file_name().expect("named")).join(id);
    std::os::unix::fs::symlink(&target, &link)
        .map_err(io_err(format!("cannot create {}", link.display())))?;
    match std::fs::symlink_metadata(root) {
        Ok(m) if m.is_dir() => {
            exchange(&link, root).map_err(io_err(format!("cannot switch {}", root.display())))?;
            // `link` now names the folder that was live; it becomes a release of its own.
            let modified = m
                .modified()
                .unwrap_or(SystemTime::UNIX_EPOCH)
                .min(older_than);
            let kept = format!("{}-0000", stamp(modified));
            std::fs::rename(&link, layout::releases_dir(root).join(&kept))
                .map_err(io_err(format!("cannot keep the old {}", root.display())))?;
            Ok(Some(kept))
        }
        Ok(m) if m.is_symlink() => std::fs::rename(&link, root)
            .map(|()| None)
            .map_err(io_err(format!("cannot switch {}", root.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::rename(&link, root)
            .map(|()| None)
            .map_err(io_err(format!("cannot switch {}", root.display()))),
        Ok(_) => {
            let _ = std::fs::remove_file(&link);
            Err(DeployError::RootNotAFolder(root.to_path_buf()))
        }
        Err(e) => Err(DeployError::Io(
            format!("cannot read {}", root.display()),
            e,
        )),
    }
}

/// Swaps the names `a` and `b` in one step.
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    let a = std::ffi::CString::new(a.as_os_str().as_bytes())?;
    let b = std::ffi::CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both are NUL-terminated paths that live across the call.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Removes releases beyond the `keep` newest, never one of `spared` (the live one, and the one
/// live until it: what a rollback goes to).
fn prune(root: &Path, keep: usize, spared: &[&str]) -> Vec<String> {
    let ids = layout::releases(root);
    let old = ids.len().saturating_sub(keep.max(1));
    let mut removed = Vec::new();
    for id in &ids[..old] {
        if !spared.contains(&id.as_str())
            && std::fs::remove_dir_all(layout::releases_dir(root).join(id)).is_ok()
        {
            removed.push(id.clone());
        }
    }
    removed
}

/// `time` as a release id's first part: UTC, to the second, sortable.
fn stamp(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time)
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect()
}

/// The id of a new release made at `time`: its stamp and a sequence number, after every id
/// in `releases` (`20261127T080102Z-0001`, then `-0002` in the same second). An id is never
/// used twice, even for a release removed since, so `/_release/<id>/` is always one export.
fn next_id(releases: &[String], time: SystemTime) -> String {
    let mut id = format!("{}-0001", stamp(time));
    if let Some(newest) = releases.last().filter(|newest| **newest >= id) {
        let (stamp, seq) = newest.rsplit_once('-').unwrap_or((newest, "0"));
        let seq: u32 = seq.parse().unwrap_or(0);
        id = format!("{stamp}-{:04}", seq + 1);
    }
    id
}

/// Holds the releases folder's lock file for one deploy at a time.
/// Run as root (`sudo rallypoint deploy`), gives what deploys wrote beside `root` (the releases,
/// their history and lock, the link) to the owner of the folder they are in: with the Debian
/// package that is the service's user, which publishes and prunes there too. As anyone else,
/// or when root owns that folder, nothing changes.
fn hand_over(root: &Path) {
    use std::os::unix::fs::{MetadataExt, lchown};
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let Some(owner) = root.parent().and_then(|p| std::fs::metadata(p).ok()) else {
        return;
    };
    if owner.uid() == 0 {
        return;
    }
    let (uid, gid) = (Some(owner.uid()), Some(owner.gid()));
    let mut paths = vec![root.to_path_buf(), layout::releases_dir(root)];
    while let Some(path) = paths.pop() {
        let _ = lchown(&path, uid, gid);
        let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        if is_dir && let Ok(entries) = std::fs::read_dir(&path) {
            paths.extend(entries.flatten().map(|e| e.path()));
        }
    }
}

fn lock(releases: &Path) -> Result<File, DeployError> {
    let path = releases.join(".lock");
    let file = File::create(&path).map_err(io_err(format!("cannot create {}", path.display())))?;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(DeployError::Busy(releases.to_path_buf()));
    }
    Ok(file)
}

/// Copies the folder `from` into a new folder `to`: folders and regular files with their
/// permissions, at most 32 folders deep, following no link. The export may belong to someone less
/// trusted than the one deploying (`sudo rallypoint deploy ~game/export`): a link in it could
/// publish any file the deployer can read. Each folder is opened without following a link and
/// read through its descriptor, and each file opened without following one, so a link swapped in
/// while the copy runs fails it too.
/// Each file's size is taken from `budget` before it is copied: over it, the copy stops with
/// `FileTooLarge`.
fn copy_tree(from: &Path, to: &Path, budget: &mut Budget) -> io::Result<()> {
    copy_folder(
        &open_no_follow(from, libc::O_DIRECTORY)?,
        from,
        to,
        0,
        budget,
    )
}

/// Bytes a release may still take.
struct Budget(u64);

/// Copies what the open `folder` holds into a new folder `to`; `shown` is its path as the user
/// named it, for errors.
fn copy_folder(
    folder: &File,
    shown: &Path,
    to: &Path,
    depth: usize,
    budget: &mut Budget,
) -> io::Result<()> {
    if depth > 32 {
        return Err(io::Error::other(format!(
            "{} is nested too deep",
            shown.display()
        )));
    }
    std::fs::create_dir(to)?;
    let here = PathBuf::from(format!("/proc/self/fd/{}", folder.as_raw_fd()));
    for entry in std::fs::read_dir(&here)? {
        let entry = entry?;
        let name = entry.file_name();
        let (source, shown) = (here.join(&name), shown.join(&name));
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            return Err(io::Error::other(export_check::link_refused(&shown)));
        } else if kind.is_dir() {
            let inner = open_no_follow(&source, libc::O_DIRECTORY)?;
            copy_folder(&inner, &shown, &to.join(&name), depth + 1, budget)?;
        } else if kind.is_file() {
            let input = open_no_follow(&source, 0)?;
            let metadata = input.metadata()?;
            budget.0 = budget
                .0
                .checked_sub(metadata.len())
                .ok_or(io::ErrorKind::FileTooLarge)?;
            let mode = metadata.permissions();
            let mut output = File::create(to.join(&name))?;
            // No more than was counted, should the file grow meanwhile.
            io::copy(&mut input.take(metadata.len()), &mut output)?;
            output.set_permissions(mode)?;
        }
    }
    Ok(())
}

/// Opens `path` for reading unless its last part is a symbolic link (then the error says so).
fn open_no_follow(path: &Path, flags: i32) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | flags)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_age_and_are_never_reused() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(stamp(SystemTime::UNIX_EPOCH), "19700101T000000Z");
        let first = next_id(&[], t);
        assert_eq!(first, format!("{}-0001", stamp(t)));
        let same_second = next_id(std::slice::from_ref(&first), t);
        assert_eq!(same_second, format!("{}-0002", stamp(t)));
        // Even when the clock went back, after the newest.
        let earlier = next_id(
            std::slice::from_ref(&same_second),
            t - Duration::from_secs(60),
        );
        assert_eq!(earlier, format!("{}-0003", stamp(t)));
        let later = next_id(std::slice::from_ref(&first), t + Duration::from_secs(1));
        assert!(later > first && later.ends_with("-0001"));
    }
}
