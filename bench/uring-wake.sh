#!/usr/bin/env bash
# io_uring's wake-up paths in a minimal C proxy (bench/uring-wake.c), next to epoll: does a
# set-up flag (COOP_TASKRUN, SINGLE_ISSUER|DEFER_TASKRUN) or epoll's synchronous wake-ups
# change a proxied round trip's latency, the proxy's CPU per round trip, or where the kernel
# places the proxy? Builds against Debian's liburing (liburing-dev).
#
#   bench/uring-wake.sh [ROUNDS] [ROUND_TRIPS]        (defaults 3, 10000)
#
# Each round runs the direct baseline and the four wait modes one after another, pinned (client CPU 0, middle and
# end CPU 1, as bench/proxy-overhead.sh) and then unpinned.
# Results: bench/results/uring-wake-<UTC time>/ (machine.txt, runs.txt).
source "$(dirname "$0")/lib.sh"
rounds=${1:-3}
trips=${2:-10000}

out="bench/results/uring-wake-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
machine_txt "$out/machine.txt" "bench/uring-wake.sh $rounds $trips" \
  "pinned: client CPU 0, middle and end CPU 1; unpinned: none"

build_uring_c bench/uring-wake.c "$work/uring-wake"

for r in $(seq "$rounds"); do
  for placement in pin unpinned; do
    for mode in 4 0 1 2 3; do
      line=$("$work/uring-wake" "$mode" "$trips" $([ $placement = pin ] && echo pin))
      echo "round $r $placement $line" | tee -a "$out/runs.txt"
    done
  done
done
echo "results: $out"
