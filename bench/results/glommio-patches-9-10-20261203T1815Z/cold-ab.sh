# A/B: cold permission checks (cache ttl 0: every PUBLISH asks the chain thread), base vs fix, pinned.
source /work/main/bench/lib.sh
cd /work/main
broker=$(free_port)
start_mosquitto 1 "$broker"
start_chain 0
client=$($bin/flytrap key new --out "$work/client.key" | grep -o '0x[0-9a-fA-F]\{40\}' | head -1)
$bin/flytrap topic create bench/t "${chain_args[@]}" >/dev/null
$bin/flytrap grant pub bench/t "$client" "${chain_args[@]}" >/dev/null
declare -A port pid exe=([base]=/tmp/ft/flytrap-base-head [fix]=/tmp/ft/flytrap-fix)
for v in ${ORDER:-base fix}; do
  port[$v]=$(free_port)
  chain_toml $v "$broker" "${port[$v]}" "" 0
  flytrap_exe=${exe[$v]} start_flytrap 1 "$v" "${port[$v]}"; pid[$v]=$flytrap_pid
done
for r in $(seq ${R:-4}); do for v in ${ORDER:-base fix}; do
  echo "$r $v $(taskset -c 0 $bin/flytrap-bench rtt --target 127.0.0.1:${port[$v]} --op publish --samples ${N:-5000} --warmup 50 --label $v --key "$work/client.key" | jq -c '{p50_us,p99_us,p999_us,max_us}')"
done; done
