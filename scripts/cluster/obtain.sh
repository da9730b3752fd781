#!/usr/bin/env bash
# Obtain the binaries the scale-out cluster test needs, idempotently:
#   - PostgreSQL (Debian package) unless an initdb is already under /usr/lib/postgresql/*/bin
#   - temporal-server and temporal-sql-tool (go install, pinned version) into .temporal/cluster/bin
#   - the PostgreSQL schema directories of the same server version into .temporal/cluster/schema
# Prints one line per step; a second run only checks and exits quickly.
#
#   --or-skip   (npm test) when a component cannot be had, say so and exit 0: the
#               cluster test then skips itself. With CI set it still fails.
#   --postgres-only   only step 1 (the credential backup tests of the main test run need it)
set -euo pipefail
OR_SKIP=0
PG_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --or-skip) OR_SKIP=1 ;;
    --postgres-only) PG_ONLY=1 ;;
    *) echo "obtain.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TEMPORAL_SERVER_VERSION="${TEMPORAL_SERVER_VERSION:-v1.29.1}"
OUT="$ROOT/.temporal/cluster"
BIN="$OUT/bin"
SCHEMA="$OUT/schema/$TEMPORAL_SERVER_VERSION"
LOG="$OUT/obtain.log"
mkdir -p "$BIN"
: >>"$LOG"

log() { printf '[obtain %s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$LOG" >&2; }
# A component that cannot be had: fatal, unless --or-skip on a machine that is not CI.
cannot() {
  if [ "$OR_SKIP" = 1 ] && [ -z "${CI:-}" ]; then log "$* — the tests that need it will be skipped (with CI set this fails)"; exit 0; fi
  log "$*"; exit 1
}
started=$(date +%s)
# Long steps write to $LOG only: a line every PROGRESS_EVERY seconds says they are alive.
PROGRESS_EVERY="${PROGRESS_EVERY:-30}"
progress_pid=""
progress_start() {
  local what="$1" since
  since=$(date +%s)
  (
    # Stopped with TERM: its sleep goes too, so nothing outlives the script holding its output.
    sleeper=""
    trap 'if [ -n "$sleeper" ]; then kill "$sleeper" 2>/dev/null; fi; exit 0' TERM
    while :; do
      sleep "$PROGRESS_EVERY" & sleeper=$!
      wait "$sleeper" || true
      log "… still $what: $(( $(date +%s) - since ))s elapsed (details in $LOG)"
    done
  ) &
  progress_pid=$!
  # Not a job of this shell: bash neither reports its end ("Terminated") nor waits for it
  # (a `wait` on a job it had already reaped printed "wait_for: No record of process").
  disown "$progress_pid" 2>/dev/null || true
}
progress_stop() { if [ -n "$progress_pid" ]; then kill "$progress_pid" 2>/dev/null || true; progress_pid=""; fi; }
trap progress_stop EXIT

# 1. PostgreSQL
find_initdb() { ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n1 || true; }
if [ -z "$(find_initdb)" ]; then
  if [ "$(id -u)" != 0 ]; then cannot "initdb not found and not root: install Debian's postgresql package yourself"; fi
  log "installing postgresql from apt"
  export DEBIAN_FRONTEND=noninteractive
  progress_start "installing postgresql"
  apt-get install -y postgresql >>"$LOG" 2>&1 || { apt-get update >>"$LOG" 2>&1 && apt-get install -y postgresql >>"$LOG" 2>&1; }
  progress_stop
  # the package starts a cluster of its own on 5432; we run our own instance, so stop it
  (command -v pg_ctlcluster >/dev/null && for c in $(ls /etc/postgresql 2>/dev/null); do pg_ctlcluster "$c" main stop 2>/dev/null || true; done) || true
fi
INITDB="$(find_initdb)"
[ -n "$INITDB" ] || cannot "postgresql install failed (see $LOG)"
log "postgresql: $("$INITDB" --version)"
[ "$PG_ONLY" = 1 ] && exit 0

# 2. temporal-server + temporal-sql-tool
command -v go >/dev/null || cannot "go not found (need Go >= 1.23 to build temporal-server)"
stamp="$BIN/.version"
if [ -x "$BIN/temporal-server" ] && [ -x "$BIN/temporal-sql-tool" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$TEMPORAL_SERVER_VERSION" ]; then
  log "temporal-server $TEMPORAL_SERVER_VERSION already built"
else
  log "building temporal-server + temporal-sql-tool $TEMPORAL_SERVER_VERSION with $(go version | cut -d' ' -f3) (several minutes cold)"
  tmpbin="$(mktemp -d "$OUT/gobin.XXXXXX")"
  export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
  progress_start "building temporal-server $TEMPORAL_SERVER_VERSION"
  ( GOBIN="$tmpbin" go install "go.temporal.io/server/cmd/server@$TEMPORAL_SERVER_VERSION" \
                                "go.temporal.io/server/cmd/tools/sql@$TEMPORAL_SERVER_VERSION" ) >>"$LOG" 2>&1 \
    || { progress_stop; rm -rf "$tmpbin"; cannot "go install of temporal-server failed (see $LOG)"; }
  progress_stop
  mv "$tmpbin/server" "$BIN/temporal-server"
  mv "$tmpbin/sql" "$BIN/temporal-sql-tool"
  rm -rf "$tmpbin"
  echo "$TEMPORAL_SERVER_VERSION" >"$stamp"
  log "built $BIN/temporal-server and $BIN/temporal-sql-tool"
fi

# 3. schema directories (from the server module in the Go module cache)
if [ -d "$SCHEMA/temporal/versioned" ] && [ -d "$SCHEMA/visibility/versioned" ]; then
  log "schema $TEMPORAL_SERVER_VERSION present"
else
  moddir="$(go env GOMODCACHE)/go.temporal.io/server@$TEMPORAL_SERVER_VERSION"
  progress_start "downloading the go.temporal.io/server module"
  [ -d "$moddir" ] || go mod download "go.temporal.io/server@$TEMPORAL_SERVER_VERSION" >>"$LOG" 2>&1
  progress_stop
  src="$moddir/schema/postgresql/v12"
  [ -d "$src/temporal/versioned" ] || { log "schema not found under $src"; exit 1; }
  mkdir -p "$SCHEMA"
  cp -r "$src/temporal" "$src/visibility" "$SCHEMA/"
  chmod -R u+w "$SCHEMA"
  log "schema copied to $SCHEMA"
fi

log "done in $(( $(date +%s) - started ))s"
