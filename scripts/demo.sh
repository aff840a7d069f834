#!/usr/bin/env bash
# The demo: hosts made of network namespaces on this machine, a local etcd,
# and weft agents. Installs and builds what is missing first. --keep waits
# for Ctrl-C before cleaning up.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node dist/scripts/demo.js "$@"
