//! One plugin per runtime: a lock in `/run/lllqos-nri`, named after the runtime's socket, which
//! a second plugin on the same runtime finds taken (and names the first by the pid written in it);
//! beside it, the plugin's notification socket. Both are removed when the plugin exits (one it
//! leaves when killed is taken over by the next).

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use lllqos::internal::oserror::os_message;

/// Where the plugins' locks are.
const LOCK_DIR: &str = "/run/lllqos-nri";

/// The runtime's lock, held; its files removed when dropped.
pub struct RuntimeLock {
    path: PathBuf,
    /// Where the holders this plugin waits for say they are ready.
    pub notify: PathBuf,
    _lock: Flock<File>,
}

impl Drop for RuntimeLock {
    fn drop(&mut self) {
        // Removed while still held: a plugin that opened it meanwhile finds it gone (below).
        let _ = std::fs::remove_file(&self.notify);
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(LOCK_DIR);
    }
}

/// The file names of the runtime whose socket is `runtime`: its path, with `-` for what is not a
/// letter, a digit or a dot.
fn name(runtime: &str) -> String {
    (runtime.trim_start_matches('/').chars())
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Takes the lock of the runtime at `runtime` (its socket's path): a second plugin on it refuses
/// to start, naming the first.
pub fn lock(runtime: &str) -> Result<RuntimeLock> {
    loop {
        match nix::unistd::mkdir(LOCK_DIR, nix::sys::stat::Mode::S_IRWXU) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => bail!("cannot make {LOCK_DIR}: {}", e.desc()),
        }
        let name = name(runtime);
        let path = Path::new(LOCK_DIR).join(format!("{name}.lock"));
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
        {
            Ok(file) => file,
            // The directory was removed by a plugin that exited: make it again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => bail!("cannot open {}: {}", path.display(), os_message(&e)),
        };
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, Errno::EWOULDBLOCK)) => {
                let mut first = String::new();
                let _ = file.read_to_string(&mut first);
                let first = first.trim();
                let first = if first.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {first})")
                };
                bail!(
                    "another lllqos nri{first} serves the runtime at {runtime} (its lock: {})",
                    path.display()
                );
            }
            Err((_, e)) => bail!("cannot lock {}: {}", path.display(), e.desc()),
        };
        // Locked: but a plugin that exited may have removed the file in between; the lock counts
        // only on the file at the path.
        let same = |a: &std::fs::Metadata, b: &std::fs::Metadata| {
            use std::os::unix::fs::MetadataExt;
            (a.dev(), a.ino()) == (b.dev(), b.ino())
        };
        match (lock.metadata(), std::fs::metadata(&path)) {
            (Ok(held), Ok(there)) if same(&held, &there) => {}
            _ => continue,
        }
        let _ = lock.set_len(0);
        let _ = lock.rewind();
        let _ = writeln!(lock, "{}", std::process::id());
        return Ok(RuntimeLock {
            notify: Path::new(LOCK_DIR).join(format!("{name}.notify")),
            path,
            _lock: lock,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runtimes_files_are_named_after_its_socket() {
        assert_eq!(name("/var/run/nri/nri.sock"), "var-run-nri-nri.sock");
        assert_eq!(name("/tmp/a b/x"), "tmp-a-b-x");
    }
}
