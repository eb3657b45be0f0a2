"""Runs one of the seed's scripts unchanged, recording the limit in force at each print.

    python run_seed.py SCRIPT RECORD.json [ACTIVATIONS]

The script runs as `__main__`, its text untouched. Two things around it: every print() also reads
/dev/cpu_dma_latency (the limit in force while the script speaks, which is inside its `with`
blocks), and abs_sleep.periodic is bounded with itertools.islice to ACTIVATIONS activations (3 by
default), so that the README's endless loop ends. The values are written to RECORD.json as a
list. Run under this package and under lllqos 1.0.0, the lists must be equal.
"""

import builtins
import itertools
import json
import runpy
import struct
import sys

script, record = sys.argv[1], sys.argv[2]
activations = int(sys.argv[3]) if len(sys.argv) > 3 else 3

seen = []
real_print = builtins.print


def limit() -> int:
    with open("/dev/cpu_dma_latency", "rb") as node:
        return struct.unpack("=i", node.read(4))[0]


def recording_print(*args, **kwargs):
    seen.append(limit())
    real_print(*args, **kwargs)


builtins.print = recording_print
import abs_sleep  # noqa: E402  (after print is wrapped: nothing prints on import)

unbounded = abs_sleep.periodic
abs_sleep.periodic = lambda *args, **kwargs: itertools.islice(unbounded(*args, **kwargs), activations)
sys.argv = [script]
try:
    runpy.run_path(script, run_name="__main__")
finally:
    builtins.print = real_print
    with open(record, "w") as out:
        json.dump(seen, out)
