#!/usr/bin/env bash
# The web page's query benchmark (BENCHMARKS.md, "Audit page at scale"): on a fresh anvil,
# 10,000 topics, 100,000 grants (grantMany, 100 per transaction) and 100,000 audit records,
# then index build, reopen, the page's catch-up (/api/status) and the first answer of every
# view's API call.
# Usage: bench/ui-query.sh [--topics N] [--grants N] [--events N]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
exec cargo run --locked --release -q -p flytrap --example ui_query -- "$@"
