#!/usr/bin/env bash
# The Dockerfile's steps without Docker: build both wheels, install them into a clean
# virtualenv (nothing from this checkout on its path), make a token with `taskq token create`
# into a tokens file as the image expects one, start `taskq serve` from it on all addresses as
# the image does (authentication on; without it the start is refused), check `taskq health`,
# create a queue and a task with the installed CLI and the token, and stop it with SIGTERM.
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

if "$work/venv/bin/taskq" serve --listen 0.0.0.0:0 --data-dir "$work/data" 2>"$work/refused.err"; then
  echo "the installed server listened on all addresses without authentication"; exit 1
fi
grep -q "no authentication is configured" "$work/refused.err" || { cat "$work/refused.err"; exit 1; }
"$work/venv/bin/taskq" token create packaging --role admin --json >"$work/made.json"
"$work/venv/bin/python" - "$work" <<'PY'
import json, sys
work = sys.argv[1]
made = json.load(open(f"{work}/made.json"))
open(f"{work}/token", "w").write(made["token"])
with open(f"{work}/tokens.yaml", "w") as tokens:
    tokens.write("tokens:\n")
    tokens.write(f"- name: {made['entry']['name']}\n  sha256: {made['entry']['sha256']}\n  roles: [admin]\n")
PY
TASKQ_AUTH_TOKENS_FILE="$work/tokens.yaml" "$work/venv/bin/taskq" serve --listen 0.0.0.0:0 --data-dir "$work/data" \
  >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
for _ in $(seq 100); do
  address="$(sed -n 's/^taskq listening on 0.0.0.0:/127.0.0.1:/p' "$work/server.out")"
  [ -n "$address" ] && break
  sleep 0.1
done
[ -n "$address" ] || { echo "the installed server did not start:"; cat "$work/server.err"; exit 1; }
"$work/venv/bin/taskq" health --server "$address"
if "$work/venv/bin/taskq" queue list --server "$address" >/dev/null 2>&1; then
  echo "the installed server answered a call without a token"; exit 1
fi
export TASKQ_TOKEN_FILE="$work/token"
"$work/venv/bin/taskq" queue create packaged --type pull --server "$address" >/dev/null
"$work/venv/bin/taskq" task add packaged --payload hello --server "$address" >/dev/null
count="$("$work/venv/bin/taskq" queue stats packaged --server "$address" --json | "$work/venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["tasks_count"])')"
[ "$count" = "1" ] || { echo "expected 1 task, the installed server has $count"; exit 1; }
kill -TERM "$server_pid"; wait "$server_pid"; server_pid=""
echo "the installed wheels serve with tokens, answer health checks and store tasks"
