#!/usr/bin/env bash
# user-time per symbol per round trip: rt-tokio (ready, mqtt) vs flytrap-sleep on tokio (pinned, sleep at once)
cd /work/main && source bench/lib.sh
out=/tmp/ft/prof3; rm -rf $out; mkdir -p $out
trips=40000
broker=$(free_port); start_mosquitto 1 "$broker"
declare -A port pid
port[rt-tokio]=$(free_port)
FWD_READY=1 FWD_MQTT=1 on_cpu 1 bench/runtimes/target/release/fwd-tokio "${port[rt-tokio]}" "$broker" & pids+=($!); pid[rt-tokio]=$!
wait_port "${port[rt-tokio]}"
port[flytrap-sleep]=$(free_port)
printf '[engine]\ncores = 1\nspin_us = 0\n[authz]\nallow_all = true\n[listen]\ntcp = "127.0.0.1:%s"\n[broker]\naddress = "127.0.0.1:%s"\n' "${port[flytrap-sleep]}" "$broker" >"$work/fs.toml"
flytrap_exe=${EXE:-$bin/flytrap} start_flytrap 1 fs "${port[flytrap-sleep]}"; pid[flytrap-sleep]=$flytrap_pid
for t in rt-tokio flytrap-sleep; do
  taskset -c 0 $bin/flytrap-bench rtt --target "127.0.0.1:${port[$t]}" --samples 2000 --warmup 0 --label x >/dev/null
  perf record -q -o $out/$t.data -e cpu-clock -F 25000 --all-user -p "${pid[$t]}" & pp=$!; sleep 0.5
  taskset -c 0 $bin/flytrap-bench rtt --target "127.0.0.1:${port[$t]}" --samples $trips --warmup 0 --label x >$out/$t.json
  kill -INT $pp; wait $pp 2>/dev/null || true
  echo "== $t p50 $(jq .p50_us $out/$t.json)"
  # samples at 25 kHz = 40 µs each
  perf report -i $out/$t.data --no-children --sort symbol --stdio -F overhead,sample,symbol 2>/dev/null | grep -v "^#" | grep "%" \
    | awk -v n=$trips '{s=$2; $1="";$2=""; printf "%6.2f µs %s\n", s*40/n, $0}' > $out/$t.txt
  awk '{t+=$1} END {printf "total user %.1f µs/rt\n", t}' $out/$t.txt
done
