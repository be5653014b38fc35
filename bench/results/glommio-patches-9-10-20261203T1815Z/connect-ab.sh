# A/B: membarrier (base) vs fences (fence) on signed warm CONNECTs through the chain FlyTrap.
source /work/main/bench/lib.sh
cd /work/main
broker=$(free_port)
start_mosquitto 1 "$broker"
hp=$(free_port); start_haproxy 1 "$hp:$broker"
start_chain 0
$bin/flytrap key new --out "$work/client.key" >/dev/null
declare -A port pid exe=([base]=/tmp/ft/flytrap-base-head [p9]=/tmp/ft/flytrap-fence [fix]=/tmp/ft/flytrap-fix)
for v in base p9 fix; do
  port[$v]=$(free_port)
  chain_toml $v "$broker" "${port[$v]}" "" 300
  flytrap_exe=${exe[$v]} start_flytrap 1 "$v" "${port[$v]}"; pid[$v]=$flytrap_pid
done
port[direct]=$broker; port[haproxy]=$hp
for r in $(seq ${R:-4}); do for t in direct haproxy base p9 fix; do
  key=(); [ $t != direct -a $t != haproxy ] && key=(--key "$work/client.key")
  if [ $t != direct -a $t != haproxy ]; then perf stat -e task-clock,syscalls:sys_enter_membarrier -x, -p ${pid[$t]} -o /tmp/ft/mbc-$t.csv & sp=$!; sleep 0.3; fi
  l=$(taskset -c 0 $bin/flytrap-bench connect --target "127.0.0.1:${port[$t]}" --samples ${N:-300} --warmup 10 --label $t "${key[@]}" | jq -r '"\(.p50_us) \(.p99_us)"')
  extra=""
  if [ $t != direct -a $t != haproxy ]; then kill -INT $sp; wait $sp || true
    tc=$(awk -F, '/task-clock/{print $1}' /tmp/ft/mbc-$t.csv); mb=$(awk -F, '/membarrier/{print $1}' /tmp/ft/mbc-$t.csv)
    extra=$(python3 -c "n=${N:-300}+10; print('CPU us/CONNECT', round($tc*1000/n), ' membarrier/CONNECT', round($mb/n,2))"); fi
  echo "$r $t p50/p99 $l $extra"
done; done
for v in base p9 fix; do ls /proc/${pid[$v]}/task | while read t; do echo "$v $(cat /proc/${pid[$v]}/task/$t/comm) $(awk '{print $14+$15}' /proc/${pid[$v]}/task/$t/stat)"; done; done
