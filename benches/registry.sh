#!/bin/bash
# The per-CPU registry at scale (issue 44): what one per-CPU change costs with HOLDERS live
# per-CPU holders against its cost with none, in the same run, and how long HOLDERS holders take to
# register when started at once, and to be released when ended at once. Needs root, the per-CPU
# resume-latency files and a built lllqos:
#
#   cargo build --release && sudo benches/registry.sh [LLLQOS] [HOLDERS] [RUNS]
#
# A change here is one `lllqos --cpu CPU -l 9 -- true` (an acquire and a release: two changes of
# the registry), timed RUNS times beside HOLDERS holders (each a `lllqos --cpu CPU -l N` hold on
# the same CPU, N from 1 to 5, stricter than the one timed, so that the timed one writes nothing
# but the registry), and with no holder RUNS times before they start and RUNS times after they
# end (so that the machine's drift during the run weighs on both sides). Targets: the ratio of
# the medians at most 2; HOLDERS (1,000) registered in under 10 s and released in under 2 s.
# Restores the CPU, and ends every holder, on exit.
set -u
LLLQOS=$(realpath "${1:-target/release/lllqos}")
HOLDERS=${2:-1000}
RUNS=${3:-50}
SYS=/sys/devices/system/cpu
[ -x "$LLLQOS" ] || { echo "registry: $LLLQOS is not an executable (cargo build --release?)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "registry: needs root" >&2; exit 2; }
[ -e /run/lllqos/registry.json ] && { echo "registry: /run/lllqos holds records: another lllqos holds CPUs" >&2; exit 2; }
CPU=$(ls -d $SYS/cpu[0-9]* | sed 's/.*cpu//' | sort -n | tail -1)
FILE=$SYS/cpu$CPU/power/pm_qos_resume_latency_us
SAVED=$(cat "$FILE")
PIDS=()
cleanup() {
    kill -KILL "${PIDS[@]}" 2>/dev/null
    wait 2>/dev/null
    "$LLLQOS" recover >/dev/null 2>&1
    echo "$SAVED" >"$FILE"
    rm -f "$NONE" "$MANY"
}
trap cleanup EXIT
NONE=$(mktemp) MANY=$(mktemp)

registered() { grep -o '"pid"' /run/lllqos/registry.json 2>/dev/null | wc -l; }
# RUNS timings (us) of one change, sorted.
change() {
    local start end
    start=$(date +%s%N)
    "$LLLQOS" -q --cpu "$CPU" -l 9 -- true
    end=$(date +%s%N)
    echo $(((end - start) / 1000))
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

for _ in $(seq "$RUNS"); do change >>"$NONE"; done

begin=$(date +%s%N)
for i in $(seq "$HOLDERS"); do
    "$LLLQOS" -q --cpu "$CPU" -l $((1 + i % 5)) </dev/null >/dev/null 2>&1 &
    PIDS+=($!)
done
for _ in $(seq 6000); do [ "$(registered)" -ge "$HOLDERS" ] && break; sleep 0.01; done
registered_ms=$((($(date +%s%N) - begin) / 1000000))
echo "registry: $(registered) of $HOLDERS holders started at once registered in $registered_ms ms (target: under 10000)"

for _ in $(seq "$RUNS"); do change >>"$MANY"; done

begin=$(date +%s%N)
kill -TERM "${PIDS[@]}" 2>/dev/null
wait 2>/dev/null
PIDS=()
released_ms=$((($(date +%s%N) - begin) / 1000000))
echo "registry: $HOLDERS holders ended at once released in $released_ms ms (target: under 2000); $FILE reads $(cat "$FILE") (was $SAVED)"
for _ in $(seq "$RUNS"); do change >>"$NONE"; done
none=$(median <"$NONE")
many=$(median <"$MANY")
echo "one per-CPU change (lllqos --cpu $CPU -l 9 -- true): median $none us with no holder, $many us beside $HOLDERS"
echo "ratio: $(awk -v a="$many" -v b="$none" 'BEGIN { printf "%.2f", a / b }') (target: at most 2)"
