//! `metrics --output` in a directory others can write: a user racing root's run (swapping the
//! temporary file for a symlink to a root-only file, in a loop) gets nothing; a directory that is
//! not sticky is refused, and so is another user's file in a sticky one; a run killed while it
//! wrote leaves nothing for good; a name of 255 bytes works.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::lllqos;

/// Swaps, as user 65534 until killed, every `.x.prom.*` in the directory for a symlink to the
/// victim (and `x.prom` itself), as fast as it can; on SIGTERM prints how many it saw.
const RACER: &str = r#"
import os, signal, sys
d, victim = sys.argv[1], sys.argv[2]
seen = n = 0
def done(*_):
    print(seen, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
print("ready", flush=True)
while True:
    for name in os.listdir(d):
        if not name.startswith(".x.prom.") and name != "x.prom":
            continue
        seen += 1
        evil = os.path.join(d, "evil.%d" % n)
        n += 1
        try:
            os.symlink(victim, evil)
            os.rename(evil, os.path.join(d, name))
        except OSError:
            try:
                os.unlink(evil)
            except OSError:
                pass
"#;

/// A directory of `mode` (in /tmp, root's), and a root-only victim file elsewhere.
fn shared(mode: u32) -> (tempfile::TempDir, tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(mode)).unwrap();
    let private = tempfile::tempdir().unwrap();
    std::fs::set_permissions(private.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let victim = private.path().join("victim");
    std::fs::write(&victim, "root's secret\n").unwrap();
    std::fs::set_permissions(&victim, PermissionsExt::from_mode(0o600)).unwrap();
    (dir, private, victim)
}

/// Runs `lllqos metrics --output DIR/x.prom` `runs` times while the racer runs as user 65534;
/// the exit codes seen, and how many files the racer saw.
fn race(dir: &Path, victim: &Path, runs: usize) -> (Vec<Option<i32>>, String) {
    let mut racer = crate::common::Reaped::spawn(
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "/usr/bin/python3",
                "-c",
                RACER,
            ])
            .arg(dir)
            .arg(victim)
            .stdout(Stdio::piped()),
    );
    let mut lines =
        std::io::BufRead::lines(std::io::BufReader::new(racer.0.stdout.take().unwrap()));
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let target = dir.join("x.prom");
    let codes = (0..runs)
        .map(|_| {
            lllqos(["metrics", "--output", target.to_str().unwrap()])
                .output()
                .unwrap()
                .status
                .code()
        })
        .collect();
    racer.signal(nix::sys::signal::Signal::SIGTERM);
    racer.wait();
    (codes, lines.next().map(|l| l.unwrap()).unwrap_or_default())
}

fn untouched(victim: &Path) {
    let meta = std::fs::symlink_metadata(victim).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o600, "the victim's mode changed");
    assert_eq!(std::fs::read_to_string(victim).unwrap(), "root's secret\n");
}

#[test]
fn output_in_a_directory_others_can_write_that_is_not_sticky_is_refused_however_they_race() {
    let _kernel = kernel!();
    require_program!("python3", "python3");
    require_program!("setpriv", "util-linux");
    let (dir, _private, victim) = shared(0o777);
    let (codes, seen) = race(dir.path(), &victim, 100);
    assert!(codes.iter().all(|&c| c == Some(125)), "{codes:?}");
    untouched(&victim);
    // Nothing of root's was made there.
    for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
        assert_ne!(
            entry.metadata().unwrap().uid(),
            0,
            "{:?} is root's",
            entry.path()
        );
    }
    let out = lllqos([
        "metrics",
        "--output",
        dir.path().join("x.prom").to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "lllqos: --output {}/x.prom: {} can be written by other users and is not sticky (one of them could swap a file in place of the one written): write to a directory only this user writes, such as /var/lib/prometheus/node-exporter\n",
            dir.path().display(),
            dir.path().display()
        ),
        "(the racer saw {seen})"
    );
}

#[test]
fn output_in_a_sticky_shared_directory_is_roots_own_file_however_others_race() {
    let _kernel = kernel!();
    require_program!("python3", "python3");
    require_program!("setpriv", "util-linux");
    let (dir, _private, victim) = shared(0o1777);
    let (codes, seen) = race(dir.path(), &victim, 100);
    // The racer may have made x.prom its symlink before root's first run: refused then.
    assert!(
        codes.iter().all(|&c| c == Some(0) || c == Some(125)),
        "{codes:?}"
    );
    untouched(&victim);
    let target = dir.path().join("x.prom");
    let _ = std::fs::remove_file(&target);
    lllqos(["metrics", "--output", target.to_str().unwrap()])
        .assert()
        .success();
    let meta = std::fs::symlink_metadata(&target).unwrap();
    assert!(meta.file_type().is_file(), "(the racer saw {seen})");
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o644));
    // Only the output, and what the racer left of its own.
    for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            name == "x.prom" || entry.metadata().unwrap().uid() == 65534,
            "{name} left"
        );
    }
}

#[test]
fn another_users_file_in_a_sticky_directory_is_not_replaced() {
    let _kernel = kernel!();
    let (dir, _private, _victim) = shared(0o1777);
    let theirs = dir.path().join("x.prom");
    std::fs::write(&theirs, "theirs\n").unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    let out = lllqos(["metrics", "--output", theirs.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "lllqos: --output {}: {} belongs to uid 65534, in a directory other users can write: refusing to replace it\n",
            theirs.display(),
            theirs.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&theirs).unwrap(), "theirs\n");
}

#[test]
fn a_temporary_file_a_killed_run_left_is_removed_by_the_next_and_a_long_name_works() {
    let _kernel = kernel!();
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join(".x.prom.Ab3dE6");
    std::fs::write(&stale, "half of a file").unwrap();
    // One another run writes now (it holds its lock): left alone.
    let busy = dir.path().join(".x.prom.Zz9yY8");
    let held = std::fs::File::create(&busy).unwrap();
    // SAFETY: flock on a descriptor we own.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&held), libc::LOCK_EX) },
        0
    );
    let target = dir.path().join("x.prom");
    lllqos(["metrics", "--output", target.to_str().unwrap()])
        .assert()
        .success();
    assert!(!stale.exists(), "the stale temporary file is left");
    assert!(busy.exists(), "a running writer's file was removed");
    drop(held);
    let long = dir.path().join("m".repeat(255));
    lllqos(["metrics", "--output", long.to_str().unwrap()])
        .assert()
        .success();
    assert!(
        std::fs::read_to_string(&long)
            .unwrap()
            .starts_with("# HELP lllqos_")
    );
}
