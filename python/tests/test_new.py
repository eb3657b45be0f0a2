"""What 1.0.0 never had: per-CPU constraints shared with the lllqos command, restored after a
SIGKILL of the interpreter; limits named by idle state; status()."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import lllqos
from conftest import read_cpu, read_node, registry_left, run_python


def described(us: int) -> str:
    """A limit as a CPU's resume-latency file reads it."""
    return "n/a" if us == 0 else str(us)


def test_cpus_constrains_those_cpus_only_and_restores_them(kernel):
    cpu = kernel.last_cpu()
    others = {c: v for c, v in kernel.cpus.items() if c != cpu}
    for cpus in (str(cpu), [cpu], (c for c in [cpu])):
        with lllqos.LowLatencyLease(0, cpus=cpus) as lease:
            assert lease.acquired()
            assert read_cpu(cpu) == "n/a"
            assert {c: read_cpu(c) for c in others} == others
            assert read_node() == kernel.baseline  # the global request is not placed
            lease.set(17)
            assert read_cpu(cpu) == "17"
        assert read_cpu(cpu) == kernel.cpus[cpu]


def test_a_per_cpu_lease_is_in_the_registry_the_command_reads(kernel, lllqos_bin):
    cpu = kernel.last_cpu()
    with lllqos.LowLatencyLease(23, cpus=str(cpu)):
        shown = json.loads(subprocess.run([lllqos_bin, "status", "--json"], capture_output=True, text=True, check=True).stdout)
        holders = shown["registry"]["holders"]
        mine = [h for h in holders if h["pid"] == os.getpid()]
        assert mine == [
            {"pid": os.getpid(), "cpus": str(cpu), "latency_us": 23, "live": True, "command": " ".join(open("/proc/self/cmdline").read().split("\0")).strip(), "container": None, "pod": None}
        ], holders
        # status() is the same document.
        assert [h for h in lllqos.status()["registry"]["holders"] if h["pid"] == os.getpid()] == mine
        # A command's holder beside it: the strictest wins, and leaving restores ours.
        other = subprocess.Popen([lllqos_bin, "--cpu", str(cpu), "-l", "5"])
        try:
            deadline = time.monotonic() + 10
            while read_cpu(cpu) != "5":
                assert time.monotonic() < deadline, "the command's holder did not place its request"
                time.sleep(0.01)
        finally:
            other.send_signal(signal.SIGTERM)
            assert other.wait(10) == 0
        assert read_cpu(cpu) == "23"
    assert read_cpu(cpu) == kernel.cpus[cpu]
    assert registry_left() == []


HOLD = """
import lllqos, sys, time
lease = lllqos.LowLatencyLease(int(sys.argv[1]), cpus=sys.argv[2])
print(lease.acquire(), flush=True)
time.sleep(120)
"""


def running(name: str) -> list:
    """The pids of the processes named `name` that run (zombies left out)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        comm, rest = text[text.index("(") + 1 :].rsplit(") ", 1)
        if comm == name and not rest.startswith("Z"):
            found.append(int(pid))
    return found


def test_a_sigkill_of_the_interpreter_is_restored_within_a_second(kernel, lllqos_bin):
    cpu = kernel.last_cpu()
    assert running("lllqos") == [], "another lllqos runs: it would restore, not the watchdog"
    child = subprocess.Popen([sys.executable, "-c", HOLD, "11", str(cpu)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "True\n"
        assert read_cpu(cpu) == "11"
        assert len(running("lllqos-watchdog")) >= 1
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        killed = time.monotonic()
        while read_cpu(cpu) != kernel.cpus[cpu]:
            assert time.monotonic() - killed < 1.0, f"cpu{cpu} still reads {read_cpu(cpu)} a second after the SIGKILL"
            time.sleep(0.005)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert time.monotonic() - killed < 1.0
    # What status shows: no holder left, and nothing registered.
    shown = json.loads(subprocess.run([lllqos_bin, "status", "--json"], capture_output=True, text=True, check=True).stdout)
    assert shown["registry"] is None
    assert running("lllqos") == []


def test_a_watchdog_goes_when_the_lease_is_released(kernel):
    cpu = kernel.last_cpu()
    before = set(running("lllqos-watchdog"))
    code = f"""
import lllqos
for _ in range(3):
    with lllqos.LowLatencyLease(3, cpus="{cpu}"):
        pass
"""
    assert run_python(code).returncode == 0
    deadline = time.monotonic() + 5
    while set(running("lllqos-watchdog")) - before:
        assert time.monotonic() < deadline, "a watchdog outlived its lease"
        time.sleep(0.01)


def test_bad_cpus_are_value_errors_before_anything_is_touched(kernel):
    for cpus, match in [("x", "invalid CPU list 'x'"), ("1-", "invalid CPU list"), ([-1], "-1 is not a CPU number"), ([], "no CPU given")]:
        with pytest.raises(ValueError, match=match):
            lllqos.LowLatencyLease(0, cpus=cpus)
    with pytest.raises(TypeError):
        lllqos.LowLatencyLease(0, cpus=[1.5])
    with pytest.raises(ValueError, match="CPU 4095 does not exist"):
        lllqos.LowLatencyLease(0, cpus="4095").acquire()
    with pytest.raises(ValueError, match="give one of them"):
        lllqos.LowLatencyLease(0, dev_path="/dev/cpu_dma_latency", cpus="0")
    assert {c: read_cpu(c) for c in kernel.cpus} == kernel.cpus
    assert registry_left() == []


MAX_STATE = """
import json, lllqos, struct, sys, warnings
kwargs = json.loads(sys.argv[1])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    try:
        lease = lllqos.LowLatencyLease(**kwargs)
        acquired = lease.acquire()
    except ValueError as error:
        print(json.dumps({"error": str(error)}))
        sys.exit(0)
node = struct.unpack("=i", open("/dev/cpu_dma_latency", "rb").read(4))[0]
cpus = {c: open(f"/sys/devices/system/cpu/cpu{c}/power/pm_qos_resume_latency_us").read().strip() for c in (0, 1)}
print(json.dumps({"acquired": acquired, "node": node, "cpus": cpus, "warnings": [str(w.message) for w in caught]}))
lease.release()
"""


def with_states(idle_tree, **kwargs) -> dict:
    """Places a lease with `kwargs` where the idle states are those of the laid-out tree."""
    env = dict(os.environ, LLLQOS_SYSFS_CPU=str(idle_tree))
    result = run_python(MAX_STATE, json.dumps(kwargs), env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_max_state_asks_for_a_states_exit_latency(kernel, idle_tree):
    # The tree: POLL 0, C1 2, C1E 10, and C6 100 + 33 us per CPU number on each CPU.
    global_c1e = with_states(idle_tree, max_state="C1E,C1")
    assert (global_c1e["acquired"], global_c1e["node"]) == (True, kernel.expect(10))
    assert with_states(idle_tree, max_state="c6")["node"] == kernel.expect(100)  # the strictest CPU's
    assert with_states(idle_tree, max_state="C9,C1")["node"] == kernel.expect(2)
    assert with_states(idle_tree, max_state="C9,20us")["node"] == kernel.expect(20)
    if len(kernel.cpus) >= 2:
        per_cpu = with_states(idle_tree, max_state="C6", cpus="0,1")
        assert per_cpu["cpus"] == {"0": "100", "1": "133"}
        assert per_cpu["node"] == kernel.baseline
    assert read_node() == kernel.baseline


def test_max_state_falling_back_to_none_places_nothing_and_says_so(kernel, idle_tree):
    nothing = with_states(idle_tree, max_state="C9,none")
    assert (nothing["acquired"], nothing["node"]) == (False, kernel.baseline)
    assert nothing["warnings"] == ["max_state=C9,none: no idle state 'C9' here; states: POLL (0 us), C1 (2 us), C1E (10 us), C6 (100 us), C6 (133 us): no request"] or "no request" in nothing["warnings"][0], nothing


def test_max_state_errors_name_the_states_there_are(kernel, idle_tree):
    missing = with_states(idle_tree, max_state="C9")
    assert missing["error"].startswith("max_state=C9: no idle state 'C9' here; states: POLL (0 us), C1 (2 us)"), missing
    syntax = with_states(idle_tree, max_state="C1,,C6")
    assert "invalid state list" in syntax["error"], syntax
    both = with_states(idle_tree, target_value=5, max_state="C1")
    assert "not both" in both["error"], both


def test_status_is_what_the_command_prints(kernel, lllqos_bin):
    with lllqos.low_wakeup_latency(29):
        mine = lllqos.status()
        theirs = json.loads(subprocess.run([lllqos_bin, "status", "--json"], capture_output=True, text=True, check=True).stdout)
    assert mine["cpu_latency_us"] == theirs["cpu_latency_us"] == kernel.expect(29)
    assert set(mine) == set(theirs)
    assert os.getpid() in [h["pid"] for h in mine["holders"]] + [h["pid"] for h in theirs["holders"]]
    assert [c["cpu"] for c in mine["cpus"]] == [c["cpu"] for c in theirs["cpus"]]
