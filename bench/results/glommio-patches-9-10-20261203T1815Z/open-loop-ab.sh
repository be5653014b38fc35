# A/B: membarrier (base) vs fences, default engine (cores = 0), nothing pinned, open-loop publish
# from 200 clients at a total rate, allow-all.
source /work/main/bench/lib.sh
cd /work/main
broker=$(free_port)
on_cpu() { shift; exec "$@"; }
start_mosquitto 0 "$broker"
declare -A port pid exe=([base]=/tmp/ft/flytrap-base-head [fence]=/tmp/ft/flytrap-fix)
for v in base fence; do
  port[$v]=$(free_port)
  printf '%s[authz]\nallow_all = true\n[listen]\ntcp = "127.0.0.1:%s"\n[broker]\naddress = "127.0.0.1:%s"\n' "${ENGINE:-}" "${port[$v]}" "$broker" > "$work/$v.toml"
  flytrap_exe=${exe[$v]} start_flytrap 0 "$v" "${port[$v]}"; pid[$v]=$flytrap_pid
done
for r in $(seq ${R:-3}); do for v in base fence; do
  rm -rf /tmp/ft/mbl-$v; 
  perf stat -e task-clock,syscalls:sys_enter_membarrier,context-switches -x, -p ${pid[$v]} -o /tmp/ft/mbl-$v.csv & sp=$!; sleep 0.2
  $bin/loadgen publish --target 127.0.0.1:${port[$v]} --clients ${C:-200} --ramp 2000 --unsigned --total-rate ${RATE:-20000} --duration ${D:-4} --out /tmp/ft/mbl-$v --label $v --quiet --qos 1 >/dev/null 2>&1
  kill -INT $sp; wait $sp || true
  s=$(ls /tmp/ft/mbl-$v/*.json | head -1)
  tc=$(awk -F, '/task-clock/{print $1}' /tmp/ft/mbl-$v.csv); mb=$(awk -F, '/membarrier/{print $1}' /tmp/ft/mbl-$v.csv); cs=$(awk -F, '/context-switches/{print $1}' /tmp/ft/mbl-$v.csv)
  jq -c --arg tc "$tc" --arg mb "$mb" --arg cs "$cs" '{msgs: .outcomes, p: .phases}' "$s" | head -c 600; echo
  echo "$r $v task-clock-ms $tc membarrier $mb cs $cs"
done; done
