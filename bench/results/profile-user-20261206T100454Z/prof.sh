#!/usr/bin/env bash
# prof.sh EXE: user-time profile of flytrap (one shard, sleep at once) during rtt, pinned
cd /work/main
source bench/lib.sh
exe=${1:-$bin/flytrap}; spin=${2:-$'spin_us = 0\n'}
out=/tmp/ft/floor/prof-$(date +%H%M%S); mkdir -p $out
broker=$(free_port); start_mosquitto 1 "$broker"
fp=$(free_port)
printf '[engine]\ncores = 1\n%s[authz]\nallow_all = true\n[listen]\ntcp = "127.0.0.1:%s"\n[broker]\naddress = "127.0.0.1:%s"\n' "$spin" "$fp" "$broker" >"$work/ft.toml"
flytrap_exe=$exe start_flytrap 1 ft "$fp"; fpid=$flytrap_pid
taskset -c 0 $bin/flytrap-bench rtt --target "127.0.0.1:$fp" --samples 3000 --warmup 500 --label w >/dev/null
perf record -q -o $out/perf.data -e cpu-clock -F ${FREQ:-25000} --all-user ${CG:---call-graph dwarf,16384} -p $fpid -- sleep 6 &
ppid=$!; sleep 0.5
taskset -c 0 $bin/flytrap-bench rtt --target "127.0.0.1:$fp" --samples 40000 --warmup 100 --label f > $out/rtt.json
wait $ppid
echo "p50 $(jq .p50_us $out/rtt.json) out $out"
perf report -i $out/perf.data --no-children --sort symbol --stdio 2>/dev/null | grep -v "^#" | grep "%" | head -45
