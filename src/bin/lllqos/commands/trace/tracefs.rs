//! tracefs, without changing what anyone else sees.
//!
//! Tracing state is global: the top-level buffer belongs to whoever uses it (perf, trace-cmd, a
//! user's `echo 1 > .../enable`), and the mount table to the system. So lllqos trace:
//!
//! - uses tracefs where it is already mounted; where it is not, mounts it in a mount namespace of
//!   its own (`unshare(CLONE_NEWNS)`, everything made private first so nothing propagates back).
//!   The mount disappears with the process, however it ends.
//! - records into an instance of its own (`instances/lllqos-trace.PID.START`), never the top-level
//!   buffer: the events it enables, its clock and its filters live and die with the instance, which
//!   is removed on every way out ([`Instance`]'s `Drop`, reached on errors and on every signal that
//!   would end lllqos). Only SIGKILL leaves one behind; the next `lllqos trace` removes the
//!   instances whose process is gone ([`remove_stale`]). Two traces have two instances.
//! - tells a live instance from a dead one by a `flock` its trace keeps on the instance's
//!   directory, which the kernel drops when the process dies. A pid would not do: tracefs is
//!   shared by every PID namespace, and a trace in a container has a pid that means another
//!   process, or none, on the host.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::fcntl::{Flock, FlockArg};
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};

use lllqos::internal::oserror::os_message;
use lllqos::internal::procfs::{self, start_time};

/// Where the kernel offers tracefs to be mounted.
const MOUNT_POINT: &str = "/sys/kernel/tracing";

/// The prefix of lllqos's instance names.
const PREFIX: &str = "lllqos-trace.";

/// Where tracefs is visible to this process.
#[derive(Debug)]
pub struct Tracefs {
    pub root: PathBuf,
}

impl Tracefs {
    /// The mounted tracefs, or one mounted where only this process sees it.
    pub fn open() -> Result<Tracefs> {
        if let Some(root) =
            procfs::mount_point("tracefs").context("cannot read /proc/self/mountinfo")?
        {
            return Ok(Tracefs { root });
        }
        if !procfs::has_filesystem("tracefs") {
            bail!("this kernel has no tracefs (it is built without CONFIG_TRACING)");
        }
        if !Path::new(MOUNT_POINT).is_dir() {
            bail!("this kernel has tracefs but no {MOUNT_POINT} to mount it on");
        }
        let private = |what: &str, e: nix::Error| {
            anyhow::anyhow!(
                "cannot mount tracefs where only lllqos sees it ({what}: {}; needs CAP_SYS_ADMIN)",
                os_message(&io::Error::from(e))
            )
        };
        unshare(CloneFlags::CLONE_NEWNS).map_err(|e| private("unshare", e))?;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(|e| private("making the mounts private", e))?;
        mount(
            Some("tracefs"),
            MOUNT_POINT,
            Some("tracefs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .map_err(|e| private("mount", e))?;
        Ok(Tracefs {
            root: PathBuf::from(MOUNT_POINT),
        })
    }
}

/// The name of this process's instance: pid and start time, so a reused pid is not mistaken for it.
fn instance_name(pid: u32, start: u64) -> String {
    format!("{PREFIX}{pid}.{start}")
}

/// Removes the instances of `lllqos trace`s that no longer run (killed by SIGKILL); returns their
/// names.
pub fn remove_stale(tracefs: &Tracefs) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(tracefs.root.join("instances")) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((pid, start)) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|rest| rest.split_once('.'))
            .and_then(|(p, s)| Some((p.parse::<i32>().ok()?, s.parse::<u64>().ok()?)))
        else {
            continue;
        };
        // An instance whose lock can be taken has no trace any more, unless a process with its
        // pid and start time runs here (a trace of an lllqos that did not lock its instance).
        let unlocked = lock(&entry.path()).is_ok();
        if unlocked && start_time(pid) != Some(start) && std::fs::remove_dir(entry.path()).is_ok() {
            removed.push(name.to_string_lossy().into_owned());
        }
    }
    removed
}

/// An exclusive `flock` on an instance's directory, taken without waiting.
fn lock(dir: &Path) -> io::Result<Flock<File>> {
    let file = File::open(dir)?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| io::Error::from(e))
}

/// lllqos's own tracing instance, locked while it lives; removed when dropped.
#[derive(Debug)]
pub struct Instance {
    dir: PathBuf,
    _lock: Flock<File>,
}

impl Instance {
    /// Creates this process's instance.
    pub fn create(tracefs: &Tracefs) -> Result<Instance> {
        let pid = std::process::id();
        let start = start_time(pid as i32).unwrap_or_default();
        let instances = tracefs.root.join("instances");
        let dir = instances.join(instance_name(pid, start));
        let failed = |e: io::Error| {
            anyhow::anyhow!(
                "cannot create a tracing instance in {}: {}",
                instances.display(),
                os_message(&e)
            )
        };
        std::fs::create_dir(&dir).map_err(failed)?;
        match lock(&dir) {
            Ok(lock) => Ok(Instance { dir, _lock: lock }),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(failed(e))
            }
        }
    }

    /// The instance's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a setting of the instance (`trace_clock`, `events/power/X/enable`, ...).
    pub fn set(&self, file: impl AsRef<Path>, value: &str) -> io::Result<()> {
        use std::io::Write as _;
        // tracefs is the kernel's own: nobody can have replaced these files.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join(file))?;
        file.write_all(value.as_bytes())
    }

    /// Whether the instance has this file (an event's directory, a setting).
    pub fn has(&self, file: impl AsRef<OsStr>) -> bool {
        self.dir.join(file.as_ref()).exists()
    }
}

impl Drop for Instance {
    /// Removing the directory disables its events and frees its buffers. Every file of it must be
    /// closed by now (the kernel says EBUSY otherwise): the pipe is dropped before the instance.
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_carry_pid_and_start_time() {
        assert_eq!(instance_name(42, 7), "lllqos-trace.42.7");
    }
}
