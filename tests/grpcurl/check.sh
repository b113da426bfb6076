#!/usr/bin/env bash
# Checks the server with grpcurl, through server reflection only (no .proto files): list and
# describe the services, health, CreateQueue and CreateTask from JSON, and a StreamTasks
# stream that receives the task and acknowledges it.
#
#   bash tests/grpcurl/check.sh        # `make test-grpcurl`
#
# grpcurl is installed from the Go module proxy into .tools/bin (once). The server is
# $TASKQ_BIN (default: the checkout's .venv/bin/taskq, from `make install`), started on a free
# port with a temporary data directory and always stopped with SIGTERM; it must exit 0.
# The Python server serves grpc.reflection.v1alpha only; grpcurl >= 1.8.8 falls back to it.
# Exits non-zero on the first failed check.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
taskq_bin=${TASKQ_BIN:-$root/.venv/bin/taskq}
grpcurl_version=v1.9.3
tools=$root/.tools/bin
grpcurl=$tools/grpcurl

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# Installs grpcurl unless the wanted version is there already.
if ! { [ -x "$grpcurl" ] && go version -m "$grpcurl" 2>/dev/null | grep -q "fullstorydev/grpcurl[[:space:]]*$grpcurl_version"; }; then
    echo "installing grpcurl $grpcurl_version into $tools"
    GOBIN=$tools go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$grpcurl_version"
fi
[ -x "$taskq_bin" ] || fail "no server binary at $taskq_bin: run 'make install' or set TASKQ_BIN"

work=$(mktemp -d)
server_pid=
stream_pid=
stream_fd_open=

stop_server() {
    local rc=$?
    if [ -n "$stream_fd_open" ]; then
        exec 3>&-
    fi
    if [ -n "$stream_pid" ] && kill -0 "$stream_pid" 2>/dev/null; then
        kill "$stream_pid" 2>/dev/null || true
    fi
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid"
        local status=0
        wait "$server_pid" || status=$?
        if [ "$status" -ne 0 ]; then
            echo "FAIL: the server exited with status $status after SIGTERM" >&2
            sed 's/^/    server: /' "$work/server.err" >&2 || true
            [ "$rc" -ne 0 ] || rc=1
        fi
    fi
    rm -rf "$work"
    exit "$rc"
}
trap stop_server EXIT

: >"$work/server.out"
: >"$work/server.err"
"$taskq_bin" serve --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
addr=
for _ in $(seq 300); do
    addr=$(sed -n 's/^taskq listening on //p' "$work/server.out" || true)
    [ -n "$addr" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.err" >&2; fail "the server exited at start"; }
    sleep 0.1
done
[ -n "$addr" ] || fail "the server did not print its address within 30 s"
echo "server on $addr"

# call METHOD JSON: a unary call with a JSON request, bounded in time.
call() {
    "$grpcurl" -plaintext -max-time 10 -d "$2" "$addr" "$1"
}

# expect WHAT TEXT OUTPUT: OUTPUT must contain TEXT.
expect() {
    grep -qF -- "$2" <<<"$3" || { printf '%s\n' "$3" >&2; fail "$1: the output lacks '$2'"; }
    echo "ok: $1"
}

services=$("$grpcurl" -plaintext -max-time 10 "$addr" list)
expect "list shows TaskService" "taskq.v1.TaskService" "$services"
expect "list shows QueueService" "taskq.v1.QueueService" "$services"

description=$("$grpcurl" -plaintext -max-time 10 "$addr" describe taskq.v1.TaskService)
expect "describe TaskService shows LeaseTasks" "rpc LeaseTasks ( .taskq.v1.LeaseTasksRequest )" "$description"
expect "describe TaskService shows StreamTasks" "rpc StreamTasks ( stream .taskq.v1.StreamTasksRequest ) returns ( stream .taskq.v1.StreamTasksResponse )" "$description"

health=$("$grpcurl" -plaintext -max-time 10 "$addr" grpc.health.v1.Health/Check)
expect "health is SERVING" '"status": "SERVING"' "$health"

queue=$(call taskq.v1.QueueService/CreateQueue '{"queue": {"name": "queues/grpcurl", "type": "QUEUE_TYPE_PUSH"}}')
expect "CreateQueue" '"name": "queues/grpcurl"' "$queue"

task=$(call taskq.v1.TaskService/CreateTask \
    '{"parent": "queues/grpcurl", "task": {"name": "queues/grpcurl/tasks/hello", "payload": "aGVsbG8="}}')
expect "CreateTask" '"name": "queues/grpcurl/tasks/hello"' "$task"

# An error comes back with its code and its google.rpc.Status details.
set +e
missing=$("$grpcurl" -plaintext -max-time 10 -format-error -d '{"name": "queues/nope"}' "$addr" \
    taskq.v1.QueueService/GetQueue 2>&1)
rc=$?
set -e
[ "$rc" -eq $((64 + 5)) ] || { printf '%s\n' "$missing" >&2; fail "GetQueue of a missing queue exited $rc, want 69 (NOT_FOUND)"; }
expect "a missing queue's error has its reason" '"reason": "QUEUE_NOT_FOUND"' "$missing"

# StreamTasks: grpcurl sends each JSON message as it reads it from stdin and prints each
# response as it arrives. The stream stays open while stdin does (a half-close ends a
# StreamTasks stream), so stdin is a FIFO held open on fd 3: subscribe, wait for the task,
# ack it with its lease token, then close stdin and let the server end the stream.
mkfifo "$work/stream.in"
: >"$work/stream.out"
"$grpcurl" -plaintext -max-time 20 -d @ "$addr" taskq.v1.TaskService/StreamTasks \
    <"$work/stream.in" >"$work/stream.out" 2>"$work/stream.err" &
stream_pid=$!
exec 3>"$work/stream.in"
stream_fd_open=1
echo '{"subscription": {"queue": "queues/grpcurl", "max_outstanding": 5}}' >&3
token=
for _ in $(seq 100); do
    token=$(sed -n 's/^ *"leaseToken": "\(.*\)",*$/\1/p' "$work/stream.out" | head -n 1 || true)
    [ -n "$token" ] && break
    kill -0 "$stream_pid" 2>/dev/null || break
    sleep 0.1
done
streamed=$(cat "$work/stream.out")
[ -n "$token" ] || { cat "$work/stream.err" >&2; printf '%s\n' "$streamed" >&2; fail "StreamTasks delivered no task within 10 s"; }
expect "StreamTasks delivers the task" '"name": "queues/grpcurl/tasks/hello"' "$streamed"
expect "StreamTasks delivers its payload" '"payload": "aGVsbG8="' "$streamed"
expect "StreamTasks leases it" '"state": "TASK_STATE_LEASED"' "$streamed"
echo "{\"acks\": [{\"name\": \"queues/grpcurl/tasks/hello\", \"lease_token\": \"$token\"}]}" >&3
exec 3>&-
stream_fd_open=
rc=0
wait "$stream_pid" || rc=$?
[ "$rc" -eq 0 ] || { cat "$work/stream.err" >&2; fail "StreamTasks exited $rc after the half-close, want 0"; }
echo "ok: StreamTasks ends cleanly after the ack and the half-close"

# The ack deleted the task.
set +e
gone=$("$grpcurl" -plaintext -max-time 10 -format-error -d '{"name": "queues/grpcurl/tasks/hello"}' "$addr" \
    taskq.v1.TaskService/GetTask 2>&1)
rc=$?
set -e
[ "$rc" -eq $((64 + 5)) ] || { printf '%s\n' "$gone" >&2; fail "GetTask after the ack exited $rc, want 69 (NOT_FOUND)"; }
expect "the acked task is gone" '"reason": "TASK_NOT_FOUND"' "$gone"

echo "grpcurl checks passed"
