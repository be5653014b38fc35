# A/B: membarrier (base) vs fences, default engine (cores = 0: two shards), nothing pinned,
# 4 closed-loop PUBLISH clients at once against each.
source /work/main/bench/lib.sh
cd /work/main
broker=$(free_port)
:
start_mosquitto 1 "$broker"
declare -A port pid exe=([base]=/tmp/ft/flytrap-base-head [fence]=/tmp/ft/flytrap-fence)
for v in base fence; do
  port[$v]=$(free_port)
  printf '%s[authz]\nallow_all = true\n[listen]\ntcp = "127.0.0.1:%s"\n[broker]\naddress = "127.0.0.1:%s"\n' "${ENGINE:-}" "${port[$v]}" "$broker" > "$work/$v.toml"
  flytrap_exe=${exe[$v]} start_flytrap 1 "$v" "${port[$v]}"; pid[$v]=$flytrap_pid
done
N=${N:-5000}; C=${C:-4}
for r in $(seq ${R:-3}); do for v in base fence; do
  perf stat -e task-clock,syscalls:sys_enter_membarrier,context-switches -x, -p ${pid[$v]} -o /tmp/ft/mbab-$v.csv & sp=$!; sleep 0.3
  rm -f /tmp/ft/mbab-$v-*.json; cl=(); for c in $(seq $C); do taskset -c 0 $bin/flytrap-bench rtt --target 127.0.0.1:${port[$v]} --op publish --samples $N --warmup 0 --label $v > /tmp/ft/mbab-$v-$c.json & cl+=($!); done
  wait "${cl[@]}"
  kill -INT $sp; wait $sp || true
  p50=$(jq -s 'map(.p50_us) | sort | .[length/2|floor]' /tmp/ft/mbab-$v-*.json); p99=$(jq -s 'map(.p99_us) | max' /tmp/ft/mbab-$v-*.json)
  tc=$(awk -F, '/task-clock/{print $1}' /tmp/ft/mbab-$v.csv); mb=$(awk -F, '/membarrier/{print $1}' /tmp/ft/mbab-$v.csv); cs=$(awk -F, '/context-switches/{print $1}' /tmp/ft/mbab-$v.csv)
  python3 -c "n=$N*$C; print('$r $v p50 (median of clients) $p50 p99 (max) $p99  CPU us/RT', round($tc*1000/n,1), ' membarrier/RT', round($mb/n,2), ' cs/RT', round($cs/n,2))"
done; done
