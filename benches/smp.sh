#!/bin/bash
# `lllqos measure --smp` side by side with cyclictest's SMP mode on the same machine: what the
# README's "measure --smp against cyclictest" figures come from. Needs root, cyclictest (Debian:
# rt-tests), python3 and a built lllqos:
#
#   cargo build --release && sudo benches/smp.sh [LLLQOS] [ROUNDS] [SECONDS]
#
# Each round runs, one after the other (so the machine's noise falls on all of them alike):
#   1. lllqos measure --smp --priority 80 --interval 1000 --duration SECONDS: both phases;
#   2. cyclictest -S -m -p 80 -i 1000 -d 0 --laptop -D SECONDS: no request (--laptop keeps
#      cyclictest from opening /dev/cpu_dma_latency), the peer of phase one;
#   3. the same cyclictest under `lllqos -l 0 --`: the peer of phase two.
# `-d 0` gives every cyclictest thread the same 1000 us interval (-S alone spaces them 500 us
# apart), as lllqos gives its loops.
#
# Prints each CPU's average wake-up latency in microseconds, the mean over the rounds, one column
# per run, and the ratio of the two methods in each phase.
set -eu
LLLQOS=${1:-target/release/lllqos}
ROUNDS=${2:-5}
SECONDS_EACH=${3:-10}
[ -x "$LLLQOS" ] || { echo "smp: $LLLQOS is not an executable (cargo build --release?)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "smp: needs root" >&2; exit 2; }
command -v cyclictest >/dev/null || { echo "smp: needs cyclictest (apt-get install rt-tests)" >&2; exit 2; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

CYCLICTEST=(cyclictest -S -m -p 80 -i 1000 -d 0 --laptop -D "$SECONDS_EACH" -q)
for round in $(seq "$ROUNDS"); do
    "$LLLQOS" measure --smp --priority 80 --interval 1000 --duration "$SECONDS_EACH" --json \
        > "$OUT/lllqos.$round.json"
    "${CYCLICTEST[@]}" > "$OUT/without.$round.txt" 2>/dev/null
    "$LLLQOS" -l 0 -- "${CYCLICTEST[@]}" > "$OUT/with.$round.txt" 2>/dev/null
done

python3 - "$OUT" "$ROUNDS" "$SECONDS_EACH" "$(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo none)" <<'EOF'
import glob, json, re, sys
from collections import defaultdict
out, rounds, seconds, driver = sys.argv[1:]
avg = defaultdict(list)  # (cpu, column) -> averages
for path in glob.glob(f"{out}/lllqos.*.json"):
    for cpu in json.load(open(path))["per_cpu"]:
        avg[cpu["cpu"], "measure without"].append(cpu["without"]["avg_us"])
        avg[cpu["cpu"], "measure with"].append(cpu["with"]["avg_us"])
# cyclictest -q prints one line per thread; -S pins thread N to CPU N of its affinity.
line = re.compile(r"T:\s*(\d+).*\bAvg:\s*(\d+)")
for phase in ["without", "with"]:
    for path in glob.glob(f"{out}/{phase}.*.txt"):
        for m in map(line.search, open(path)):
            if m:
                avg[int(m[1]), f"cyclictest {phase}"].append(float(m[2]))
columns = ["measure without", "cyclictest without", "measure with", "cyclictest with"]
mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")
print(f"average wake-up latency (us), mean of {rounds} rounds of {seconds} s, cpuidle driver: {driver}")
print(f"{'cpu':<5}" + "".join(f"{c:>20}" for c in columns))
for cpu in sorted({cpu for cpu, _ in avg}):
    cells = [mean(avg[cpu, c]) for c in columns]
    print(f"{cpu:<5}" + "".join(f"{v:>20.1f}" for v in cells))
for phase in ["without", "with"]:
    cpus = sorted({cpu for cpu, _ in avg})
    ratios = [mean(avg[c, f"measure {phase}"]) / mean(avg[c, f"cyclictest {phase}"]) for c in cpus]
    print(f"measure / cyclictest, {phase} the request: " + ", ".join(f"cpu{c} {r:.2f}" for c, r in zip(cpus, ratios)))
EOF
