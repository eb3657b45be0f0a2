#!/bin/bash
# `lllqos trace` under load and at rest: what the README's trace figures come from. Needs root,
# python3 and a built lllqos:
#
#   cargo build --release && sudo benches/trace.sh [LLLQOS] [RATE] [SECONDS]
#
# 1. Load: a python3 loop holds /dev/cpu_dma_latency and updates its request RATE times a second
#    (paced on CLOCK_MONOTONIC, alternating 10 and 11 us so that every write changes the limit) for
#    SECONDS, while `lllqos trace --json --pid LOOP` runs. Every update must be reported: the script
#    counts the `update` lines against the writes, and the lost events lllqos reports on stderr.
#    It reports lllqos's CPU time (utime + stime from /proc/PID/stat) as a share of one CPU and per
#    change. (The loop itself spins to keep its pace, so its own CPU time is no baseline.)
# 2. Rest: lllqos trace's voluntary context switches over 2 s in which nothing changes (0 expected:
#    it sleeps in poll with no timeout).
#
# Exits 1 if a change was missed or an event lost.
set -eu
LLLQOS=${1:-target/release/lllqos}
RATE=${2:-10000}
SECONDS_EACH=${3:-5}
[ -x "$LLLQOS" ] || { echo "trace: $LLLQOS is not an executable (cargo build --release?)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "trace: needs root" >&2; exit 2; }
command -v python3 >/dev/null || { echo "trace: needs python3" >&2; exit 2; }
OUT=$(mktemp -d)
TRACE=
cleanup() { [ -n "$TRACE" ] && kill -TERM "$TRACE" 2>/dev/null; wait 2>/dev/null; rm -rf "$OUT"; }
trap cleanup EXIT
TICK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# The loop waits for "go" on stdin, so that the trace can be started on its pid first.
mkfifo "$OUT/go"
cat > "$OUT/load.py" <<'EOF'
import os, struct, sys, time
rate, seconds = int(sys.argv[1]), float(sys.argv[2])
fd = os.open('/dev/cpu_dma_latency', os.O_WRONLY)
sys.stdin.readline()
n = int(rate * seconds)
start = time.monotonic()
for i in range(n):
    deadline = start + i / rate
    while time.monotonic() < deadline:
        pass
    os.write(fd, struct.pack('i', 10 + i % 2))
elapsed = time.monotonic() - start
print(n, elapsed)
os.close(fd)
EOF
python3 "$OUT/load.py" "$RATE" "$SECONDS_EACH" < "$OUT/go" > "$OUT/load.txt" &
LOAD=$!
exec 3> "$OUT/go"
"$LLLQOS" trace --json --pid "$LOAD" > "$OUT/trace.jsonl" 2> "$OUT/trace.err" &
TRACE=$!
# The trace reads once its first line (the loop's request, held) is out.
for _ in $(seq 100); do [ -s "$OUT/trace.jsonl" ] && break; sleep 0.05; done
BEFORE=$(cpu_ticks "$TRACE")
echo go >&3
exec 3>&-
wait "$LOAD"
sleep 0.5
AFTER=$(cpu_ticks "$TRACE")
read -r MADE ELAPSED < "$OUT/load.txt"
SWITCHES_0=$(awk '/^voluntary_ctxt_switches/ {print $2}' "/proc/$TRACE/status")
sleep 2
SWITCHES_1=$(awk '/^voluntary_ctxt_switches/ {print $2}' "/proc/$TRACE/status")
kill -TERM "$TRACE"
wait "$TRACE" || true
TRACE=
REPORTED=$(grep -c '"action":"update"' "$OUT/trace.jsonl" || true)
LOST=$(grep -c 'events lost' "$OUT/trace.err" || true)

python3 - "$MADE" "$ELAPSED" "$REPORTED" "$LOST" "$((AFTER - BEFORE))" "$TICK" \
    "$((SWITCHES_1 - SWITCHES_0))" <<'EOF'
import sys
made, elapsed, reported, lost, ticks, tick, switches = sys.argv[1:]
made, reported, lost, switches = int(made), int(reported), int(lost), int(switches)
elapsed = float(elapsed)
cpu = int(ticks) / int(tick)
print(f"changes made        {made} in {elapsed:.2f} s ({made / elapsed:.0f}/s)")
print(f"changes reported    {reported} ({'all' if reported == made else 'MISSED ' + str(made - reported)}), lost-event reports: {lost}")
print(f"lllqos trace CPU    {cpu:.2f} s = {100 * cpu / elapsed:.1f}% of one CPU, {1e6 * cpu / made:.1f} us per change")
print(f"wake-ups at rest    {switches} in 2 s")
sys.exit(0 if reported == made and lost == 0 else 1)
EOF
