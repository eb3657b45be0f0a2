"""lllqos 1.0.0's API, name for name and behaviour for behaviour, and where 1.0.0 was wrong."""

import gc
import inspect
import os
import pathlib
import sys
import sysconfig
import threading

import pytest

import lllqos
from conftest import read_node, run_python


def test_the_package_is_the_installed_one_not_the_source_tree():
    installed = pathlib.Path(sysconfig.get_paths()["platlib"]).resolve()
    assert pathlib.Path(lllqos.__file__).resolve().is_relative_to(installed), lllqos.__file__
    assert lllqos.__version__ > "1.0.0"
    native = pathlib.Path(lllqos._lllqos.__file__).name
    assert native.endswith(".abi3.so"), native


def test_the_names_of_1_0_0_are_all_there():
    assert lllqos.QOS_FILE == pathlib.Path("/dev/cpu_dma_latency")
    assert isinstance(lllqos.QOS_FILE, pathlib.Path)
    lease = lllqos.LowLatencyLease()
    for name in ("acquire", "acquired", "release", "__enter__", "__exit__"):
        assert callable(getattr(lease, name)), name
    assert isinstance(lllqos.low_wakeup_latency(), lllqos.LowLatencyLease)
    assert list(inspect.signature(lllqos.low_wakeup_latency).parameters) == ["target_value", "args", "kwargs"]
    assert str(inspect.signature(lllqos.LowLatencyLease)).startswith("(target_value=0, dev_path=None")


def test_help_shows_the_docstrings():
    for thing in (lllqos, lllqos.LowLatencyLease, lllqos.LowLatencyLease.acquire, lllqos.low_wakeup_latency, lllqos.periodic, lllqos.status):
        assert thing.__doc__ and len(thing.__doc__) > 30, thing


def test_the_value_is_on_the_node_while_held_and_gone_after(kernel):
    lease = lllqos.LowLatencyLease(37)
    assert not lease.acquired()
    assert lease.acquire() is True
    assert lease.acquired()
    assert read_node() == kernel.expect(37)
    lease.release()
    assert not lease.acquired()
    assert read_node() == kernel.baseline
    lease.release()  # idempotent
    assert not lease.acquired()


def test_the_context_manager_returns_the_lease_and_releases_it(kernel):
    with lllqos.low_wakeup_latency(41) as lease:
        assert isinstance(lease, lllqos.LowLatencyLease)
        assert lease.acquired()
        assert read_node() == kernel.expect(41)
    assert not lease.acquired()
    assert read_node() == kernel.baseline


def test_the_default_is_zero(kernel):
    with lllqos.low_wakeup_latency():
        assert read_node() == 0


def test_nested_leases_the_kernel_keeps_the_minimum(kernel):
    with lllqos.low_wakeup_latency(60):
        assert read_node() == kernel.expect(60)
        with lllqos.low_wakeup_latency(25):
            assert read_node() == kernel.expect(25)
            with lllqos.low_wakeup_latency(90):
                assert read_node() == kernel.expect(25)
            assert read_node() == kernel.expect(25)
        assert read_node() == kernel.expect(60)
    assert read_node() == kernel.baseline


def test_an_exception_in_the_block_releases_and_goes_on(kernel):
    with pytest.raises(RuntimeError, match="boom"):
        with lllqos.low_wakeup_latency(12) as lease:
            assert read_node() == kernel.expect(12)
            raise RuntimeError("boom")
    assert not lease.acquired()
    assert read_node() == kernel.baseline


def test_a_lease_garbage_collected_while_held_is_released(kernel):
    lease = lllqos.LowLatencyLease(13)
    assert lease.acquire()
    assert read_node() == kernel.expect(13)
    cycle = [lease]
    cycle.append(cycle)  # only the cycle collector frees it
    del lease, cycle
    gc.collect()
    assert read_node() == kernel.baseline


def test_acquiring_twice_keeps_one_request(kernel):
    lease = lllqos.LowLatencyLease(44)
    assert lease.acquire() and lease.acquire()
    assert read_node() == kernel.expect(44)
    lease.release()
    assert read_node() == kernel.baseline


def test_a_lease_made_in_one_thread_is_released_in_another(kernel):
    made = {}
    maker = threading.Thread(target=lambda: made.update(lease=lllqos.LowLatencyLease(19)))
    maker.start(); maker.join()
    lease = made["lease"]
    acquirer = threading.Thread(target=lease.acquire)
    acquirer.start(); acquirer.join()
    assert lease.acquired() and read_node() == kernel.expect(19)
    releaser = threading.Thread(target=lease.release)
    releaser.start(); releaser.join()
    assert not lease.acquired() and read_node() == kernel.baseline


@pytest.mark.parametrize("path", ["/nonexistent/cpu_dma_latency", pathlib.Path("/nonexistent/cpu_dma_latency")])
def test_a_missing_dev_path_is_false_and_silent(path):
    lease = lllqos.LowLatencyLease(0, dev_path=path)
    assert lease.acquire() is False
    assert not lease.acquired()
    # And in a fresh interpreter, nothing on stderr either.
    result = run_python(f"import lllqos\nprint(lllqos.LowLatencyLease(0, {str(path)!r}).acquire())")
    assert (result.returncode, result.stdout, result.stderr) == (0, "False\n", "")


def test_dev_path_takes_a_str_or_a_path(kernel):
    for path in ("/dev/cpu_dma_latency", pathlib.Path("/dev/cpu_dma_latency")):
        with lllqos.LowLatencyLease(33, dev_path=path) as lease:
            assert lease.acquired() and read_node() == kernel.expect(33)
            assert lease.dev_path == pathlib.Path(path)


def test_an_unprivileged_interpreter_gets_false_with_no_exception_and_no_output(kernel):
    code = """
import lllqos
print(lllqos.LowLatencyLease(0).acquire())
with lllqos.low_wakeup_latency(5) as lease:
    print(lease.acquired())
print(lllqos.LowLatencyLease(5, cpus="0").acquire())
"""
    result = run_python(code, user="65534", cwd="/")
    assert (result.returncode, result.stdout, result.stderr) == (0, "False\nFalse\nFalse\n", "")
    assert read_node() == kernel.baseline


@pytest.mark.parametrize("value", [-1, -5, 2**40, 2**31, 2**100])
def test_a_value_out_of_range_is_a_value_error_before_anything_is_touched(kernel, value):
    with pytest.raises(ValueError, match=f"target_value {value} is out of range: a latency is 0 to 2147483647 microseconds"):
        lllqos.LowLatencyLease(value)
    with pytest.raises(ValueError):
        lllqos.low_wakeup_latency(value)
    assert read_node() == kernel.baseline


@pytest.mark.parametrize("value", [1.5, "5", object(), [0]])
def test_what_is_not_an_int_is_a_type_error(value):
    with pytest.raises(TypeError, match="target_value must be an int"):
        lllqos.LowLatencyLease(value)


def test_the_largest_value_is_accepted(kernel):
    with lllqos.low_wakeup_latency(2**31 - 1) as lease:
        assert lease.acquired()
        assert read_node() == kernel.baseline


def test_a_file_that_is_not_a_pm_qos_node_is_an_os_error_naming_it(tmp_path):
    regular = tmp_path / "not-a-node"
    regular.write_bytes(b"")
    for path, why in [(regular, "not a character device"), ("/dev/null", "not a PM QoS device node")]:
        with pytest.raises(OSError) as raised:
            lllqos.LowLatencyLease(0, dev_path=path).acquire()
        assert raised.value.filename == str(path)
        assert why in str(raised.value)
    # 1.0.0 would have written (and truncated) the file: it is untouched.
    assert regular.read_bytes() == b""


def test_set_changes_the_request_in_place(kernel):
    with lllqos.low_wakeup_latency(70) as lease:
        lease.set(8)
        assert read_node() == kernel.expect(8)
        assert lease.target == 8
        lease.set(2**31 - 1)
        assert read_node() == kernel.baseline
        with pytest.raises(ValueError):
            lease.set(-5)
        assert read_node() == kernel.baseline
    lease.set(9)  # not held: what the next acquire asks for
    assert read_node() == kernel.baseline
    with lease:
        assert read_node() == kernel.expect(9)


def test_set_never_leaves_a_moment_without_a_request(kernel):
    """A reader in another thread sees 50 or 60 throughout, never the baseline."""
    with lllqos.low_wakeup_latency(50) as lease:
        seen = set()
        done = threading.Event()

        def read():
            while not done.is_set():
                seen.add(read_node())

        reader = threading.Thread(target=read)
        reader.start()
        for _ in range(300):
            lease.set(60)
            lease.set(50)
        done.set()
        reader.join()
    assert seen <= {kernel.expect(50), kernel.expect(60)}, seen


def test_the_repr_says_what_it_asks_for():
    assert repr(lllqos.LowLatencyLease(5, cpus=[1, 0])) == '<LowLatencyLease target_value=5, cpus="0,1", acquired=False>'
