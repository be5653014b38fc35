#!/usr/bin/env bash
# The floor for a proxy on this machine, side by side: closed-loop PUBLISH→PUBACK round trips
# (`flytrap-bench rtt`) straight to Mosquitto, through HAProxy (TCP mode, one thread), through
# a minimal C forwarder that waits with epoll or with io_uring (bench/fwd.c: no MQTT, nothing
# but the copy), and through FlyTrap (allow-all, one shard) sleeping at once (`spin_us = 0`)
# and as configured by default. Targets interleaved in each round; for each, p50, p99 and the
# proxy's CPU per round trip (all its threads, from /proc/<pid>/task/*/schedstat: exact, not
# sampled), split into user and system time (from the scheduler's ticks: ±10 %).
#
#   bench/floor.sh [ROUNDS] [ROUND_TRIPS]           (defaults 6, 30000)
#   UNPINNED=1 bench/floor.sh ...                   nothing pinned (default: client CPU 0,
#                                                   Mosquitto and every proxy CPU 1)
#   BASE_BIN=path/to/flytrap bench/floor.sh ...     adds that build, sleeping at once, as
#                                                   "flytrap-base" (A/B)
#   BUSY="3000 8000" bench/floor.sh ...             adds io_uring forwarders that busy-wait
#                                                   that many ns after each forward ("busy-N")
#   TLS=1 bench/floor.sh ...                        also over TLS, terminated by the proxy
#                                                   (plain TCP to Mosquitto): direct-tls (to
#                                                   Mosquitto's TLS), haproxy-tls, FlyTrap's, and
#                                                   with RUNTIMES the glommio and tokio forwarders'
#   THROUGHPUT=1 bench/floor.sh ...                 also QoS 1 PUBLISHes per second with 64 in
#                                                   flight for 3 s (msgs_s), and the proxy's CPU
#                                                   per message (msg_cpu)
#   RUNTIMES=copy|mqtt|both bench/floor.sh ...      adds the same minimal forwarder written on
#                                                   three Rust runtimes (bench/runtimes): "rt-
#                                                   glommio", "rt-monoio", "rt-tokio" copy bytes;
#                                                   "…-mqtt" also frame and decode every packet
#                                                   with FlyTrap's codec (FWD_MQTT=1);
#                                                   "rt-monoio-ready-mqtt", "rt-tokio-ready-
#                                                   mqtt" wait for readiness and call recv/send
#                                                   themselves (FWD_READY=1); "rt-tokio-ready-
#                                                   spin-mqtt" also spins up to 50 µs after
#                                                   traffic, as FlyTrap does (FWD_SPIN_US=50)
#
# Results: bench/results/floor-<UTC time>/ (runs.txt, summary.txt, machine.txt).
source "$(dirname "$0")/lib.sh"
rounds=${1:-6}
trips=${2:-30000}
[ "${UNPINNED:-0}" = 1 ] && placement="nothing pinned" || placement="client CPU 0; Mosquitto and the proxies CPU 1"

build
cargo build --locked --release -q -p flytrap-bench
out="bench/results/floor-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
build_uring_c bench/fwd.c "$work/fwd"
make_cert

# tls[TARGET]=1: the client speaks TLS to it (TLS=1 adds these targets).
declare -A port pid tls
broker=$(free_port); broker_tls=$(free_port)
start_mosquitto 1 "$broker" "$broker_tls"; port[direct]=$broker; pid[direct]=${pids[-1]}
port[haproxy]=$(free_port)
if [ "${TLS:-0}" = 1 ]; then
  port[haproxy-tls]=$(free_port)
  start_haproxy 1 "${port[haproxy]}:$broker" "${port[haproxy-tls]}:$broker:tls"
  pid[haproxy-tls]=${pids[-1]}
else
  start_haproxy 1 "${port[haproxy]}:$broker"
fi
pid[haproxy]=${pids[-1]}
for mode in epoll uring; do
  port[c-$mode]=$(free_port)
  on_cpu 1 "$work/fwd" "$mode" "${port[c-$mode]}" "$broker" & pids+=($!); pid[c-$mode]=$!
  wait_port "${port[c-$mode]}"
done
targets="direct haproxy c-epoll c-uring"
for ns in ${BUSY:-}; do
  port[busy-$ns]=$(free_port)
  on_cpu 1 "$work/fwd" uring "${port[busy-$ns]}" "$broker" "$ns" & pids+=($!); pid[busy-$ns]=$!
  wait_port "${port[busy-$ns]}"
  targets="$targets busy-$ns"
done
runtime_target() {  # NAME RUNTIME FWD_MQTT [FWD_READY] [FWD_CERT] [FWD_SPIN_US]
  port[$1]=$(free_port)
  FWD_CERT=${5:-} FWD_KEY=${5:+$work/key.pem} FWD_MQTT=$3 FWD_READY=${4:-0} FWD_SPIN_US=${6:-} \
    on_cpu 1 bench/runtimes/target/release/fwd-$2 "${port[$1]}" "$broker" & pids+=($!); pid[$1]=$!
  wait_port "${port[$1]}"
  targets="$targets $1"
}
case ${RUNTIMES:-} in
  '') ;;
  copy|mqtt|both)
    (cd bench/runtimes && cargo build --locked --release -q)
    for rt in glommio monoio tokio; do
      [ "$RUNTIMES" = mqtt ] || runtime_target "rt-$rt" "$rt" 0
      [ "$RUNTIMES" = copy ] || runtime_target "rt-$rt-mqtt" "$rt" 1
    done
    # Readiness first, recv/send by hand into the thread's scratch space, as FlyTrap's pumps
    # do on glommio (and as an idle connection must, to hold no buffer).
    if [ "$RUNTIMES" != copy ]; then
      runtime_target "rt-monoio-ready-mqtt" monoio 1 1
      runtime_target "rt-tokio-ready-mqtt" tokio 1 1
      # …and spinning as a confined FlyTrap shard does (FWD_SPIN_US).
      runtime_target "rt-tokio-ready-spin-mqtt" tokio 1 1 "" 50
    fi ;;
  *) echo "RUNTIMES is copy, mqtt or both" >&2; exit 2 ;;
esac
flytrap_target() {  # NAME EXE SPIN_LINE
  port[$1]=$(free_port); port[$1-tls]=$(free_port)
  printf '[engine]\ncores = 1\n%s[authz]\nallow_all = true\n[listen]\ntcp = "127.0.0.1:%s"\ntls = "127.0.0.1:%s"\ncert = "%s"\nkey = "%s"\n[broker]\naddress = "127.0.0.1:%s"\n' \
    "$3" "${port[$1]}" "${port[$1-tls]}" "$work/cert.pem" "$work/key.pem" "$broker" >"$work/$1.toml"
  flytrap_exe=$2 start_flytrap 1 "$1" "${port[$1]}"; pid[$1]=$flytrap_pid; pid[$1-tls]=$flytrap_pid
  targets="$targets $1"
}
flytrap_target flytrap-sleep "$bin/flytrap" $'spin_us = 0\n'
flytrap_target flytrap "$bin/flytrap" ""
if [ -n "${BASE_BIN:-}" ]; then flytrap_target flytrap-base "$BASE_BIN" $'spin_us = 0\n'; fi
if [ "${TLS:-0}" = 1 ]; then
  # The client's TLS terminated by the proxy, plain TCP to Mosquitto; direct-tls is Mosquitto's
  # own TLS, the reference for these targets' added latency.
  port[direct-tls]=$broker_tls; pid[direct-tls]=${pid[direct]}
  targets="$targets direct-tls haproxy-tls flytrap-sleep-tls flytrap-tls"
  if [ -n "${RUNTIMES:-}" ]; then
    for rt in glommio tokio; do runtime_target "rt-$rt-tls-mqtt" "$rt" 1 0 "$work/cert.pem"; done
  fi
  for t in $targets; do [[ $t == *-tls* ]] && tls[$t]=1; done
fi

# CPU of a process: "user_ticks system_ticks runtime_ns", all threads.
cpu() {
  cat /proc/"$1"/task/*/stat | awk '{u += $14; s += $15} END {printf "%d %d ", u, s}'
  cat /proc/"$1"/task/*/schedstat | awk '{t += $1} END {printf "%.0f\n", t}'
}
client() { if [ "${UNPINNED:-0}" = 1 ]; then "$@"; else taskset -c 0 "$@"; fi; }
hz=$(getconf CLK_TCK)
for r in $(seq "$rounds"); do
  for t in $targets; do
    read -r u0 s0 c0 < <(cpu "${pid[$t]}")
    ca=(); [ -n "${tls[$t]:-}" ] && ca=(--tls-ca "$work/cert.pem")
    client $bin/flytrap-bench rtt --target "127.0.0.1:${port[$t]}" --samples "$trips" --warmup 500 \
      --label "$t" "${ca[@]}" >"$out/$r-$t.json"
    read -r u1 s1 c1 < <(cpu "${pid[$t]}")
    tput=""
    if [ "${THROUGHPUT:-0}" = 1 ] && [ -z "${tls[$t]:-}" ]; then  # flytrap-bench throughput: TCP only
      read -r _ _ c2 < <(cpu "${pid[$t]}")
      client $bin/flytrap-bench throughput --target "127.0.0.1:${port[$t]}" --seconds 3 --window 64 \
        --label "$t" >"$out/$r-$t-tput.json"
      read -r _ _ c3 < <(cpu "${pid[$t]}")
      acked=$(jq .acked "$out/$r-$t-tput.json")
      tput="msgs_s $(jq '.msgs_per_s | floor' "$out/$r-$t-tput.json") msg_cpu_ns $(((c3 - c2) / (acked > 0 ? acked : 1)))"
    fi
    echo "$r $t p50 $(jq .p50_us "$out/$r-$t.json") p99 $(jq .p99_us "$out/$r-$t.json")" \
      "cpu_ns $(((c1 - c0) / trips)) user_ns $(((u1 - u0) * 1000000000 / hz / trips))" \
      "sys_ns $(((s1 - s0) * 1000000000 / hz / trips)) $tput" | tee -a "$out/runs.txt"
  done
done

# Medians over rounds (direct's CPU is Mosquitto's own).
python3 - "$out/runs.txt" >"$out/summary.txt" <<'EOF'
import collections, statistics, sys
rows = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    f = line.split()
    for k, v in zip(f[2::2], f[3::2]):
        rows[f[1]][k].append(int(v))
print("medians over rounds [min-max]; cpu/user/sys per round trip in µs")
for t, kv in rows.items():
    cells = []
    for k, v in kv.items():
        scale = 1000 if k.endswith("_ns") else 1
        name = k.replace("_ns", "")
        cells.append(f"{name} {statistics.median(v) / scale:.1f} [{min(v) / scale:.1f}-{max(v) / scale:.1f}]")
    print(f"{t:14s} " + "  ".join(cells))
EOF
cat "$out/summary.txt"
machine_txt "$out/machine.txt" "UNPINNED=${UNPINNED:-0} BASE_BIN=${BASE_BIN:-} BUSY=${BUSY:-} THROUGHPUT=${THROUGHPUT:-0} TLS=${TLS:-0} RUNTIMES=${RUNTIMES:-} bench/floor.sh $rounds $trips" "$placement"
echo "results: $out"
