//! The one reader of `/proc`: which processes there are, and what the kernel says of each.
//!
//! Every file is read through [`crate::internal::file`] (never blocking, never following a link,
//! bounded), and parsed here by pure functions with property tests: the registry asks for start
//! times and lock owners, `status` for commands, users and descriptors, the wrapper for parents,
//! states and pending signals. A process may exit at any moment, so every answer is an `Option`
//! (or an error): gone is an ordinary outcome, never a panic.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use nix::fcntl::{AT_FDCWD, OFlag, openat};
use nix::sys::stat::{Mode, SFlag};

use super::file;

/// The numbers of the processes (thread-group leaders) `/proc` lists now, in no order.
pub fn pids() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
}

/// The fields of `/proc/PID/stat` that lllqos reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Field 3: `R` running, `S` sleeping, `T` stopped, ...
    pub state: char,
    /// Field 4: the parent's pid.
    pub parent: i32,
    /// Field 5: the process group.
    pub group: i32,
    /// Field 22: the start time in clock ticks since boot. With the pid, it tells a process from a
    /// later one that reused the pid.
    pub start_time: u64,
    /// Field 39: the CPU it last ran on.
    pub cpu: Option<i32>,
}

impl Stat {
    /// Parses a `/proc/PID/stat` line. The command name (field 2) may hold spaces and parentheses,
    /// so the fields are counted from the last `)`. `None` for a line that is not one.
    pub fn parse(line: &str) -> Option<Stat> {
        let (_, after_name) = line.rsplit_once(')')?;
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // Field N is at index N - 3: the first after the name is field 3.
        let field = |n: usize| fields.get(n - 3).copied();
        let mut state = field(3)?.chars();
        let (state, None) = (state.next()?, state.next()) else {
            return None;
        };
        Some(Stat {
            state,
            parent: field(4)?.parse().ok()?,
            group: field(5)?.parse().ok()?,
            start_time: field(22)?.parse().ok()?,
            cpu: field(39).and_then(|cpu| cpu.parse().ok()),
        })
    }
}

/// What `/proc/PID/stat` says of process (or thread) `pid`; `None` when it is gone.
pub fn stat(pid: i32) -> Option<Stat> {
    Stat::parse(&file::read_small(format!("/proc/{pid}/stat")).ok()?)
}

/// A process's start time (see [`Stat::start_time`]).
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).map(|stat| stat.start_time)
}

/// The fields of `/proc/PID/status` that lllqos reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    /// `Tgid:` the process a thread belongs to.
    pub tgid: Option<i32>,
    /// `Uid:` the real user.
    pub uid: Option<u32>,
    /// `CapPrm:` the permitted capabilities.
    pub permitted: Option<u64>,
    /// `SigPnd:` and `ShdPnd:` together: the signals pending for the thread or its process, bit
    /// N - 1 for signal N.
    pub pending: u64,
}

impl Status {
    /// Parses the text of `/proc/PID/status`; a line it cannot read is left out.
    pub fn parse(text: &str) -> Status {
        let value = |key: &str| text.lines().find_map(|line| line.strip_prefix(key));
        let hex = |key: &str| value(key).and_then(|v| u64::from_str_radix(v.trim(), 16).ok());
        Status {
            tgid: value("Tgid:").and_then(|v| v.trim().parse().ok()),
            uid: value("Uid:")
                .and_then(|v| v.split_whitespace().next())
                .and_then(|uid| uid.parse().ok()),
            permitted: hex("CapPrm:"),
            pending: hex("SigPnd:").unwrap_or(0) | hex("ShdPnd:").unwrap_or(0),
        }
    }
}

/// What `/proc/PID/status` says of `pid` (`self` for this process); `None` when it is gone.
pub fn status(pid: impl std::fmt::Display) -> Option<Status> {
    Some(Status::parse(
        &file::read_small(format!("/proc/{pid}/status")).ok()?,
    ))
}

/// The command the kernel keeps for a task (`/proc/PID/comm`: 15 bytes at most).
pub fn comm(pid: i32) -> Option<String> {
    let text = file::read_small(format!("/proc/{pid}/comm")).ok()?;
    Some(text.trim_end_matches('\n').to_owned())
}

/// A process's command line, its words joined by spaces; `None` when it has none to read (gone, or
/// a kernel thread).
pub fn command_line(pid: i32) -> Option<String> {
    join_command_line(&file::read_small_bytes(format!("/proc/{pid}/cmdline")).ok()?)
}

/// The words of a `cmdline` (NUL-separated) joined by spaces; `None` for no word.
fn join_command_line(cmdline: &[u8]) -> Option<String> {
    let words = words(cmdline);
    (!words.is_empty()).then(|| words.join(" "))
}

/// A process's arguments, `argv[0]` first (`/proc/PID/cmdline`); `None` when gone.
pub fn arguments(pid: i32) -> Option<Vec<String>> {
    Some(words(
        &file::read_small_bytes(format!("/proc/{pid}/cmdline")).ok()?,
    ))
}

/// The NUL-separated words of a `cmdline` or `environ`, empty ones left out.
fn words(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|&b| b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect()
}

/// The value of variable `name` in the environment process `pid` started with
/// (`/proc/PID/environ`, readable by its owner and root); `None` when unset or unreadable.
pub fn environment_variable(pid: i32, name: &str) -> Option<String> {
    let environ = file::read_small_bytes(format!("/proc/{pid}/environ")).ok()?;
    find_variable(&environ, name)
}

/// `name`'s value in an `environ` block (the first, as `getenv` finds it).
fn find_variable(environ: &[u8], name: &str) -> Option<String> {
    words(environ)
        .into_iter()
        .find_map(|entry| Some(entry.strip_prefix(name)?.strip_prefix('=')?.to_owned()))
}

/// `/proc`, opened once: a scan of every process's descriptors walks from here, never building a
/// path from the root for each of thousands of descriptors.
#[derive(Debug)]
pub struct Proc {
    dir: OwnedFd,
}

impl Proc {
    /// Opens `/proc`.
    pub fn open() -> io::Result<Proc> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        Ok(Proc {
            dir: openat(AT_FDCWD, "/proc", flags, Mode::empty())?,
        })
    }

    /// The open descriptors of process `pid`. `PermissionDenied` when this process may not look
    /// (another user's, without root).
    pub fn descriptors(&self, pid: i32) -> io::Result<Descriptors> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let dir = openat(
            &self.dir,
            format!("{pid}/fd").as_str(),
            flags,
            Mode::empty(),
        )?;
        let numbers = directory_numbers(&dir)?;
        Ok(Descriptors { dir, numbers })
    }
}

/// One process's descriptors, as `/proc/PID/fd` lists them.
#[derive(Debug)]
pub struct Descriptors {
    dir: OwnedFd,
    numbers: Vec<u32>,
}

impl Descriptors {
    /// The descriptors' numbers.
    pub fn numbers(&self) -> &[u32] {
        &self.numbers
    }

    /// The device number of the character device descriptor `fd` is open on, `None` for anything
    /// else: the open file itself, whatever its path (a node made with mknod, a bind mount,
    /// another mount namespace's `/dev`). Cheaper than its link's text (no path is built), and it
    /// never waits for a file system: `AT_STATX_DONT_SYNC` (a descriptor on an unreachable NFS
    /// server answers from the cache, as `lsof -b` would have it).
    pub fn char_device(&self, fd: u32) -> Option<u64> {
        let name = format!("{fd}\0");
        let mut stx = std::mem::MaybeUninit::<libc::statx>::zeroed();
        // SAFETY: statx with our directory's descriptor, a NUL-terminated name that lives through
        // the call, and a buffer of the kernel's statx size. The raw call: musl before 1.2.5 has
        // no wrapper.
        let done = unsafe {
            libc::syscall(
                libc::SYS_statx,
                self.dir.as_raw_fd(),
                name.as_ptr(),
                libc::AT_STATX_DONT_SYNC,
                libc::STATX_TYPE,
                stx.as_mut_ptr(),
            )
        };
        if done != 0 {
            return None;
        }
        // SAFETY: the kernel filled it (and it started zeroed).
        let stx = unsafe { stx.assume_init() };
        let kind =
            SFlag::from_bits_truncate(libc::mode_t::from(stx.stx_mode) & SFlag::S_IFMT.bits());
        (kind == SFlag::S_IFCHR).then(|| libc::makedev(stx.stx_rdev_major, stx.stx_rdev_minor))
    }
}

/// The numeric names in a directory (`/proc/PID/fd`), read with as few system calls as it takes:
/// `getdents64` until it says the end (a short read with room to spare for another entry is the
/// end, so one call usually does).
fn directory_numbers(dir: &OwnedFd) -> io::Result<Vec<u32>> {
    const BUFFER: usize = 16 * 1024;
    // Room for any entry: its header and a name of up to 255 bytes, aligned.
    const LARGEST_ENTRY: usize = 24 + 256;
    let mut buffer = vec![0u8; BUFFER];
    let mut numbers = Vec::new();
    loop {
        // SAFETY: getdents64 writes at most BUFFER bytes of whole entries into our buffer.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buffer.as_mut_ptr(),
                BUFFER,
            )
        };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        numbers.extend(dirent_numbers(&buffer[..n]));
        if n == 0 || n + LARGEST_ENTRY <= BUFFER {
            return Ok(numbers);
        }
    }
}

/// The names of `linux_dirent64` entries that are numbers (`.` and `..` aside).
fn dirent_numbers(mut entries: &[u8]) -> Vec<u32> {
    let mut numbers = Vec::new();
    // Each: inode (8), offset (8), record length (2), type (1), name NUL-terminated.
    while entries.len() >= 19 {
        let length = usize::from(u16::from_ne_bytes([entries[16], entries[17]]));
        if length < 19 || length > entries.len() {
            break;
        }
        let name = &entries[19..length];
        let name = name.split(|&b| b == 0).next().unwrap_or_default();
        if let Some(number) = std::str::from_utf8(name).ok().and_then(|n| n.parse().ok()) {
            numbers.push(number);
        }
        entries = &entries[length..];
    }
    numbers
}

/// Where a file system of type `fstype` (`tracefs`) is mounted in this process's mount namespace,
/// if it is (`/proc/self/mountinfo`).
pub fn mount_point(fstype: &str) -> io::Result<Option<PathBuf>> {
    Ok(mounted(&file::read_small("/proc/self/mountinfo")?, fstype))
}

/// Whether this kernel has file systems of type `fstype` (`/proc/filesystems`).
pub fn has_filesystem(fstype: &str) -> bool {
    file::read_small("/proc/filesystems").is_ok_and(|text| {
        text.lines()
            .any(|line| line.split_whitespace().last() == Some(fstype))
    })
}

/// The mount point of a file system of type `fstype` in a `/proc/PID/mountinfo`, if there is one.
fn mounted(mountinfo: &str, fstype: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        if fs.split(' ').next()? != fstype {
            return None;
        }
        Some(PathBuf::from(unescape(mount.split(' ').nth(4)?)))
    })
}

/// mountinfo's octal escapes (`\040` for a space) undone.
fn unescape(field: &str) -> String {
    let mut out = Vec::new();
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let text = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: &str = "S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 4242 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 7";

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let stat = Stat::parse(&format!("7 (a) b (c)) {FIELDS}")).unwrap();
        assert_eq!(
            stat,
            Stat {
                state: 'S',
                parent: 1,
                group: 2,
                start_time: 4242,
                cpu: Some(7),
            }
        );
        assert_eq!(Stat::parse("7 (a"), None);
        assert_eq!(Stat::parse("7 (a)"), None);
        assert_eq!(Stat::parse("7 (a) S 1 2"), None);
    }

    #[test]
    fn this_process_reads_back() {
        let me = std::process::id() as i32;
        let stat = stat(me).unwrap();
        assert_eq!(stat.parent, nix::unistd::getppid().as_raw());
        assert_eq!(start_time(me), Some(stat.start_time));
        assert_eq!(start_time(-1), None);
        let status = status("self").unwrap();
        assert_eq!(status.tgid, Some(me));
        assert_eq!(status.uid, Some(nix::unistd::getuid().as_raw()));
        assert!(pids().any(|pid| pid == me));
        assert!(command_line(me).is_some());
        assert!(comm(me).is_some_and(|c| !c.is_empty() && c.len() <= 15));
        let descriptors = Proc::open().unwrap().descriptors(me).unwrap();
        assert!(descriptors.numbers().contains(&0));
        let null = std::fs::File::open("/dev/null").unwrap();
        let fd = null.as_raw_fd() as u32;
        assert!(descriptors.numbers().len() >= 3);
        let again = Proc::open().unwrap().descriptors(me).unwrap();
        assert!(again.numbers().contains(&fd));
        let rdev = nix::sys::stat::stat("/dev/null").unwrap().st_rdev;
        assert_eq!(again.char_device(fd), Some(rdev));
    }

    #[test]
    fn status_reads_its_fields_and_leaves_out_what_it_cannot() {
        let text = "Name:\tx\nTgid:\t42\nUid:\t1000\t0\t0\t0\nSigPnd:\t0000000000000001\nShdPnd:\t8000000000000000\nCapPrm:\t0000000000000400\n";
        let status = Status::parse(text);
        assert_eq!(status.tgid, Some(42));
        assert_eq!(status.uid, Some(1000));
        assert_eq!(status.permitted, Some(0x400));
        assert_eq!(status.pending, 0x8000_0000_0000_0001);
        assert_eq!(Status::parse("Uid: x\n"), Status::default());
    }

    #[test]
    fn command_lines_join_their_words() {
        assert_eq!(
            join_command_line(b"lllqos\0-l\0\x000\0").as_deref(),
            Some("lllqos -l 0")
        );
        assert_eq!(join_command_line(b""), None);
    }

    #[test]
    fn variables_are_found_by_their_whole_name() {
        let environ = b"PATH=/bin\0LLLQOS_CONTAINER_X=no\0LLLQOS_CONTAINER=c1\0";
        assert_eq!(
            find_variable(environ, "LLLQOS_CONTAINER").as_deref(),
            Some("c1")
        );
        assert_eq!(find_variable(environ, "HOME"), None);
        let me = std::process::id() as i32;
        assert!(arguments(me).is_some_and(|argv| !argv.is_empty()));
    }

    #[test]
    fn finds_tracefs_in_mountinfo() {
        let info = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
                    35 24 0:12 / /sys/kernel/tracing rw,nosuid,nodev,noexec,relatime shared:15 - tracefs tracefs rw\n";
        assert_eq!(
            mounted(info, "tracefs"),
            Some(PathBuf::from("/sys/kernel/tracing"))
        );
        let spaced = "40 24 0:12 / /mnt/my\\040trace rw - tracefs nodev rw\n";
        assert_eq!(
            mounted(spaced, "tracefs"),
            Some(PathBuf::from("/mnt/my trace"))
        );
        assert_eq!(
            mounted("22 1 0:21 / /proc rw - proc proc rw\n", "tracefs"),
            None
        );
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(text in ".*") {
            let _ = Stat::parse(&text);
            let _ = Status::parse(&text);
            let _ = join_command_line(text.as_bytes());
            let _ = find_variable(text.as_bytes(), "X");
            let _ = mounted(&text, "tracefs");
            let _ = dirent_numbers(text.as_bytes());
        }
    }
}
