#!/usr/bin/env bash
# The web page's query benchmark (BENCHMARKS.md, "Audit queries"): 100,000 audit records on a
# fresh anvil, then index build, reopen and time-window queries through `flytrap ui`'s API.
# Usage: bench/ui-query.sh [--events N]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
exec cargo run --locked --release -q -p flytrap --example ui_query -- "$@"
