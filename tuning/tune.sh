#!/usr/bin/env bash
# Checks what high connection counts need, and with --apply sets it.
# Without --apply this script changes nothing: it prints each setting, its current value,
# the value FlyTrap's scale tests want, and why.
#
#   tuning/tune.sh            # check
#   tuning/tune.sh --apply    # set what can be set (root; sysctls are not persisted)
#   tuning/tune.sh --apply --sources 127.0.0.2-127.0.0.40   # also add loopback addresses
set -euo pipefail

apply=0
sources=""
while (($#)); do
  case "$1" in
    --apply) apply=1 ;;
    --sources) sources="$2"; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "tune.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

status=0
check() { # name current wanted why [command to apply]
  local name=$1 current=$2 wanted=$3 why=$4 fix=${5:-}
  local mark="ok"
  if [ "$current" != "$wanted" ]; then
    mark="LOW"
    if ((apply)) && [ -n "$fix" ]; then
      if eval "$fix" 2>/dev/null; then mark="SET"; else mark="FAILED"; status=1; fi
    else
      status=1
    fi
  fi
  printf '%-7s %-40s now %-16s want %-16s %s\n' "$mark" "$name" "$current" "$wanted" "$why"
}

at_least() { # current minimum -> prints the larger
  if [ "$1" -ge "$2" ] 2>/dev/null; then echo "$1"; else echo "$2"; fi
}

# Every client costs two descriptors in the proxy (client + broker side). The hard limit can
# only be raised with CAP_SYS_RESOURCE (systemd: LimitNOFILE=); run worker processes
# (engine.processes) when it cannot.
nofile_soft=$(ulimit -Sn); nofile_hard=$(ulimit -Hn)
check "open files (soft, this shell)" "$nofile_soft" "$(at_least "$nofile_soft" "$nofile_hard")" \
  "raise the soft limit to the hard one: ulimit -n $nofile_hard"
check "open files (hard, this shell)" "$nofile_hard" "$(at_least "$nofile_hard" 1048576)" \
  "2 per client; without CAP_SYS_RESOURCE use engine.processes"

sys() { cat "/proc/sys/$1" 2>/dev/null || echo "?"; }

# The accept queue: bursts of new clients are dropped (and retried after 1 s) past it.
v=$(sys net/core/somaxconn)
check "net.core.somaxconn" "$v" "$(at_least "$v" 4096)" "accept backlog for connection storms" \
  "sysctl -qw net.core.somaxconn=4096"
v=$(sys net/ipv4/tcp_max_syn_backlog)
check "net.ipv4.tcp_max_syn_backlog" "$v" "$(at_least "$v" 8192)" "half-open connections during storms" \
  "sysctl -qw net.ipv4.tcp_max_syn_backlog=8192"

# Each source address holds one connection per local port to a given broker address: widen
# the range (and add source addresses, broker.source_addresses) for more.
range=$(sys net/ipv4/ip_local_port_range | tr -s '\t ' ' ')
check "net.ipv4.ip_local_port_range" "$range" "1024 65535" "ports per source address per broker" \
  "sysctl -qw net.ipv4.ip_local_port_range='1024 65535'"

# Closed connections linger in TIME_WAIT; reuse them for new outgoing connections.
v=$(sys net/ipv4/tcp_tw_reuse)
check "net.ipv4.tcp_tw_reuse" "$v" "1" "reuse TIME_WAIT ports for upstream connections" \
  "sysctl -qw net.ipv4.tcp_tw_reuse=1"

v=$(sys fs/file-max)
check "fs.file-max" "$v" "$(at_least "$v" 2097152)" "system-wide descriptor ceiling" \
  "sysctl -qw fs.file-max=2097152"
v=$(sys fs/nr_open)
check "fs.nr_open" "$v" "$(at_least "$v" 1048576)" "per-process descriptor ceiling" \
  "sysctl -qw fs.nr_open=1048576"

# Loopback source addresses: on Linux all of 127.0.0.0/8 already routes to lo; adding them
# as addresses is only needed in network namespaces or for clarity.
if [ -n "$sources" ]; then
  from=${sources%-*}; to=${sources#*-}
  IFS=. read -r a b c d <<<"$from"; IFS=. read -r _ _ _ e <<<"$to"
  for ((i = d; i <= e; i++)); do
    addr="$a.$b.$c.$i"
    if ip -4 addr show dev lo | grep -q " $addr/"; then have=yes; else have=no; fi
    check "loopback address $addr" "$have" "yes" "a source address for the pool" \
      "ip addr add $addr/8 dev lo"
  done
fi

if ((status)) && ((apply == 0)); then
  echo "Some settings are below what large tests want; tuning/tune.sh --apply sets them (as root)."
fi
exit $status
