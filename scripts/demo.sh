#!/usr/bin/env bash
# npm run demo: installs what is missing, starts the local stack, runs the pipeline on
# sample smart-city data and shows what the health department received.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/ensure-deps.sh
bash deploy/local/stack.sh up
exec node --import tsx scripts/demo.ts "$@"
