#!/usr/bin/env bash
# Installs the real agent CLIs, at the versions the real-CLI tests were written
# against, into .real-clis/ (git-ignored; REAL_CLIS_DIR overrides), and prints the
# variables that enable test/integration/real-cli.test.ts:
#   eval "$(test/real-clis.sh)"
# Idempotent: skips the install when those versions are already there and run.
# Only stdout carries the exports; progress goes to stderr. Needs the npm registry
# only (the CLIs themselves are run offline). About 640 MB on disk, ~15 s to install.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The versions the project was checked against: one file, which the worker's start-up check reads too.
pins="$root/providers/cli-versions.json"
CLAUDE_VERSION="$(node -p 'require(process.argv[1]).claude' "$pins")"
CODEX_VERSION="$(node -p 'require(process.argv[1]).codex' "$pins")"
dir="${REAL_CLIS_DIR:-$root/.real-clis}"
claude="$dir/node_modules/.bin/claude"
codex="$dir/node_modules/.bin/codex"
claude_pkg="$dir/node_modules/@anthropic-ai/claude-code"

# Without this, running claude makes it reinstall itself globally with npm.
export DISABLE_AUTOUPDATER=1
# Keep the CLIs away from the caller's real config while probing them.
probe_home="$(mktemp -d)"
trap 'rm -rf "$probe_home"' EXIT

claude_ok() {
  [ -x "$claude" ] &&
    [ "$(HOME="$probe_home" CLAUDE_CONFIG_DIR="$probe_home/.claude" "$claude" --version 2>/dev/null)" = "$CLAUDE_VERSION (Claude Code)" ]
}
codex_ok() {
  [ -x "$codex" ] &&
    [ "$(HOME="$probe_home" CODEX_HOME="$probe_home" "$codex" --version 2>/dev/null)" = "codex-cli $CODEX_VERSION" ]
}

if claude_ok && codex_ok; then
  echo "real CLIs already installed in $dir" >&2
else
  echo "installing @anthropic-ai/claude-code@$CLAUDE_VERSION and @openai/codex@$CODEX_VERSION into $dir" >&2
  mkdir -p "$dir"
  start=$SECONDS
  npm install --prefix "$dir" --no-save --no-package-lock --no-audit --no-fund --loglevel=error \
    "@anthropic-ai/claude-code@$CLAUDE_VERSION" "@openai/codex@$CODEX_VERSION" >&2
  # Claude's postinstall copies the native binary over a stub; if npm skipped
  # install scripts (--ignore-scripts, allowScripts), do it now.
  if ! claude_ok && [ -f "$claude_pkg/install.cjs" ]; then
    echo "running claude-code's postinstall (npm did not)" >&2
    (cd "$claude_pkg" && node install.cjs >&2)
  fi
  claude_ok || { echo "error: $claude does not run as Claude Code $CLAUDE_VERSION" >&2; exit 1; }
  codex_ok || { echo "error: $codex does not run as codex-cli $CODEX_VERSION" >&2; exit 1; }
  echo "installed in $((SECONDS - start)) s; $(du -sh "$dir" | cut -f1) in $dir" >&2
fi

printf 'export REAL_CLAUDE_BIN=%q\n' "$claude"
printf 'export REAL_CODEX_BIN=%q\n' "$codex"
