#!/usr/bin/env bash
# Installs what FlyTrap needs to build, run and test on Debian, idempotently: a second run
# installs nothing. Debian packages through apt, the contract tool chain through npm (pinned
# in contracts/package-lock.json). Rust crates come through `cargo --locked` in the Makefile.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'deps: %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
  say "no Rust tool chain: install rustup (stable, with rustfmt and clippy) first"
  exit 1
fi

# command -> Debian package
declare -A wanted=(
  [mosquitto]=mosquitto           # the broker behind the proxy (dev profile, tests)
  [mosquitto_pub]=mosquitto-clients # real CLI clients in end-to-end tests
  [haproxy]=haproxy               # plain TCP proxy baseline in benchmarks
  [node]=nodejs                   # solc-js and anvil come from npm
  [npm]=npm
  [cc]=gcc                        # crates that build C (libsecp256k1)
  [openssl]=openssl               # self-signed dev and test certificates
  [ip]=iproute2                   # network namespaces in fault tests; nstat in benchmarks
  [curl]=curl                     # benchmark scripts scrape the proxy's metrics
  [chromium]=chromium             # the web page's browser test (driven by playwright-core)
)
missing=()
for cmd in "${!wanted[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${wanted[$cmd]}")
done
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
if ((${#missing[@]})); then
  say "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  # policy-rc.d keeps the packages' own services (mosquitto on 1883, haproxy) from starting:
  # FlyTrap starts its own instances on its own ports.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The geo tests write their own small .mmdb with mmdb-writer (PyPI, pinned).
if ! python3 -c 'import mmdb_writer, netaddr' 2>/dev/null; then
  say "pip install -r tests/requirements.txt"
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  python3 -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages -r tests/requirements.txt
fi

# The challenge-scheme example (examples/siwe_paho.py, run by the tests): paho-mqtt and
# eth-account, pinned.
if ! python3 -c 'import paho.mqtt, eth_account' 2>/dev/null; then
  say "pip install -r examples/requirements.txt"
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  python3 -m pip install --quiet --disable-pip-version-check -r examples/requirements.txt 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages -r examples/requirements.txt
fi

# The contract tool chain (solc-js, anvil), exactly as locked.
if [ -f contracts/package-lock.json ]; then
  stamp=contracts/node_modules/.flytrap-lock
  if ! cmp -s contracts/package-lock.json "$stamp" 2>/dev/null; then
    say "npm ci in contracts/"
    (cd contracts && npm ci --no-audit --no-fund --loglevel=error)
    cp contracts/package-lock.json "$stamp"
  fi
fi

# The web page's browser test drives Debian's chromium with playwright-core, exactly as locked
# (playwright-core never downloads a browser of its own).
browser=flytrap/tests/browser
if [ -f "$browser/package-lock.json" ]; then
  stamp=$browser/node_modules/.flytrap-lock
  if ! cmp -s "$browser/package-lock.json" "$stamp" 2>/dev/null; then
    say "npm ci in $browser/"
    (cd "$browser" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$browser/package-lock.json" "$stamp"
  fi
fi
