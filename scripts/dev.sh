#!/usr/bin/env bash
# `make dev`: everything local, in one terminal, no root needed.
#   - scripts/setup.sh dev (the venv only), then local passwords in <data dir>/secrets.env (mode 600)
#   - cockroach, Prometheus and Grafana: on PATH, or the pinned official releases fetched and verified into
#     .data/bin by scripts/fetch_tools.py (versions.toml); offline, one line names each missing tool and
#     the rest still starts (DEV_FETCH_TOOLS=0: never download)
#   - Prometheus on 127.0.0.1:9090 with grafana/local/prometheus.yml
#   - Grafana on 127.0.0.1:3030 with grafana/local/provisioning (the Prometheus datasource and the three
#     dashboards of grafana/dashboards), anonymous read-only viewing, admin password in secrets.env, and
#     a service-account token so the pipeline annotates its phase runs
#   - the sample app on 127.0.0.1:8000: on the local CockroachDB cluster (node 1 writes, node 2 reads once
#     phase 1 has run) or, without a binary, on an embedded PostgreSQL (scripts/dev_postgres.py)
#   - dagster dev on 127.0.0.1:3000 with DAGSTER_HOME=dagster_home and EVOLUTION_CLUSTER_BACKEND=local
# One Ctrl-C stops all of that. The CockroachDB nodes are NOT stopped: they are the cluster the pipeline
# grew and they keep their data; `make local-stop` stops them, `make local-status` shows them.
#
# Ports and folders can be overridden: DEV_DAGSTER_PORT, DEV_APP_PORT, DEV_PROMETHEUS_PORT, DEV_GRAFANA_PORT,
# LOCAL_CRDB_DATA_DIR, LOCAL_CRDB_{SQL,LISTEN,HTTP}_PORT_BASE, DEV_DAGSTER_HOME, DEV_SKIP_SETUP=1.
# The local rehearsal cluster: REHEARSAL_LOCAL_CRDB_DATA_DIR (.data/rehearsal) and
# REHEARSAL_LOCAL_CRDB_{SQL,LISTEN,HTTP}_PORT_BASE (26457, 26557, 8090); DEV_REHEARSAL_APP=1 also starts
# its sample app on DEV_REHEARSAL_APP_PORT (8001). A license for the local clusters: CRDB_LICENSE or the
# file .data/license (applied once the cluster has nodes).
# POSIX/BSD tools only (bash 3.2 on macOS included): no GNU-only flags, no /proc.
set -euo pipefail
set -m  # each background job gets its own process group, so one kill stops a job and its children
cd "$(dirname "$0")/.."
REPO=$(pwd)

say() { printf '[dev] %s\n' "$*"; }

if [[ ${DEV_SKIP_SETUP:-0} != 1 ]]; then
  bash scripts/setup.sh dev
fi
PY="$REPO/.venv/bin/python"

DAGSTER_PORT=${DEV_DAGSTER_PORT:-3000}
APP_PORT=${DEV_APP_PORT:-8000}
PROM_PORT=${DEV_PROMETHEUS_PORT:-9090}
GRAFANA_PORT=${DEV_GRAFANA_PORT:-3030}
export LOCAL_CRDB_DATA_DIR=${LOCAL_CRDB_DATA_DIR:-$REPO/.data/local}
export LOCAL_CRDB_SQL_PORT_BASE=${LOCAL_CRDB_SQL_PORT_BASE:-26257}
export LOCAL_CRDB_LISTEN_PORT_BASE=${LOCAL_CRDB_LISTEN_PORT_BASE:-26357}
export LOCAL_CRDB_HTTP_PORT_BASE=${LOCAL_CRDB_HTTP_PORT_BASE:-8080}
export DAGSTER_HOME=${DEV_DAGSTER_HOME:-$REPO/dagster_home}
export EVOLUTION_CLUSTER_BACKEND=local
export CRDB_CLUSTER_LABEL=${CRDB_CLUSTER_LABEL:-local}
export PROMETHEUS_URL=http://127.0.0.1:$PROM_PORT
export SAMPLE_APP_URL=http://127.0.0.1:$APP_PORT
export REHEARSAL_CRDB_CLUSTER_LABEL=${REHEARSAL_CRDB_CLUSTER_LABEL:-local-rehearsal}
# Traces, optional (crdb_common/otel.py): when a local OTLP/HTTP receiver (Tempo, Jaeger, a collector)
# listens on 127.0.0.1:4318, the app and the pipeline export to it. Nothing there, or an endpoint already
# set: unchanged (tracing stays off without an endpoint).
if [ -z "${OTEL_EXPORTER_OTLP_ENDPOINT:-}" ] && (exec 3<>/dev/tcp/127.0.0.1/4318) 2>/dev/null; then
  export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318
  echo "traces: an OTLP/HTTP receiver answers on 127.0.0.1:4318; the app and the pipeline export to it"
fi
LOG_DIR=$LOCAL_CRDB_DATA_DIR/logs/dev
PROM_RUNTIME=$LOCAL_CRDB_DATA_DIR/prometheus
GRAFANA_RUNTIME=$LOCAL_CRDB_DATA_DIR/grafana
mkdir -p "$LOG_DIR" "$DAGSTER_HOME"

# --- local secrets: generated once, never committed (.data/ is gitignored) -----------------------------
SECRETS=$LOCAL_CRDB_DATA_DIR/secrets.env
if [[ ! -f $SECRETS ]]; then
  (umask 077 && "$PY" - "$SECRETS" <<'EOF'
import secrets, sys
with open(sys.argv[1], "w") as f:
    for name in ("APP_WRITER_PASSWORD", "APP_READER_PASSWORD"):
        f.write(f"{name}={secrets.token_urlsafe(24)}\n")
    f.write(f"APP_HASH_SALT={secrets.token_hex(16)}\n")
EOF
  )
  say "generated local passwords in $SECRETS"
fi
chmod 600 "$SECRETS"
# Added to files from before the local Grafana existed.
grep -q '^GRAFANA_ADMIN_PASSWORD=' "$SECRETS" ||
  "$PY" -c 'import secrets; print(f"GRAFANA_ADMIN_PASSWORD={secrets.token_urlsafe(18)}")' >>"$SECRETS"
set -a; source "$SECRETS"; set +a

# --- everything started below is stopped by one Ctrl-C ------------------------------------------------
PIDS=()
NAMES=()
stopping=0
cleanup() {
  ((stopping)) && return
  stopping=1
  trap '' INT TERM
  say "stopping what make dev started: ${NAMES[*]:-nothing}"
  local i
  # bash 3.2 (macOS) calls an empty array unbound under set -u: only walk it when it has entries.
  ((${#PIDS[@]})) || { say "stopped"; return; }
  for i in "${!PIDS[@]}"; do kill -TERM -- "-${PIDS[$i]}" 2>/dev/null || true; done
  for _ in $(seq 1 100); do  # up to 20 s for a clean shutdown
    local alive=0
    for i in "${!PIDS[@]}"; do kill -0 -- "-${PIDS[$i]}" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.2
  done
  for i in "${!PIDS[@]}"; do kill -KILL -- "-${PIDS[$i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n ${COCKROACH_BIN:-} ]]; then
    say "the CockroachDB nodes keep running (they are the cluster): 'make local-status' shows them, 'make local-stop' stops them"
  fi
  say "stopped"
}
# A stop that was asked for (Ctrl-C, or a TERM from an IDE or a supervisor) is a success: exit 0, so make
# does not report "Error 130/143" for it.
trap 'cleanup; exit 0' INT TERM
trap cleanup EXIT

start() {  # start NAME LOGFILE CMD...: a background job in its own process group
  local name=$1 logfile=$2
  shift 2
  "$@" >"$logfile" 2>&1 &
  PIDS+=("$!")
  NAMES+=("$name")
}

wait_http() {  # wait_http NAME URL SECONDS
  local name=$1 url=$2 seconds=$3 port
  port=${url#*://}; port=${port%%/*}; port=${port##*:}
  for _ in $(seq 1 $((seconds * 5))); do
    # Bash's own connect first, so a Python (about 80 ms of CPU each) starts only once the port is open.
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$url" 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  say "WARNING: $name did not answer $url within ${seconds}s (see its log)"
  return 1
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$DAGSTER_PORT" "$APP_PORT"; do
  port_free "$p" || { say "port $p on 127.0.0.1 is in use: stop that process or set DEV_DAGSTER_PORT / DEV_APP_PORT"; exit 1; }
done

# --- cockroach, Prometheus, Grafana: on PATH, fetched earlier, or fetched now ---------------------------
PROMETHEUS_BIN='' GRAFANA_BIN=''
if [[ ${DEV_FETCH_TOOLS:-1} == 1 ]]; then
  fetch_err=$LOG_DIR/fetch-tools.err
  while read -r tool path; do
    case $tool in
      cockroach) export COCKROACH_BIN=$path ;;
      prometheus) PROMETHEUS_BIN=$path ;;
      grafana) GRAFANA_BIN=$path ;;
    esac
  done < <("$PY" scripts/fetch_tools.py cockroach prometheus grafana 2>"$fetch_err" || true)
  while read -r line; do say "$line"; done <"$fetch_err"
else
  found=$("$PY" -m evolution_pipeline.resources.local find-binary 2>/dev/null) && export COCKROACH_BIN=$found
  PROMETHEUS_BIN=$(command -v prometheus || true)
  GRAFANA_BIN=$(command -v grafana || command -v grafana-server || true)
  [[ -n ${COCKROACH_BIN:-} ]] || say "$("$PY" -m evolution_pipeline.resources.local missing-binary-message)"
fi
if [[ -n ${COCKROACH_BIN:-} ]]; then
  say "CockroachDB binary: $COCKROACH_BIN ($("$COCKROACH_BIN" version --build-tag 2>/dev/null || echo '?'))"
else
  unset COCKROACH_BIN
  say "without cockroach the Dagster UI and the sample app (on an embedded PostgreSQL) still start; materializing a phase fails saying how to get it ('make tools' when online)"
fi

# The pipeline's SQL connections (root over its client certificate, node 1 of each local cluster).
eval "$("$PY" -m evolution_pipeline.resources.local admin-urls)"
export CRDB_ADMIN_URL REHEARSAL_CRDB_ADMIN_URL

# --- Prometheus with the local scrape config ----------------------------------------------------------
if [[ -n $PROMETHEUS_BIN && -f grafana/local/prometheus.yml ]]; then
  if port_free "$PROM_PORT"; then
    mkdir -p "$PROM_RUNTIME"/{targets,certs,rules,data}
    # The scrape config names the app at 127.0.0.1:8000; follow DEV_APP_PORT when it is overridden.
    sed "s/127\.0\.0\.1:8000/127.0.0.1:$APP_PORT/" grafana/local/prometheus.yml >"$PROM_RUNTIME/prometheus.yml"
    rm -f "$PROM_RUNTIME"/rules/*.yml
    cp grafana/alerts/*.yml "$PROM_RUNTIME/rules/" 2>/dev/null || true
    "$PY" -m evolution_pipeline.resources.local prepare-prometheus >/dev/null
    start prometheus "$LOG_DIR/prometheus.log" "$PROMETHEUS_BIN" --config.file="$PROM_RUNTIME/prometheus.yml" \
      --storage.tsdb.path="$PROM_RUNTIME/data" --web.listen-address="127.0.0.1:$PROM_PORT"
  else
    say "port $PROM_PORT is in use: not starting Prometheus (set DEV_PROMETHEUS_PORT to start one on another port)"
  fi
else
  say "no Prometheus (named above): the pipeline's checks need it; 'make tools' fetches it when online"
fi

# --- Grafana with the project's datasource and dashboards -------------------------------------------------
GRAFANA_URL_LOCAL=''
if [[ -n $GRAFANA_BIN ]] && GRAFANA_HOME=$("$PY" scripts/dev_grafana.py home "$GRAFANA_BIN"); then
  if port_free "$GRAFANA_PORT"; then
    mkdir -p "$GRAFANA_RUNTIME"/{data,logs,plugins}
    GRAFANA_URL_LOCAL=http://127.0.0.1:$GRAFANA_PORT
    # Debian's grafana-server takes no `server` subcommand; the official archive's bin/grafana does.
    grafana_cmd=("$GRAFANA_BIN" server)
    [[ $(basename "$GRAFANA_BIN") == grafana-server ]] && grafana_cmd=("$GRAFANA_BIN")
    start grafana "$LOG_DIR/grafana.log" env \
      CRDB_LOCAL_PROMETHEUS_URL="$PROMETHEUS_URL" CRDB_DASHBOARDS_DIR="$REPO/grafana/dashboards" \
      GF_PATHS_PROVISIONING="$REPO/grafana/local/provisioning" GF_PATHS_DATA="$GRAFANA_RUNTIME/data" \
      GF_PATHS_LOGS="$GRAFANA_RUNTIME/logs" GF_PATHS_PLUGINS="$GRAFANA_RUNTIME/plugins" \
      GF_SERVER_HTTP_ADDR=127.0.0.1 GF_SERVER_HTTP_PORT="$GRAFANA_PORT" \
      GF_SECURITY_ADMIN_USER=admin GF_SECURITY_ADMIN_PASSWORD="$GRAFANA_ADMIN_PASSWORD" \
      GF_AUTH_ANONYMOUS_ENABLED=true GF_AUTH_ANONYMOUS_ORG_ROLE=Viewer GF_USERS_ALLOW_SIGN_UP=false \
      GF_ANALYTICS_REPORTING_ENABLED=false GF_ANALYTICS_CHECK_FOR_UPDATES=false \
      GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES=false \
      GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH="$REPO/grafana/dashboards/cockroachdb-evolution.json" \
      "${grafana_cmd[@]}" --homepath "$GRAFANA_HOME"
  else
    say "port $GRAFANA_PORT is in use: not starting Grafana (set DEV_GRAFANA_PORT to start one on another port)"
  fi
else
  say "no Grafana (named above): the dashboards need it; 'make tools' fetches it when online"
fi

# --- the database the sample app uses -----------------------------------------------------------------
# url_files DIR WRITER_URL READER_URL: DIR/writer-url and DIR/reader-url (mode 600), unless they exist.
url_files() {
  mkdir -p "$1" && chmod 700 "$1"
  [[ -s $1/writer-url ]] || (umask 077 && printf '%s\n' "$2" >"$1/writer-url")
  [[ -s $1/reader-url ]] || (umask 077 && printf '%s\n' "$3" >"$1/reader-url")
}
if [[ -n ${COCKROACH_BIN:-} ]]; then
  eval "$("$PY" -m evolution_pipeline.resources.local app-urls)"
  # The app follows its URLs from files (as from a mounted Secret), so rotate_credentials can move it to
  # the other rotation user without a restart. Written once: after a rotation the files are the pipeline's.
  export APP_CREDENTIALS_DIR=$LOCAL_CRDB_DATA_DIR/credentials
  url_files "$APP_CREDENTIALS_DIR" "$APP_DB_WRITER_URL" "$APP_DB_READER_URL"
  export APP_DB_WRITER_URL_FILE=$APP_CREDENTIALS_DIR/writer-url APP_DB_READER_URL_FILE=$APP_CREDENTIALS_DIR/reader-url
  unset APP_DB_WRITER_URL APP_DB_READER_URL
  say "sample app -> local CockroachDB: writer node 1, reader node 2 (node 1 until phase 1); it is not ready before phase 0 has run"
else
  PG_ENV=$LOCAL_CRDB_DATA_DIR/postgres/app-urls.env
  rm -f "$PG_ENV"
  start postgres "$LOG_DIR/postgres.log" "$PY" scripts/dev_postgres.py \
    --data-dir "$LOCAL_CRDB_DATA_DIR/postgres/data" --env-file "$PG_ENV"
  for _ in $(seq 1 300); do [[ -f $PG_ENV ]] && break; kill -0 "${PIDS[${#PIDS[@]}-1]}" 2>/dev/null || break; sleep 0.1; done
  if [[ ! -f $PG_ENV ]]; then say "the embedded PostgreSQL did not start:"; tail -20 "$LOG_DIR/postgres.log"; exit 1; fi
  set -a; source "$PG_ENV"; set +a
  say "sample app -> embedded PostgreSQL (pgserver) in $LOCAL_CRDB_DATA_DIR/postgres"
fi

# --- the sample app and Dagster -----------------------------------------------------------------------
start sample-app "$LOG_DIR/sample-app.log" "$PY" -m sample_app --host 127.0.0.1 --port "$APP_PORT"
# Opt-in: a second app for the local nightly rehearsal, on the rehearsal cluster (its own data folder and
# ports, REHEARSAL_LOCAL_CRDB_*), so the rehearsal's checks judge their own traffic, never the live app's.
if [[ ${DEV_REHEARSAL_APP:-0} == 1 ]]; then
  if [[ -n ${COCKROACH_BIN:-} ]]; then
    REHEARSAL_APP_PORT=${DEV_REHEARSAL_APP_PORT:-8001}
    export REHEARSAL_SAMPLE_APP_URL=http://127.0.0.1:$REHEARSAL_APP_PORT
    eval "$("$PY" -m evolution_pipeline.resources.local app-urls --environment rehearsal | sed 's/^APP_DB_/REH_APP_DB_/')"
    mkdir -p "$PROM_RUNTIME/targets"
    printf '[{"targets": ["127.0.0.1:%s"], "labels": {"cluster": "%s"}}]\n' "$REHEARSAL_APP_PORT" \
      "$REHEARSAL_CRDB_CLUSTER_LABEL" >"$PROM_RUNTIME/targets/sample-app-rehearsal.json"
    export REHEARSAL_APP_CREDENTIALS_DIR=$LOCAL_CRDB_DATA_DIR/rehearsal-credentials  # rehearsal_rotate_credentials
    url_files "$REHEARSAL_APP_CREDENTIALS_DIR" "$REH_APP_DB_WRITER_URL" "$REH_APP_DB_READER_URL"
    start rehearsal-app "$LOG_DIR/rehearsal-app.log" env APP_DB_WRITER_URL_FILE="$REHEARSAL_APP_CREDENTIALS_DIR/writer-url" \
      APP_DB_READER_URL_FILE="$REHEARSAL_APP_CREDENTIALS_DIR/reader-url" "$PY" -m sample_app --host 127.0.0.1 --port "$REHEARSAL_APP_PORT"
  else
    say "DEV_REHEARSAL_APP=1 needs the cockroach binary (the rehearsal runs on its own local cluster); not started"
  fi
fi
# The pipeline's Grafana links and phase annotations go to the local Grafana (a token of its own service
# account; without one the links still work and the run log says why nothing was annotated).
if [[ -n $GRAFANA_URL_LOCAL ]]; then
  export GRAFANA_URL=$GRAFANA_URL_LOCAL
  if token_line=$("$PY" scripts/dev_grafana.py token "$GRAFANA_URL" "$GRAFANA_RUNTIME/api-token" 2>"$LOG_DIR/grafana-token.err"); then
    export GRAFANA_API_TOKEN=${token_line#GRAFANA_API_TOKEN=}
  else
    say "$(cat "$LOG_DIR/grafana-token.err")"
  fi
fi
start dagster "$LOG_DIR/dagster.log" "$REPO/.venv/bin/dagster" dev -w workspace.yaml -h 127.0.0.1 -p "$DAGSTER_PORT"

wait_http "the sample app" "http://127.0.0.1:$APP_PORT/healthz" 60 || true
wait_http "Dagster" "http://127.0.0.1:$DAGSTER_PORT/server_info" 180 || true
prom_line=$PROMETHEUS_URL
[[ " ${NAMES[*]} " == *" prometheus "* ]] || prom_line="not started (see above)"
grafana_line="not started (see above)"
[[ -n $GRAFANA_URL_LOCAL ]] && grafana_line="$GRAFANA_URL_LOCAL   (anonymous viewer; admin password: GRAFANA_ADMIN_PASSWORD in $SECRETS)"
crdb_line="not installed (see the message above)"
[[ -n ${COCKROACH_BIN:-} ]] && crdb_line="DB Console https://127.0.0.1:$LOCAL_CRDB_HTTP_PORT_BASE, SQL 127.0.0.1:$LOCAL_CRDB_SQL_PORT_BASE (nodes start when a phase is materialized)"
cat <<EOF

  Dagster UI     http://127.0.0.1:$DAGSTER_PORT   (DAGSTER_HOME=$DAGSTER_HOME, cluster backend: local)
  Sample app     http://127.0.0.1:$APP_PORT${REHEARSAL_SAMPLE_APP_URL:+   (rehearsal app: $REHEARSAL_SAMPLE_APP_URL)}
  Prometheus     $prom_line
  Grafana        $grafana_line
  CockroachDB    $crdb_line
  Logs           $LOG_DIR/*.log

  Ctrl-C stops all of the above except the CockroachDB nodes (make local-stop stops those).
EOF
echo "[dev] ready"

# Stay in the foreground; if one part dies, say so and stop the rest.
while true; do
  for i in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
      say "${NAMES[$i]} exited; last lines of its log:"
      tail -15 "$LOG_DIR/${NAMES[$i]}.log" || true
      exit 1
    fi
  done
  sleep 1 &
  wait $! 2>/dev/null || true
done
