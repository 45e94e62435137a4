#!/usr/bin/env bash
# Load benchmark of the demo servers (axum and actix-web), driven from a second process on
# 127.0.0.1. Usage: scripts/load-bench.sh [seconds per scenario, default 10] [loadgen options]
#
# Builds the demos and the driver in release mode, then for each framework runs
# target/release/examples/loadgen twice: with a client that sleeps in epoll between responses
# (as wrk does) and with a busy-polling client (--busy-poll), which never has to be woken, so
# the server's CPU carries no wake-ups of the client. loadgen starts the demo pinned to CPU 0
# (taskset) and itself runs pinned to CPU 1, so server and client do not share a core. It
# prints requests per second, p50/p99 latency, the ratio to /public, the CPU the server and
# the client used and the server's peak RSS, and measures the single-core validation rate on
# CPU 0 between the distinct-token rounds. Options after the seconds go to every loadgen run
# and override its defaults, e.g. `scripts/load-bench.sh 10 --connections 4 --pipeline 16`
# (see examples/loadgen.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
shift || true
cargo build --release -p oidc-auth-examples --example demo --example demo_actix --example loadgen
run() {
  if command -v taskset >/dev/null; then taskset -c 1 "$@"; else "$@"; fi
}
for demo in demo demo_actix; do
  for client in "" --busy-poll; do
    run target/release/examples/loadgen "target/release/examples/$demo" \
      --seconds "$seconds" --connections 32 --tokens 2000 --server-cpus 0 $client "$@"
    echo
  done
done
