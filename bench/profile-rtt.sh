#!/usr/bin/env bash
# Where the microseconds of one proxied round trip go: for HAProxy (TCP mode) and FlyTrap
# (allow-all with `engine.spin_us = 0` — sleep at once, the engine's earlier default —, and
# allow-all and chain-authorised with a warm cache as configured by default), N closed-loop
# PUBLISH→PUBACK round
# trips are timed three times against the same proxy process:
#   1. `perf stat` on the proxy: task-clock, context switches (≈ wake-ups: the proxy blocks
#      once per switch), CPU migrations;
#   2. `strace -c -f` on the proxy: system calls by name (strace slows the proxy down, so
#      only its counts are used, not its times);
#   3. `perf record -g` on the proxy: the hottest symbols (kernel and user).
# Everything is divided by the round trips. Placement as bench/proxy-overhead.sh: the client
# on CPU 0, Mosquitto and the proxy on CPU 1.
#
#   bench/profile-rtt.sh [SAMPLES]            (default 20000)
#
# Results: bench/results/profile-rtt-<UTC time>/ (raw perf/strace outputs, summary.md).
source "$(dirname "$0")/lib.sh"
samples=${1:-20000}

build
cargo build --locked --release -q -p flytrap-bench
out="bench/results/profile-rtt-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
make_cert

broker=$(free_port); haproxy_port=$(free_port); flytrap_port=$(free_port); warm_port=$(free_port)
sleep_port=$(free_port)
start_mosquitto 1 "$broker"
start_haproxy 1 "$haproxy_port:$broker"; haproxy_pid=${pids[-1]}
for name in flytrap flytrap-sleep; do
  p=$([ $name = flytrap ] && echo "$flytrap_port" || echo "$sleep_port")
  {
    echo "[engine]"; echo "cores = 1"
    if [ $name = flytrap-sleep ]; then echo "spin_us = 0"; fi
    echo "[authz]"; echo "allow_all = true"
    echo "[listen]"; echo "tcp = \"127.0.0.1:$p\""
    echo "[broker]"; echo "address = \"127.0.0.1:$broker\""
  } >"$work/$name.toml"
done
start_flytrap 1 flytrap "$flytrap_port"; allow_pid=$flytrap_pid
start_flytrap 1 flytrap-sleep "$sleep_port"; sleep_pid=$flytrap_pid
start_chain 0
client=$($bin/flytrap key new --out "$work/client.key" | grep -o '0x[0-9a-fA-F]\{40\}' | head -1)
$bin/flytrap topic create bench/t "${chain_args[@]}" >/dev/null
$bin/flytrap grant pub bench/t "$client" "${chain_args[@]}" >/dev/null
chain_toml flytrap-warm "$broker" "$warm_port" "" 300
start_flytrap 1 flytrap-warm "$warm_port"; warm_pid=$flytrap_pid

declare -A port=([haproxy]=$haproxy_port [flytrap-sleep]=$sleep_port [flytrap]=$flytrap_port [flytrap-warm]=$warm_port)
declare -A pid=([haproxy]=$haproxy_pid [flytrap-sleep]=$sleep_pid [flytrap]=$allow_pid [flytrap-warm]=$warm_pid)
rtt() {
  local key=(); [[ $1 == flytrap-* ]] && key=(--key "$work/client.key")
  taskset -c 0 $bin/flytrap-bench rtt --target "127.0.0.1:${port[$1]}" --op publish \
    --samples "$samples" --warmup 0 --label "$1" "${key[@]}"
}
for t in haproxy flytrap-sleep flytrap flytrap-warm; do
  rtt "$t" >/dev/null   # warm-up connection (and the warm cache)
  perf stat -e task-clock,context-switches,cpu-migrations -x, -o "$out/perf-stat-$t.csv" -p "${pid[$t]}" &
  ps=$!; sleep 0.3
  rtt "$t" >"$out/rtt-$t.json"
  kill -INT $ps; wait $ps || true
  strace -c -f -o "$out/strace-$t.txt" -p "${pid[$t]}" &
  st=$!; sleep 0.5
  rtt "$t" >/dev/null
  kill -INT $st; wait $st || true
  perf record -g -o "$out/perf-$t.data" -p "${pid[$t]}" 2>/dev/null &
  pr=$!; sleep 0.3
  rtt "$t" >/dev/null
  kill -INT $pr; wait $pr || true
  perf report -i "$out/perf-$t.data" --no-children --sort sym --stdio 2>/dev/null \
    | grep -v '^#' | grep '%' | head -25 >"$out/perf-top-$t.txt" || true
  rm -f "$out/perf-$t.data"
  echo "$t done" >&2
done

machine_txt "$out/machine.txt" "bench/profile-rtt.sh $samples" \
  "client on CPU 0; mosquitto and the proxy on CPU 1"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.txt"

python3 - "$out" "$samples" <<'PY' | tee "$out/summary.md"
import json, os, re, sys
out, n = sys.argv[1], int(sys.argv[2])
targets = ["haproxy", "flytrap-sleep", "flytrap", "flytrap-warm"]
stat, calls, rtt = {}, {}, {}
for t in targets:
    s = {}
    for line in open(os.path.join(out, f"perf-stat-{t}.csv")):
        f = line.strip().split(",")
        if len(f) > 2 and f[0] and f[0][0].isdigit():
            s[f[2]] = float(f[0])
    stat[t] = s
    c = {}
    for line in open(os.path.join(out, f"strace-{t}.txt")):
        f = line.split()
        if len(f) >= 5 and re.match(r"^[0-9.]+$", f[0]) and f[-1] != "total":
            c[f[-1]] = int(f[3])
    calls[t] = c
    rtt[t] = json.load(open(os.path.join(out, f"rtt-{t}.json")))
print(f"Per PUBLISH→PUBACK round trip ({n} round trips; the proxy forwards 2 packets each)\n")
print("| per round trip | " + " | ".join(targets) + " |")
print("|---|" + "---:|" * len(targets))
print("| p50 µs (perf stat run) | " + " | ".join(f"{rtt[t]['p50_us']}" for t in targets) + " |")
print("| proxy CPU µs | " + " | ".join(f"{stat[t].get('task-clock', 0) * 1e3 / n:.1f}" for t in targets) + " |")
print("| context switches (wake-ups) | " + " | ".join(f"{stat[t].get('context-switches', 0) / n:.2f}" for t in targets) + " |")
print("| system calls, all | " + " | ".join(f"{sum(calls[t].values()) / n:.2f}" for t in targets) + " |")
names = sorted({k for t in targets for k, v in calls[t].items() if v / n >= 0.05})
for k in names:
    print(f"| `{k}` | " + " | ".join(f"{calls[t].get(k, 0) / n:.2f}" for t in targets) + " |")
PY
echo "results in $out" >&2
