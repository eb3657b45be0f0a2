#!/bin/bash
# What one `lllqos metrics` costs on a busy node: PROCESSES sleeping processes (5000), HOLDERS of
# them holding the global request (200: lllqos holds, the worst case, whose command lines are read
# too), then RUNS runs of `lllqos metrics`, and of `lllqos status`, timed one by one. The target (issue 36) is under 50 ms.
# The baseline, in the same run, is the peer that answers the same question, `fuser
# /dev/cpu_dma_latency` (psmisc), which reads the same descriptors (`find /proc/*/fd -lname` where
# psmisc is missing); the ratio says how lllqos compares on the same machine at the same moment.
#
#   cargo build --release && sudo benches/metrics.sh [LLLQOS] [PROCESSES] [HOLDERS] [RUNS]
#
# Prints the median and the slowest run of each, and the ratio of the medians. Kills everything it
# started on exit.
set -u
LLLQOS=${1:-target/release/lllqos}
PROCESSES=${2:-5000}
HOLDERS=${3:-200}
RUNS=${4:-21}
[ -x "$LLLQOS" ] || { echo "metrics: $LLLQOS is not an executable (cargo build --release?)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "metrics: needs root (to see every process's descriptors)" >&2; exit 2; }
# The processes get the three standard descriptors, nothing this script was given: a typical
# node's sleeping daemons.
for fd in /proc/$$/fd/*; do
    n=${fd##*/}
    [ "$n" -gt 2 ] 2>/dev/null && eval "exec $n>&-"
done
PIDS=()
cleanup() { kill -KILL "${PIDS[@]}" 2>/dev/null; wait 2>/dev/null; }
trap cleanup EXIT

for _ in $(seq $((PROCESSES - HOLDERS))); do sleep 3600 < /dev/null > /dev/null 2>&1 & PIDS+=($!); done
for i in $(seq "$HOLDERS"); do "$LLLQOS" -q -l $((100 + i)) < /dev/null > /dev/null 2>&1 & PIDS+=($!); done
# Every holder holds: the node reads the strictest of them.
for _ in $(seq 500); do
    [ "$(od -An -td4 -N4 /dev/cpu_dma_latency | tr -d ' ')" = 101 ] && break
    sleep 0.01
done
holders=$("$LLLQOS" metrics | grep -c '^lllqos_cpu_latency_request_seconds{')
descriptors=$(ls /proc/[0-9]*/fd 2>/dev/null | grep -c '^[0-9]')
echo "metrics: $(ls /proc | grep -c '^[0-9]') processes, $descriptors descriptors, $holders holders, $(nproc) CPUs"

# RUNS timings of a command, in ms, sorted.
timings() {
    for _ in $(seq "$RUNS"); do
        local start end
        start=$(date +%s%N)
        "$@" > /dev/null 2>&1
        end=$(date +%s%N)
        echo $(((end - start) / 1000))
    done | sort -n
}
median() { sed -n "$(((RUNS + 1) / 2))p"; }
show() { awk '{printf "%.1f", $1 / 1000}'; }

lllqos=$(timings "$LLLQOS" metrics)
status=$(timings "$LLLQOS" status)
if command -v fuser > /dev/null; then
    peer="fuser /dev/cpu_dma_latency"
    baseline=$(timings fuser /dev/cpu_dma_latency)
else
    peer="find /proc/*/fd -lname /dev/cpu_dma_latency"
    baseline=$(timings sh -c 'find /proc/[0-9]*/fd -mindepth 1 -maxdepth 1 -lname /dev/cpu_dma_latency')
fi
m_lllqos=$(echo "$lllqos" | median); m_base=$(echo "$baseline" | median)
echo "lllqos metrics: median $(echo "$m_lllqos" | show) ms, slowest $(echo "$lllqos" | tail -1 | show) ms (target: under 50 ms)"
echo "lllqos status: median $(echo "$status" | median | show) ms, slowest $(echo "$status" | tail -1 | show) ms (target: under 50 ms)"
echo "$peer: median $(echo "$m_base" | show) ms"
echo "ratio (lllqos metrics / $peer): $(awk -v a="$m_lllqos" -v b="$m_base" 'BEGIN { printf "%.2f", a / b }')"
