#!/usr/bin/env bash
# Messages per second through FlyTrap vs straight to Mosquitto vs through HAProxy (TCP mode),
# in one run, rounds interleaved: C clients each keep W QoS 1 PUBLISHes in flight (closed
# loop) for S seconds; the rate counted is acknowledged PUBLISHes per second. FlyTrap twice:
# allow-all (plain forwarding) and with chain authorisation (signed clients, warm cache).
#
# Placement (2 vCPUs): loadgen and anvil on CPU 0; Mosquitto, HAProxy, FlyTrap on CPU 1.
#
#   bench/throughput.sh [ROUNDS] [SECONDS]       (defaults 3 rounds of 5 s)
#   CLIENTS="1 10 100" WINDOW=16 ...
#
# Results: bench/results/throughput-<UTC time>/ (loadgen outputs, summary.md).
source "$(dirname "$0")/lib.sh"
rounds=${1:-3}
seconds=${2:-5}
clients=(${CLIENTS:-1 10 100})
window=${WINDOW:-16}
build
out="bench/results/throughput-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
make_cert

broker=$(free_port); start_mosquitto 1 "$broker"
hap=$(free_port); start_haproxy 1 "$hap:$broker"
start_chain 0
max=${clients[-1]}
$bin/loadgen keys --seed tput --count "$max" >"$work/addresses"
$bin/flytrap topic create tput/t "${chain_args[@]}" >/dev/null
$bin/flytrap grant pub tput/t --from "$work/addresses" "${chain_args[@]}" >/dev/null

declare -A port
port[direct]=$broker; port[haproxy]=$hap
for v in allow-all chain; do
  port[flytrap-$v]=$(free_port)
  {
    printf '[engine]\ncores = 1\n[listen]\ntcp = "127.0.0.1:%s"\n[broker]\naddress = "127.0.0.1:%s"\n' "${port[flytrap-$v]}" "$broker"
    if [ $v = chain ]; then
      printf '[chain]\nrpc = "%s"\ncontract = "%s"\nkey = "%s"\n[spool]\ndir = "%s"\n' "$rpc" "$contract" "$work/operator.key" "$work/spool"
    else
      printf '[authz]\nallow_all = true\n'
    fi
  } >"$work/flytrap-$v.toml"
  start_flytrap 1 "flytrap-$v" "${port[flytrap-$v]}"
done
targets=(direct haproxy flytrap-allow-all flytrap-chain)

for r in $(seq "$rounds"); do
  for c in "${clients[@]}"; do
    for t in "${targets[@]}"; do
      sign=(--seed tput); [[ $t = flytrap-chain ]] || sign=(--unsigned)
      taskset -c 0 $bin/loadgen publish --target "127.0.0.1:${port[$t]}" -n "$c" --ramp 1000 --settle 0.5 \
        --duration "$seconds" --inflight "$window" --qos 1 --topic tput/t --payload 64 --cores 0 --quiet \
        --client-id "r$r-$t-" "${sign[@]}" --label "$t" --out "$out/$c/$t-$r" >/dev/null
    done
  done
  echo "round $r/$rounds done" >&2
done

machine_txt "$out/machine.txt" "CLIENTS=\"${clients[*]}\" WINDOW=$window bench/throughput.sh $rounds $seconds" \
  "loadgen (--cores 0) and anvil on CPU 0; mosquitto, haproxy, flytrap (engine.cores = 1) on CPU 1"
python3 - "$out" "$rounds" "${clients[@]}" <<'PY' | tee "$out/summary.md"
import json, os, statistics, sys
out, rounds, clients = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
targets = ["direct", "haproxy", "flytrap-allow-all", "flytrap-chain"]
print("| clients | target | acked msgs/s (median of rounds) | of direct | PUBLISH p50 µs | p99 µs | errors |")
print("|---:|---|---:|---:|---:|---:|---:|")
for c in clients:
    rows = {}
    for t in targets:
        ss = [json.load(open(os.path.join(out, c, f"{t}-{r}", "summary.json"))) for r in range(1, rounds + 1)]
        rate = statistics.median(s["messages"]["sent_per_s"] for s in ss)
        rows[t] = (rate, statistics.median(s["phases"]["publish"]["p50_us"] for s in ss),
                   statistics.median(s["phases"]["publish"]["p99_us"] for s in ss), sum(s["error_count"] for s in ss))
    for t, (rate, p50, p99, err) in rows.items():
        print(f"| {c} | {t} | {rate:.0f} | {100 * rate / rows['direct'][0]:.0f} % | {p50:.0f} | {p99:.0f} | {err} |")
PY
echo "results in $out" >&2
