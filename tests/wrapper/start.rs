//! The command starts as a direct exec would start it: signal mask and dispositions, descriptors, scheduling, environment.

use super::*;

#[test]
fn the_command_starts_with_an_empty_signal_mask() {
    let _kernel = kernel!();
    lllqos(["grep", "SigBlk", "/proc/self/status"])
        .assert()
        .success()
        .stdout("SigBlk:\t0000000000000000\n");
}

#[test]
fn signals_ignored_at_start_stay_ignored_for_lllqos_and_the_command() {
    let _kernel = kernel!();
    let mut cmd = lllqos_std([
        "sh",
        "-c",
        "grep SigIgn /proc/self/status; sleep 1; echo survived",
    ]);
    cmd.stdout(Stdio::piped());
    // SAFETY: signal(2) in the child before exec, like nohup.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut child = Reaped::spawn(&mut cmd);
    // The command is running (it printed its first line) when the signals are sent.
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut out = String::new();
    stdout.read_line(&mut out).unwrap();
    child.signal(Signal::SIGINT);
    child.signal(Signal::SIGHUP);
    let status = child.wait();
    assert!(status.success(), "{status:?}");
    std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
    let ignored = u64::from_str_radix(
        out.lines()
            .next()
            .unwrap()
            .trim_start_matches("SigIgn:")
            .trim(),
        16,
    )
    .unwrap();
    assert_ne!(
        ignored & (1 << (libc::SIGINT - 1)),
        0,
        "SIGINT not ignored in the command"
    );
    assert_ne!(
        ignored & (1 << (libc::SIGHUP - 1)),
        0,
        "SIGHUP not ignored in the command"
    );
    assert!(out.contains("survived"));
}

/// Runs `script` under `sh -c` directly and under lllqos (`$W` is empty or lllqos), returning
/// both outputs: each item of coreutils' env/timeout tests compares the two.
fn direct_and_wrapped(script: &str) -> (std::process::Output, std::process::Output) {
    let run = |wrapper: &str| {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]).env("W", wrapper);
        // A pre_exec makes std fork and exec instead of posix_spawn, whose child glibc leaves with
        // signals 32 and 33 ignored: the shell starts as one started by a login shell would.
        // SAFETY: the closure does nothing.
        unsafe { cmd.pre_exec(|| Ok(())) };
        cmd.output().unwrap()
    };
    (
        run(""),
        run(&format!("{} -q --", crate::common::bin().display())),
    )
}

#[test]
fn an_inherited_ignored_sigpipe_stays_ignored_for_the_command() {
    let _kernel = kernel!();
    // Ignored (systemd's IgnoreSIGPIPE=yes, coreutils' env-signal-handler.sh): yes gets EPIPE,
    // says so and exits 1, instead of dying of SIGPIPE.
    let (d, w) = direct_and_wrapped(
        "trap '' PIPE; $W yes | head -1 >/dev/null; echo ${PIPESTATUS:-}; $W grep SigIgn /proc/self/status",
    );
    assert_eq!(
        String::from_utf8_lossy(&w.stdout),
        String::from_utf8_lossy(&d.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&w.stderr),
        String::from_utf8_lossy(&d.stderr)
    );
    assert!(String::from_utf8_lossy(&d.stderr).contains("Broken pipe"));
    // Default: the command dies of it, silently, as it would directly.
    let (d, w) =
        direct_and_wrapped("$W yes | head -1 >/dev/null; $W grep SigIgn /proc/self/status");
    assert_eq!(
        String::from_utf8_lossy(&w.stdout),
        String::from_utf8_lossy(&d.stdout)
    );
    assert_eq!(w.stderr, d.stderr);
}

#[test]
fn the_command_starts_with_the_signal_dispositions_of_a_direct_run() {
    let _kernel = kernel!();
    let (d, w) = direct_and_wrapped("$W grep -E 'SigIgn|SigBlk' /proc/self/status");
    assert_eq!(
        String::from_utf8_lossy(&w.stdout),
        String::from_utf8_lossy(&d.stdout)
    );
}

#[test]
fn closed_standard_descriptors_stay_closed_for_the_command() {
    let _kernel = kernel!();
    for redirect in [">&-", "<&-", "2>&-"] {
        let script = format!(
            "$W sh -c 'ls /proc/self/fd | sort -n | head -3 | tr \"\\n\" \" \" >&2' {redirect} 2>/dev/tty 2>&1; $W /bin/echo hi {redirect}; echo $?"
        );
        let (d, w) = direct_and_wrapped(&script);
        assert_eq!(
            String::from_utf8_lossy(&w.stdout),
            String::from_utf8_lossy(&d.stdout),
            "{redirect}"
        );
    }
}

#[test]
fn reset_on_fork_scheduling_and_nice_reach_the_command() {
    let _kernel = kernel!();
    require_program!("chrt", "util-linux");
    for script in [
        "chrt -R -f 3 $W chrt -p 0",
        "nice -n -7 chrt -R -o 0 $W sh -c 'chrt -p $$; nice'",
    ] {
        let (d, w) = direct_and_wrapped(script);
        let strip = |out: &[u8]| {
            String::from_utf8_lossy(out)
                .lines()
                .map(|l| l.split_once(": ").map_or(l, |(_, v)| v).to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&w.stdout), strip(&d.stdout), "{script}");
        assert!(!d.stdout.is_empty());
    }
}

/// Runs `argv` with exactly this environment block (duplicates, entries without '=' and all), as
/// execve(2) takes it, and returns its standard output.
fn with_raw_environment(argv: &[&str], envp: &[&str]) -> Vec<u8> {
    use std::ffi::CString;
    let strings = |list: &[&str]| -> Vec<CString> {
        list.iter().map(|s| CString::new(*s).unwrap()).collect()
    };
    let (argv, envp) = (strings(argv), strings(envp));
    let pointers = |list: &[CString]| -> Vec<*const libc::c_char> {
        list.iter()
            .map(|s| s.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    };
    let (arg_ptrs, env_ptrs) = (pointers(&argv), pointers(&envp));
    let (arg_ptrs, env_ptrs) = (arg_ptrs.as_ptr() as usize, env_ptrs.as_ptr() as usize);
    let program = argv[0].as_ptr() as usize;
    let mut cmd = Command::new("/bin/true");
    // SAFETY: execve in the forked child, on arrays that the parent keeps alive until the child has
    // exec'd (output() waits for it).
    unsafe {
        cmd.pre_exec(move || {
            libc::execve(
                program as *const libc::c_char,
                arg_ptrs as *const *const libc::c_char,
                env_ptrs as *const *const libc::c_char,
            );
            Err(std::io::Error::last_os_error())
        });
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    out.stdout
}

#[test]
fn the_environment_passes_through_as_a_direct_exec_passes_it() {
    let _kernel = kernel!();
    let envp = [
        "B=2",
        "A=1",
        "NOEQUALS",
        "A=3",
        "LLLQOS_LATENCY_US=stale",
        "Z=",
    ];
    let direct = with_raw_environment(&["/bin/cat", "/proc/self/environ"], &envp);
    let bin = crate::common::bin().display().to_string();
    let wrapped = with_raw_environment(
        &[
            &bin,
            "--device",
            "/nonexistent",
            "-q",
            "--",
            "/bin/cat",
            "/proc/self/environ",
        ],
        &envp,
    );
    // The same entries in the same order, LLLQOS_LATENCY_US removed (no request was placed).
    let expected: Vec<&[u8]> = direct
        .split(|&b| b == 0)
        .filter(|e| !e.starts_with(b"LLLQOS_LATENCY_US="))
        .collect();
    assert_eq!(wrapped.split(|&b| b == 0).collect::<Vec<_>>(), expected);
    assert!(direct.starts_with(b"B=2\0A=1\0NOEQUALS\0A=3\0"));
}
