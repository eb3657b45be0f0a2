//! The holders of a PM QoS node: processes with a descriptor open on it, found in `/proc`, named by
//! their command line and their user (through the name service).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

use lllqos::internal::procfs;

/// A process holding a PM QoS node open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: i32,
    /// Its user's name, or the uid where no name is known (`?` when it cannot be read).
    pub user: String,
    /// Its command line, or `[comm]` for a process without one.
    pub command: String,
}

/// The holders of each node asked for, and whether every process could be inspected.
pub struct Scan<const N: usize> {
    /// One list per node asked for, in the same order, each by pid.
    pub holders: [Vec<Holder>; N],
    /// False when some processes' descriptors could not be inspected (not root).
    pub complete: bool,
}

/// Finds the processes (this one excluded) with any of `nodes` open, by their `/proc/PID/fd`
/// links: by path first (cheap), then, for a file elsewhere (a node made with mknod, a bind
/// mount), by device number: the inode behind the descriptor is what counts.
pub fn scan<const N: usize>(nodes: &[&str; N]) -> Scan<N> {
    let me = std::process::id() as i32;
    let users = UserNames::default();
    let mut holders: [Vec<Holder>; N] = std::array::from_fn(|_| Vec::new());
    let mut complete = true;
    let devices: Vec<Option<u64>> = nodes.iter().map(|n| char_device(Path::new(n))).collect();
    for pid in procfs::pids().filter(|&pid| pid != me) {
        let descriptors = match procfs::descriptors(pid) {
            Ok(descriptors) => descriptors,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                complete = false;
                continue;
            }
            Err(_) => continue, // the process exited meanwhile
        };
        let mut held = [false; N];
        for (fd, target) in descriptors {
            let found = nodes
                .iter()
                .position(|n| target == Path::new(n))
                .or_else(|| {
                    if !target.is_absolute() || devices.iter().all(Option::is_none) {
                        return None;
                    }
                    let rdev = char_device(&fd)?;
                    devices.iter().position(|d| *d == Some(rdev))
                });
            if let Some(i) = found {
                held[i] = true;
            }
        }
        if held.contains(&true) {
            let holder = describe(pid, &users);
            for (list, _) in holders.iter_mut().zip(held).filter(|(_, h)| *h) {
                list.push(holder.clone());
            }
        }
    }
    for list in &mut holders {
        list.sort_by_key(|h| h.pid);
    }
    Scan { holders, complete }
}

/// The device number of the character device at `path` (followed), `None` for anything else.
fn char_device(path: &Path) -> Option<u64> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(path).ok()?;
    meta.file_type().is_char_device().then(|| meta.rdev())
}

fn describe(pid: i32, users: &UserNames) -> Holder {
    let command = procfs::command_line(pid)
        .unwrap_or_else(|| format!("[{}]", procfs::comm(pid).unwrap_or_default()));
    let user = match procfs::status(pid).and_then(|status| status.uid) {
        Some(uid) => users.name(uid),
        None => "?".to_owned(),
    };
    Holder { pid, user, command }
}

/// User names by uid, looked up once each through the C library's name service (`getpwuid_r`):
/// `/etc/passwd`, and on glibc every NSS source the machine configures (LDAP, sssd, systemd's
/// DynamicUser, extrausers). A uid no source knows is shown as its number. (The musl build reads
/// `/etc/passwd` only: musl has no NSS modules.)
#[derive(Default)]
struct UserNames(RefCell<BTreeMap<u32, String>>);

impl UserNames {
    fn name(&self, uid: u32) -> String {
        self.0
            .borrow_mut()
            .entry(uid)
            .or_insert_with(
                || match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
                    Ok(Some(user)) => user.name,
                    _ => uid.to_string(),
                },
            )
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_come_from_the_name_service() {
        let users = UserNames::default();
        assert_eq!(users.name(0), "root");
        assert_eq!(users.name(0), "root", "cached");
        // A uid no source knows is its number.
        assert_eq!(users.name(4_000_000_007), "4000000007");
    }
}
