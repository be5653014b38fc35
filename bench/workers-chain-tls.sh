#!/usr/bin/env bash
# N TLS clients (default 10,000) with signed CONNECTs through `flytrap serve` with
# engine.processes = 2 and chain authorisation (anvil + the contract), Mosquitto behind: every
# client must get CONNACK 0x00 (loadgen's summary.json: error_count). One process could not
# hold them (two descriptors per client, 20,000 open files per process here).
#
#   bench/workers-chain-tls.sh            N=50000 bench/workers-chain-tls.sh
#   BIN=/path/to/dir (flytrap and loadgen; default target/release, built here)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000}
if [ -z "${BIN:-}" ]; then
  cargo build --locked --release -q -p flytrap -p flytrap-loadgen
  BIN=target/release
fi
bin=$BIN/flytrap
loadgen=$BIN/loadgen
anvil=${FLYTRAP_ANVIL:-$(node contracts/scripts/anvil.mjs --print-path)}
work=$(mktemp -d)
out="bench/results/workers-chain-tls-$(date -u +%Y%m%dT%H%M%SZ)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 2; for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
trap 'cleanup; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "nothing on port $1" >&2; exit 1; }
broker=$(free_port); tls=$(free_port); chain=$(free_port); metrics=$(free_port)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -addext "basicConstraints=critical,CA:FALSE" -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cat >"$work/mosquitto.conf" <<CONF
listener $broker 127.0.0.1
allow_anonymous true
persistence false
max_connections -1
log_dest none
CONF
mosquitto -c "$work/mosquitto.conf" & pids+=($!)
"$anvil" --host 127.0.0.1 --port "$chain" --silent --max-persisted-states 0 & pids+=($!)
wait_port "$chain"; wait_port "$broker"
rpc="http://127.0.0.1:$chain"
echo 0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80 >"$work/operator.key"; chmod 600 "$work/operator.key"
contract=$($bin deploy --rpc "$rpc" --key "$work/operator.key" | grep -o '0x[0-9a-fA-F]\{40\}' | head -1)
cat >"$work/flytrap.toml" <<CONF
[engine]
processes = 2
cores = 1
[listen]
tls = "127.0.0.1:$tls"
cert = "$work/cert.pem"
key = "$work/key.pem"
[broker]
address = "127.0.0.1:$broker"
[chain]
rpc = "$rpc"
contract = "$contract"
key = "$work/operator.key"
[spool]
dir = "$work/spool"
[metrics]
listen = "127.0.0.1:$metrics"
CONF
RUST_LOG=warn $bin serve --config "$work/flytrap.toml" & pids+=($!)
wait_port "$tls"; sleep 1
timeout 300 "$loadgen" connect --target "127.0.0.1:$tls" --ca "$work/cert.pem" --server-name localhost \
  -n "$N" --ramp 1000 --hold 10 --timeout 60 --out "$out" --label workers2-chain-tls >"$work/loadgen.log" 2>&1 &
lg=$!
sleep $((N / 1000 + 5))
echo "during hold, fds per worker: $(for p in $(pgrep -P ${pids[2]}); do ls /proc/$p/fd | wc -l; done | tr '\n' ' ')"
curl -s "http://127.0.0.1:$metrics/metrics" | grep -E '^flytrap_connections_(accepted_total|open|active)' || true
wait $lg || echo "loadgen exit $?"
tail -5 "$work/loadgen.log"
curl -s "http://127.0.0.1:$metrics/metrics" | grep -E '^flytrap_connections_accepted_total|^flytrap_connect_(denied|refused)|^flytrap_connections_open' || true
grep -o '"error_count": *[0-9]*' "$out/summary.json"
