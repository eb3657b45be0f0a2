"""Shared fixtures of the Python package's tests: the real kernel, read back.

The tests run against the package as pip installed it (not the source tree), on the kernel's own
PM QoS interface: /dev/cpu_dma_latency read back to prove a request is in force, the per-CPU
sysfs files to prove a value is placed and restored. The kernel's state is global: run them
through `cargo test` (tests/python.rs), which holds the lock every test of the project that places
a request takes, and passes what the suite needs in the environment:

- LLLQOS_BIN: the lllqos command (its `status --json` must list this interpreter);
- LLLQOS_SEED_PYTHON: a Python with the seed, lllqos 1.0.0, and abs-sleep 1.0.0 installed;
- LLLQOS_TEST_IDLE_TREE: idle states laid out as /sys/devices/system/cpu (tests/common/idle.rs);
- LLLQOS_TEST_REQUIRE=1: what would be skipped for want of set-up fails instead.

Every test leaves the node and each CPU's resume latency as it found them ([kernel]), and checks
that it did.
"""

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

NODE = "/dev/cpu_dma_latency"
UNCONSTRAINED = 2_000_000_000
SYSFS_CPU = Path("/sys/devices/system/cpu")
REGISTRY_DIR = Path("/run/lllqos")


def registry_left() -> list:
    """What the registry holds besides its lock (the directory and the lock stay): nothing once
    every holder has left."""
    if not REGISTRY_DIR.exists():
        return []
    return sorted(p.name for p in REGISTRY_DIR.iterdir() if p.name != "lock")


def required() -> bool:
    """Whether a test that lacks its set-up must fail rather than skip (CI)."""
    return os.environ.get("LLLQOS_TEST_REQUIRE") == "1"


def need(condition: bool, why: str) -> None:
    """Skips (fails under LLLQOS_TEST_REQUIRE=1) unless `condition`."""
    if not condition:
        if required():
            pytest.fail(f"missing set-up: {why}")
        pytest.skip(why)


def read_node() -> int:
    """The limit in force on the global node (2000000000: none)."""
    with open(NODE, "rb") as node:
        return struct.unpack("=i", node.read(4))[0]


def cpu_file(cpu: int) -> Path:
    return SYSFS_CPU / f"cpu{cpu}" / "power" / "pm_qos_resume_latency_us"


def read_cpu(cpu: int) -> str:
    """A CPU's resume-latency file as text: "0" (no constraint), "n/a" (0 us), "N"."""
    return cpu_file(cpu).read_text().strip()


def cpus() -> list:
    return sorted(int(p.name[3:]) for p in SYSFS_CPU.glob("cpu[0-9]*") if cpu_file(int(p.name[3:])).exists())


class Kernel:
    """The state a test found: the global limit and each CPU's value."""

    def __init__(self) -> None:
        self.baseline = read_node()
        self.cpus = {cpu: read_cpu(cpu) for cpu in cpus()}

    def expect(self, us: int) -> int:
        """What the node reads while a request of `us` is in force (other holders may be lower)."""
        return min(us, self.baseline)

    def last_cpu(self) -> int:
        return max(self.cpus)


@pytest.fixture
def kernel():
    """The real kernel interface, as root; the state it had is checked (and put back) after."""
    need(os.geteuid() == 0 and os.path.exists(NODE), f"needs root and {NODE}")
    state = Kernel()
    yield state
    changed = {cpu: read_cpu(cpu) for cpu in state.cpus if read_cpu(cpu) != state.cpus[cpu]}
    for cpu in changed:
        cpu_file(cpu).write_text(state.cpus[cpu])
    assert changed == {}, f"CPUs left changed: {changed}"
    assert read_node() == state.baseline, "the global limit was left changed"


@pytest.fixture
def lllqos_bin() -> str:
    path = os.environ.get("LLLQOS_BIN") or shutil.which("lllqos")
    need(path is not None, "LLLQOS_BIN (the lllqos command)")
    return path


@pytest.fixture
def seed_python() -> str:
    path = os.environ.get("LLLQOS_SEED_PYTHON")
    need(path is not None, "LLLQOS_SEED_PYTHON (a Python with lllqos 1.0.0 and abs-sleep 1.0.0)")
    return path


@pytest.fixture
def idle_tree() -> Path:
    path = os.environ.get("LLLQOS_TEST_IDLE_TREE")
    need(path is not None, "LLLQOS_TEST_IDLE_TREE (idle states laid out as sysfs)")
    return Path(path)


def run_python(code: str, *args: str, python: str = sys.executable, user: str = None, env=None, **kwargs):
    """Runs `code` in a new interpreter (this one, unless `python`), as `user` if given."""
    command = [python, "-c", code, *args]
    if user is not None:
        need(shutil.which("setpriv") is not None, "setpriv (util-linux)")
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--", *command]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, **kwargs)
