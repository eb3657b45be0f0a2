//! The holders of a PM QoS node: processes with a descriptor open on it, found in `/proc`, named by
//! their command line and their user (through the name service).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

use super::{Asked, CONTAINER_ENV, POD_ENV};
use crate::Latency;
use crate::internal::procfs;

/// A process holding a PM QoS node open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: i32,
    /// Its user's name, or the uid where no name is known (`?` when it cannot be read).
    pub user: String,
    /// Its command line, or `[comm]` for a process without one.
    pub command: String,
    /// The container it holds the request for, when lllqos placed it for one (`oci-hook`'s holders
    /// say so in their environment).
    pub container: Option<String>,
    /// The pod of that container (`NAMESPACE/NAME`), when `nri` placed it.
    pub pod: Option<String>,
    /// The value it asked for, where that can be known: what [`Asked`] reads from its command line
    /// (an lllqos's own `--latency`), or the limit in force when it is the node's only holder (the
    /// kernel tells no holder's own value).
    pub asked: Option<Latency>,
}

/// The holders of each node asked for, and whether every process could be inspected.
pub struct Scan<const N: usize> {
    /// One list per node asked for, in the same order, each by pid.
    pub holders: [Vec<Holder>; N],
    /// False when some processes' descriptors could not be inspected (not root).
    pub complete: bool,
}

/// Finds the processes (this one excluded) with any of `nodes` open, by the device number behind
/// each of their `/proc/PID/fd` links: the open file is what counts, whatever path led to it (a
/// node made with mknod, a bind mount, another mount namespace's `/dev`), and a path that names
/// another file elsewhere can never make a holder of a process that is not one.
///
/// A busy node has thousands of processes and descriptors, and this is what `status` and `metrics`
/// cost: /proc is walked from one open directory, each process's descriptors listed in one
/// system call and each looked at with one `statx` (no path text is built, and no file system is
/// waited for), by workers that start while /proc is still being listed.
pub fn scan<const N: usize>(nodes: &[&str; N], asked: Asked) -> Scan<N> {
    let users = UserNames::default();
    let mut holders: [Vec<Holder>; N] = std::array::from_fn(|_| Vec::new());
    let Ok(proc) = procfs::Proc::open() else {
        return Scan {
            holders,
            complete: false,
        };
    };
    let devices: Vec<Option<u64>> = nodes.iter().map(|n| char_device(Path::new(n))).collect();
    let me = std::process::id() as i32;
    let mut pids = procfs::pids().filter(|&pid| pid != me);
    let look = |found: &mut Found<N>, pids: &[i32]| find(&proc, pids, &devices, found);
    let first: Vec<i32> = pids.by_ref().take(BATCH).collect();
    let found: Vec<Found<N>> = if first.len() < BATCH {
        let mut found = Found::new();
        look(&mut found, &first);
        vec![found]
    } else {
        // The kernel's work (a directory and a statx per descriptor) is most of the cost: spread
        // over the CPUs there are, in batches handed out while /proc is still being listed (which
        // is a tenth of the work, and would otherwise be done before the rest starts).
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, 8);
        let (send, receive) = std::sync::mpsc::channel::<Vec<i32>>();
        let receive = std::sync::Mutex::new(receive);
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let mut found = Found::new();
                        // A batch at a time, until the lister is done (or a worker panicked).
                        while let Some(batch) = receive.lock().ok().and_then(|r| r.recv().ok()) {
                            look(&mut found, &batch);
                        }
                        found
                    })
                })
                .collect();
            let mut batch = first;
            while !batch.is_empty() && send.send(batch).is_ok() {
                batch = pids.by_ref().take(BATCH).collect();
            }
            drop(send);
            (workers.into_iter())
                .map(|worker| worker.join().unwrap_or_else(|_| Found::incomplete()))
                .collect()
        })
    };
    let complete = found.iter().all(|f| f.complete);
    for (pid, held) in found.into_iter().flat_map(|f| f.held) {
        let holder = describe(pid, &users, asked);
        for (list, _) in holders.iter_mut().zip(held).filter(|(_, h)| *h) {
            list.push(holder.clone());
        }
    }
    for list in &mut holders {
        list.sort_by_key(|h| h.pid);
    }
    Scan { holders, complete }
}

/// How many processes a scan's worker takes at a time.
const BATCH: usize = 256;

/// What [`find`] found in one worker's share of the processes.
struct Found<const N: usize> {
    /// Each process with a node open, and which of them.
    held: Vec<(i32, [bool; N])>,
    /// False when some processes' descriptors could not be inspected.
    complete: bool,
}

impl<const N: usize> Found<N> {
    fn new() -> Found<N> {
        Found {
            held: Vec::new(),
            complete: true,
        }
    }

    fn incomplete() -> Found<N> {
        Found {
            complete: false,
            ..Found::new()
        }
    }
}

/// Adds to `found` the processes of `pids` with a descriptor open on any of the character
/// devices `devices` (the nodes', in order).
fn find<const N: usize>(
    proc: &procfs::Proc,
    pids: &[i32],
    devices: &[Option<u64>],
    found: &mut Found<N>,
) {
    for &pid in pids {
        let descriptors = match proc.descriptors(pid) {
            Ok(descriptors) => descriptors,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                found.complete = false;
                continue;
            }
            Err(_) => continue, // the process exited meanwhile
        };
        let mut held = [false; N];
        for &fd in descriptors.numbers() {
            let Some(device) = descriptors.char_device(fd) else {
                continue;
            };
            if let Some(i) = devices.iter().position(|d| *d == Some(device)) {
                held[i] = true;
            }
        }
        if held.contains(&true) {
            found.held.push((pid, held));
        }
    }
}

/// The device number of the character device at `path` (followed), `None` for anything else.
fn char_device(path: &Path) -> Option<u64> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(path).ok()?;
    meta.file_type().is_char_device().then(|| meta.rdev())
}

fn describe(pid: i32, users: &UserNames, asked: Asked) -> Holder {
    let arguments = procfs::arguments(pid).unwrap_or_default();
    let command = if arguments.is_empty() {
        format!("[{}]", procfs::comm(pid).unwrap_or_default())
    } else {
        arguments.join(" ")
    };
    let user = match procfs::status(pid).and_then(|status| status.uid) {
        Some(uid) => users.name(uid),
        None => "?".to_owned(),
    };
    Holder {
        pid,
        user,
        command,
        container: procfs::environment_variable(pid, CONTAINER_ENV),
        pod: procfs::environment_variable(pid, POD_ENV),
        asked: asked(&arguments),
    }
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
