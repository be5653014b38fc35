#!/usr/bin/env bash
# Side-by-side, in one run, interleaved: direct to Mosquitto, through HAProxy (TCP mode),
# through FlyTrap allow-all (plain forwarding) with `engine.spin_us = 0` (sleep at once: the
# engine's default before adaptive spinning, "flytrap-sleep") and as configured by default,
# FlyTrap with the chain and a warm permission cache, and FlyTrap with every check cold
# (cache.ttl_s = 0: each PUBLISH asks anvil). Over TLS: Mosquitto's own TLS, HAProxy passing
# TLS through to it ("haproxy-pass"), HAProxy terminating TLS ("haproxy", as FlyTrap does).
# Measures PUBLISH→PUBACK and SUBSCRIBE→SUBACK latency (closed loop), acknowledged messages per
# second (window of 64), and the proxy's CPU time per message. FlyTrap with the chain gets
# signed CONNECTs.
#
# Placement (2 vCPUs): the measuring client on CPU 0; Mosquitto and the proxy on CPU 1, so that
# direct and proxied paths cross between CPUs the same number of times. UNPINNED=1: nothing
# pinned by taskset (FlyTrap's one shard on two CPUs is not pinned either, by the default
# `engine.pin` rule, and so sleeps at once: only a pinned shard spins).
#
#   bench/proxy-overhead.sh [ROUNDS] [SAMPLES]      (defaults: 5 rounds of 20000 samples)
#   SPIN_US=50 bench/proxy-overhead.sh ...          (FlyTrap's engine.spin_us; default: unset)
#   DEFAULTS=1 UNPINNED=1 bench/proxy-overhead.sh   (both proxies with their default threads:
#                                                    FlyTrap a pinned shard per CPU, sleeping at
#                                                    once as it is not confined by taskset;
#                                                    HAProxy a thread per CPU; see proxy_cores
#                                                    in lib.sh)
#   BASE_BIN=path/to/flytrap bench/proxy-overhead.sh ...   (A/B: "flytrap-base", that binary
#                                                    with the default configuration, replaces
#                                                    "flytrap-sleep")
#
# Results: bench/results/proxy-overhead-<UTC time>/ (raw JSON, summary.md, machine.txt).
source "$(dirname "$0")/lib.sh"
rounds=${1:-5}
samples=${2:-20000}
spin_us=${SPIN_US:-}
if [ "${DEFAULTS:-0}" = 1 ]; then proxy_cores=0; fi
# The second allow-all FlyTrap: sleeping at once, or (BASE_BIN) another build as configured.
alt=flytrap-sleep; alt_bin=; alt_spin=0
if [ -n "${BASE_BIN:-}" ]; then alt=flytrap-base; alt_bin=$BASE_BIN; alt_spin=$spin_us; fi

build
cargo build --locked --release -q -p flytrap-bench

out="bench/results/proxy-overhead-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
make_cert

broker=$(free_port); haproxy_port=$(free_port); flytrap_port=$(free_port)
warm_port=$(free_port); cold_port=$(free_port)
broker_tls=$(free_port); haproxy_tls=$(free_port); flytrap_tls=$(free_port); warm_tls=$(free_port)
haproxy_term=$(free_port); sleep_port=$(free_port); sleep_tls=$(free_port)

start_mosquitto 1 "$broker" "$broker_tls"
start_haproxy 1 "$haproxy_port:$broker" "$haproxy_tls:$broker_tls" "$haproxy_term:$broker:tls"
haproxy_pid=${pids[-1]}

flytrap_conf() { # NAME TCP TLS SPIN_US
  cat >"$work/$1.toml" <<CONF
[engine]
cores = $proxy_cores
${4:+spin_us = $4}
[authz]
allow_all = true
[listen]
tcp = "127.0.0.1:$2"
tls = "127.0.0.1:$3"
cert = "$work/cert.pem"
key = "$work/key.pem"
[broker]
address = "127.0.0.1:$broker"
CONF
}
flytrap_conf flytrap "$flytrap_port" "$flytrap_tls" "$spin_us"
flytrap_conf "$alt" "$sleep_port" "$sleep_tls" "$alt_spin"
start_flytrap 1 flytrap "$flytrap_port"; allow_pid=$flytrap_pid; wait_port "$flytrap_tls"
flytrap_exe=$alt_bin; start_flytrap 1 "$alt" "$sleep_port"; sleep_pid=$flytrap_pid; flytrap_exe=
wait_port "$sleep_tls"

# The chain: anvil with the contract, a topic, and the benchmark client granted on it.
start_chain 0
client=$($bin/flytrap key new --out "$work/client.key" | grep -o '0x[0-9a-fA-F]\{40\}' | head -1)
for t in bench/t bench/s; do $bin/flytrap topic create "$t" "${chain_args[@]}" >/dev/null; done
$bin/flytrap grant pub bench/t "$client" "${chain_args[@]}" >/dev/null
$bin/flytrap grant sub bench/s "$client" "${chain_args[@]}" >/dev/null
for v in warm cold; do
  p=$([ $v = warm ] && echo "$warm_port" || echo "$cold_port")
  ttl=$([ $v = warm ] && echo 300 || echo 0)
  tls=$([ $v = warm ] && echo "$warm_tls" || echo "")
  chain_toml "flytrap-$v" "$broker" "$p" "$tls" "$ttl" "$spin_us"
  start_flytrap 1 "flytrap-$v" "$p"
  eval "${v}_pid=$flytrap_pid"
done
wait_port "$warm_tls"
declare -A tls_port=([direct]=$broker_tls [haproxy-pass]=$haproxy_tls [haproxy]=$haproxy_term [$alt]=$sleep_tls [flytrap]=$flytrap_tls [flytrap-warm]=$warm_tls)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
client() { if [ "${UNPINNED:-0}" = 1 ]; then "$@"; else taskset -c 0 "$@"; fi; }
declare -A port=([direct]=$broker [haproxy]=$haproxy_port [$alt]=$sleep_port [flytrap]=$flytrap_port [flytrap-warm]=$warm_port [flytrap-cold]=$cold_port)
declare -A pid=([direct]="" [haproxy]=$haproxy_pid [$alt]=$sleep_pid [flytrap]=$allow_pid [flytrap-warm]=$warm_pid [flytrap-cold]=$cold_pid)
targets=(direct haproxy "$alt" flytrap flytrap-warm flytrap-cold)
tls_targets=(direct haproxy-pass haproxy "$alt" flytrap flytrap-warm)

for r in $(seq "$rounds"); do
  for t in "${targets[@]}"; do
    key=(); [[ $t == flytrap-* ]] && key=(--key "$work/client.key")
    n=$samples; [ "$t" = flytrap-cold ] && n=$((samples / 10))
    for op in publish subscribe; do
      client $bin/flytrap-bench rtt --target "127.0.0.1:${port[$t]}" --op $op --samples "$n" --warmup 200 --label "$t" "${key[@]}" >>"$out/rtt-$op-$t.jsonl"
    done
    before=$([ -n "${pid[$t]}" ] && cpu_ticks "${pid[$t]}" || echo 0)
    client $bin/flytrap-bench throughput --target "127.0.0.1:${port[$t]}" --seconds 3 --window 64 --label "$t" "${key[@]}" >"$work/tput.json"
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
  for t in "${tls_targets[@]}"; do
    key=(); [[ $t == flytrap-warm ]] && key=(--key "$work/client.key")
    for op in publish subscribe; do
      client $bin/flytrap-bench rtt --target "127.0.0.1:${tls_port[$t]}" --tls-ca "$work/cert.pem" --op $op --samples "$samples" --warmup 200 --label "$t-tls" "${key[@]}" >>"$out/rtt-$op-$t-tls.jsonl"
    done
  done
  echo "round $r/$rounds done" >&2
done

placement="client on CPU 0; mosquitto and the proxy on CPU 1"
[ "${UNPINNED:-0}" = 1 ] && placement="nothing pinned (FlyTrap's one shard on two CPUs unpinned by the engine.pin default)"
[ "${UNPINNED:-0}${DEFAULTS:-0}" = 11 ] && placement="nothing pinned by taskset; FlyTrap a pinned shard per CPU (cores = 0), HAProxy a thread per CPU"
machine_txt "$out/machine.txt" "UNPINNED=${UNPINNED:-0} DEFAULTS=${DEFAULTS:-0} SPIN_US=$spin_us BASE_BIN=${BASE_BIN:-} bench/proxy-overhead.sh $rounds $samples" "$placement"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/machine.txt"

python3 - "$out" "$alt" <<'PY' | tee "$out/summary.md"
import json, statistics, sys, os
out, alt = sys.argv[1], sys.argv[2]
def load(name):
    return [json.loads(l) for l in open(os.path.join(out, name))]
med = lambda xs: statistics.median(xs)
targets = ["direct", "haproxy", alt, "flytrap", "flytrap-warm", "flytrap-cold"]
for op in ["publish", "subscribe"]:
    rows = {}
    for t in targets:
        rtt, tput = load(f"rtt-{op}-{t}.jsonl"), load(f"tput-{t}.jsonl")
        rows[t] = dict(p50=med([r["p50_us"] for r in rtt]), p99=med([r["p99_us"] for r in rtt]),
                       p999=med([r["p999_us"] for r in rtt]), mps=med([r["msgs_per_s"] for r in tput]),
                       cpu=med([r["proxy_cpu_us_per_msg"] for r in tput]))
    d, h = rows["direct"], rows["haproxy"]
    added_h = h["p50"] - d["p50"]
    print(f"\n{op.upper()} round trip ({'PUBLISH→PUBACK' if op == 'publish' else 'SUBSCRIBE→SUBACK'}); throughput columns are QoS 1 PUBLISH with 64 in flight\n")
    added_h99 = h["p99"] - d["p99"]
    print("| target | p50 µs | p99 µs | p99.9 µs | added p50 µs | ÷ HAProxy's | added p99 µs | ÷ HAProxy's | msgs/s | of direct | proxy CPU µs/msg | ÷ HAProxy's |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for t, r in rows.items():
        added, added99 = r["p50"] - d["p50"], r["p99"] - d["p99"]
        proxied = t not in ("direct", "haproxy")
        ratio = f"{added / added_h:.2f}" if added_h > 0 and proxied else ""
        ratio99 = f"{added99 / added_h99:.2f}" if added_h99 > 0 and proxied else ""
        cpu_ratio = f"{r['cpu'] / h['cpu']:.2f}" if h["cpu"] > 0 and proxied else ""
        print(f"| {t} | {r['p50']} | {r['p99']} | {r['p999']} | {added:+} | {ratio} | {added99:+} | {ratio99} | {r['mps']:.0f} | {100 * r['mps'] / d['mps']:.0f} % | {r['cpu']:.1f} | {cpu_ratio} |")
    # TLS: direct is Mosquitto's own TLS; haproxy-pass passes it through to Mosquitto;
    # haproxy and FlyTrap terminate it and speak plain MQTT to Mosquitto.
    tls = {t: load(f"rtt-{op}-{t}-tls.jsonl") for t in ["direct", "haproxy-pass", "haproxy", alt, "flytrap", "flytrap-warm"]}
    p = lambda t, k: med([r[k] for r in tls[t]])
    dt, dt99 = p("direct", "p50_us"), p("direct", "p99_us")
    ht, ht99 = p("haproxy", "p50_us") - dt, p("haproxy", "p99_us") - dt99
    print(f"\n{op.upper()} over TLS (ratios to HAProxy terminating TLS)\n")
    print("| target | p50 µs | p99 µs | added p50 µs | ÷ HAProxy's | added p99 µs | ÷ HAProxy's |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for t in tls:
        p50, p99 = p(t, "p50_us"), p(t, "p99_us")
        proxied = t.startswith("flytrap")
        ratio = f"{(p50 - dt) / ht:.2f}" if ht > 0 and proxied else ""
        ratio99 = f"{(p99 - dt99) / ht99:.2f}" if ht99 > 0 and proxied else ""
        print(f"| {t} | {p50} | {p99} | {p50 - dt:+} | {ratio} | {p99 - dt99:+} | {ratio99} |")
PY
echo "results in $out" >&2
