//! Which signals lllqos relays to the command: one definition for the relay itself (`run.rs`
//! blocks and reads every other signal) and for the documentation (the xtask includes this file and
//! renders the man page's sentence from it; a test checks docs/reference.md's against the same sentence).

/// The last signal number on Linux: 1 to 31 are the classic signals, 32 to 64 the real-time ones.
pub const LAST_SIGNAL: i32 = 64;

/// The signals lllqos never blocks, so never relays: SIGKILL and SIGSTOP cannot be caught, and
/// SIGTTIN and SIGTTOU must stop lllqos itself when it touches the terminal from the background,
/// as they stop the command.
pub const NOT_RELAYED: [(i32, &str); 4] = [
    (libc::SIGKILL, "SIGKILL"),
    (libc::SIGSTOP, "SIGSTOP"),
    (libc::SIGTTIN, "SIGTTIN"),
    (libc::SIGTTOU, "SIGTTOU"),
];
