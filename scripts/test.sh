#!/usr/bin/env bash
# The whole test suite: unit tests (no root, seconds), then integration tests
# (real etcd, real kernel in lab network namespaces; root). Installs what is
# missing first. Extra arguments go to vitest (e.g. a file filter).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [[ $(id -u) -ne 0 ]]; then
  echo "[test] integration tests build network namespaces and need root" >&2; exit 1
fi
report=$(mktemp -t weft-vitest-XXXXXX.json)
trap 'rm -f "$report"' EXIT
set +e
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@"
rc=$?
set -e
# One plain closing line that any CI reads: "N passed, N failed".
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed`);
' "$report" || true
exit $rc
