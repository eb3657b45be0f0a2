#!/bin/bash
# What `lllqos nri` adds to a container's start: CreateContainer then StartContainer through the
# CRI, as the kubelet asks them, timed by the CRI client, against the same containerd without the
# plugin, in the same run. Three cases, in interleaved ROUNDS of RUNS containers each: no plugin;
# the plugin, for a pod that asks nothing (NRI's round trips alone); the plugin, for a pod that
# asks for a request (its holder starts before CreateContainer is answered). The target (issue
# 35) is under 5 ms added.
#
# The containerd is the tests' (Debian trixie's 1.7, chrooted into the root that tests/nri/ makes
# and caches: run `cargo test --test tests nri` once first), with its state in a directory of its
# own, removed on exit.
#
#   cargo build --release && sudo benches/nri.sh [LLLQOS] [ROUNDS] [RUNS]
#
# Prints the median of each case and what the plugin adds to it. Then, with HELD containers held
# (200) in one pod: the memory of one held container (its holder's proportional set size, and the
# plugin's growth per container), the plugin's synchronization after a restart that adopts them
# all, and one after a restart with every holder gone (answered first, placed after), with the
# time until all are placed again.
#
#   cargo build --release && sudo benches/nri.sh [LLLQOS] [ROUNDS] [RUNS] [HELD]
set -eu
cd "$(dirname "$0")/.."
LLLQOS=$(realpath "${1:-target/release/lllqos}")
ROUNDS=${2:-20}
RUNS=${3:-10}
HELD=${4:-200}
ROOT=$PWD/target/tmp/nri-root/trixie
[ -x "$LLLQOS" ] || { echo "nri: $LLLQOS is not an executable (cargo build --release?)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "nri: needs root (containerd)" >&2; exit 2; }
[ -x "$ROOT/build/cri" ] || { echo "nri: no $ROOT/build/cri: run 'cargo test --test tests nri' once first" >&2; exit 2; }

DIR=$(mktemp -d /tmp/lllqos-nri-bench.XXXXXX)
chmod 755 "$DIR"
DAEMON= PLUGIN= PODS=() MANY=()
CRI="$ROOT/build/cri -socket $DIR/run/containerd/containerd.sock"
cleanup() {
    [ -n "$PLUGIN" ] && kill "$PLUGIN" 2>/dev/null && wait "$PLUGIN" 2>/dev/null
    for id in "${MANY[@]}"; do $CRI stop "$id" >/dev/null 2>&1; done
    for pod in "${PODS[@]}"; do $CRI stoppod "$pod" >/dev/null 2>&1; $CRI rmpod "$pod" >/dev/null 2>&1; done
    [ -n "$DAEMON" ] && kill "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null
    rm -rf "$DIR"
}
trap cleanup EXIT

cp "$ROOT/build/image.tar" "$DIR/"
# The tests' containerd (NRI on, the imported image as the sandbox image).
tests/nri/containerd.sh "$ROOT" "$DIR" >"$DIR/containerd.log" 2>&1 &
DAEMON=$!
for _ in $(seq 100); do [ -S "$DIR/run/nri/nri.sock" ] && break; sleep 0.1; done
nsenter -t "$DAEMON" -m -r ctr -n k8s.io images import /mnt/test/image.tar >/dev/null

pod() { # NAME ANNOTATIONS-JSON
    echo "{\"name\":\"$1\",\"namespace\":\"bench\",\"annotations\":$2}"
}
PLAIN=$(pod plain '{}')
ASKING=$(pod asking '{"lllqos.io/latency":"50"}')
PLAIN_ID=$($CRI pod "$PLAIN"); PODS+=("$PLAIN_ID")
ASKING_ID=$($CRI pod "$ASKING"); PODS+=("$ASKING_ID")
container() { # POD-JSON
    echo "{\"name\":\"c\",\"image\":\"lllqos.test/busybox:1\",\"command\":[\"sleep\",\"100000\"],\"pod\":$1}"
}

without() {
    $CRI cycle "$PLAIN_ID" "$(container "$PLAIN")" "$RUNS" >>"$DIR/without"
}
with() {
    "$LLLQOS" nri --socket "$DIR/run/nri/nri.sock" 2>"$DIR/plugin.log" &
    PLUGIN=$!
    for _ in $(seq 100); do grep -q "configured by" "$DIR/plugin.log" && break; sleep 0.05; done
    # The two pods by turns, five containers at a time.
    for _ in $(seq $(((RUNS + 4) / 5))); do
        $CRI cycle "$PLAIN_ID" "$(container "$PLAIN")" 5 >>"$DIR/plain"
        $CRI cycle "$ASKING_ID" "$(container "$ASKING")" 5 >>"$DIR/asking"
    done
    kill "$PLUGIN"
    wait "$PLUGIN" || true
    PLUGIN=
}
# Each case first in half the rounds: what drifts over a run (caches, containerd's own garbage
# collection) falls on both alike.
for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) = 0 ]; then without; with; else with; without; fi
done

median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
WITHOUT=$(median "$DIR/without")
report() { # LABEL FILE
    local m; m=$(median "$2")
    printf '%-44s median %6.2f ms  (+%5.2f ms, ratio %.2f)\n' "$1" \
        "$(echo "$m / 1000" | bc -l)" "$(echo "($m - $WITHOUT) / 1000" | bc -l)" "$(echo "$m / $WITHOUT" | bc -l)"
}
echo "container create + start, $(wc -l <"$DIR/without") containers per case, $ROUNDS interleaved rounds:"
printf '%-44s median %6.2f ms\n' "containerd without the plugin" "$(echo "$WITHOUT / 1000" | bc -l)"
report "with lllqos nri, a pod that asks nothing" "$DIR/plain"
report "with lllqos nri, a pod that asks (a holder)" "$DIR/asking"

# One held container's memory, with HELD held.
pss() { awk '/^Pss:/ { kb += $2 } END { print kb + 0 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
# What a process has written and no other shares (its heap, its stack): what grows per container.
dirty() { awk '/^Private_Dirty:/ { kb += $2 } END { print kb + 0 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
holders() { # the pids of the holders serving this containerd
    for pid in $(pgrep -x -f '^lllqos --name .*' 2>/dev/null || true); do
        tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "LLLQOS_NRI=$DIR/run/nri/nri.sock" && echo "$pid"
    done
}
start_plugin() {
    "$LLLQOS" nri --socket "$DIR/run/nri/nri.sock" 2>>"$DIR/plugin-held.log" &
    PLUGIN=$!
    for _ in $(seq 200); do [ "$(grep -c "synchronized in" "$DIR/plugin-held.log")" -ge "$1" ] && break; sleep 0.05; done
}
: >"$DIR/plugin-held.log"
start_plugin 1
sleep 0.5
PLUGIN_EMPTY=$(dirty "$PLUGIN")
MANY_POD=$(pod many '{"lllqos.io/latency":"51"}')
MANY_ID=$($CRI pod "$MANY_POD"); PODS+=("$MANY_ID")
mapfile -t MANY < <($CRI many "$MANY_ID" "$(container "$MANY_POD")" "$HELD")
sleep 1
mapfile -t HOLDERS < <(holders)
TOTAL=0; for pid in "${HOLDERS[@]}"; do TOTAL=$((TOTAL + $(pss "$pid"))); done
RSS=$(awk '/^VmRSS:/ { print $2 }' "/proc/${HOLDERS[0]}/status")
PLUGIN_FULL=$(dirty "$PLUGIN")
PLUGIN_PSS=$(pss "$PLUGIN")
echo "with ${#HOLDERS[@]} containers held (of $HELD):"
echo "  a holder: $((TOTAL / ${#HOLDERS[@]})) KiB PSS on average ($RSS KiB RSS, mostly shared)"
echo "  the plugin: $PLUGIN_PSS KiB PSS; $PLUGIN_EMPTY KiB written (private dirty) holding none, $PLUGIN_FULL KiB holding $HELD: $(((PLUGIN_FULL - PLUGIN_EMPTY) * 1000 / HELD)) bytes per container"
echo "  one held container: $(((TOTAL + PLUGIN_FULL - PLUGIN_EMPTY) / HELD)) KiB (its holder's PSS and the plugin's growth)"
kill -KILL "$PLUGIN"; wait "$PLUGIN" 2>/dev/null || true
start_plugin 2
echo "  restarted (SIGKILL): $(grep "synchronized in" "$DIR/plugin-held.log" | tail -1 | sed 's/^lllqos: nri: //')"
kill -KILL "$PLUGIN"; wait "$PLUGIN" 2>/dev/null || true
kill -KILL $(holders) 2>/dev/null || true
sleep 0.5
BEGIN=$(date +%s%N)
start_plugin 3
for _ in $(seq 600); do [ "$(holders | wc -l)" -ge "$HELD" ] && break; sleep 0.05; done
END=$(date +%s%N)
echo "  restarted with every holder gone: $(grep "synchronized in" "$DIR/plugin-held.log" | tail -1 | sed 's/^lllqos: nri: //'); all $(holders | wc -l) placed again $(((END - BEGIN) / 1000000)) ms after the start"
kill "$PLUGIN"; wait "$PLUGIN" 2>/dev/null || true
PLUGIN=
