# Shared set-up of the loadgen experiments (sourced, not run): start Mosquitto, HAProxy,
# anvil with the contract, and FlyTrap on loopback ports picked free, each pinned with
# taskset, and stop exactly these processes (by PID) on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin=target/release
work=$(mktemp -d)
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # A failed run keeps what the processes logged beside its results.
  if [ "$rc" -ne 0 ] && [ -n "${out:-}" ] && [ -d "$out" ]; then
    mkdir -p "$out/logs" && cp "$work"/*.log "$work"/*.toml "$out/logs/" 2>/dev/null || true
    echo "failed (exit $rc): logs and configs in $out/logs" >&2
  fi
  rm -rf "$work"
}
trap cleanup EXIT

build() {
  scripts/deps.sh
  cargo build --locked --release -q -p flytrap -p flytrap-loadgen
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "nothing on port $1" >&2; exit 1
}

# One self-signed certificate (localhost, 127.0.0.1) for every TLS listener: $work/cert.pem.
make_cert() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -addext "basicConstraints=critical,CA:FALSE" \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
}

# start_mosquitto CPU TCP_PORT [TLS_PORT]: no connection limit, TCP_NODELAY (its default
# delays a TLS CONNACK by ~41 ms), no persistence.
start_mosquitto() {
  local cpu=$1 port=$2 tls=${3:-} conf="$work/mosquitto-$2.conf"
  {
    echo "listener $port 127.0.0.1"
    echo "max_connections -1"
    if [ -n "$tls" ]; then
      echo "listener $tls 127.0.0.1"
      echo "certfile $work/cert.pem"
      echo "keyfile $work/key.pem"
      echo "max_connections -1"
    fi
    echo "user root"
    echo "allow_anonymous true"
    echo "set_tcp_nodelay true"
    echo "persistence false"
    echo "max_queued_messages 100000"
    echo "max_inflight_messages 0"
    echo "log_dest none"
  } >"$conf"
  on_cpu "$cpu" mosquitto -c "$conf" & pids+=($!)
  wait_port "$port"
}

# on_cpu CPU COMMAND... &: becomes COMMAND (exec, so that $! is its PID) pinned to CPU, or
# unpinned when UNPINNED=1 (what a user gets; FlyTrap's shards still pin themselves to the
# first CPU they may use). Only in the background.
on_cpu() {
  local cpu=$1; shift
  if [ "${UNPINNED:-0}" = 1 ]; then exec "$@"; else exec taskset -c "$cpu" "$@"; fi
}

# The threads each proxy started here gets: 1 (FlyTrap `cores = 1`, HAProxy `nbthread 1`), or
# 0 for both proxies' defaults: FlyTrap a shard per CPU it may use (`cores = 0`; the shards
# cover the CPUs, so they are pinned; they spin only if taskset confined the process to fewer
# CPUs than are online), HAProxy a thread per CPU (no nbthread). A
# script that offers the choice sets it (proxy-overhead.sh, DEFAULTS=1) before starting them.
proxy_cores=1

# start_haproxy CPU "FRONT:BACK[:tls]" ...: TCP mode, one thread, a frontend per pair; with
# ":tls" HAProxy terminates TLS on FRONT itself ($work/cert.pem + key.pem, from make_cert)
# and speaks plain TCP to BACK, as FlyTrap does.
start_haproxy() {
  local cpu=$1; shift
  local conf="$work/haproxy-$RANDOM.cfg"
  {
    printf 'global\n'
    if [ "$proxy_cores" = 1 ]; then printf '  nbthread 1\n'; fi
    printf '  maxconn 9900\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 120s\n  timeout server 120s\n'
    for pair in "$@"; do
      local front=${pair%%:*} rest=${pair#*:} ssl=""
      if [[ $rest == *:tls ]]; then
        rest=${rest%:tls}
        cat "$work/cert.pem" "$work/key.pem" >"$work/haproxy.pem"
        ssl=" ssl crt $work/haproxy.pem"
      fi
      printf 'listen l%s\n  bind 127.0.0.1:%s%s\n  server s 127.0.0.1:%s\n' "$front" "$front" "$ssl" "$rest"
    done
  } >"$conf"
  on_cpu "$cpu" haproxy -f "$conf" -db & pids+=($!)
  for pair in "$@"; do wait_port "${pair%%:*}"; done
}

# start_chain CPU: anvil with the contract deployed; sets rpc, contract, chain_args.
start_chain() {
  local port; port=$(free_port)
  local anvil; anvil=$(node contracts/scripts/anvil.mjs --print-path)
  taskset -c "$1" "$anvil" --host 127.0.0.1 --port "$port" --silent --max-persisted-states 0 & pids+=($!)
  wait_port "$port"
  rpc="http://127.0.0.1:$port"
  echo 0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80 >"$work/operator.key"
  chmod 600 "$work/operator.key"
  contract=$($bin/flytrap deploy --rpc "$rpc" --key "$work/operator.key" | grep -o '0x[0-9a-fA-F]\{40\}' | head -1)
  chain_args=(--rpc "$rpc" --contract "$contract" --key "$work/operator.key")
}

# chain_toml NAME BROKER_PORT TCP_PORT TLS_PORT|"" TTL [SPIN_US]: writes $work/NAME.toml, a
# one-shard FlyTrap with chain authorisation (after start_chain), cache.ttl_s = TTL (0: every
# check goes to the chain), never serving stale grants, its spool in $work/spool-NAME.
chain_toml() {
  local name=$1 broker=$2 tcp=$3 tls=$4 ttl=$5 spin=${6:-}
  {
    printf '[engine]\ncores = %s\n' "$proxy_cores"
    if [ -n "$spin" ]; then printf 'spin_us = %s\n' "$spin"; fi
    printf '[listen]\ntcp = "127.0.0.1:%s"\n' "$tcp"
    if [ -n "$tls" ]; then
      printf 'tls = "127.0.0.1:%s"\ncert = "%s"\nkey = "%s"\n' "$tls" "$work/cert.pem" "$work/key.pem"
    fi
    printf '[broker]\naddress = "127.0.0.1:%s"\n' "$broker"
    printf '[chain]\nrpc = "%s"\ncontract = "%s"\nkey = "%s"\n' "$rpc" "$contract" "$work/operator.key"
    printf '[cache]\nttl_s = %s\nmax_stale_s = 0\n[spool]\ndir = "%s"\n' "$ttl" "$work/spool-$name"
  } >"$work/$name.toml"
}

# start_flytrap CPU NAME TCP_PORT: runs `flytrap serve` with $work/NAME.toml (written by the
# caller) and waits for TCP_PORT. Sets flytrap_pid. A non-empty $flytrap_exe runs that build
# instead of $bin/flytrap (A/B runs).
start_flytrap() {
  RUST_LOG=warn on_cpu "$1" "${flytrap_exe:-$bin/flytrap}" serve --config "$work/$2.toml" >"$work/$2.log" 2>&1 & pids+=($!)
  flytrap_pid=$!
  wait_port "$3"
}

# build_uring_c SOURCE OUT: compiles a C benchmark (bench/uring-wake.c, bench/fwd.c) against
# Debian's liburing, installing liburing-dev when it is missing.
build_uring_c() {
  if [ ! -f /usr/include/liburing.h ]; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get install -y -qq --no-install-recommends liburing-dev >/dev/null
  fi
  cc -O2 -Wall -o "$2" "$1" -luring
}

# machine_txt FILE COMMAND PLACEMENT
machine_txt() {
  {
    echo "date: $(date -u +%FT%TZ)"; uname -srm; lscpu | grep -E 'Model name|^CPU\(s\)'
    mosquitto -h 2>/dev/null | head -1 || true; haproxy -v | head -1 || true
    echo "open files: $(ulimit -Hn) hard"
    echo "placement: $3"
    echo "command: $2"
  } >"$1"
}
