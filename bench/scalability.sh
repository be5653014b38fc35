#!/usr/bin/env bash
# The paper's scalability test, and beyond it: N concurrent TLS clients, each with its own
# key and a signed CONNECT, connect through FlyTrap (chain authorisation, cold cache: each
# client's first PUBLISH is checked on the chain) and then publish one QoS 1 message all at
# the same moment; PUBLISH→PUBACK latency is measured from that common moment. Side by side,
# for N ≤ 10,000, the same clients straight to Mosquitto (TLS terminated by Mosquitto).
#
# One process may hold 20,000 descriptors here and a proxied client costs the proxy two, so
# N above ~9,900 needs FlyTrap worker processes (engine.processes), several Mosquitto
# instances behind it (≤ 19,000 clients each; FlyTrap places clients by client id) and
# loadgen workers. Each (source address, destination) pair is kept under 12,000 connections,
# well under half of its ~28,000 ephemeral ports: past half, every connect(2) scans the
# ports the kernel tries first (one parity) before it finds a free one, milliseconds of
# system time per connect (tuning/README.md). So loadgen gets a source address per 12,000
# clients (--source 127.0.0.2-…) and FlyTrap a broker source address per 12,000
# connections to one broker (broker.source_addresses = 127.0.1.1-…).
#
#   bench/scalability.sh                      N = 10 100 1000 10000
#   bench/scalability.sh 50000 100000         the large runs
#   KEYS=10000 ...                            at most this many distinct keys (and grants);
#                                             clients share them round-robin (default: N)
#   AUTHZ=allow_all ...                       FlyTrap without the chain (plain forwarding)
#   RAMP=2000 ...                             connections per second
#   TRANSPORT=tcp ...                         plain TCP clients instead of TLS
#   HOLD=60 ...                               seconds all N clients stay connected together,
#                                             from the end of the ramp to the publish burst
#                                             (loadgen --settle; default 3)
#   WARM=1 ...                                also a second round through the same FlyTrap
#                                             (same keys, new client ids): every check is
#                                             now a cache hit ("flytrap-warm" rows)
#
# Results: bench/results/scalability-<UTC time>/ (loadgen outputs per N, summary.md).
source "$(dirname "$0")/lib.sh"
counts=("$@"); [ ${#counts[@]} -gt 0 ] || counts=(10 100 1000 10000)
authz=${AUTHZ:-chain}
ramp=${RAMP:-2000}
transport=${TRANSPORT:-tls}
per_process=9000
build
out="bench/results/scalability-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
make_cert
# The kernel and limit settings this run had (tuning/tune.sh only checks without --apply).
tuning/tune.sh >"$out/tuning.txt" 2>&1 || true
[ "$authz" = chain ] && start_chain 0

ceil() { echo $(( ($1 + $2 - 1) / $2 )); }
rss_kb() { local t=0; for p in "$@"; do t=$((t + $(awk '/VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0))); done; echo $t; }
cpu_ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }
family() { echo "$1 $(pgrep -P "$1" | tr '\n' ' ')"; }

granted=0
broker_pids=()
topic=scale/t
[ "$authz" = chain ] && $bin/flytrap topic create "$topic" "${chain_args[@]}" >/dev/null

echo "| clients | target | connect p50 µs | connect p99 µs | PUBLISH p50 µs | p99 µs | p99.9 µs | max µs | errors | proxy RSS KB/client | proxy CPU µs/client | proxy processes | brokers |" >"$out/table.md"
echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" >>"$out/table.md"

for n in "${counts[@]}"; do
  keys=${KEYS:-$n}; [ "$keys" -gt "$n" ] && keys=$n
  if [ "$authz" = chain ] && [ "$keys" -gt "$granted" ]; then
    $bin/loadgen keys --seed scale --first "$granted" --count $((keys - granted)) >"$work/addresses"
    $bin/flytrap grant pub "$topic" --from "$work/addresses" "${chain_args[@]}" >/dev/null
    granted=$keys
  fi
  brokers=$(ceil "$n" 19000)
  procs=$(ceil $((2 * n + 200)) 19000)
  lg_workers=$(ceil "$n" 19000)
  sources=$(ceil "$n" 12000)
  proxy_sources=$(ceil "$(ceil "$n" "$brokers")" 12000)
  broker_list=()
  for b in $(seq "$brokers"); do
    p=$(free_port); t=$(free_port)
    start_mosquitto 1 "$p" "$t"
    broker_list+=("\"127.0.0.1:$p\""); broker_pids+=("${pids[-1]}")
    [ "$b" = 1 ] && { first_broker=$p; first_broker_tls=$t; first_broker_pid=${pids[-1]}; }
  done
  tcp=$(free_port); tls=$(free_port); metrics=$(free_port)
  {
    printf '[engine]\nprocesses = %s\n' "$procs"
    printf '[listen]\ntcp = "127.0.0.1:%s"\ntls = "127.0.0.1:%s"\ncert = "%s"\nkey = "%s"\n' "$tcp" "$tls" "$work/cert.pem" "$work/key.pem"
    printf '[metrics]\nlisten = "127.0.0.1:%s"\n' "$metrics"
    printf '[broker]\naddress = [%s]\n' "$(IFS=,; echo "${broker_list[*]}")"
    [ "$proxy_sources" -gt 1 ] && printf 'source_addresses = ["127.0.1.1-127.0.1.%s"]\n' "$proxy_sources"
    if [ "$authz" = chain ]; then
      printf '[chain]\nrpc = "%s"\ncontract = "%s"\nkey = "%s"\n' "$rpc" "$contract" "$work/operator.key"
      printf '[cache]\nmax_entries = 200000\n[spool]\ndir = "%s"\n' "$work/spool-$n"
    else
      printf '[authz]\nallow_all = true\n'
    fi
  } >"$work/flytrap-$n.toml"
  start_flytrap 0-1 "flytrap-$n" "$tcp"; wait_port "$tls"
  sleep 1
  proxy=$(family "$flytrap_pid")
  base_rss=$(rss_kb $proxy); base_cpu=$(cpu_ticks $proxy)
  src=(); [ "$sources" -gt 1 ] && src=(--source "127.0.0.2-127.0.0.$((1 + sources))")
  signing=(--seed scale --keys "$keys"); [ "$authz" = chain ] || signing=(--unsigned)
  run() { # run LABEL PORT [extra]
    local label=$1 port=$2; shift 2
    local ca=(--ca "$work/cert.pem"); [ "$transport" = tcp ] && ca=()
    $bin/loadgen publish --target "127.0.0.1:$port" "${ca[@]}" -n "$n" --ramp "$ramp" \
      --settle "${HOLD:-3}" --messages 1 --topic "$topic" --duration 5 --timeout 30 --workers "$lg_workers" \
      --label "$label" --out "$out/$label" --quiet "$@" >"$out/$label.log" 2>&1 || true
  }
  # Sample the proxy's memory while the clients are connected (the maximum over the run).
  ( peak=0; while kill -0 "$flytrap_pid" 2>/dev/null; do r=$(rss_kb $(family "$flytrap_pid")); [ "$r" -gt "$peak" ] && echo "$r" >"$work/peak-$n" && peak=$r; sleep 0.5; done ) &
  sampler=$!
  front=$tls; [ "$transport" = tcp ] && front=$tcp
  nstat -az >"$work/nstat-before" 2>/dev/null || true
  run "flytrap-$n" "$front" "${signing[@]}" "${src[@]}"
  # What the kernel counted during the run (listen-queue overflows, resets, SYN cookies...)
  # and the proxy's own counters (why sessions ended, accept errors, refusals).
  nstat -az 2>/dev/null | awk 'NR==FNR { if ($1 !~ /^#/) b[$1] = $2; next }
    $1 !~ /^#/ && $2 - b[$1] != 0 { print $1, $2 - b[$1] }' "$work/nstat-before" - >"$out/flytrap-$n.nstat" || true
  curl -s "http://127.0.0.1:$metrics/metrics" | grep -v '^#' >"$out/flytrap-$n.metrics" || true
  kill "$sampler" 2>/dev/null || true
  cp "$work/flytrap-$n.log" "$out/flytrap-$n.proxy.log" 2>/dev/null || true
  peak=$(cat "$work/peak-$n" 2>/dev/null || echo "$base_rss")
  cpu=$(( $(cpu_ticks $(family "$flytrap_pid")) - base_cpu ))
  if [ "${WARM:-0}" = 1 ]; then
    run "flytrap-warm-$n" "$front" "${signing[@]}" "${src[@]}" --client-id warm-
  fi
  if [ "$n" -le 10000 ]; then
    direct=$first_broker_tls; [ "$transport" = tcp ] && direct=$first_broker
    run "direct-$n" "$direct" --unsigned
  fi
  python3 - "$out" "$n" "$peak" "$base_rss" "$cpu" "$(getconf CLK_TCK)" "$procs" "$brokers" >>"$out/table.md" <<'PY'
import json, os, sys
out, n, peak, base, cpu, tck, procs, brokers = sys.argv[1:]
n = int(n)
for t in ["direct", "flytrap", "flytrap-warm"]:
    p = os.path.join(out, f"{t}-{n}", "summary.json")
    if not os.path.exists(p):
        continue
    s = json.load(open(p)); ph = s["phases"]; c = ph.get("connect", {}); pb = ph.get("publish", {})
    g = lambda d, k: f"{d[k]:.0f}" if k in d else "—"
    rss = f"{(int(peak) - int(base)) / n:.2f}" if t == "flytrap" else ""
    cpu_us = f"{int(cpu) / int(tck) * 1e6 / n:.0f}" if t == "flytrap" else ""
    print(f"| {n} | {t} | {g(c,'p50_us')} | {g(c,'p99_us')} | {g(pb,'p50_us')} | {g(pb,'p99_us')} | {g(pb,'p999_us')} | {g(pb,'max_us')} | {s['error_count']} | {rss} | {cpu_us} | {procs if t == 'flytrap' else ''} | {brokers} |")
PY
  tail -n +3 "$out/table.md" | tail -2 >&2
  # Stop this size's processes before the next (the chain stays).
  kill "$flytrap_pid"; wait "$flytrap_pid" 2>/dev/null || true
  for p in "${broker_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  broker_pids=()
done

machine_txt "$out/machine.txt" "AUTHZ=$authz TRANSPORT=$transport RAMP=$ramp KEYS=${KEYS:-} HOLD=${HOLD:-3} WARM=${WARM:-0} bench/scalability.sh ${counts[*]}" \
  "unpinned but for Mosquitto (CPU 1) and anvil (CPU 0); FlyTrap workers one per CPU"
cat "$out/table.md"
echo "results in $out" >&2
