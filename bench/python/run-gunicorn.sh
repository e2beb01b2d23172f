#!/bin/sh
# Starts the Python benchmark peer: FastAPI + prometheus_client (multiprocess
# mode) under gunicorn with uvicorn workers, from Debian packages (gunicorn,
# python3-uvicorn, python3-fastapi, python3-prometheus-client, python3-uvloop).
#
#   run-gunicorn.sh ADDR WORKERS [asgi|http]
#
# The third argument picks the metrics middleware (see app.py): a pure ASGI
# one (default) or FastAPI's @app.middleware("http").
#
# A fresh PROMETHEUS_MULTIPROC_DIR is exported *before* gunicorn imports the
# app (prometheus_client picks its mode at import, the seed article's first
# trap) and removed when gunicorn exits. TERM and INT are passed on to
# gunicorn's master.
set -eu
addr=${1:?usage: run-gunicorn.sh ADDR WORKERS}
workers=${2:-2}
export BENCH_MIDDLEWARE=${3:-asgi}
case $BENCH_MIDDLEWARE in
asgi | http) ;;
*) echo "run-gunicorn.sh: middleware must be asgi or http, not $BENCH_MIDDLEWARE" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/herd-bench-prom.XXXXXX")
export PROMETHEUS_MULTIPROC_DIR="$dir"
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in the work tree
/usr/bin/gunicorn --config "$here/gunicorn.conf.py" --chdir "$here" \
	--bind "$addr" --workers "$workers" app:app &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' TERM INT
status=0
wait "$pid" || status=$?
# wait returns early when a trapped signal arrives: wait again for the exit.
if kill -0 "$pid" 2>/dev/null; then wait "$pid" || status=$?; fi
rm -rf "$dir"
exit "$status"
