#!/usr/bin/env bash
# User-space memory per idle proxied client: RSS of the proxy (FlyTrap allow-all, one shard, or
# HAProxy) before and after N clients have connected (CONNECT/CONNACK done) and sit idle,
# divided by N. Mosquitto's own growth is reported beside them.
#
# mimalloc backs its heap with 2 MiB transparent huge pages where it can, so FlyTrap's RSS grows
# in steps of 2 MiB (419 B per client at 5,000): "flytrap" is what users get, "flytrap-4k" the
# same proxy with MIMALLOC_ALLOW_THP=0, whose 4 KiB pages show the memory actually used.
#
#   bench/idle-memory.sh [N]      (default 5000; the 20,000-descriptor cap allows ~6,000 here)
#   RUNTIMES=1 bench/idle-memory.sh ...   adds bench/runtimes' tokio forwarder, readiness first
#                                         (FWD_READY=1: no buffer while idle). Its monoio one is
#                                         left out: its readiness mode polls its listener every
#                                         10 ms, and a burst of connects overflows the backlog.
source "$(dirname "$0")/lib.sh"
n=${1:-5000}
build
out="bench/results/idle-memory-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"

broker=$(free_port); fport=$(free_port); f4port=$(free_port); hport=$(free_port)
start_mosquitto 0-1 "$broker"; mpid=${pids[-1]}
printf '[engine]\ncores = 1\n[authz]\nallow_all = true\n[listen]\ntcp = "127.0.0.1:%s"\n[broker]\naddress = "127.0.0.1:%s"\n' "$fport" "$broker" >"$work/f.toml"
start_flytrap 0-1 f "$fport"; fpid=$flytrap_pid
sed "s/:$fport\"/:$f4port\"/" "$work/f.toml" >"$work/f4.toml"
MIMALLOC_ALLOW_THP=0 start_flytrap 0-1 f4 "$f4port"; f4pid=$flytrap_pid
start_haproxy 0-1 "$hport:$broker"; hpid=${pids[-1]}
sleep 1

hold() { # port pid label
  python3 - "$1" "$n" "$2" "$3" "$mpid" >>"$out/results.jsonl" <<'PY'
import json, socket, sys, time
port, n, pid, label, mpid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
def rss(p):
    for line in open(f"/proc/{p}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])
def connect(i):
    cid = f"idle-{label}-{i}".encode()
    body = b"\x00\x04MQTT\x05\x02\x00\x00\x00" + len(cid).to_bytes(2, "big") + cid
    return bytes([0x10, len(body)]) + body
before, mbefore = rss(pid), rss(mpid)
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(connect(i))
    socks.append(s)
    if i % 100 == 99:
        for t in socks[-100:]:
            assert t.recv(16)[0] == 0x20
time.sleep(2)
after, mafter = rss(pid), rss(mpid)
print(json.dumps({"target": label, "clients": n, "rss_before_kb": before, "rss_after_kb": after,
                  "bytes_per_client": (after - before) * 1024 / n,
                  "mosquitto_bytes_per_client": (mafter - mbefore) * 1024 / n}))
for s in socks:
    s.close()
time.sleep(2)
PY
}
hold "$fport" "$fpid" flytrap
hold "$f4port" "$f4pid" flytrap-4k
hold "$hport" "$hpid" haproxy
if [ "${RUNTIMES:-0}" = 1 ]; then
  (cd bench/runtimes && cargo build --locked --release -q)
  p=$(free_port)
  FWD_MQTT=1 FWD_READY=1 on_cpu 0-1 bench/runtimes/target/release/fwd-tokio "$p" "$broker" & pids+=($!)
  rpid=$!; wait_port "$p"; sleep 1
  hold "$p" "$rpid" rt-tokio-ready
fi
machine_txt "$out/machine.txt" "RUNTIMES=${RUNTIMES:-0} bench/idle-memory.sh $n" "unpinned"
cat "$out/results.jsonl"
