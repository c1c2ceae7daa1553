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
if (($# > 0)); then
  # Files or options given: one vitest run, as asked.
  exec npx vitest run "$@"
fi
# The unit project, then the integration suites in two lanes side by side (they share the
# stack; each lane one file at a time: vitest.config.ts), then those that must run alone.
# Each run also writes a JSON report: .ci/run names the failed tests from them at the end of its log.
results=.stack/test-results
rm -rf "$results" && mkdir -p "$results"
report() { echo "--reporter=default --reporter=json --outputFile.json=$results/$1.json"; }
npx vitest run --project unit $(report unit)
status=0
npx vitest run --project integration $(report lane-1) 2>&1 | sed -u 's/^/[lane 1] /' &
lane1=$!
npx vitest run --project integration-lane-2 $(report lane-2) 2>&1 | sed -u 's/^/[lane 2] /' || status=$?
wait "$lane1" || status=$?
npx vitest run --project integration-alone $(report alone) || status=$?
exit "$status"
