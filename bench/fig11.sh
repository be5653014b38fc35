#!/usr/bin/env bash
# The paper's Fig. 11, reproduced side by side in one run: CONNECT, SUBSCRIBE and PUBLISH
# latency (request → acknowledgment) over TCP and TLS, for Mosquitto directly, through
# HAProxy (TCP mode: TLS passes through to Mosquitto), through FlyTrap with every permission
# check going to the chain (cache.ttl_s = 0, the paper's "FlyTrap") and through FlyTrap with a
# warm cache (the paper's "FlyTrap with cache"; the grants were checked once before).
#
# Two protocols: the paper's (105 clients one after the other, the first 5 discarded) and a
# long run of LONG clients (default 2,000, the first 100 discarded). Every client has its own
# key (FlyTrap verifies each signed CONNECT) and is granted on fig/t beforehand; each connects,
# does one SUBSCRIBE or one QoS 1 PUBLISH, and disconnects.
#
# Placement (2 vCPUs): loadgen and anvil on CPU 0; Mosquitto, HAProxy and FlyTrap on CPU 1.
#
#   bench/fig11.sh            (LONG=5000 bench/fig11.sh for a longer run)
#
# Results: bench/results/fig11-<UTC time>/ (loadgen outputs per cell, summary.md).
source "$(dirname "$0")/lib.sh"
long=${LONG:-2000}
build
out="bench/results/fig11-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
make_cert

broker=$(free_port); broker_tls=$(free_port)
start_mosquitto 1 "$broker" "$broker_tls"
hap=$(free_port); hap_tls=$(free_port)
start_haproxy 1 "$hap:$broker" "$hap_tls:$broker_tls"
start_chain 0

keys=$((long > 105 ? long : 105))
$bin/loadgen keys --seed fig11 --count "$keys" >"$work/addresses"
$bin/flytrap topic create fig/t "${chain_args[@]}" >/dev/null
$bin/flytrap grant pub fig/t --from "$work/addresses" "${chain_args[@]}" >/dev/null
$bin/flytrap grant sub fig/t --from "$work/addresses" "${chain_args[@]}" >/dev/null

declare -A tcp_port tls_port
tcp_port[direct]=$broker; tls_port[direct]=$broker_tls
tcp_port[haproxy]=$hap; tls_port[haproxy]=$hap_tls
for v in cold warm; do
  tcp_port[$v]=$(free_port); tls_port[$v]=$(free_port)
  ttl=$([ $v = warm ] && echo 3600 || echo 0)
  chain_toml "flytrap-$v" "$broker" "${tcp_port[$v]}" "${tls_port[$v]}" "$ttl"
  start_flytrap 1 "flytrap-$v" "${tcp_port[$v]}"
done

lg() { taskset -c 0 $bin/loadgen "$@" --seed fig11 --cores 0 --start connected --quiet --duration 2 --timeout 10; }

# Warm the cache: every client's grants checked once.
lg subscribe --target "127.0.0.1:${tcp_port[warm]}" -n "$keys" --ramp 500 --client-id warmup-s- \
  --filter fig/t --out "$work/warmup-subscribe"
lg publish --target "127.0.0.1:${tcp_port[warm]}" -n "$keys" --ramp 500 --client-id warmup-p- \
  --topic fig/t --messages 1 --out "$work/warmup-publish"

for proto in paper long; do
  if [ $proto = paper ]; then n=105; discard=5; ramp=20; else n=$long; discard=100; ramp=200; fi
  for transport in tcp tls; do
    for target in direct haproxy cold warm; do
      port=$([ $transport = tcp ] && echo "${tcp_port[$target]}" || echo "${tls_port[$target]}")
      extra=()
      [ $transport = tls ] && extra+=(--ca "$work/cert.pem")
      [[ $target = direct || $target = haproxy ]] && extra+=(--unsigned)
      id="$proto-$transport-$target"
      lg subscribe --target "127.0.0.1:$port" -n "$n" --discard "$discard" --ramp "$ramp" \
        --filter fig/t --client-id "$id-s-" --label "$id subscribe" "${extra[@]}" --out "$out/$id/subscribe"
      lg publish --target "127.0.0.1:$port" -n "$n" --discard "$discard" --ramp "$ramp" \
        --topic fig/t --messages 1 --client-id "$id-p-" --label "$id publish" "${extra[@]}" --out "$out/$id/publish"
      echo "$id done" >&2
    done
  done
done

machine_txt "$out/machine.txt" "LONG=$long bench/fig11.sh" \
  "loadgen (--cores 0) and anvil on CPU 0; mosquitto, haproxy, flytrap (engine.cores = 1) on CPU 1"

python3 - "$out" "$long" <<'PY' | tee "$out/summary.md"
import json, os, sys
out, long = sys.argv[1], sys.argv[2]
def s(cell, scen):
    return json.load(open(os.path.join(out, cell, scen, "summary.json")))
# The paper's overheads over the plain broker (FlyTrap; FlyTrap with cache), §V-C.
paper = {("tcp", "connect"): (18.13, None), ("tcp", "subscribe"): (43.30, 22.19), ("tcp", "publish"): (31.58, 18.12),
         ("tls", "connect"): (53.73, None), ("tls", "subscribe"): (61.92, 15.55), ("tls", "publish"): (62.67, 23.41)}
targets = ["direct", "haproxy", "cold", "warm"]
for proto, title in [("paper", "paper's protocol: 105 clients, first 5 discarded (mean µs, p50 µs in brackets)"),
                     ("long", f"long run: {long} clients, first 100 discarded (p50 µs, p99 µs in brackets)")]:
    print(f"\n### {title}\n")
    print("| packet | transport | direct | HAProxy | FlyTrap cold | FlyTrap warm | HAProxy +% | cold +% | warm +% | paper: FlyTrap +% | paper: with cache +% |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for op in ["connect", "subscribe", "publish"]:
        for tr in ["tcp", "tls"]:
            vals, cells = {}, []
            for t in targets:
                src = "publish" if op in ("connect", "publish") else "subscribe"
                ph = s(f"{proto}-{tr}-{t}", src)["phases"][op]
                if proto == "paper":
                    vals[t] = ph["mean_us"]; cells.append(f"{ph['mean_us']:.0f} ({ph['p50_us']:.0f})")
                else:
                    vals[t] = ph["p50_us"]; cells.append(f"{ph['p50_us']:.0f} ({ph['p99_us']:.0f})")
            pct = lambda t: f"{100 * (vals[t] / vals['direct'] - 1):+.1f}"
            pf, pc = paper[(tr, op)]
            print(f"| {op.upper()} | {tr.upper()} | " + " | ".join(cells) +
                  f" | {pct('haproxy')} | {pct('cold')} | {pct('warm')} | +{pf} | {'+' + str(pc) if pc else '—'} |")
    errors = sum(s(f"{proto}-{tr}-{t}", sc)["error_count"] for tr in ["tcp", "tls"] for t in targets for sc in ["subscribe", "publish"])
    print(f"\nerrors in all {proto} runs: {errors}")
PY
echo "results in $out" >&2
