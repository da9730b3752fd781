#!/usr/bin/env bash
# The scripts' watchdog: one loop per slot, asleep between checks of its
# credential. Benchmarks measure what such a loop costs while it sleeps.
set -u
credential=$1
while sleep 60; do
  if [ ! -s "$credential" ]; then
    echo "$(date -Is) credential missing: $credential" >&2
  fi
done
