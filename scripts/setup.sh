#!/usr/bin/env bash
# Installs everything the product and its tests need on a fresh Debian/Ubuntu machine:
# the Python venv (.venv) with the project and its test extras, Debian packages for the real
# Prometheus/promtool, headless Chromium, wrk, Node/npm and openssl, and the npm packages of
# package-lock.json.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*"; }

# --- Debian packages: real Prometheus (+promtool), Chromium for browser tests, wrk for benchmarks,
# Node/npm for the Mermaid parser of the docs checks, openssl for the TLS test certificates.
need_apt=()
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
[[ -x /usr/bin/chromium ]] || need_apt+=(chromium)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
if ((${#need_apt[@]})); then
  if [[ $(id -u) -eq 0 ]]; then SUDO=(); else SUDO=(sudo); fi
  log "installing Debian packages: ${need_apt[*]}"
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# --- Python: a project venv with the package in editable mode and the test extras.
PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv"
  if command -v uv >/dev/null 2>&1; then uv venv -q .venv -p "$PY"; else "$PY" -m venv .venv; fi
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [[ ! -f $stamp ]]; then
  log "installing Python packages"
  if command -v uv >/dev/null 2>&1; then
    uv pip install -q -p .venv/bin/python -e '.[test]'
  else
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[test]'
  fi
  rm -f .venv/.installed-* && touch "$stamp"
fi

# --- npm packages (the Mermaid parser for the docs checks), from the lock file only.
if [[ -f package-lock.json ]]; then
  lockstamp=node_modules/.installed-$(sha1sum package-lock.json | cut -c1-12)
  if [[ ! -f $lockstamp ]]; then
    log "installing npm packages (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
    touch "$lockstamp"
  fi
fi
log "ready"
