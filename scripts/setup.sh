#!/usr/bin/env bash
# Installs what the project needs, in two sizes:
#   scripts/setup.sh dev    what `make dev` needs: the Python venv (.venv) with the project and its `local`
#                           extra (the embedded PostgreSQL). No root, no package manager. The demo's tools
#                           (cockroach, Prometheus, Grafana) are fetched by scripts/fetch_tools.py, not here.
#   scripts/setup.sh [test] what `make test` needs on top: the `test` extra, the test-only system tools
#                           (Prometheus/promtool, headless Chromium, wrk, Node/npm, openssl) through apt-get
#                           when it is there and we are root (CI) or have sudo, and the npm packages.
# Where a system tool is missing and cannot be installed, one line says what to install; setup goes on.
# Idempotent and quick when everything is already there. POSIX/BSD tools only (runs on macOS too).
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${1:-test}
case $MODE in dev | test) ;; *) echo "usage: scripts/setup.sh [dev|test]" >&2; exit 64 ;; esac
log() { printf '[setup] %s\n' "$*"; }

# sha1 of a file, with whichever tool this system has (Linux: sha1sum, macOS: shasum).
file_hash() {
  if command -v sha1sum >/dev/null 2>&1; then sha1sum "$1" | cut -c1-12; else shasum "$1" | cut -c1-12; fi
}

# --- system tools for the tests only (make test): apt-get where it can run, else one line each ---------
install_test_system_tools() {
  local need=() cmd pkg
  # "command package" pairs: the command the tests run, the Debian package that provides it.
  for pair in prometheus:prometheus promtool:prometheus chromium:chromium wrk:wrk node:nodejs npm:npm openssl:openssl; do
    cmd=${pair%%:*} pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || [[ " ${need[*]-} " == *" $pkg "* ]] || need+=("$pkg")
  done
  ((${#need[@]})) || return 0
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo=(sudo -n); else sudo=(none); fi
  fi
  if ! command -v apt-get >/dev/null 2>&1 || [[ ${sudo[0]-} == none ]]; then
    log "the tests need: ${need[*]} (Debian/Ubuntu: sudo apt-get install ${need[*]}; macOS: brew install prometheus chromium wrk node openssl); going on without them"
    return 0
  fi
  log "installing Debian packages: ${need[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

# --- Python: a project venv with the package in editable mode ----------------------------------------
install_python() {
  local extra=$1 py=${PYTHON:-python3}
  if [[ ! -x .venv/bin/python ]]; then
    log "creating .venv"
    if command -v uv >/dev/null 2>&1; then uv venv -q .venv -p "$py"; else "$py" -m venv .venv; fi
  fi
  local hash stamp
  hash=$(file_hash pyproject.toml)
  stamp=.venv/.installed-$extra-$hash
  # The test extra includes everything the local one has.
  [[ -f $stamp || ( $extra == local && -f .venv/.installed-test-$hash ) ]] && return 0
  log "installing Python packages (.[$extra])"
  local uv
  uv=$(find_uv)
  if [[ -n $uv ]]; then
    # --compile-bytecode: pip compiles at install, uv does not, and where PYTHONDONTWRITEBYTECODE is set
    # (it is on these machines) nothing ever caches it: every process importing dagster would compile it
    # again (5.5 s instead of 1.9 s per import, measured here).
    "$uv" pip install -q --compile-bytecode -p .venv/bin/python -e ".[$extra]" || python_failed
  else
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extra]" || python_failed
  fi
  rm -f .venv/.installed-"$extra"-* && touch "$stamp"
}

# uv resolves and installs the ~150 packages in seconds where pip takes one to two minutes (measured on a
# fresh venv here: 7.6 s against about 100 s), which is most of a fresh clone's `make test` set-up. Where uv
# is not on the PATH it is put into the venv with pip (one wheel from PyPI); offline, pip does it all.
find_uv() {
  if command -v uv >/dev/null 2>&1; then command -v uv; return; fi
  [[ -x .venv/bin/uv ]] || .venv/bin/python -m pip install -q --disable-pip-version-check --retries 0 --timeout 15 uv \
    >/dev/null 2>&1 || true  # offline: give up at once, pip below says what is missing
  [[ -x .venv/bin/uv ]] && echo .venv/bin/uv
  return 0
}

python_failed() {
  log "could not install the Python packages (offline, or no access to PyPI?): they are needed once; re-run 'make dev' when online"
  exit 1
}

# --- npm packages (the Mermaid parser for the docs checks), from the lock file only ----------------------
install_npm() {
  [[ -f package-lock.json ]] || return 0
  if ! command -v npm >/dev/null 2>&1; then
    log "npm is missing: the docs checks need Node.js and npm (https://nodejs.org/); going on without them"
    return 0
  fi
  local lockstamp
  lockstamp=node_modules/.installed-$(file_hash package-lock.json)
  [[ -f $lockstamp ]] && return 0
  log "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  touch "$lockstamp"
}

if [[ $MODE == dev ]]; then
  install_python local
else
  install_test_system_tools
  install_python test
  install_npm
fi
log "ready ($MODE)"
