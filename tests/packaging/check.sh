#!/usr/bin/env bash
# The Dockerfile's steps without Docker: build both wheels, install them into a clean
# virtualenv (nothing from this checkout on its path), start `taskq serve` from it, check
# `taskq health`, create a queue and a task with the installed CLI, and stop it with SIGTERM.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
python="${PYTHON:-python3}"
work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill -TERM "$server_pid"; wait "$server_pid" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$root/.venv/bin/python" -m pip wheel --quiet --no-deps --wheel-dir "$work/wheels" "$root/clients/python" "$root"
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet "$work"/wheels/*.whl
cd "$work"  # away from the checkout: only the installed packages can be imported

"$work/venv/bin/taskq" serve --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
for _ in $(seq 100); do
  address="$(sed -n 's/^taskq listening on //p' "$work/server.out")"
  [ -n "$address" ] && break
  sleep 0.1
done
[ -n "$address" ] || { echo "the installed server did not start:"; cat "$work/server.err"; exit 1; }
"$work/venv/bin/taskq" health --server "$address"
"$work/venv/bin/taskq" queue create packaged --type pull --server "$address" >/dev/null
"$work/venv/bin/taskq" task add packaged --payload hello --server "$address" >/dev/null
count="$("$work/venv/bin/taskq" queue stats packaged --server "$address" --json | "$work/venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["tasks_count"])')"
[ "$count" = "1" ] || { echo "expected 1 task, the installed server has $count"; exit 1; }
kill -TERM "$server_pid"; wait "$server_pid"; server_pid=""
echo "the installed wheels serve, answer health checks and store tasks"
