"""Faults under load on three replicas sharing one database (SPEC §8.5), judged by a Jepsen-style
total-queue check: every create a client saw acknowledged must be delivered to a worker (lost
0), no worker may receive a task nobody created (unexpected 0), and redeliveries (at least once)
stay within what the fault can explain.

- kill -9 of one replica under push load (the leader, so the housekeeping fails over too) and
  under pull load (a follower): the tasks its streams and leases held come back when their
  dispatch deadline or lease runs out and the other replicas deliver them.
- A restart of PostgreSQL (an immediate stop, as a crash) under push and pull load: clients
  see only UNAVAILABLE, the replicas reconnect by themselves and resume.
- A rolling restart of the three replicas (SIGTERM, start again on the same address) with
  producers and workers running: no task lost, no client error beyond retried UNAVAILABLE.

Each client (producer, pull worker) is bound to one replica's address; push workers stream
from one replica each. Figures are printed for the record; run with -s.
"""

from __future__ import annotations

import collections
import time

import grpc
from replica_support import (
    ClientLog,
    HealthWatch,
    Producer,
    Replicas,
    StatusRecorder,
    TotalQueue,
    Verdict,
    WorkerThreads,
    eventually,
    queue_drained,
    recorded_client,
    recording_handler,
)

from taskq.client import Client, PullWorker, Worker
from taskq.client.call_retry import CallRetry

#: The shortest dispatch deadline a push queue may have, seconds: how long the tasks a killed
#: replica's streams held stay leased.
DISPATCH_DEADLINE_S = 15
#: Pull leases, seconds (extended by the workers while they work).
PULL_LEASE_S = 2
#: Push workers' settings: handlers at once, and tasks the server may send ahead of answers.
PUSH_CONCURRENCY = 4
PUSH_OUTSTANDING = 8
PULL_CONCURRENCY = 4


class Load:
    """For every replica and every queue: a Producer of named tasks (through a Client bound to
    that replica) and a worker (a push Worker streaming from that replica, or a PullWorker
    through a Client bound to it) whose handler records each delivery in `history`.

    Every unary call attempt of the producers and pull workers goes through `recorder`; `retry`
    is their clients' retry policy for UNAVAILABLE."""

    def __init__(self, group: Replicas, history: TotalQueue, queues: dict[str, str], recorder: StatusRecorder, *,
                 retry: CallRetry, timeout: float = 30, batch: int = 4, pause: float = 0.05,
                 work_s: float = 0.01) -> None:
        self.group = group
        self.history = history
        self.recorder = recorder
        self.workers = WorkerThreads()
        self.producers: dict[int, list[Producer]] = {}
        self.worker_of: dict[int, list[object]] = {}
        self._clients: list[tuple[Client, grpc.Channel]] = []
        for index in range(len(group)):
            self.producers[index] = []
            self.worker_of[index] = []
            for queue, kind in queues.items():
                producer_client = self._client(index, retry, timeout)
                self.producers[index].append(Producer(
                    producer_client, queue, history, f"{queue}-r{index}", batch=batch, pause=pause, stop_on_error=True))
                handler = recording_handler(history, index, work_s)
                if kind == "push":
                    worker: object = Worker(group.addresses[index], queue, handler, concurrency=PUSH_CONCURRENCY,
                                            max_outstanding=PUSH_OUTSTANDING, grace_period=5)
                else:
                    worker = PullWorker(self._client(index, retry, timeout), queue, handler,
                                        lease_duration=PULL_LEASE_S, batch_size=PULL_CONCURRENCY,
                                        concurrency=PULL_CONCURRENCY, wait=1, grace_period=5)
                self.worker_of[index].append(worker)

    def _client(self, index: int, retry: CallRetry, timeout: float) -> Client:
        client, channel = recorded_client(self.group.addresses[index], self.recorder, call_retry=retry, timeout=timeout)
        self._clients.append((client, channel))
        return client

    def start(self) -> None:
        for index in self.worker_of:
            for worker in self.worker_of[index]:
                self.workers.start(worker)
        for producers in self.producers.values():
            for producer in producers:
                producer.start()

    def created(self) -> int:
        return sum(producer.created for producers in self.producers.values() for producer in producers)

    def abandon(self, index: int) -> None:
        """The replica is gone for good: its producers and workers stop at once."""
        for producer in self.producers[index]:
            producer.stop()
        for worker in self.worker_of[index]:
            self.workers.stop(worker, grace_period=0)

    def stop_producers(self) -> None:
        for producers in self.producers.values():
            for producer in producers:
                producer.stop()

    def producer_errors(self, index: int | None = None) -> list[str]:
        chosen = self.producers.values() if index is None else [self.producers[index]]
        return [error for producers in chosen for producer in producers for error in producer.errors]

    def close(self) -> None:
        for producers in self.producers.values():
            for producer in producers:
                producer.stopping.set()
        self.workers.stop_all(grace_period=5)
        for client, channel in self._clients:
            client.close()
            channel.close()


def clean_failures(recorder: StatusRecorder, absorbed: tuple[str, ...] = ()) -> list[str]:
    """The unary call failures other than UNAVAILABLE (which the clients retry), a lease found
    lost (a pull worker extending or releasing a lease that ran out, or whose task another
    attempt acknowledged, while its replica could not answer: a correct answer, not a failure
    of the replica), and the `absorbed` ones ("Method CODE", e.g. "LeaseTasks CANCELLED")."""
    return [failure for failure in recorder.unexpected()
            if not (" FAILED_PRECONDITION: " in failure and "is no longer held" in failure)
            and not failure.startswith(tuple(f"{kind}:" for kind in absorbed))]


def codes(recorder: StatusRecorder) -> dict[str, int]:
    return {code.name: count for code, count in recorder.codes.items()}


def stream_ends(log: ClientLog) -> dict[str, int]:
    """How the workers' streams ended, by code."""
    return dict(collections.Counter(end.split(":", 1)[0] for end in log.stream_ends))


def report(title: str, verdict: Verdict, **figures: object) -> None:
    extra = "; ".join(f"{name.replace('_', ' ')} {value}" for name, value in figures.items())
    print(f"\n{title}: {verdict.summary()}" + (f"; {extra}" if extra else ""))


def test_kill_9_of_the_leader_under_push_load_loses_nothing(replicas, client_log: ClientLog):
    """Producers and a push worker on each of three replicas; the leader is killed with SIGKILL.
    The tasks its streams held stay leased until their 15 s dispatch deadline, then a surviving
    replica, now leading, retries them and the surviving workers get them. Lost 0, unexpected
    0; only tasks delivered to the killed replica's worker are delivered twice, at most as many
    as it could hold unanswered."""
    group = replicas(3)
    victim = group.wait_leader()
    survivor = next(index for index in range(3) if index != victim)
    with Client(group.addresses[survivor]) as admin:
        admin.create_queue("push-load", type="push", dispatch_deadline=DISPATCH_DEADLINE_S, min_backoff=0.1,
                           max_backoff=1)
    history = TotalQueue()
    recorder = StatusRecorder()
    load = Load(group, history, {"push-load": "push"}, recorder, retry=CallRetry(budget=2), timeout=10,
                work_s=0.05)
    try:
        load.start()
        eventually(lambda: len(history.delivered_to(victim)) >= 30, 30, "the victim's worker gets no tasks")
        time.sleep(1)
        history.wait_delivery(victim, 30)  # killed while its handler works on a task
        group.kill(victim)
        killed_at = time.monotonic()
        time.sleep(2)  # the survivors' producers go on
        load.abandon(victim)
        load.stop_producers()
        with Client(group.addresses[survivor]) as admin:
            eventually(lambda: queue_drained(admin, "push-load"), 90, "the queue was not drained")
        drained = time.monotonic() - killed_at
        new_leader = group.wait_leader()
    finally:
        load.close()
    verdict = history.verdict()
    duplicated = set(verdict.duplicated)
    report("kill -9 of the leader under push load", verdict, redelivered=history.redelivered(),
           drained_after=f"{drained:.1f} s", new_leader=f"replica {new_leader} (killed {victim})")
    assert not verdict.lost, sorted(verdict.lost)[:10]
    assert not verdict.unexpected, sorted(verdict.unexpected)[:10]
    assert verdict.acknowledged > 100, "too little load to prove anything"
    assert history.redelivered() > 0, "the kill stranded no task: the test proves nothing"
    assert duplicated <= history.delivered_to(victim), "a task was delivered twice that the victim never had"
    assert sum(verdict.duplicated.values()) - len(duplicated) <= PUSH_OUTSTANDING
    for index in range(3):
        if index != victim:
            assert not load.producer_errors(index), load.producer_errors(index)[:5]
    assert not clean_failures(recorder), clean_failures(recorder)[:5]
    assert new_leader != victim


def test_kill_9_of_a_follower_under_pull_load_loses_nothing(replicas, client_log: ClientLog):
    """Producers and a pull worker on each of three replicas; a replica that does not lead is
    killed with SIGKILL. The leases its worker held run out within 2 s, the leader reaps them
    and the surviving workers lease them. Lost 0, unexpected 0; only tasks delivered to the
    killed replica's worker are delivered twice."""
    group = replicas(3)
    leader = group.wait_leader()
    victim = next(index for index in range(3) if index != leader)
    with Client(group.addresses[leader]) as admin:
        admin.create_queue("pull-load", type="pull")
    history = TotalQueue()
    recorder = StatusRecorder()
    load = Load(group, history, {"pull-load": "pull"}, recorder, retry=CallRetry(budget=2), timeout=10,
                work_s=0.05)
    try:
        load.start()
        eventually(lambda: len(history.delivered_to(victim)) >= 30, 30, "the victim's worker gets no tasks")
        time.sleep(1)
        history.wait_delivery(victim, 30)  # killed while its handler works on a task
        group.kill(victim)
        killed_at = time.monotonic()
        time.sleep(2)
        load.abandon(victim)
        load.stop_producers()
        with Client(group.addresses[leader]) as admin:
            eventually(lambda: queue_drained(admin, "pull-load"), 60, "the queue was not drained")
        drained = time.monotonic() - killed_at
    finally:
        load.close()
    verdict = history.verdict()
    duplicated = set(verdict.duplicated)
    report("kill -9 of a follower under pull load", verdict, redelivered=history.redelivered(),
           drained_after=f"{drained:.1f} s")
    assert not verdict.lost, sorted(verdict.lost)[:10]
    assert not verdict.unexpected, sorted(verdict.unexpected)[:10]
    assert verdict.acknowledged > 100, "too little load to prove anything"
    assert history.redelivered() > 0, "the kill stranded no task: the test proves nothing"
    assert duplicated <= history.delivered_to(victim), "a task was delivered twice that the victim never had"
    # Held by its handlers, or handled with their deletes not yet through.
    assert sum(verdict.duplicated.values()) - len(duplicated) <= 2 * PULL_CONCURRENCY
    for index in range(3):
        if index != victim:
            assert not load.producer_errors(index), load.producer_errors(index)[:5]
    assert not clean_failures(recorder), clean_failures(recorder)[:5]


def test_a_database_restart_under_load_fails_calls_only_with_unavailable_and_loses_nothing(
        replicas, private_cluster, client_log: ClientLog):
    """Push and pull load on three replicas; PostgreSQL is stopped as by a crash (immediate) and
    started again. Every failed call attempt the clients saw was UNAVAILABLE (never INTERNAL or
    UNKNOWN) and their retries got through; every stream ended with UNAVAILABLE; the replicas
    serve again by themselves and the load resumes; nothing acknowledged is lost."""
    group = replicas(3, dsn=private_cluster.new_database())
    with Client(group.addresses[0]) as admin:
        admin.create_queue("db-push", type="push", dispatch_deadline=DISPATCH_DEADLINE_S, min_backoff=0.1,
                           max_backoff=1)
        admin.create_queue("db-pull", type="pull")
    history = TotalQueue()
    recorder = StatusRecorder()
    load = Load(group, history, {"db-push": "push", "db-pull": "pull"}, recorder, retry=CallRetry(budget=60),
                timeout=90, batch=3, pause=0.1)
    watch = HealthWatch(group)
    try:
        load.start()
        eventually(lambda: load.created() >= 200, 30, "the load does not start")
        watch.start()
        stopped_at = time.monotonic()
        private_cluster.restart()
        back_at = time.monotonic()
        created_when_back = load.created()
        eventually(lambda: load.created() >= created_when_back + 200, 60, "the load does not resume")
        resumed = time.monotonic() - back_at
        for index in range(3):
            group.wait_serving(index, timeout=60)
        load.stop_producers()
        with Client(group.addresses[1]) as admin:
            eventually(lambda: queue_drained(admin, "db-push", "db-pull"), 90, "the queues were not drained")
        drained = time.monotonic() - back_at
    finally:
        watch.stop()
        load.close()
    verdict = history.verdict()
    report("database restart under load", verdict, database_down_for=f"{back_at - stopped_at:.1f} s",
           replicas_seen_not_serving=sorted(watch.out_of_service()),
           load_resumed_after=f"{resumed:.1f} s", drained_after=f"{drained:.1f} s",
           call_attempts_by_code=codes(recorder), stream_ends_by_code=stream_ends(client_log))
    assert not verdict.lost, sorted(verdict.lost)[:10]
    assert not verdict.unexpected, sorted(verdict.unexpected)[:10]
    assert not load.producer_errors(), load.producer_errors()[:5]
    assert not clean_failures(recorder), clean_failures(recorder)[:5]
    assert not client_log.unexpected(("Unavailable", "LeaseLost")), client_log.unexpected()[:5]
    assert recorder.failures or client_log.stream_ends, "no client noticed the restart: the test proves nothing"


def test_a_rolling_restart_of_every_replica_with_clients_running_loses_nothing(replicas, client_log: ClientLog):
    """Push and pull load on three replicas, each client bound to one replica; each replica in
    turn is stopped (SIGTERM, which ends its streams and releases their tasks) and started
    again on its address. No client call fails (their UNAVAILABLE retries carry them over the
    restart), every stream ends with UNAVAILABLE, and no acknowledged task is lost."""
    group = replicas(3)
    with Client(group.addresses[0]) as admin:
        admin.create_queue("roll-push", type="push", dispatch_deadline=DISPATCH_DEADLINE_S, min_backoff=0.1,
                           max_backoff=1)
        admin.create_queue("roll-pull", type="pull")
    history = TotalQueue()
    recorder = StatusRecorder()
    load = Load(group, history, {"roll-push": "push", "roll-pull": "pull"}, recorder, retry=CallRetry(budget=30),
                timeout=60, batch=3, pause=0.1)
    restart_seconds: list[float] = []
    try:
        load.start()
        eventually(lambda: load.created() >= 100, 30, "the load does not start")
        for index in range(3):
            before = load.created()
            started = time.monotonic()
            group.restart(index)
            restart_seconds.append(time.monotonic() - started)
            eventually(lambda before=before: load.created() >= before + 60, 30, "the load does not go on")
        load.stop_producers()
        with Client(group.addresses[2]) as admin:
            eventually(lambda: queue_drained(admin, "roll-push", "roll-pull"), 60, "the queues were not drained")
    finally:
        load.close()
    verdict = history.verdict()
    report("rolling restart", verdict, restarts=", ".join(f"{seconds:.1f} s" for seconds in restart_seconds),
           call_attempts_by_code=codes(recorder), stream_ends_by_code=stream_ends(client_log))
    assert not verdict.lost, sorted(verdict.lost)[:10]
    assert not verdict.unexpected, sorted(verdict.unexpected)[:10]
    # What the applications see: no create failed, no worker gave up.
    assert not load.producer_errors(), load.producer_errors()[:5]
    assert not load.workers.errors(), load.workers.errors()
    # What the client libraries saw and absorbed: UNAVAILABLE, retried. Besides, a call that
    # reaches a replica at the moment it stops taking calls may be cut off by gRPC (which
    # cancels the calls it has received but not yet handed to the server): a long poll then
    # ends CANCELLED, which the pull worker retries, and a stream ends with the client-side
    # "INTERNAL: Internal error from Core", after which the worker subscribes again. Neither
    # reaches the application; a create so cancelled would, and fail the assertion above.
    assert not clean_failures(recorder, absorbed=("LeaseTasks CANCELLED",)), clean_failures(recorder)[:5]
    odd = client_log.unexpected(("Unavailable", "Cancelled", "LeaseLost"),
                                ("UNAVAILABLE", "INTERNAL: Internal error from Core"))
    assert not odd, odd[:5]
    # A graceful stop releases its streams' tasks at once: a handler still running then has
    # its answer dropped and its task runs again elsewhere; each replica held at most this many.
    assert sum(verdict.duplicated.values()) - len(verdict.duplicated) <= 3 * (PUSH_OUTSTANDING + PULL_CONCURRENCY)
