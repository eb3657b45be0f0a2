#!/bin/bash
# Storms of per-CPU holders against the real kernel: what the README's reliability figures come
# from. Needs root, per-CPU resume-latency files and a built lllqos:
#
#   cargo build --release && sudo benches/storm.sh [LLLQOS] [ITERATIONS] [HOLDERS]
#
# 1. TERM->KILL: A=10 and B=5 hold the last CPU; B gets SIGTERM and, 0-4 ms later (while it is
#    releasing), SIGKILL; then A leaves. The CPU must read its original value (0, then 777) and
#    /run/lllqos must hold nothing but its lock. ITERATIONS rounds per original value.
# 2. Storm: HOLDERS holders on overlapping CPU lists with random limits, half wrapping a command
#    that exits by itself (after 0-4 s), ended in random order by exit, SIGTERM, SIGINT and SIGKILL. While they
#    come and go, each CPU is sampled against the registry's live holders: it must never be looser
#    than the strictest live request. At the end, and after one more lllqos on every CPU (which
#    drops the holders killed by SIGKILL), every CPU must read its original and /run/lllqos must
#    hold nothing but its lock.
#
# Prints one line per part with the counts; exits 1 if anything was left wrong. Restores every CPU
# on exit, whatever happens.
set -u
LLLQOS=${1:-target/release/lllqos}
ITERATIONS=${2:-500}
HOLDERS=${3:-120}
SYS=/sys/devices/system/cpu
[ -x "$LLLQOS" ] || { echo "storm: $LLLQOS is not an executable (cargo build --release?)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "storm: needs root" >&2; exit 2; }
CPUS=$(ls -d $SYS/cpu[0-9]* | sed 's/.*cpu//' | sort -n | tr '\n' ' ')
LAST=${CPUS%% }; LAST=${LAST##* }
file() { echo "$SYS/cpu$1/power/pm_qos_resume_latency_us"; }
declare -A SAVED
for c in $CPUS; do SAVED[$c]=$(cat "$(file "$c")"); done
# What /run/lllqos holds besides its lock (which stays, as the directory does): nothing when no
# holder is left.
left_in_registry() { ls -A /run/lllqos 2>/dev/null | grep -vx lock; }
[ -n "$(left_in_registry)" ] && { echo "storm: /run/lllqos holds records: another lllqos holds CPUs" >&2; exit 2; }
restore() {
    pkill -KILL -f "^$LLLQOS --cpu" 2>/dev/null
    sleep 0.1
    "$LLLQOS" recover >/dev/null 2>&1
    for c in $CPUS; do echo "${SAVED[$c]}" > "$(file "$c")"; done
}
trap restore EXIT

wait_for() { # FILE TEXT: until FILE reads TEXT (5 s at most)
    for _ in $(seq 500); do [ "$(cat "$1")" = "$2" ] && return 0; sleep 0.01; done
    return 1
}

failed=0

# Part 1: TERM->KILL.
wrong=0; rounds=0
F=$(file "$LAST")
for original in 0 777; do
    echo "$original" > "$F"
    for _ in $(seq "$ITERATIONS"); do
        "$LLLQOS" --cpu "$LAST" -l 10 & a=$!
        wait_for "$F" 10 || { echo "storm: A did not place 10" >&2; exit 1; }
        "$LLLQOS" --cpu "$LAST" -l 5 & b=$!
        wait_for "$F" 5 || { echo "storm: B did not place 5" >&2; exit 1; }
        kill -TERM $b
        sleep "0.00$((RANDOM % 5))"
        kill -KILL $b 2>/dev/null
        wait $b 2>/dev/null
        kill -TERM $a; wait $a
        rounds=$((rounds + 1))
        if [ "$(cat "$F")" != "$original" ] || [ -n "$(left_in_registry)" ]; then
            wrong=$((wrong + 1))
            echo "storm: round $rounds: cpu$LAST reads $(cat "$F") (original $original), /run/lllqos holds: $(left_in_registry | tr '\n' ' ')" >&2
            "$LLLQOS" recover >/dev/null 2>&1; echo "$original" > "$F"
        fi
    done
done
echo "${SAVED[$LAST]}" > "$F"
echo "TERM->KILL: $rounds rounds (originals 0 and 777), $wrong left wrong"
[ $wrong = 0 ] || failed=1

# Part 2: the storm.
lists=("$LAST")
for c in $CPUS; do lists+=("$c"); done
lists+=("$(echo "$CPUS" | tr -s ' ' '\n' | head -1)-$LAST")
limits=(0 1 5 10 20 50 100 1000)
pids=(); exits=0
# A script's background jobs start with SIGINT ignored, and lllqos keeps what it inherits ignored:
# give them the default back, as an interactive shell's jobs have it.
spawn() { env --default-signal=INT "$LLLQOS" "$@" & pids+=($!); }
for i in $(seq "$HOLDERS"); do
    list=${lists[$((RANDOM % ${#lists[@]}))]}
    limit=${limits[$((RANDOM % ${#limits[@]}))]}
    if [ $((RANDOM % 2)) = 0 ]; then
        spawn --cpu "$list" -l "$limit" -- sleep "$((RANDOM % 4)).$((RANDOM % 10))"
        exits=$((exits + 1))
    else
        spawn --cpu "$list" -l "$limit"
    fi
done
# Sample while they run and end: no CPU looser than a live holder's request in the registry. A
# sample reads the CPUs, the registry, the CPUs again, and counts only CPUs that read the same both
# times and have no change under way (an intent): a CPU read on either side of a holder's write
# would otherwise be compared with the wrong registry.
violations=0; samples=0
values() { for c in $CPUS; do printf '%s=%s ' "$c" "$(cat "$(file "$c")")"; done; }
sample() {
    local before reg after out
    before=$(values)
    reg=$(cat /run/lllqos/registry.json 2>/dev/null) || return 0
    after=$(values)
    out=$(BEFORE=$before AFTER=$after REG=$reg python3 -c '
import json, os, fcntl
r = json.loads(os.environ["REG"])
before = dict(kv.split("=") for kv in os.environ["BEFORE"].split())
after = dict(kv.split("=") for kv in os.environ["AFTER"].split())
def alive(h):
    try:
        fd = os.open("/run/lllqos/" + h["lock"], os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
samples = bad = 0
for cpu, value in before.items():
    if after[cpu] != value or r["cpus"].get(cpu, {}).get("intent"):
        continue
    live = [h["latency_us"] for h in r["holders"] if int(cpu) in h["cpus"] and alive(h)]
    if not live:
        continue
    samples += 1
    limit = None if value == "0" else 0 if value == "n/a" else int(value)
    if limit is None or limit > min(live):
        bad += 1
print(samples, bad)' 2>/dev/null) || return 0
    samples=$((samples + ${out% *})); violations=$((violations + ${out#* }))
}
ended_term=0; ended_int=0; ended_kill=0
for pid in $(printf '%s\n' "${pids[@]}" | shuf); do
    sample
    sleep "0.0$((RANDOM % 3))"
    case $((RANDOM % 3)) in
        0) kill -TERM "$pid" 2>/dev/null && ended_term=$((ended_term + 1)) ;;
        1) kill -INT "$pid" 2>/dev/null && ended_int=$((ended_int + 1)) ;;
        2) kill -KILL "$pid" 2>/dev/null && ended_kill=$((ended_kill + 1)) ;;
    esac
done
wait 2>/dev/null
"$LLLQOS" --cpu "$(echo "$CPUS" | tr -s ' ' '\n' | head -1)-$LAST" -l 1 -- true
left=0
for c in $CPUS; do [ "$(cat "$(file "$c")")" = "${SAVED[$c]}" ] || left=$((left + 1)); done
[ -n "$(left_in_registry)" ] && left=$((left + 1))
echo "storm: $HOLDERS holders on ${#lists[@]} overlapping CPU lists ($exits wrapping a command; ended by SIGTERM $ended_term, SIGINT $ended_int, SIGKILL $ended_kill, the rest by exit); $samples samples, $violations looser than a live request; after one more lllqos: $left CPUs or directories left wrong"
[ $violations = 0 ] && [ $left = 0 ] || failed=1
exit $failed
