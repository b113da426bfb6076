"""Many replicas on one database (SPEC §8.4): three real `taskq serve` processes share one
PostgreSQL database and serve the same queues.

- A push queue's rate limit holds across the replicas together (the total, over a window,
  within 3 % of the rate) and the streams on different replicas share it fairly; its
  concurrency cap holds across them too (marked as an expected failure until the server bug
  its marker names is fixed).
- Replicas starting together on an empty database create its schema once, without failing.
- A task created on one replica wakes a stream and a long poll on another (LISTEN/NOTIFY):
  the receiving replicas poll only once every ten minutes, so nothing but a notification can
  deliver it within the test's wait; idle, the servers use next to no CPU.
- When the leader is killed, another replica takes over the housekeeping: a lease that expires
  after the kill is reaped (only the leader reaps).
- A replica that cannot reach the database reports NOT_SERVING (even idle), refuses calls with
  UNAVAILABLE, and serves again once it can; a client balancing over the replicas by their
  health carries on without an error meanwhile.

Figures (rates, shares, delays, failover times) are printed for the record; run with -s.
"""

from __future__ import annotations

import collections
import json
import threading
import time

import grpc
import psycopg
from google.protobuf import duration_pb2
from replica_support import (
    NOT_SERVING,
    SERVING,
    DatabaseLink,
    Producer,
    Replicas,
    StatusRecorder,
    TotalQueue,
    WorkerThreads,
    cpu_seconds,
    eventually,
    queue_drained,
    recorded_client,
)

from harness import Stream
from taskq.client import Client, Unavailable, Worker
from taskq.store.postgres.schema import SCHEMA_VERSION, migrate
from taskq.v1 import (
    queue_pb2,
    queue_service_pb2,
    queue_service_pb2_grpc,
    task_pb2,
    task_service_pb2,
    task_service_pb2_grpc,
)

#: The rate of the rate-limited queue, tasks per second, and the tolerance on the total.
RATE = 200.0
RATE_TOLERANCE = 0.03


def create_queue(replicas: Replicas, index: int, queue: queue_pb2.Queue) -> None:
    stub = queue_service_pb2_grpc.QueueServiceStub(replicas.server(index).channel)
    stub.CreateQueue(queue_service_pb2.CreateQueueRequest(queue=queue), timeout=30)


def create_tasks(replicas: Replicas, index: int, queue_id: str, count: int) -> list[str]:
    """`count` tasks created through replica `index`, in batches; their names."""
    stub = task_service_pb2_grpc.TaskServiceStub(replicas.server(index).channel)
    names: list[str] = []
    for start in range(0, count, 1000):
        requests = [task_service_pb2.CreateTaskRequest(task=task_pb2.Task(payload=b"x"))
                    for _ in range(min(1000, count - start))]
        response = stub.BatchCreateTasks(
            task_service_pb2.BatchCreateTasksRequest(parent=f"queues/{queue_id}", requests=requests), timeout=60)
        names += [result.task.name for result in response.results]
    return names


def test_a_rate_limit_holds_across_replicas_in_total_and_their_streams_share_it_fairly(replicas):
    """A 200/s push queue with a worker streaming from each of three replicas and a backlog
    that lasts the whole run: the tasks' dispatch times (the server's record of each delivery,
    as the workers receive them) counted over a 5 s window after the initial burst are 200/s
    within 3 %, and each stream gets about a third. Without the bucket's row lock each replica
    would spend the same tokens and the total would be far above the rate."""
    group = replicas(3)
    backlog = 1500
    create_queue(group, 0, queue_pb2.Queue(
        name="queues/rated", type=queue_pb2.QUEUE_TYPE_PUSH, dispatch_deadline=duration_pb2.Duration(seconds=60),
        rate_limits=queue_pb2.RateLimits(max_dispatches_per_second=RATE, max_burst_size=20),
    ))
    created = create_tasks(group, 1, "rated", backlog)
    lock = threading.Lock()
    dispatched: list[tuple[int, int, str]] = []  # (dispatch time in µs, replica, task name)

    def handler_for(replica: int):
        def handle(task: task_pb2.Task) -> None:
            with lock:
                dispatched.append((task.last_attempt.dispatch_time.ToMicroseconds(), replica, task.name))
        return handle

    workers = WorkerThreads()
    try:
        for index in range(3):
            workers.start(Worker(group.addresses[index], "rated", handler_for(index), concurrency=8, max_outstanding=16))
        with Client(group.addresses[2]) as client:
            eventually(lambda: queue_drained(client, "rated"), 60, "the backlog was not dispatched")
    finally:
        workers.stop_all()
    assert not workers.errors()
    assert sorted(name for _, _, name in dispatched) == sorted(created), "each task once"

    times = sorted(at for at, _, _ in dispatched)
    first_us = times[0]
    window_start_us = first_us + 1_000_000  # the burst (20 tokens) is long spent by then
    window_us = 5_000_000
    window_end_us = window_start_us + window_us
    # Were the backlog spent before the window's end (tasks dispatched too fast), the rate is
    # taken up to the last dispatch.
    span_end_us = min(window_end_us, times[-1])
    in_window = [(at, replica) for at, replica, _ in dispatched if window_start_us <= at < span_end_us]
    rate = len(in_window) / ((span_end_us - window_start_us) / 1e6)
    shares = collections.Counter(replica for _, replica in in_window)
    fractions = [shares[index] / len(in_window) for index in range(3)]
    print(f"\nrate over {(span_end_us - window_start_us) / 1e6:.1f} s across 3 replicas: {rate:.1f}/s "
          f"(error {100 * (rate - RATE) / RATE:+.2f} %); "
          f"shares by replica: {', '.join(f'{100 * share:.1f} %' for share in fractions)}")
    assert abs(rate - RATE) <= RATE * RATE_TOLERANCE, f"{rate:.1f} tasks/s dispatched for a {RATE:.0f}/s queue"
    assert times[-1] > window_end_us + 200_000, "the backlog ran out before the window ended"
    for index, fraction in enumerate(fractions):
        assert 0.2 <= fraction <= 0.47, f"the stream on replica {index} got {100 * fraction:.1f} % of the tasks"


def test_a_concurrency_cap_holds_across_replicas(replicas):
    """max_concurrent_dispatches 6, three replicas whose streams could take 4 each at once: the
    tasks being worked on at any moment, counted by the workers from a handler's start to its
    end (inside each dispatch's lease), never exceed 6, and do reach it."""
    group = replicas(3)
    create_queue(group, 0, queue_pb2.Queue(
        name="queues/capped", type=queue_pb2.QUEUE_TYPE_PUSH, dispatch_deadline=duration_pb2.Duration(seconds=60),
        rate_limits=queue_pb2.RateLimits(max_concurrent_dispatches=6),
    ))
    create_tasks(group, 1, "capped", 60)
    lock = threading.Lock()
    running = [0]
    most = [0]

    def handle(task: task_pb2.Task) -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.15)
        with lock:
            running[0] -= 1

    workers = WorkerThreads()
    try:
        for index in range(3):
            workers.start(Worker(group.addresses[index], "capped", handle, concurrency=4, max_outstanding=4))
        with Client(group.addresses[2]) as client:
            eventually(lambda: queue_drained(client, "capped"), 60, "the tasks were not all done")
    finally:
        workers.stop_all()
    print(f"\nmost tasks worked on at once, cap 6, 3 replicas x 4 slots: {most[0]}")
    assert most[0] <= 6
    assert most[0] >= 5, "the cap was never approached: the test proves nothing"


def migrate_together(dsn: str, count: int) -> list[object]:
    """`count` start-up migrations of the database, released at once by a barrier; what each
    returned or raised."""
    connections = [psycopg.connect(dsn, autocommit=True) for _ in range(count)]
    barrier = threading.Barrier(count)
    outcomes: list[object] = []

    def run(conn: psycopg.Connection) -> None:
        barrier.wait()
        try:
            outcomes.append(migrate(conn))
        except Exception as error:  # reported by the caller
            outcomes.append(error)

    threads = [threading.Thread(target=run, args=(conn,)) for conn in connections]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for conn in connections:
        conn.close()
    return outcomes


def test_replicas_starting_together_on_an_empty_database_create_its_schema_once(postgres_cluster):
    """Replicas started together on a new database all migrate it at start-up: the first one
    creates the tables, the others, released by its lock, find them (ten rounds of three
    migrations released at once). Each replica's migration reads the version under the lock;
    one that looked the tables up through its stale catalog cache would create them again and
    fail with "relation taskq_meta already exists"."""
    for _ in range(10):
        outcomes = migrate_together(postgres_cluster.new_database(), 3)
        assert len(outcomes) == 3 and all(isinstance(outcome, tuple) and outcome[1] == SCHEMA_VERSION
                                          for outcome in outcomes), outcomes


def test_a_task_created_on_one_replica_wakes_a_stream_and_a_long_poll_on_another(replicas):
    """Replicas 1 and 2 look for work without a notification only every 600 s, so a task
    created on replica 0 reaches a stream on replica 1 and a long poll on replica 2 within
    the test's wait only through a cross-replica notification. Then, with the stream and a
    long poll waiting, the three servers use next to no CPU: nothing polls."""
    group = replicas(3, per_replica={1: ["--database-poll-interval-seconds", "600"],
                                     2: ["--database-poll-interval-seconds", "600"]})
    create_queue(group, 0, queue_pb2.Queue(name="queues/woken", type=queue_pb2.QUEUE_TYPE_PUSH))
    create_queue(group, 0, queue_pb2.Queue(name="queues/polled", type=queue_pb2.QUEUE_TYPE_PULL))
    creator = task_service_pb2_grpc.TaskServiceStub(group.server(0).channel)

    def create(queue_id: str) -> float:
        creator.CreateTask(task_service_pb2.CreateTaskRequest(parent=f"queues/{queue_id}", task=task_pb2.Task()), timeout=10)
        return time.monotonic()

    stream = Stream(group.server(1).channel, "woken")
    delays: list[float] = []
    try:
        # The first task shows the stream is subscribed (it may also be found by the
        # subscription's first look); after its ack the dispatcher waits for a signal.
        create("woken")
        stream.ack(*stream.tasks(1, timeout=30))
        for _ in range(5):
            time.sleep(0.3)
            created_at = create("woken")
            [task] = stream.tasks(1, timeout=30)
            delays.append(time.monotonic() - created_at)
            stream.ack(task)

        leaser = task_service_pb2_grpc.TaskServiceStub(group.server(2).channel)
        poll_delays: list[float] = []
        for _ in range(3):
            waiting = leaser.LeaseTasks.future(task_service_pb2.LeaseTasksRequest(
                parent="queues/polled", lease_duration=duration_pb2.Duration(seconds=60), max_tasks=1,
                wait=duration_pb2.Duration(seconds=30)), timeout=40)
            time.sleep(0.3)  # the long poll is waiting
            created_at = create("polled")
            leased = waiting.result().tasks
            poll_delays.append(time.monotonic() - created_at)
            assert len(leased) == 1, "the long poll on another replica returned without the task"

        print(f"\ncross-replica wake-up, create on replica 0 -> stream on replica 1: "
              f"{', '.join(f'{1000 * delay:.0f}' for delay in delays)} ms; "
              f"-> long poll on replica 2: {', '.join(f'{1000 * delay:.0f}' for delay in poll_delays)} ms")

        # Idle with a stream and a long poll waiting: no busy polling on any replica.
        idle_poll = leaser.LeaseTasks.future(task_service_pb2.LeaseTasksRequest(
            parent="queues/polled", lease_duration=duration_pb2.Duration(seconds=60), max_tasks=1,
            wait=duration_pb2.Duration(seconds=30)), timeout=40)
        time.sleep(1)
        before = [cpu_seconds(group.pid(index)) for index in range(3)]
        time.sleep(3)
        used = [cpu_seconds(group.pid(index)) - before[index] for index in range(3)]
        idle_poll.cancel()
        print(f"CPU seconds used in 3 idle seconds, by replica: {', '.join(f'{u:.2f}' for u in used)}")
        assert all(u < 0.3 for u in used), used
    finally:
        stream.cancel()


def test_when_the_leader_is_killed_another_replica_takes_over_the_housekeeping(replicas):
    """A pull task leased for 2 s through a follower; the leader (the replica whose process id
    the leadership row names) is killed with SIGKILL before the lease ends. Only the leader
    reaps, and the dead one cannot resign, so the task becomes READY again (its attempt ended
    by "lease expired") only once a surviving replica has taken the leadership over, after the
    dead one's leadership expired."""
    group = replicas(3)
    leader = group.wait_leader()
    followers = [index for index in range(3) if index != leader]
    create_queue(group, followers[0], queue_pb2.Queue(name="queues/reaped", type=queue_pb2.QUEUE_TYPE_PULL))
    stub = task_service_pb2_grpc.TaskServiceStub(group.server(followers[0]).channel)
    [name] = create_tasks(group, followers[0], "reaped", 1)
    leased = stub.LeaseTasks(task_service_pb2.LeaseTasksRequest(
        parent="queues/reaped", lease_duration=duration_pb2.Duration(seconds=2), max_tasks=1), timeout=10).tasks
    assert [task.name for task in leased] == [name]

    group.kill(leader)
    killed_at = time.monotonic()
    task = stub.GetTask(task_service_pb2.GetTaskRequest(name=name), timeout=10).task
    assert task.state == task_pb2.TASK_STATE_LEASED, "the lease ended before the leader was killed"

    new_leader = group.wait_leader(timeout=30)
    took_over = time.monotonic() - killed_at
    assert new_leader in followers

    def reaped() -> task_pb2.Task | None:
        task = stub.GetTask(task_service_pb2.GetTaskRequest(name=name), timeout=10).task
        return task if task.state == task_pb2.TASK_STATE_READY else None

    task = eventually(reaped, 30, "the expired lease was not reaped: no replica took over the housekeeping")
    print(f"\nleader failover: replica {new_leader} leads {took_over:.1f} s after the leader was killed; "
          f"the lease (ended 2 s after it was taken) was reaped {time.monotonic() - killed_at:.1f} s after the kill")
    assert task.last_attempt.error.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
    assert task.last_attempt.error.message == "lease expired"
    with psycopg.connect(group.dsn) as conn:
        holders = conn.execute("SELECT holder FROM taskq_leader WHERE name = 'housekeeping'").fetchall()
    assert len(holders) == 1 and f"-{group.pid(new_leader)}-" in holders[0][0]


def balanced_target(addresses: list[str]) -> tuple[str, list[tuple[str, str]]]:
    """A gRPC target over every replica, round robin among those whose health is SERVING
    (client-side health checking): a client's calls, and its retries, go to the others while
    one reports NOT_SERVING."""
    config = {"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}}
    return "ipv4:" + ",".join(addresses), [("grpc.service_config", json.dumps(config))]


def test_a_replica_that_cannot_reach_the_database_is_not_serving_and_clients_go_to_the_others(
        replicas, postgres_cluster):
    """Replica 0 reaches PostgreSQL through a link the test cuts. Idle, it notices and reports
    NOT_SERVING (its process stays live) while the others still serve, and serves again by
    itself once the link is mended. Cut again while a client balancing over the three replicas
    by their health creates tasks: that client carries on without a single error (a call that
    fails on replica 0 is retried on another), a call made to replica 0 alone fails with
    UNAVAILABLE (never INTERNAL or UNKNOWN), and every acknowledged create is there at the end."""
    dsn = postgres_cluster.new_database()
    link = DatabaseLink("127.0.0.1", postgres_cluster.port)
    group = replicas(3, dsn=dsn, per_replica={0: ["--database", link.dsn(dsn)]})
    recorder = StatusRecorder()
    target, options = balanced_target(group.addresses)
    balanced, balanced_channel = recorded_client(target, recorder, options=options)
    direct = Client(group.addresses[0], call_retry=None, timeout=20)
    history = TotalQueue()
    producer = Producer(balanced, "through", history, "balanced", batch=2, pause=0.02)
    try:
        balanced.create_queue("through", type="pull")

        # Idle: nothing but the server's own heartbeat on the database can tell it.
        link.cut()
        cut_at = time.monotonic()
        eventually(lambda: group.health(0) == NOT_SERVING, 30, "idle replica 0 still serves without its database")
        noticed_idle = time.monotonic() - cut_at
        assert group.health(0, "liveness") == SERVING, "out of service is not dead"
        assert group.health(1) == SERVING and group.health(2) == SERVING
        link.mend()
        mended_at = time.monotonic()
        group.wait_serving(0, timeout=60)
        back_idle = time.monotonic() - mended_at

        # Busy: the balanced client keeps creating through the cut.
        producer.start()
        eventually(lambda: producer.created >= 20, 30, "the balanced client does not create tasks")
        link.cut()
        cut_at = time.monotonic()
        eventually(lambda: group.health(0) == NOT_SERVING, 30, "replica 0 still serves without its database")
        noticed_busy = time.monotonic() - cut_at
        try:
            direct.create_task("through", b"refused", batch=False)
            raise AssertionError("replica 0 accepted a create without its database")
        except Unavailable:
            pass
        created_before = producer.created
        time.sleep(1.5)
        assert producer.created > created_before, "the balanced client stalled while replica 0 was out"
        link.mend()
        mended_at = time.monotonic()
        group.wait_serving(0, timeout=60)
        back_busy = time.monotonic() - mended_at
        direct.create_task("through", b"accepted", batch=False)
        time.sleep(0.5)
        producer.stop()
        print(f"\nreplica 0 without its database: idle, NOT_SERVING after {noticed_idle:.1f} s, SERVING "
              f"{back_idle:.1f} s after the link was mended; under load, NOT_SERVING after {noticed_busy:.1f} s, "
              f"SERVING again after {back_busy:.1f} s; balanced client: {producer.created} creates, "
              f"call attempts by code {dict((code.name, count) for code, count in recorder.codes.items())}")
        assert not producer.errors, producer.errors[:5]
        assert not recorder.unexpected(), recorder.unexpected()[:5]
        stored = {task.name for task in balanced.list_tasks("through")}
        assert not history.acknowledged - stored, "acknowledged creates lost"
    finally:
        producer.stopping.set()
        direct.close()
        balanced.close()
        balanced_channel.close()
        link.close()
