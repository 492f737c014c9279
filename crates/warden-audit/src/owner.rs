//! One process owns an audit state directory. [`Audit::open`](super::Audit::open) takes an
//! exclusive advisory lock on `<state_dir>/lock` before it reads anything there, and the
//! writer thread and the uploader hold it until both are done: a second proxy, a second
//! `serve --stdio` started by another desktop client, or any tool pointed at the same
//! directory is refused with the holder's pid instead of sharing the WAL.
//!
//! The lock is `flock(2)` on an open file (std's `File::try_lock`): the kernel releases it
//! when the process dies, so a `kill -9` leaves no stale lock behind. The pid written into
//! the file is only for the message.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

/// The held lock; dropping the last clone releases it.
#[derive(Debug, Clone)]
pub(crate) struct Ownership {
    _file: Arc<File>,
}

/// The lock file's name in the state directory.
pub const LOCK_FILE: &str = "lock";

impl Ownership {
    /// Takes the directory, or says who holds it.
    pub fn take(dir: &Path) -> Result<Ownership, String> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(held(dir, &path, &mut file)),
            Err(TryLockError::Error(e)) => {
                return Err(format!("cannot lock {}: {e}", path.display()));
            }
        }
        let pid = format!("{}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)).map(drop))
            .and_then(|()| file.write_all(pid.as_bytes()))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Ownership {
            _file: Arc::new(file),
        })
    }
}

fn held(dir: &Path, path: &Path, file: &mut File) -> String {
    let mut text = String::new();
    let holder = match file.read_to_string(&mut text) {
        Ok(_) if !text.trim().is_empty() => format!("process {}", text.trim()),
        _ => "another process".to_owned(),
    };
    format!(
        "the audit state directory {} is in use by {holder} (it holds {}); one process owns a \
         state directory: stop that process, or give this one its own `[audit] state_dir`",
        dir.display(),
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_owner_is_refused_with_the_holders_pid_until_the_first_lets_go() {
        let dir = crate::tests::scratch("owner");
        let first = Ownership::take(&dir).unwrap();
        let held = first.clone();
        let refused = Ownership::take(&dir).unwrap_err();
        assert!(
            refused.contains(&format!("in use by process {}", std::process::id())),
            "{refused}"
        );
        drop(first);
        // A clone still holds it.
        assert!(Ownership::take(&dir).is_err());
        drop(held);
        Ownership::take(&dir).unwrap();
    }
}
