//! CERT_PATH (or `--leaf-dir`) for the `-u` user. Certificates are written after the
//! privilege drop, so the user must be able to write the directory. Checked before the drop (and by `--check`);
//! a root-owned directory that holds nothing but pixelserv's files is given to the user
//! (fchown on the opened directory), any other is left alone and the problem named.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::sys::files::Dir;
use crate::sys::process::{self, User};
use crate::tls::names::{CertName, RESERVED};

pub enum Verdict {
    Writable,
    /// Not writable by the user, but ours to fix: the string says why it is not.
    Fixable(String),
    /// Not writable, and not ours to change: the string says why and what to do.
    Unwritable(String),
}

/// Who the server writes CERT_PATH as.
pub fn who(user: Option<&User>) -> String {
    match user.filter(|u| u.uid != 0) {
        Some(u) => format!("user {}", u.name),
        None => format!("uid {}", process::euid()),
    }
}

/// Whether the server, once it runs as `user`, can write `dir` (`what`: "CERT_PATH" or
/// "--leaf-dir", for the messages). No side effects.
pub fn verdict(what: &str, dir: &Path, user: Option<&User>) -> Verdict {
    let e = match process::access_as(user, dir, libc::W_OK | libc::X_OK) {
        Ok(()) => return Verdict::Writable,
        Err(e) => e,
    };
    let why = format!(
        "{what} {} is not writable by {}: {}",
        dir.display(),
        who(user),
        e
    );
    let fixable = user.is_some_and(|u| u.uid != 0 && process::is_root())
        && e.raw_os_error() == Some(libc::EACCES);
    if !fixable {
        return Verdict::Unwritable(why);
    }
    // A new owner would not help a user who cannot reach the directory.
    if let Some(parent) = dir.parent() {
        if let Err(e) = process::access_as(user, parent, libc::X_OK) {
            return Verdict::Unwritable(format!(
                "{why} (it cannot reach {}: {e})",
                parent.display()
            ));
        }
    }
    let owner = fs::metadata(dir)
        .map(|m| m.uid())
        .map_err(|e| e.to_string());
    match owner.and_then(|uid| ours(dir, uid)) {
        Ok(()) => Verdict::Fixable(why),
        Err(not_ours) => Verdict::Unwritable(format!("{why} ({not_ours})")),
    }
}

/// Gives `dir` to `user` (and the owner write and search bits, if it lacked them), on the
/// open directory, after checking again that it is ours to change.
pub fn give_to(dir: &Dir, user: &User) -> Result<String, String> {
    let (uid, mode) = dir.owner_and_mode().map_err(|e| e.to_string())?;
    ours(dir.path(), uid)?;
    dir.chown(user.uid, user.gid)
        .map_err(|e| format!("cannot change its owner: {e}"))?;
    if mode & 0o300 != 0o300 {
        dir.chmod(mode | 0o700)
            .map_err(|e| format!("cannot change its mode: {e}"))?;
    }
    Ok(format!(
        "gave it to user {} (it was root's, mode {:04o})",
        user.name, mode
    ))
}

/// Ours to change: root's, and holding only regular files with the names pixelserv gives
/// them, so that a `-z` pointing at a system directory never has its owner changed.
fn ours(dir: &Path, owner: libc::uid_t) -> Result<(), String> {
    if owner != 0 {
        return Err(format!(
            "it belongs to uid {owner}, not root: not changing its owner"
        ));
    }
    let entries = fs::read_dir(dir).map_err(|e| format!("cannot list it: {e}"))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list it: {e}"))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let regular = entry.file_type().is_ok_and(|t| t.is_file());
        if !regular || !is_pixelserv_file(&name) {
            return Err(format!(
                "it holds {name:?}, which pixelserv did not make: not changing its owner"
            ));
        }
    }
    Ok(())
}

fn is_pixelserv_file(name: &str) -> bool {
    RESERVED.contains(&name) || name.ends_with(".tmp") || CertName::from_file_name(name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixelserv_files_are_recognised() {
        for ours in [
            "ca.crt",
            "ca.key",
            "prefetch",
            "_.example.com",
            "example.com",
            "192.168.1.2",
            "x.1.2.tmp",
        ] {
            assert!(is_pixelserv_file(ours), "{ours}");
        }
        for theirs in [".bashrc", "dir with space", "", "a/b"] {
            assert!(!is_pixelserv_file(theirs), "{theirs}");
        }
    }
}
