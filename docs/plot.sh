#!/bin/sh
# Regenerates docs/latency.svg, the chart in the README: `lllqos measure --plot` on this machine
# (as root, with the real kernel interface; SCHED_FIFO 80, 10 s per phase, 0 us in phase two).
# Prints the report it drew, to record with the picture where it was taken.
set -eu
cd "$(dirname "$0")/.."
cargo build --release --locked --quiet
target/release/lllqos measure --priority 80 --duration 10 --plot docs/latency.svg
