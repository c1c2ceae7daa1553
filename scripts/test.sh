#!/usr/bin/env bash
# The whole suite: type-check, lint, unit tests, then integration tests on the real
# local stack (started here if needed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/ensure-deps.sh
npx tsc -p tsconfig.json
npx tsc -p bench/tsconfig.json --noEmit
npx eslint .
bash deploy/local/stack.sh up
npx vitest run "$@"
