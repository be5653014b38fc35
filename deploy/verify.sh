#!/usr/bin/env bash
# Checks what deploy/ ships without installing it: the HAProxy configuration (`haproxy -c`),
# and the systemd units (`systemd-analyze verify`, with the binary path pointed at this build).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
flytrap="${FLYTRAP:-$root/target/debug/flytrap}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

haproxy -c -q -f "$here/haproxy.cfg"
echo "haproxy.cfg: valid"

for unit in "$here"/systemd/*.service; do
    sed -e "s|/usr/local/bin/flytrap|$flytrap|g" "$unit" > "$tmp/$(basename "$unit")"
done
# Template units are verified through an instance name.
cp "$tmp/flytrap@.service" "$tmp/flytrap@a.service"
cp "$tmp/mosquitto-flytrap@.service" "$tmp/mosquitto-flytrap@a.service"
(cd "$tmp" && systemd-analyze verify --man=no flytrap@a.service mosquitto-flytrap@a.service haproxy-flytrap.service)
echo "systemd units: verified"

# The FlyTrap configurations are loaded by `flytrap/tests/fleet.rs` (deploy_configs_load).
