//! Starting the command so that it cannot tell lllqos is there.
//!
//! A direct `exec` by the shell would give the command the shell's environment exactly as it is,
//! its signal dispositions (an ignored signal stays ignored, a handled one becomes the default),
//! its scheduling policy, priority and nice value, and its open file descriptors, standard ones
//! included, closed ones closed. lllqos must start the command in a new process and still give it
//! exactly that:
//!
//! - **The environment** is the raw `environ` block, in order, duplicates and entries without `=`
//!   included (as `env` passes them), with `LLLQOS_LATENCY_US`, `LLLQOS_CPUS` and `LLLQOS_FD` set
//!   or removed.
//! - **Signals.** The command starts with an empty mask (lllqos blocks signals to read them from a
//!   signalfd). SIGPIPE gets the disposition lllqos inherited, which
//!   [`crate::process::init_process`] records before lllqos ignores it for itself; glibc's
//!   `posix_spawn` would leave its reserved signals 32 and 33 ignored in the child, so they get
//!   what lllqos inherited too. In short, every signal ignored when lllqos started is ignored in
//!   the command, and every other one has its default.
//! - **Scheduling.** Under `chrt -R` (SCHED_RESET_ON_FORK) the kernel resets a forked child to
//!   SCHED_OTHER and nice 0; the child restores lllqos's policy, priority and nice before exec.
//! - **File descriptors.** lllqos is built without Rust's runtime start-up (`main.rs`), which would
//!   open /dev/null on a closed fd 0, 1 or 2. [`crate::process::init_process`] puts a
//!   close-on-exec /dev/null there instead, so that nothing lllqos opens lands on a standard fd
//!   and the command still finds it closed. Everything lllqos opens is close-on-exec; the one
//!   exception is the copy of the request's descriptor that `--pass-fd` makes for the command
//!   (and closes once it is started).
//!
//! The usual path is `posix_spawnp(3)`, which glibc and musl implement with `CLONE_VFORK`: no
//! copy of lllqos's page tables, so lllqos starts a command about as fast as `chrt` execs one.
//! What needs code in the child between fork and exec (the privilege drop, SIGCHLD ignored at
//! start, the scheduling restore) takes `fork` and `execvpe`; an exec failure in a forked child
//! reaches lllqos through a close-on-exec pipe. A file without `#!` that the kernel refuses with
//! ENOEXEC is started again as `/bin/sh FILE ARGS...`, the way a shell runs it (glibc's `execvp`
//! does this, musl's does not, and lllqos behaves the same on both). musl's `posix_spawn` saves
//! and restores the signal mask without the signals it keeps for itself (32 to 34); lllqos puts
//! its whole mask back after it.

use std::ffi::{CStr, CString, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use lllqos::internal::oserror::os_message;
use lllqos::internal::privilege::is_privileged;
use lllqos::internal::sigset::{ENDING, SignalSet};
use nix::unistd::Pid;

use crate::exit::ExitStatus;
use crate::process::ignored_at_start;

/// A variable to set (`Some`) or remove (`None`) in the command's environment.
pub type EnvChange = (&'static str, Option<String>);

/// Why the command could not be started: lllqos exits 127 or 126 with `lllqos: NAME: reason`.
#[derive(Debug)]
pub struct SpawnError {
    name: OsString,
    source: io::Error,
}

impl SpawnError {
    /// 127 when the command was not found, 126 when it could not be executed.
    pub fn status(&self) -> ExitStatus {
        match self.source.kind() {
            io::ErrorKind::NotFound => ExitStatus::NotFound,
            _ => ExitStatus::CannotExecute,
        }
    }
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.name.to_string_lossy();
        write!(f, "{name}: {}", os_message(&self.source))
    }
}

impl std::error::Error for SpawnError {}

/// The scheduling a forked child must get back (lllqos runs with SCHED_RESET_ON_FORK).
#[derive(Debug, Clone, Copy)]
struct Scheduling {
    policy: libc::c_int,
    priority: libc::c_int,
    nice: libc::c_int,
}

impl Scheduling {
    /// lllqos's own scheduling, when a fork would not pass it on.
    fn lost_on_fork() -> Option<Scheduling> {
        let (policy, priority) = crate::sched::get().ok()?;
        if policy & libc::SCHED_RESET_ON_FORK == 0 {
            return None;
        }
        // SAFETY: errno is this thread's; getpriority returns the nice value (or -1 with errno).
        let nice = unsafe {
            *libc::__errno_location() = 0;
            libc::getpriority(libc::PRIO_PROCESS, 0)
        };
        Some(Scheduling {
            policy,
            priority,
            nice,
        })
    }

    /// Applies it in the child (async-signal-safe system calls only).
    fn apply(self) {
        let _ = crate::sched::set(self.policy, self.priority);
        // SAFETY: setpriority on integers.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, self.nice) };
    }
}

/// Everything the child needs, prepared in the parent (where allocating is allowed).
#[derive(Clone)]
struct Launch {
    argv: Vec<CString>,
    envp: Vec<CString>,
    /// The signals ignored when lllqos started: ignored in the command, every other one default.
    ignored: SignalSet,
    /// SIGCHLD was ignored at start: lllqos had to reset it to wait, the command gets SIG_IGN back.
    chld_ignored: bool,
    drop: Option<ChildDrop>,
    scheduling: Option<Scheduling>,
}

impl Launch {
    /// The same launch with `/bin/sh` running the command's file as a script (what a shell does,
    /// and glibc's `execvp`, but not musl's, with a file that has no `#!`): the file as PATH
    /// finds it (the first executable one), then the arguments. `None` if it cannot be found.
    fn as_script(&self) -> Option<Launch> {
        let name = self.argv.first()?;
        let file = if name.as_bytes().contains(&b'/') {
            name.clone()
        } else {
            let path = std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin".into());
            std::env::split_paths(&path)
                .map(|dir| dir.join(std::ffi::OsStr::from_bytes(name.as_bytes())))
                .find(|candidate| {
                    candidate.is_file()
                        && nix::unistd::access(candidate, nix::unistd::AccessFlags::X_OK).is_ok()
                })
                .and_then(|found| CString::new(found.into_os_string().into_vec()).ok())?
        };
        let mut argv = vec![c"/bin/sh".to_owned(), file];
        argv.extend(self.argv[1..].iter().cloned());
        Some(Launch {
            argv,
            ..self.clone()
        })
    }
}

/// NULL-terminated pointer arrays over strings that outlive their use.
fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

unsafe extern "C" {
    /// The process's environment block, as glibc and musl both export it (the libc crate names it
    /// for glibc only).
    static environ: *const *const libc::c_char;
}

/// This process's environment block as it is, with `changes` applied: every entry whose name is
/// changed is dropped, then the set ones appended.
fn environment(changes: &[EnvChange]) -> Vec<CString> {
    let changed = |entry: &[u8]| {
        let name = entry.split(|&b| b == b'=').next().unwrap_or(entry);
        changes.iter().any(|(key, _)| key.as_bytes() == name)
    };
    let mut envp = Vec::new();
    // SAFETY: environ is the C library's NULL-terminated array of NUL-terminated strings; lllqos
    // is single-threaded here and changes nothing in it.
    unsafe {
        let mut entry = environ;
        while !entry.is_null() && !(*entry).is_null() {
            let text = CStr::from_ptr(*entry);
            if !changed(text.to_bytes()) {
                envp.push(text.to_owned());
            }
            entry = entry.add(1);
        }
    }
    for (key, value) in changes {
        if let Some(value) = value
            && let Ok(entry) = CString::new(format!("{key}={value}"))
        {
            envp.push(entry);
        }
    }
    envp
}

/// What [`spawn`] did.
#[derive(Debug)]
pub enum Spawned {
    /// The command runs as `child`. `early`: the signals pending for lllqos (blocked, not read yet)
    /// just before the child was made. The child was not there to get them: whoever sent them, a
    /// terminal included, they are the command's to receive all the same.
    Running { child: Pid, early: SignalSet },
    /// Not started: a signal that asks a process to end ([`ENDING`]: Ctrl-C, Ctrl-\, a hang-up,
    /// SIGTERM) was pending. Started directly, the command would have died of it before its first
    /// instruction; lllqos ends of it instead.
    Cancelled,
}

/// Starts `argv` (PATH lookup for a bare name) in lllqos's process group, as described in the
/// module documentation. `chld_ignored`: SIGCHLD was ignored at start (see [`crate::signals::Signals`]).
///
/// The pending signals are looked at as late as can be, after everything the child needs has been
/// prepared and right before it is made. A signal sent to the group once the child is made reaches
/// the child itself (it blocks everything until its exec, then dies of it or handles it). One sent
/// in the microseconds between the look and the child's making is the one case left uncovered: it
/// is judged as one sent while the command runs (a terminal's is then taken for one it got).
pub fn spawn(
    argv: &[OsString],
    env: &[EnvChange],
    chld_ignored: bool,
) -> Result<Spawned, SpawnError> {
    let name = argv.first().cloned().unwrap_or_default();
    let fail = |source| SpawnError {
        name: name.clone(),
        source,
    };
    let argv = argv
        .iter()
        .map(|arg| CString::new(arg.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| fail(io::Error::new(io::ErrorKind::InvalidInput, "NUL byte")))?;
    let launch = Launch {
        argv,
        envp: environment(env),
        ignored: ignored_at_start(),
        chld_ignored,
        drop: ChildDrop::needed(),
        scheduling: Scheduling::lost_on_fork(),
    };
    let needs_fork = launch.drop.is_some() || launch.chld_ignored || launch.scheduling.is_some();
    // musl's posix_spawn saves and restores the signal mask through its own sigprocmask, which
    // leaves out the signals it keeps for itself (32 to 34): they would come back unblocked, and
    // a kill -34 would end lllqos instead of being relayed. The mask is put back as it was.
    let mask = SignalSet::blocked();
    let early = SignalSet::pending();
    if ENDING.iter().any(|&(signal, _)| early.contains(signal)) {
        return Ok(Spawned::Cancelled);
    }
    let start = |launch: &Launch| {
        if needs_fork {
            fork_exec(launch)
        } else {
            posix_spawn(launch)
        }
    };
    let result = match start(&launch) {
        // A file the kernel cannot execute (no `#!`) is run by /bin/sh, as a shell runs it.
        Err(e) if e.raw_os_error() == Some(libc::ENOEXEC) => match launch.as_script() {
            Some(script) => start(&script),
            None => Err(e),
        },
        result => result,
    };
    if let Ok(mask) = mask {
        let _ = mask.set_mask();
    }
    result
        .map(|child| Spawned::Running { child, early })
        .map_err(fail)
}

fn posix_spawn(launch: &Launch) -> io::Result<Pid> {
    let (arg_ptrs, env_ptrs) = (pointers(&launch.argv), pointers(&launch.envp));
    let empty = SignalSet::default().to_sigset();
    // SIGPIPE, which lllqos ignores for itself, and glibc's reserved 32 and 33, which its
    // posix_spawn would leave ignored, get the default unless they were ignored at start.
    let defaults = (SignalSet::of([libc::SIGPIPE, 32, 33]) - launch.ignored).to_sigset();
    let mut pid: libc::pid_t = 0;
    // SAFETY: attr is initialised before use and destroyed after; every pointer refers to a
    // NUL-terminated string or array that outlives the call.
    let ret = unsafe {
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        libc::posix_spawnattr_init(&mut attr);
        libc::posix_spawnattr_setsigmask(&mut attr, &empty);
        libc::posix_spawnattr_setsigdefault(&mut attr, &defaults);
        let flags = libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF;
        libc::posix_spawnattr_setflags(&mut attr, flags as libc::c_short);
        let ret = libc::posix_spawnp(
            &mut pid,
            arg_ptrs[0],
            std::ptr::null(),
            &attr,
            arg_ptrs.as_ptr().cast(),
            env_ptrs.as_ptr().cast(),
        );
        libc::posix_spawnattr_destroy(&mut attr);
        ret
    };
    match ret {
        0 => Ok(Pid::from_raw(pid)),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

fn fork_exec(launch: &Launch) -> io::Result<Pid> {
    let (arg_ptrs, env_ptrs) = (pointers(&launch.argv), pointers(&launch.envp));
    let (report_read, report_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // SAFETY: lllqos is single-threaded when it spawns; the child makes only async-signal-safe
    // system calls (sigaction, sigprocmask, sched_setscheduler, setpriority, set*id, capset,
    // prctl, execvpe, write, _exit) on data prepared before the fork, and allocates nothing.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => {
            let errno = unsafe { exec_child(launch, &arg_ptrs, &env_ptrs) };
            let _ = nix::unistd::write(&report_write, &errno.to_ne_bytes());
            // SAFETY: leaving the child without running the parent's exit handlers.
            unsafe { libc::_exit(127) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(report_write);
            let mut errno = [0u8; 4];
            let mut got = 0;
            while got < errno.len() {
                match nix::unistd::read(&report_read, &mut errno[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            if got == 0 {
                return Ok(child); // the pipe closed on exec: the command runs
            }
            let _ = nix::sys::wait::waitpid(child, None);
            Err(io::Error::from_raw_os_error(i32::from_ne_bytes(errno)))
        }
    }
}

/// In the forked child: sets up what [`Launch`] says and executes the command; returns the errno
/// of what failed.
///
/// # Safety
///
/// Only between fork and exec, in the child of a single-threaded process.
unsafe fn exec_child(
    launch: &Launch,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> i32 {
    // SAFETY: (for each call) plain system calls on integers and data prepared before the fork.
    unsafe {
        if launch.chld_ignored {
            libc::signal(libc::SIGCHLD, libc::SIG_IGN);
        }
        if !launch.ignored.contains(libc::SIGPIPE) {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
        if let Some(scheduling) = launch.scheduling {
            scheduling.apply();
        }
        if let Err(e) = SignalSet::all().unblock() {
            return e.raw_os_error().unwrap_or(libc::EINVAL);
        }
        if let Some(drop) = launch.drop
            && let Err(e) = drop.apply()
        {
            return e.raw_os_error().unwrap_or(libc::EPERM);
        }
        libc::execvpe(argv[0], argv.as_ptr(), envp.as_ptr());
        *libc::__errno_location()
    }
}

/// What the child must become before `exec`: the real user, with no capability.
///
/// Prepared in the parent (where it may allocate), applied in the child after `fork`.
#[derive(Debug, Clone, Copy)]
pub struct ChildDrop {
    uid: libc::uid_t,
    gid: libc::gid_t,
}

impl ChildDrop {
    /// The drop this process needs, or `None` when it runs with exactly its real user's rights
    /// (then the command inherits nothing it did not have).
    pub fn needed() -> Option<ChildDrop> {
        is_privileged().then(|| ChildDrop {
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        })
    }

    /// Drops to the real user and empties every capability set (the library's one way to, see
    /// `lllqos::internal::privilege::drop_for_exec`). Call only in a forked child before exec:
    /// system calls only, no allocation, no locks.
    pub fn apply(self) -> io::Result<()> {
        lllqos::internal::privilege::drop_for_exec(self.uid, self.gid)
    }
}
