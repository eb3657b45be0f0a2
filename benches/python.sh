#!/bin/bash
# The Python package against what it replaces, in one run (issue 41):
#
# 1. Round trips: acquire() + release() of a lease, per second, this package (python/) against the
#    seed, lllqos 1.0.0 from the package index. ROUNDS rounds of TRIPS trips each, the two in a
#    random order in every round; the ratio of the medians (this / 1.0.0) is the figure. Target:
#    >= 0.9 (no slower than 1.0.0).
# 2. Lateness: ACTIVATIONS periodic activations at 1 ms, this package's periodic() against
#    abs-sleep 1.0.0's periodic(), each under SCHED_FIFO 80 (chrt) where that is granted, else as
#    it is (said). For each activation, time.monotonic() after the wake-up minus the deadline;
#    the median and the 99th percentile of each, alternately, ROUNDS times. Target: this package's
#    median no worse than abs-sleep's.
#
#   sudo benches/python.sh [ROUNDS] [TRIPS] [ACTIVATIONS]
#
# The virtual environments are made under target/bench-python (python3-venv, the package index);
# the package is built from python/ and installed again each time.
set -eu
cd "$(dirname "$0")/.."
ROUNDS=${1:-7}
TRIPS=${2:-20000}
ACTIVATIONS=${3:-1000}
[ "$(id -u)" = 0 ] || { echo "python: needs root (the node)" >&2; exit 2; }
dir=target/bench-python
ours=$dir/package/bin/python
seed=$dir/seed/bin/python
if [ ! -x "$seed" ]; then
    python3 -m venv "$dir/seed"
    "$seed" -m pip install --quiet --disable-pip-version-check lllqos==1.0.0 abs-sleep==1.0.0
fi
[ -x "$ours" ] || python3 -m venv "$dir/package"
"$ours" -m pip install --quiet --disable-pip-version-check abs-sleep==1.0.0
"$ours" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./python

# Prints acquire+release round trips per second.
trips='
import sys, time
from lllqos import LowLatencyLease
n = int(sys.argv[1])
lease = LowLatencyLease(0)
assert lease.acquire(); lease.release()
start = time.perf_counter()
for _ in range(n):
    lease.acquire()
    lease.release()
print(n / (time.perf_counter() - start))
'
# Prints the median and the 99th percentile of ACTIVATIONS activations at 1 ms, in us.
late='
import sys, time, statistics
if sys.argv[1] == "lllqos":
    from lllqos import periodic
else:
    from abs_sleep import periodic
n = int(sys.argv[2])
late = []
for t in periodic(0.001):
    late.append(time.monotonic() - t)
    if len(late) == n:
        break
late.sort()
print(statistics.median(late) * 1e6, late[int(len(late) * 0.99)] * 1e6)
'
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "python: $(nproc) CPUs, cpuidle $(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo none), $("$ours" -c 'import sys; print(sys.version.split()[0])'), lllqos $("$ours" -c 'import lllqos; print(lllqos.__version__)') against $("$seed" -c 'import importlib.metadata as m; print(m.version("lllqos"))')"
: > "$dir/ours.trips"; : > "$dir/seed.trips"
for _ in $(seq "$ROUNDS"); do
    for who in $(printf 'ours\nseed\n' | shuf); do
        python=$ours; [ "$who" = seed ] && python=$seed
        "$python" -c "$trips" "$TRIPS" >> "$dir/$who.trips"
    done
done
o=$(median < "$dir/ours.trips"); s=$(median < "$dir/seed.trips")
echo "round trips per second (median of $ROUNDS x $TRIPS): this package $(printf %.0f "$o"), lllqos 1.0.0 $(printf %.0f "$s")"
echo "ratio (this / 1.0.0): $(awk -v a="$o" -v b="$s" 'BEGIN { printf "%.2f", a / b }') (target >= 0.9)"

fifo=(chrt -f 80)
if ! chrt -f 80 true 2>/dev/null; then
    fifo=()
    echo "lateness: SCHED_FIFO is not granted here; both run SCHED_OTHER (50 us of timer slack each)"
fi
: > "$dir/ours.late"; : > "$dir/seed.late"
for _ in $(seq "$ROUNDS"); do
    for who in $(printf 'ours\nseed\n' | shuf); do
        if [ "$who" = ours ]; then
            "${fifo[@]}" "$ours" -c "$late" lllqos "$ACTIVATIONS" >> "$dir/ours.late"
        else
            "${fifo[@]}" "$ours" -c "$late" abs_sleep "$ACTIVATIONS" >> "$dir/seed.late"
        fi
    done
done
om=$(cut -d' ' -f1 < "$dir/ours.late" | median); sm=$(cut -d' ' -f1 < "$dir/seed.late" | median)
op=$(cut -d' ' -f2 < "$dir/ours.late" | median); sp=$(cut -d' ' -f2 < "$dir/seed.late" | median)
echo "lateness of $ACTIVATIONS activations at 1 ms${fifo[*]:+ under ${fifo[*]}} (median of $ROUNDS runs): lllqos.periodic median $(printf %.1f "$om") us, p99 $(printf %.1f "$op") us; abs_sleep.periodic median $(printf %.1f "$sm") us, p99 $(printf %.1f "$sp") us"
echo "ratio of the medians (lllqos / abs-sleep): $(awk -v a="$om" -v b="$sm" 'BEGIN { printf "%.2f", a / b }') (target <= 1)"
