// The push Worker against a real server: delivery, acks, nacks, retries, permanent
// failures, lease extension, graceful stop, reconnection.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import {
  Code,
  createTaskqClient,
  PermanentError,
  QueueNotFoundError,
  RetryLater,
  TaskqError,
  TaskState,
  Worker,
  WrongQueueTypeError,
  type Task,
  type TaskqClient,
} from "@taskq/client";
import type { StreamTasksRequest } from "@taskq/client/gen/taskq/v1/task_service_pb";
import { deferred, eventually, quiet, startServer, streamRecorder, uniqueQueue, type TestServer } from "./server.js";

const text = (task: Task) => new TextDecoder().decode(task.payload);

describe("Worker", () => {
  let server: TestServer;
  let client: TaskqClient;

  before(async () => {
    server = await startServer();
    client = createTaskqClient({ address: server.address });
  });

  after(async () => {
    await client.close();
    await server.remove();
  });

  it("runs the handler for each pushed task and acks it: the queue ends empty", async () => {
    const id = uniqueQueue("push");
    await client.createQueue(id, { type: "push" });
    await Promise.all(Array.from({ length: 30 }, (_, i) => client.createTask(id, { payload: `job ${i}` })));

    const seen = new Set<string>();
    let running = 0;
    let mostRunning = 0;
    const worker = new Worker(
      client,
      id,
      async (task) => {
        running++;
        mostRunning = Math.max(mostRunning, running);
        await new Promise((resolve) => setTimeout(resolve, 10));
        seen.add(text(task));
        running--;
      },
      { concurrency: 4, onError: quiet },
    );
    const run = worker.run();
    await eventually(() => seen.size === 30, 10_000, "30 tasks handled");
    await worker.stop();
    await run;

    assert.equal(mostRunning, 4, "at most `concurrency` handlers at once");
    const stats = await client.getQueueStats(id);
    assert.equal(stats.tasksCount, 0n);
    assert.equal(stats.executedLastMinute, 30n);
  });

  it("sends the answers of one tick in one stream message", async () => {
    const recorder = streamRecorder();
    const recorded = createTaskqClient({ address: server.address, interceptors: [recorder.interceptor] });
    try {
      const id = uniqueQueue("tick");
      await recorded.createQueue(id, { type: "push" });
      await recorded.createTasks(id, Array.from({ length: 20 }, (_, i) => ({ payload: `t${i}` })));
      let handled = 0;
      const worker = new Worker(recorded, id, () => void handled++, { concurrency: 20, onError: quiet });
      const run = worker.run();
      await eventually(async () => (await recorded.getQueueStats(id)).tasksCount === 0n, 5000, "20 acks");
      await worker.stop();
      await run;

      const answers = recorder.sent as StreamTasksRequest[];
      assert.ok(answers[0]?.subscription, "the first message subscribes");
      const withAcks = answers.filter((message) => message.acks.length > 0);
      assert.equal(withAcks.reduce((sum, message) => sum + message.acks.length, 0), 20);
      assert.ok(withAcks.length < 20, `20 acks in ${withAcks.length} messages`);
    } finally {
      await recorded.close();
    }
  });

  it("nacks a failed task with the error, and the retry is visible on the task", async () => {
    const id = uniqueQueue("nack");
    await client.createQueue(id, { type: "push", minBackoffMs: 3_600_000 });
    const created = await client.createTask(id, { payload: "fails" });

    const failed = deferred();
    const worker = new Worker(
      client,
      id,
      () => {
        failed.resolve();
        throw new TypeError("no such recipient");
      },
      { onError: quiet },
    );
    const run = worker.run();
    await failed.promise;
    await eventually(async () => (await client.getTask(created)).state === TaskState.SCHEDULED, 5000, "the retry scheduled");
    await worker.stop();
    await run;

    const task = await client.getTask(created);
    assert.equal(task.attemptCount, 1);
    assert.equal(task.lastAttempt?.error?.code, Code.Unknown);
    assert.equal(task.lastAttempt?.error?.message, "TypeError: no such recipient");
    // Retried after the queue's backoff: an hour from the attempt.
    assert.ok(timestampMs(task.scheduleTime!) > Date.now() + 3_500_000);
  });

  it("retries a failed task after the backoff, and after a RetryLater delay", async () => {
    const id = uniqueQueue("retry");
    await client.createQueue(id, { type: "push", minBackoffMs: 100 });
    const backoff = await client.createTask(id, { payload: "backoff" });
    const later = await client.createTask(id, { payload: "later" });

    const attempts = new Map<string, number[]>();
    const worker = new Worker(
      client,
      id,
      (task) => {
        attempts.set(text(task), [...(attempts.get(text(task)) ?? []), task.attemptCount]);
        if (task.attemptCount === 1 && text(task) === "backoff") {
          throw new Error("flaky");
        }
        if (task.attemptCount === 1 && text(task) === "later") {
          throw new RetryLater(3_600_000, "rate limited upstream");
        }
      },
      { onError: quiet },
    );
    const run = worker.run();
    await eventually(() => attempts.get("backoff")?.length === 2 && attempts.has("later"), 5000, "the retry");
    await worker.stop();
    await run;

    assert.deepEqual(attempts.get("backoff"), [1, 2]);
    await assert.rejects(client.getTask(backoff), (error: TaskqError) => error.reason === "TASK_NOT_FOUND");
    const waiting = await client.getTask(later);
    assert.equal(waiting.state, TaskState.SCHEDULED);
    assert.equal(waiting.lastAttempt?.error?.message, "RetryLater: rate limited upstream");
    assert.ok(timestampMs(waiting.scheduleTime!) > Date.now() + 3_500_000);
  });

  it("sends a PermanentError's task to the dead-letter queue, or leaves it FAILED", async () => {
    const dead = uniqueQueue("dead");
    const withDlq = uniqueQueue("perm");
    const withoutDlq = uniqueQueue("perm");
    await client.createQueue(dead, { type: "pull" });
    await client.createQueue(withDlq, { type: "push", deadLetterQueue: dead });
    await client.createQueue(withoutDlq, { type: "push" });
    await client.createTask(withDlq, { payload: "malformed", name: "bad" });
    const kept = await client.createTask(withoutDlq, { payload: "malformed" });

    const handler = () => {
      throw new PermanentError("payload is not JSON");
    };
    const workers = [new Worker(client, withDlq, handler, { onError: quiet }), new Worker(client, withoutDlq, handler, { onError: quiet })];
    const runs = workers.map((worker) => worker.run());
    await eventually(async () => (await client.getQueueStats(dead)).tasksCount === 1n, 5000, "the dead letter");
    await eventually(async () => (await client.getTask(kept)).state === TaskState.FAILED, 5000, "the failed task");
    await Promise.all(workers.map((worker) => worker.stop()));
    await Promise.all(runs);

    assert.equal((await client.getQueueStats(withDlq)).tasksCount, 0n);
    const [letter] = await client.leaseTasks(dead, { leaseDurationMs: 10_000 });
    assert.equal(text(letter!), "malformed");
    assert.equal(letter!.attributes["taskq-original-queue"], `queues/${withDlq}`);
    assert.match(letter!.attributes["taskq-last-error"] ?? "", /PermanentError: payload is not JSON/);
    const failed = await client.getTask(kept);
    assert.equal(failed.attemptCount, 1);
    assert.equal(failed.lastAttempt?.error?.message, "PermanentError: payload is not JSON");
  });

  it("extends the lease of a task while its handler runs", async () => {
    const id = uniqueQueue("extend");
    await client.createQueue(id, { type: "push", dispatchDeadlineMs: 15_000 });
    const created = await client.createTask(id, { payload: "slow" });

    const done = deferred();
    let delivered: Task | undefined;
    let duringHandler: Task | undefined;
    const worker = new Worker(
      client,
      id,
      async (task) => {
        delivered = task;
        await new Promise((resolve) => setTimeout(resolve, 800));
        duringHandler = await client.getTask(created);
        done.resolve();
      },
      { extensionIntervalMs: 200, onError: quiet },
    );
    const run = worker.run();
    await done.promise;
    await worker.stop();
    await run;

    const leaseLength = timestampMs(delivered!.leaseExpireTime!) - timestampMs(delivered!.lastAttempt!.dispatchTime!);
    assert.equal(leaseLength, 15_000, "the queue's dispatch deadline");
    // Extended (by the same length, from later) at least twice in 800 ms.
    const moved = timestampMs(duringHandler!.leaseExpireTime!) - timestampMs(delivered!.leaseExpireTime!);
    assert.ok(moved >= 300, `the lease moved by ${moved} ms`);
    assert.equal(duringHandler!.leaseToken, delivered!.leaseToken);
    assert.equal((await client.getQueueStats(id)).tasksCount, 0n);
  });

  it("stops gracefully: running handlers finish and are acked, the backlog is released", async () => {
    const id = uniqueQueue("stop");
    await client.createQueue(id, { type: "push" });
    await client.createTasks(id, [{ payload: "a" }, { payload: "b" }, { payload: "c" }]);

    const started = deferred();
    const handled: string[] = [];
    const worker = new Worker(
      client,
      id,
      async (task) => {
        started.resolve();
        await new Promise((resolve) => setTimeout(resolve, 300));
        handled.push(text(task));
      },
      { concurrency: 1, maxOutstanding: 3, onError: quiet },
    );
    const run = worker.run();
    await started.promise;
    await eventually(async () => (await client.getQueueStats(id)).leasedCount === 3n, 5000, "3 tasks sent ahead");
    const stopping = Date.now();
    await worker.stop();
    await run;

    assert.equal(handled.length, 1, "no task starts after stop()");
    assert.ok(Date.now() - stopping < 2000);
    const stats = await client.getQueueStats(id);
    assert.equal(stats.tasksCount, 2n, "the running task was acked");
    assert.equal(stats.leasedCount, 0n, "the backlog was released at once");
    assert.equal(stats.readyCount, 2n);
  });

  it("aborts a handler's signal when the grace period runs out, and releases its task", async () => {
    const id = uniqueQueue("grace");
    await client.createQueue(id, { type: "push" });
    const created = await client.createTask(id, { payload: "endless" });

    const started = deferred();
    let aborted: unknown;
    const worker = new Worker(
      client,
      id,
      (_task, { signal }) =>
        new Promise<void>((_resolve, reject) => {
          started.resolve();
          signal.addEventListener("abort", () => {
            aborted = signal.reason;
            reject(signal.reason);
          });
        }),
      { gracePeriodMs: 200, onError: quiet },
    );
    const run = worker.run();
    await started.promise;
    const stopping = Date.now();
    await worker.stop();
    await run;

    assert.ok(Date.now() - stopping < 2000);
    assert.match(String(aborted), /grace period/);
    const task = await client.getTask(created);
    assert.equal(task.state, TaskState.READY);
    assert.equal(task.attemptCount, 1);
  });

  it("stops when its signal aborts", async () => {
    const id = uniqueQueue("signal");
    await client.createQueue(id, { type: "push" });
    const worker = new Worker(client, id, () => {}, { onError: quiet });
    const started = Date.now();
    await worker.run(AbortSignal.timeout(200));
    assert.ok(Date.now() - started < 2000);
  });

  it("rejects run() for an unknown queue or a pull queue", async () => {
    await assert.rejects(new Worker(client, uniqueQueue("missing"), () => {}, { onError: quiet }).run(), QueueNotFoundError);
    const pull = uniqueQueue("pull");
    await client.createQueue(pull, { type: "pull" });
    await assert.rejects(new Worker(client, pull, () => {}, { onError: quiet }).run(), WrongQueueTypeError);
  });

  it("subscribes again after the server restarts", async () => {
    const own = await startServer();
    const ownClient = createTaskqClient({ address: own.address });
    let restarted: TestServer | undefined;
    try {
      const id = uniqueQueue("restart");
      await ownClient.createQueue(id, { type: "push" });
      await ownClient.createTask(id, { payload: "before" });
      const seen: string[] = [];
      const errors: unknown[] = [];
      const worker = new Worker(ownClient, id, (task) => void seen.push(text(task)), {
        onError: (error) => errors.push(error),
        reconnectBackoffMs: 50,
      });
      const run = worker.run();
      await eventually(() => seen.includes("before"), 5000, "the first task");

      await own.stop();
      restarted = await startServer({ port: own.port, dataDir: own.dataDir });
      await ownClient.createTask(id, { payload: "after" });
      await eventually(() => seen.includes("after"), 10_000, "the task created after the restart");
      await worker.stop();
      await run;
      assert.ok(errors.length >= 1, "the stream failure was reported");
    } finally {
      await ownClient.close();
      await restarted?.stop();
      await own.remove();
    }
  });
});
