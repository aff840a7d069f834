#!/usr/bin/env bash
# Runs the benchmarks (test/bench/*.bench.ts), each printing weft's figures and
# a ratio against a baseline measured in the same run. Installs and builds
# what is missing first. Optional argument: a name filter (e.g. "leases").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node dist/test/bench/run.js "$@"
