"""Low wake-up latency for exactly as long as your code needs it: Linux PM QoS for Python.

Tell the kernel that the CPUs should not sleep deeper than your wake-up latency allows, while a
block of code runs:

    from lllqos import low_wakeup_latency

    with low_wakeup_latency() as lease:          # 0 us: poll, never sleep deeply
        print(f"Lease acquired: {lease.acquired()}")

This is the lllqos 1.0.0 API, name for name, now built on the Rust library of the lllqos command
(https://github.com/... see docs/python.md): QOS_FILE, LowLatencyLease, low_wakeup_latency. As
1.0.0, acquire() returns False, silently, when /dev/cpu_dma_latency is missing or not permitted,
and off Linux. Unlike 1.0.0, a target outside 0..2147483647 raises ValueError, and any other
failure raises OSError naming the file.

New: lease.set(value) while held; cpus= for per-CPU constraints shared with the lllqos command
(restored even when the interpreter is killed); max_state="C1E,C1"; periodic(), abs-sleep's
periodic activations with the interpreter's lock released while sleeping; status(), what
`lllqos status --json` prints.
"""

import json
from pathlib import Path
from typing import Any, Dict, Optional, Union

from ._lllqos import LowLatencyLease, Periodic, __version__, _status_json, periodic

__all__ = [
    "QOS_FILE",
    "LowLatencyLease",
    "Periodic",
    "low_wakeup_latency",
    "periodic",
    "status",
    "__version__",
]

QOS_FILE = Path("/dev/cpu_dma_latency")
"""The kernel's global CPU latency node, where a lease is placed unless dev_path names another."""


def low_wakeup_latency(target_value: int = 0, *args: Any, **kwargs: Any) -> LowLatencyLease:
    """Create a low-latency lease, to use as a context manager.

    Tell the kernel that the wake-up latency should not exceed target_value microseconds while
    the lease is held: from the start of the `with` block to its end, however it ends.

        with low_wakeup_latency(50) as lease:
            print(lease.acquired())

    Arguments:
        target_value: the limit in microseconds, 0 to 2147483647 (default 0: poll only).
        args, kwargs: passed on to LowLatencyLease (dev_path, and the keywords cpus, max_state).

    Returns:
        A LowLatencyLease, not yet acquired (the `with` statement acquires it).
    """
    return LowLatencyLease(target_value, *args, **kwargs)


def status() -> Dict[str, Any]:
    """What is in force on this machine, and who holds it.

    The document `lllqos status --json` prints, as a dict: the global limit in force
    (cpu_latency_us), the processes that hold it, each CPU's own constraint, effective limit and
    idle states, and the per-CPU registry with its holders (this interpreter among them while a
    lease with cpus= is held). Its keys are described in the lllqos command's docs/json.md.

    Raises OSError off Linux, where there is no PM QoS.
    """
    document: Dict[str, Any] = json.loads(_status_json())
    return document
