#!/usr/bin/env bash
# promtool, Prometheus's rule and config checker, for the alert-rule tests: taken from Debian's
# `prometheus` package, unpacked into deploy/local/.cache (nothing is installed or started).
# Prints its path.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=deploy/local/.cache/promtool
if [[ ! -x $bin ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  if ! (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1); then
    apt-get update -qq >/dev/null
    (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1) || {
      echo "[promtool] could not download Debian's prometheus package (apt-get download prometheus): install promtool and link it to $bin" >&2
      exit 1
    }
  fi
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
  mkdir -p "$(dirname "$bin")"
  cp "$tmp/x/usr/bin/promtool" "$bin"
fi
echo "$PWD/$bin"
