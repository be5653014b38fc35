#!/usr/bin/env bash
# Side-by-side: direct to Mosquitto, through HAProxy (TCP mode) and through FlyTrap
# (allow-all), in one run, interleaved. Measures PUBLISH→PUBACK latency (closed loop),
# acknowledged messages per second (window of 64), and the proxy's CPU time per message.
#
# Placement (2 vCPUs): the measuring client on CPU 0; Mosquitto and the proxy on CPU 1, so that
# direct and proxied paths cross between CPUs the same number of times.
#
#   bench/proxy-overhead.sh [ROUNDS] [SAMPLES]      (defaults: 5 rounds of 20000 samples)
#
# Results: bench/results/proxy-overhead-<UTC time>/ (raw JSON, summary.md, machine.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
samples=${2:-20000}

scripts/deps.sh
cargo build --locked --release -q -p flytrap -p flytrap-bench
bin=target/release

out="bench/results/proxy-overhead-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "nothing on port $1" >&2; exit 1; }

broker=$(free_port); haproxy_port=$(free_port); flytrap_port=$(free_port)

cat >"$work/mosquitto.conf" <<CONF
listener $broker 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
persistence false
max_queued_messages 100000
max_inflight_messages 0
log_dest none
CONF
taskset -c 1 mosquitto -c "$work/mosquitto.conf" & pids+=($!)

cat >"$work/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 9000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend mqtt
  bind 127.0.0.1:$haproxy_port
  default_backend broker
backend broker
  server b1 127.0.0.1:$broker
CONF
taskset -c 1 haproxy -f "$work/haproxy.cfg" -db & pids+=($!); haproxy_pid=$!

cat >"$work/flytrap.toml" <<CONF
[engine]
cores = 1
[authz]
allow_all = true
[listen]
tcp = "127.0.0.1:$flytrap_port"
[broker]
address = "127.0.0.1:$broker"
CONF
RUST_LOG=warn taskset -c 1 $bin/flytrap serve --config "$work/flytrap.toml" & pids+=($!); flytrap_pid=$!

wait_port "$broker"; wait_port "$haproxy_port"; wait_port "$flytrap_port"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A port=([direct]=$broker [haproxy]=$haproxy_port [flytrap]=$flytrap_port)
declare -A pid=([direct]="" [haproxy]=$haproxy_pid [flytrap]=$flytrap_pid)

for r in $(seq "$rounds"); do
  for t in direct haproxy flytrap; do
    taskset -c 0 $bin/flytrap-bench rtt --target "127.0.0.1:${port[$t]}" --samples "$samples" --warmup 1000 --label "$t" >>"$out/rtt-$t.jsonl"
    before=$([ -n "${pid[$t]}" ] && cpu_ticks "${pid[$t]}" || echo 0)
    taskset -c 0 $bin/flytrap-bench throughput --target "127.0.0.1:${port[$t]}" --seconds 3 --window 64 --label "$t" >"$work/tput.json"
    after=$([ -n "${pid[$t]}" ] && cpu_ticks "${pid[$t]}" || echo 0)
    python3 - "$work/tput.json" "$before" "$after" "$(getconf CLK_TCK)" >>"$out/tput-$t.jsonl" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
ticks = int(sys.argv[3]) - int(sys.argv[2])
d["proxy_cpu_s"] = ticks / int(sys.argv[4])
d["proxy_cpu_us_per_msg"] = d["proxy_cpu_s"] * 1e6 / max(d["acked"], 1)
print(json.dumps(d))
PY
  done
  echo "round $r/$rounds done" >&2
done

{
  echo "date: $(date -u +%FT%TZ)"; uname -a; lscpu | grep -E 'Model name|^CPU\(s\)'
  mosquitto -h 2>/dev/null | head -1 || true; haproxy -v | head -1
  echo "placement: client on CPU 0; mosquitto and the proxy on CPU 1"
  echo "command: bench/proxy-overhead.sh $rounds $samples"
} >"$out/machine.txt"

python3 - "$out" <<'PY' | tee "$out/summary.md"
import json, statistics, sys, os
out = sys.argv[1]
def load(name):
    return [json.loads(l) for l in open(os.path.join(out, name))]
med = lambda xs: statistics.median(xs)
rows = {}
for t in ["direct", "haproxy", "flytrap"]:
    rtt, tput = load(f"rtt-{t}.jsonl"), load(f"tput-{t}.jsonl")
    rows[t] = dict(p50=med([r["p50_us"] for r in rtt]), p99=med([r["p99_us"] for r in rtt]),
                   p999=med([r["p999_us"] for r in rtt]), mps=med([r["msgs_per_s"] for r in tput]),
                   cpu=med([r["proxy_cpu_us_per_msg"] for r in tput]))
d = rows["direct"]
print("| target | p50 µs | p99 µs | p99.9 µs | added p50 µs | msgs/s | of direct | proxy CPU µs/msg |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for t, r in rows.items():
    print(f"| {t} | {r['p50']} | {r['p99']} | {r['p999']} | {r['p50'] - d['p50']:+} | {r['mps']:.0f} | {100 * r['mps'] / d['mps']:.0f} % | {r['cpu']:.1f} |")
h, f = rows["haproxy"], rows["flytrap"]
added_h, added_f = h["p50"] - d["p50"], f["p50"] - d["p50"]
if added_h > 0:
    print(f"\nFlyTrap's added p50 latency is {added_f / added_h:.2f} × HAProxy's; CPU per message {f['cpu'] / max(h['cpu'], 1e-9):.2f} × HAProxy's.")
PY
echo "results in $out" >&2
