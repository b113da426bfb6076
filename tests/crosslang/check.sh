#!/usr/bin/env bash
# Wire compatibility across three clients: a task created by the Go client is leased by the
# TypeScript client and acknowledged by the Java client, against one real server. Run by
# `make test-crosslang` (after the Node and Java builds); TASKQ_BIN is the server.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
taskq_bin="${TASKQ_BIN:-$root/.venv/bin/taskq}"
work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"; wait "$server_pid" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$taskq_bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
for _ in $(seq 100); do
  address="$(sed -n 's/^taskq listening on //p' "$work/server.out")"
  [ -n "$address" ] && break
  sleep 0.1
done
[ -n "$address" ] || { echo "the server did not start:"; cat "$work/server.err"; exit 1; }

name="$(cd "$root/clients/go" && go run ./cmd/crosslang -addr "$address" -queue crosslang -tag from-go -payload 'made in Go')"
echo "go created:         $name"

leased="$(node "$root/clients/node/build/examples/crosslang.js" "$address" crosslang from-go)"
echo "typescript leased:  $leased"
read -r leased_name token payload created_by attempts < <(python3 -c '
import json, sys
task = json.loads(sys.argv[1])
print(task["name"], task["leaseToken"], task["payload"].replace(" ", "_"), task["attributes"].get("created-by"), task["attemptCount"])
' "$leased")
[ "$leased_name" = "$name" ] || { echo "TypeScript leased $leased_name, not $name"; exit 1; }
[ "$payload" = "made_in_Go" ] || { echo "payload changed on the way: $payload"; exit 1; }
[ "$created_by" = "go" ] || { echo "attributes changed on the way: $created_by"; exit 1; }
[ "$attempts" = "1" ] || { echo "attempt count $attempts, expected 1"; exit 1; }

(cd "$root/clients/java" && mvn --batch-mode --quiet exec:java -Dexec.mainClass=dev.taskq.example.CrossLanguage \
  -Dexec.args="$address $name $token")
echo "java acknowledged the lease TypeScript holds on the task Go created"
