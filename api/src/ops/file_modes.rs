//! Whether the files that hold secrets are private to the service's user:
//! the data dir, the keys generated into it, and every `INBOXLINK_*_FILE`
//! secret. `doctor` reports what is not, and `serve` warns at start-up. Only
//! paths and modes are ever shown, never contents.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::config::Settings;
use crate::config::bootstrap::{JWT_KEY_FILE, MASTER_KEY_FILE};

/// A secret file, or the data dir, that other users can get at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposed {
    /// What it is: `data dir`, `generated key`, or the `_FILE` variable.
    pub what: String,
    pub path: PathBuf,
    /// Its permission bits (`0o644`).
    pub mode: u32,
}

impl Exposed {
    /// The command that makes it private again (owner's bits kept).
    pub fn fix(&self) -> String {
        format!("chmod go-rwx {}", shell_quote(&self.path))
    }

    /// One line: what and where it is, its mode, and the fix.
    pub fn message(&self) -> String {
        format!(
            "{} {} has mode {:04o}: users other than its owner have access; run `{}`",
            self.what,
            self.path.display(),
            self.mode,
            self.fix()
        )
    }
}

/// What was checked (the files that exist) and which of them are exposed.
#[derive(Debug, Clone, Default)]
pub struct Modes {
    pub checked: usize,
    pub exposed: Vec<Exposed>,
}

/// The data dir (group or other users may read or enter it: `mode & 0o055`),
/// the generated `master.key` and `jwt-hs256.key` in it, and each
/// `INBOXLINK_*_FILE` secret (any group or other bit: `mode & 0o077`).
/// Files that do not exist (or cannot be examined) are left out; symlinks are
/// followed, so the mode is the file's own.
pub fn check(settings: &Settings) -> Modes {
    let dir = &settings.data_dir;
    let mut candidates: Vec<(String, PathBuf, u32)> = vec![("data dir".into(), dir.clone(), 0o055)];
    for file in [MASTER_KEY_FILE, JWT_KEY_FILE] {
        candidates.push(("generated key".into(), dir.join(file), 0o077));
    }
    for (var, path) in &settings.secret_files {
        candidates.push((var.clone(), path.clone(), 0o077));
    }
    let mut modes = Modes::default();
    for (what, path, mask) in candidates {
        let Some(mode) = mode_of(&path) else {
            continue;
        };
        modes.checked += 1;
        if mode & mask != 0 {
            // Absolute, so the fix works from any directory.
            let path = std::path::absolute(&path).unwrap_or(path);
            modes.exposed.push(Exposed { what, path, mode });
        }
    }
    modes
}

fn mode_of(path: &Path) -> Option<u32> {
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777)
}

/// `path` as a shell word: as it is when it is plain, else in single quotes.
fn shell_quote(path: &Path) -> String {
    let text = path.to_string_lossy();
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:@,%".contains(c));
    if plain {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_quoted_for_the_shell() {
        assert_eq!(
            shell_quote(Path::new("./inboxlink-data/master.key")),
            "./inboxlink-data/master.key"
        );
        assert_eq!(
            shell_quote(Path::new("/run/my secrets/it's")),
            r"'/run/my secrets/it'\''s'"
        );
    }
}
