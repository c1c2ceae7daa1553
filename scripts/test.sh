#!/usr/bin/env bash
# The whole suite: type-check, lint, unit tests, then integration tests on the real
# local stack (started here if needed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/ensure-deps.sh
# The wire-capture test records the loopback traffic of the broker and source ports.
if ! command -v tcpdump >/dev/null; then
  echo "[test] installing tcpdump from Debian packages"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tcpdump) >/dev/null ||
    echo "[test] could not install tcpdump: the wire-capture test will say so"
fi
# The alert-rule tests run Prometheus's promtool (from Debian's package, unpacked, not installed).
bash scripts/ensure-promtool.sh >/dev/null
npx tsc -p tsconfig.json
npx tsc -p bench/tsconfig.json --noEmit
npx tsc -p services/control/console/tsconfig.json
npx eslint .
bash deploy/local/stack.sh up
npx vitest run "$@"
