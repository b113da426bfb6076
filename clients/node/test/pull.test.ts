// The PullWorker against a real server: lease → handle → (batched) delete, release on
// error, lease extension, graceful stop.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { createTaskqClient, PullWorker, RetryLater, TaskState, WrongQueueTypeError, type Task, type TaskqClient } from "@taskq/client";
import { callCounter, deferred, eventually, quiet, startServer, uniqueQueue, type TestServer } from "./server.js";

const text = (task: Task) => new TextDecoder().decode(task.payload);

describe("PullWorker", () => {
  let server: TestServer;
  let client: TaskqClient;
  const calls = callCounter();

  before(async () => {
    server = await startServer();
    client = createTaskqClient({ address: server.address, interceptors: [calls.interceptor] });
  });

  after(async () => {
    await client.close();
    await server.remove();
  });

  it("leases, handles and deletes every task, deletes sharing BatchDeleteTasks calls", async () => {
    const id = uniqueQueue("pull");
    await client.createQueue(id, { type: "pull" });
    await client.createTasks(id, Array.from({ length: 40 }, (_, i) => ({ payload: `job ${i}` })));

    const seen = new Set<string>();
    const deletesBefore = calls.count("BatchDeleteTasks");
    const worker = new PullWorker(client, id, (task) => void seen.add(text(task)), { concurrency: 10, waitMs: 1000, onError: quiet });
    const run = worker.run();
    await eventually(async () => (await client.getQueueStats(id)).tasksCount === 0n, 10_000, "the queue to empty");
    await worker.stop();
    await run;

    assert.equal(seen.size, 40);
    const batches = calls.count("BatchDeleteTasks") - deletesBefore;
    assert.ok(batches >= 1 && batches < 40, `${batches} BatchDeleteTasks calls for 40 deletes`);
    assert.equal(calls.count("DeleteTask"), 0);
  });

  it("releases a failed task at once, or until a RetryLater delay", async () => {
    const id = uniqueQueue("release");
    await client.createQueue(id, { type: "pull" });
    const flaky = await client.createTask(id, { payload: "flaky" });
    const later = await client.createTask(id, { payload: "later" });

    const attempts: string[] = [];
    const worker = new PullWorker(
      client,
      id,
      (task) => {
        attempts.push(`${text(task)} ${task.attemptCount}`);
        if (task.attemptCount === 1) {
          throw text(task) === "later" ? new RetryLater(3_600_000) : new Error("flaky");
        }
      },
      { waitMs: 1000, onError: quiet },
    );
    const run = worker.run();
    await eventually(() => attempts.includes("flaky 2"), 5000, "the second attempt");
    await worker.stop();
    await run;

    assert.ok(attempts.includes("flaky 1") && attempts.includes("later 1"));
    await assert.rejects(client.getTask(flaky));
    const waiting = await client.getTask(later);
    assert.equal(waiting.state, TaskState.LEASED, "held until the RetryLater delay ends");
    assert.ok(timestampMs(waiting.leaseExpireTime!) > Date.now() + 3_500_000);
  });

  it("extends the lease while a handler runs longer than the lease", async () => {
    const id = uniqueQueue("long");
    await client.createQueue(id, { type: "pull" });
    await client.createTask(id, { payload: "long" });
    const errors: unknown[] = [];
    let attempts = 0;
    const worker = new PullWorker(
      client,
      id,
      async () => {
        attempts++;
        await new Promise((resolve) => setTimeout(resolve, 1500));
      },
      { leaseDurationMs: 500, waitMs: 200, onError: (error) => errors.push(error) },
    );
    const run = worker.run();
    await eventually(async () => (await client.getQueueStats(id)).tasksCount === 0n, 5000, "the delete");
    await worker.stop();
    await run;
    assert.equal(attempts, 1, "the lease never ran out");
    assert.deepEqual(errors, []);
  });

  it("stops gracefully: the long poll ends at once, running handlers finish and are deleted", async () => {
    const id = uniqueQueue("stop");
    await client.createQueue(id, { type: "pull" });
    await client.createTask(id, { payload: "slow" });
    const started = deferred();
    const worker = new PullWorker(
      client,
      id,
      async () => {
        started.resolve();
        await new Promise((resolve) => setTimeout(resolve, 300));
      },
      { waitMs: 30_000, onError: quiet },
    );
    const run = worker.run();
    await started.promise;
    const stopping = Date.now();
    await worker.stop();
    await run;
    assert.ok(Date.now() - stopping < 1500, "stop() did not wait for the long poll");
    assert.equal((await client.getQueueStats(id)).tasksCount, 0n);
  });

  it("releases the tasks whose handlers outlast the grace period", async () => {
    const id = uniqueQueue("grace");
    await client.createQueue(id, { type: "pull" });
    const created = await client.createTask(id, { payload: "endless" });
    const started = deferred();
    const worker = new PullWorker(
      client,
      id,
      (_task, { signal }) =>
        new Promise((_resolve, reject) => {
          started.resolve();
          signal.addEventListener("abort", () => reject(signal.reason));
        }),
      { gracePeriodMs: 100, onError: quiet },
    );
    const run = worker.run();
    await started.promise;
    await worker.stop();
    await run;
    const task = await client.getTask(created);
    assert.equal(task.state, TaskState.READY);
    assert.equal(task.attemptCount, 1);
  });

  it("rejects run() for a push queue", async () => {
    const id = uniqueQueue("push");
    await client.createQueue(id, { type: "push" });
    await assert.rejects(new PullWorker(client, id, () => {}, { onError: quiet }).run(), WrongQueueTypeError);
  });
});
