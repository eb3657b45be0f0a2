//! What becomes of the containers' requests when the plugin, containerd or a container changes:
//! the one table `lllqos-nri(1)` renders and docs/containers.md is checked against.

/// `(what happens, what becomes of the requests)`, for `lllqos nri`.
pub const NRI_LIFETIME: &[(&str, &str)] = &[
    (
        "A container is created",
        "Its request is in force before the creation is answered (within 1 s, or the creation is refused with the reason).",
    ),
    (
        "A container stops, or its last process exits",
        "Its request goes within a second: at once when the plugin hears the stop, else when its holder sees the container's init exit.",
    ),
    (
        "The plugin gets SIGTERM, SIGINT or SIGHUP (systemctl stop or restart lllqos-nri)",
        "Every running container's request stays in force; the plugin exits 0 (another ending signal: it dies of it). A new plugin adopts them.",
    ),
    (
        "The plugin is killed (SIGKILL, the OOM killer), crashes, or is upgraded",
        "Every running container's request stays in force; the next plugin adopts them.",
    ),
    (
        "containerd stops, crashes or restarts",
        "Every running container's request stays in force. The plugin waits for the runtime's socket and registers again (started by containerd, it exits, and containerd starts it again).",
    ),
    (
        "The plugin restarts while containerd is down",
        "The requests stay in force; the plugin waits for the runtime's socket.",
    ),
    (
        "A container's holder is killed",
        "The request is placed again at once, and the plugin says so once on stderr.",
    ),
    (
        "A container gets a new cpuset (UpdateContainer)",
        "A per-CPU request on its cpuset moves: the new CPUs are constrained before the update is applied, the former ones restored once it has been.",
    ),
    (
        "A container is created but not yet started while no plugin runs",
        "Its request goes with the plugin that placed it (until a container runs, its holder watches the plugin); the next plugin places it again.",
    ),
    (
        "systemctl kill lllqos-nri (SIGTERM to the plugin and every holder)",
        "Every request goes: the way to drop them all on purpose.",
    ),
];
