#!/usr/bin/env bash
# Sign-in cost, side by side in one run, interleaved: the timestamped signed CONNECT (SPEC §1)
# against the challenge scheme (MQTT 5 AUTH, flytrap-siwe-v1: one round trip more). Each round
# runs one connect storm of each: N loadgen clients connect (at RAMP/s), get their CONNACK and
# disconnect. Measured: CONNECT→CONNACK latency at the client (the challenge's includes the AUTH
# round trip and the client's signing), and FlyTrap's CPU time per sign-in end to end (accept,
# verification, broker dial, forwarding: /proc utime + stime over the storm ÷ N).
#
# Placement (2 vCPUs): loadgen and anvil on CPU 0; Mosquitto and FlyTrap (one shard) on CPU 1.
#
#   bench/signin.sh [ROUNDS] [CLIENTS] [RAMP]     (defaults: 3 rounds of 2000 clients at 500/s)
#
# Results: bench/results/signin-<UTC time>/ (loadgen outputs per storm, summary.md, machine.txt).
source "$(dirname "$0")/lib.sh"
rounds=${1:-3}
clients=${2:-2000}
ramp=${3:-500}

build
out="bench/results/signin-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"

broker=$(free_port); port=$(free_port)
start_mosquitto 1 "$broker"
start_chain 0
chain_toml flytrap "$broker" "$port" "" 300
start_flytrap 1 flytrap "$port"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for r in $(seq "$rounds"); do
  for scheme in timestamped challenge; do
    before=$(cpu_ticks "$flytrap_pid")
    taskset -c 0 $bin/loadgen connect --target "127.0.0.1:$port" -n "$clients" --ramp "$ramp" \
      --auth "$scheme" --seed "signin-$r" --cores 0 --quiet --timeout 10 \
      --out "$out/$scheme-$r" >/dev/null
    after=$(cpu_ticks "$flytrap_pid")
    echo "{\"scheme\": \"$scheme\", \"round\": $r, \"ticks\": $((after - before))}" >>"$out/cpu.jsonl"
  done
  echo "round $r/$rounds done" >&2
done

machine_txt "$out/machine.txt" "bench/signin.sh $rounds $clients $ramp" \
  "loadgen and anvil on CPU 0; mosquitto and flytrap (1 shard) on CPU 1"

python3 - "$out" "$clients" "$(getconf CLK_TCK)" <<'PY' | tee "$out/summary.md"
import json, os, statistics, sys
out, n, tck = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cpu = [json.loads(l) for l in open(os.path.join(out, "cpu.jsonl"))]
med = statistics.median
rows = {}
for scheme in ["timestamped", "challenge"]:
    runs = sorted(d for d in os.listdir(out) if d.startswith(scheme + "-"))
    sums = [json.load(open(os.path.join(out, d, "summary.json"))) for d in runs]
    ph = [s["phases"]["connect"] for s in sums]
    errors = sum(sum(s.get("errors", {}).values()) for s in sums)
    us = [c["ticks"] / tck * 1e6 / n for c in cpu if c["scheme"] == scheme]
    rows[scheme] = dict(p50=med([p["p50_us"] for p in ph]), p99=med([p["p99_us"] for p in ph]),
                        cpu=med(us), cpus=us, errors=errors)
t = rows["timestamped"]
print(f"{n} clients per storm at the given ramp; medians of the rounds\n")
print("| scheme | round trips to CONNACK | CONNECT→CONNACK p50 µs | p99 µs | FlyTrap CPU µs per sign-in (rounds) | ÷ timestamped | errors |")
print("|---|---:|---:|---:|---:|---:|---:|")
for s, r in rows.items():
    trips = 1 if s == "timestamped" else 2
    each = ", ".join(f"{x:.0f}" for x in r["cpus"])
    print(f"| {s} | {trips} | {r['p50']:.0f} | {r['p99']:.0f} | {r['cpu']:.0f} ({each}) | {r['cpu'] / t['cpu']:.2f} | {r['errors']} |")
PY
echo "results in $out" >&2
