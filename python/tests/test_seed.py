"""The seed's own code runs unchanged: lllqos 1.0.0's README examples and its test.py (with
abs-sleep 1.0.0), under this package and, side by side, under 1.0.0 itself installed from the
package index, placing the same values on the node."""

import json
import pathlib
import subprocess
import sys

import pytest

from conftest import read_node

SEED = pathlib.Path(__file__).parent / "seed"
RUNNER = pathlib.Path(__file__).parent / "run_seed.py"
SCRIPTS = ["readme_1.py", "readme_2.py", "test.py"]

# A program of 1.0.0's API beyond the README: nested leases, set values, acquire/release by hand,
# dev_path as a Path, a lease that fails (missing node).
API = """
from pathlib import Path
from lllqos import QOS_FILE, LowLatencyLease, low_wakeup_latency
with low_wakeup_latency(300):
    print("outer")
    with low_wakeup_latency(40) as inner:
        print("inner", inner.acquired())
    print("outer again")
lease = LowLatencyLease(75, dev_path=QOS_FILE)
print("before", lease.acquire(), lease.acquired())
lease.release()
lease.release()
print("after", lease.acquired())
missing = LowLatencyLease(0, Path("/nonexistent/cpu_dma_latency"))
print("missing", missing.acquire(), missing.acquired())
with low_wakeup_latency(2147483647):
    print("largest")
"""


def run(python: str, script: pathlib.Path, tmp_path: pathlib.Path) -> tuple:
    record = tmp_path / f"{script.name}.{abs(hash(python))}.json"
    result = subprocess.run([python, str(RUNNER), str(script), str(record)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    return result.stdout, json.loads(record.read_text())


@pytest.fixture
def api_script(tmp_path) -> pathlib.Path:
    path = tmp_path / "api.py"
    path.write_text(API)
    return path


@pytest.mark.parametrize("name", SCRIPTS)
def test_the_seeds_scripts_run_as_written(kernel, tmp_path, name):
    stdout, seen = run(sys.executable, SEED / name, tmp_path)
    assert seen, stdout
    if name in ("readme_1.py", "test.py"):
        assert "Lease acquired: True" in stdout, stdout
    if name != "readme_1.py":
        # Every print is inside a `with low_wakeup_latency()`: 0 us was in force each time.
        assert set(seen) == {0}, seen
    if name in ("readme_2.py", "test.py"):
        activations = [line for line in stdout.splitlines() if line.startswith("periodic activation @ ")]
        assert len(activations) == 3, stdout
    assert read_node() == kernel.baseline


@pytest.mark.parametrize("name", SCRIPTS + ["api.py"])
def test_the_same_scripts_place_the_same_values_as_1_0_0(kernel, tmp_path, seed_python, api_script, name):
    script = api_script if name == "api.py" else SEED / name
    version = subprocess.run([seed_python, "-c", "import importlib.metadata as m; print(m.version('lllqos'))"], capture_output=True, text=True)
    assert version.stdout.strip() == "1.0.0", version
    theirs_out, theirs = run(seed_python, script, tmp_path)
    ours_out, ours = run(sys.executable, script, tmp_path)
    assert ours == theirs, (ours_out, theirs_out)
    # The scripts say the same too (but for the times of the periodic activations).
    strip = lambda out: [line for line in out.splitlines() if not line.startswith("periodic activation @ ")]
    assert strip(ours_out) == strip(theirs_out)
    if name == "api.py":
        assert ours == [kernel.expect(300), kernel.expect(40), kernel.expect(300), kernel.expect(75), kernel.baseline, kernel.baseline, kernel.baseline]
    assert read_node() == kernel.baseline
