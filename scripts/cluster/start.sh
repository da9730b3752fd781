#!/usr/bin/env bash
# A Temporal cluster on PostgreSQL for manual use, in the foreground: obtains the
# binaries if needed (scripts/cluster/obtain.sh), then runs our own PostgreSQL under a
# temporary directory and temporal-server on it (see test/cluster/cluster.ts).
# Prints TEMPORAL_ADDRESS=127.0.0.1:<port>; Ctrl-C (or SIGTERM) stops both and removes
# the data (CLUSTER_KEEP_DIR=1 keeps it).
#   scripts/cluster/start.sh
#   TEMPORAL_ADDRESS=127.0.0.1:<port> SLOT_HOST=host-a SLOTS_DIR=/tmp/a npm run worker
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
"$ROOT/scripts/cluster/obtain.sh"
cd "$ROOT"
exec node --import tsx test/cluster/cluster.ts
