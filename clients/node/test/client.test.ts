// TaskqClient against a real server: queues, tasks, pull leases, typed errors, retries.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  Code,
  createTaskqClient,
  LeaseLostError,
  QueueAlreadyExistsError,
  QueueNotFoundError,
  QueuePausedError,
  QueueState,
  QueueType,
  TaskqError,
  TaskState,
  TaskView,
  type TaskqClient,
} from "@taskq/client";
import { callCounter, freePort, startServer, uniqueQueue, type TestServer } from "./server.js";

describe("TaskqClient", () => {
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

  it("creates, reads, changes, pauses, purges and deletes a queue", async () => {
    const id = uniqueQueue("admin");
    const created = await client.createQueue(id, { type: "pull", maxAttempts: 5 });
    assert.equal(created.name, `queues/${id}`);
    assert.equal(created.type, QueueType.PULL);
    assert.equal(created.retryConfig?.maxAttempts, 5);

    const names: string[] = [];
    for await (const queue of client.listQueues({ pageSize: 1 })) {
      names.push(queue.name);
    }
    assert.ok(names.includes(`queues/${id}`));

    const updated = await client.updateQueue(id, { maxAttempts: 2 });
    assert.equal(updated.retryConfig?.maxAttempts, 2);

    assert.equal((await client.pauseQueue(id)).state, QueueState.PAUSED);
    await assert.rejects(client.leaseTasks(id, { leaseDurationMs: 1000 }), QueuePausedError);
    assert.equal((await client.resumeQueue(id)).state, QueueState.RUNNING);

    await client.createTasks(id, [{ payload: "a" }, { payload: "b" }]);
    assert.equal((await client.getQueueStats(id)).tasksCount, 2n);
    assert.equal((await client.purgeQueue(id)).purgedCount, 2n);
    assert.equal((await client.getQueueStats(id)).tasksCount, 0n);

    await client.deleteQueue(id);
    await assert.rejects(client.getQueue(id), QueueNotFoundError);
  });

  it("rejects with typed errors carrying the ErrorInfo and BadRequest details", async () => {
    const error = await client.getQueue("no-such-queue").catch((e: unknown) => e);
    assert.ok(error instanceof QueueNotFoundError);
    assert.equal(error.code, Code.NotFound);
    assert.equal(error.reason, "QUEUE_NOT_FOUND");
    assert.equal(error.domain, "taskq.dev");
    assert.equal(error.metadata.queue, "queues/no-such-queue");
    assert.match(error.message, /^\[NOT_FOUND QUEUE_NOT_FOUND\] /);

    const invalid = await client.createQueue("not a valid id!").catch((e: unknown) => e);
    assert.ok(invalid instanceof TaskqError);
    assert.equal(invalid.code, Code.InvalidArgument);
    assert.equal(invalid.fieldViolations[0]?.field, "queue.name");

    const id = uniqueQueue("twice");
    await client.createQueue(id);
    await assert.rejects(client.createQueue(id), QueueAlreadyExistsError);
  });

  it("leases tasks by tag and acknowledges them by deleting with the lease token", async () => {
    const id = uniqueQueue("tags");
    await client.createQueue(id, { type: "pull" });
    await client.createTask(id, { payload: "q3 north", tag: "q3" });
    await client.createTask(id, { payload: "q4", tag: "q4" });
    await client.createTask(id, { payload: "q3 south", tag: "q3" });

    const leased = await client.leaseTasks(id, { leaseDurationMs: 60_000, maxTasks: 10, tag: "q3" });
    assert.deepEqual(leased.map((task) => new TextDecoder().decode(task.payload)).sort(), ["q3 north", "q3 south"]);
    for (const task of leased) {
      assert.equal(task.state, TaskState.LEASED);
      assert.ok(task.leaseToken);
      await client.deleteTask(task); // the Task carries its lease token: an acknowledgement
    }

    const left = [];
    for await (const task of client.listTasks(id)) {
      left.push(task);
    }
    assert.deepEqual(left.map((task) => task.tag), ["q4"]);

    const [oldest] = await client.leaseTasks(id, { leaseDurationMs: 60_000, maxTasks: 10, oldestTag: true });
    assert.equal(oldest?.tag, "q4");
    await client.ackTask(oldest!);
    assert.equal((await client.getQueueStats(id)).tasksCount, 0n);
  });

  it("rejects a stale lease token with LeaseLostError", async () => {
    const id = uniqueQueue("stale");
    await client.createQueue(id, { type: "pull" });
    await client.createTask(id, { payload: "x" });
    const [task] = await client.leaseTasks(id, { leaseDurationMs: 60_000 });
    assert.ok(task);

    const extended = await client.modifyLease(task, 120_000);
    assert.equal(extended.leaseToken, task.leaseToken, "renewing keeps the token");
    await client.releaseTask(task); // the token is stale from here on

    const error = await client.deleteTask(task).catch((e: unknown) => e);
    assert.ok(error instanceof LeaseLostError, String(error));
    assert.equal(error.reason, "LEASE_LOST");
    assert.equal(error.code, Code.FailedPrecondition);
    await assert.rejects(client.modifyLease(task, 1000), LeaseLostError);

    const again = await client.getTask(task);
    assert.equal(again.state, TaskState.READY);
    assert.equal(again.attemptCount, 1);
  });

  it("lists tasks across pages, with filters and views", async () => {
    const id = uniqueQueue("pages");
    await client.createQueue(id, { type: "pull" });
    await client.createTasks(id, Array.from({ length: 7 }, (_, i) => ({ name: `t${i}`, payload: `p${i}`, tag: i % 2 ? "odd" : "even" })));
    const before = calls.count("ListTasks");
    const all = [];
    for await (const task of client.listTasks(id, { pageSize: 3, view: TaskView.FULL })) {
      all.push(task);
    }
    assert.deepEqual(all.map((task) => task.name), Array.from({ length: 7 }, (_, i) => `queues/${id}/tasks/t${i}`));
    assert.equal(new TextDecoder().decode(all[0]!.payload), "p0");
    assert.equal(calls.count("ListTasks") - before, 3);

    const odd = [];
    for await (const task of client.listTasks(id, { filter: 'tag = "odd"' })) {
      odd.push(task.name);
    }
    assert.equal(odd.length, 3);
  });

  it("creates many tasks in one call with one outcome per item", async () => {
    const id = uniqueQueue("many");
    await client.createQueue(id, { type: "pull" });
    await client.createTask(id, { name: "taken" });
    const outcomes = await client.createTasks(id, [{ name: "a" }, { name: "taken" }, { name: "b" }]);
    assert.deepEqual(outcomes.map((outcome) => outcome.status), ["fulfilled", "rejected", "fulfilled"]);
    const refused = outcomes[1] as PromiseRejectedResult;
    assert.equal((refused.reason as TaskqError).reason, "TASK_ALREADY_EXISTS");

    const deletes = await client.deleteTasks(id, [`queues/${id}/tasks/a`, `queues/${id}/tasks/nope`]);
    assert.deepEqual(deletes.map((outcome) => outcome.status), ["fulfilled", "rejected"]);
  });

  it("runs a scheduled task now", async () => {
    const id = uniqueQueue("run");
    await client.createQueue(id, { type: "pull" });
    const task = await client.createTask(id, { payload: "later", delayMs: 3_600_000 });
    assert.equal(task.state, TaskState.SCHEDULED);
    assert.equal((await client.runTask(task)).state, TaskState.READY);
  });

  it("long-polls LeaseTasks until a task is ready, and an AbortSignal cancels the poll", async () => {
    const id = uniqueQueue("poll");
    await client.createQueue(id, { type: "pull" });
    const started = Date.now();
    setTimeout(() => void client.createTask(id, { payload: "late" }), 300);
    const tasks = await client.leaseTasks(id, { leaseDurationMs: 10_000, waitMs: 10_000 });
    assert.equal(tasks.length, 1);
    assert.ok(Date.now() - started < 5000);

    const abort = new AbortController();
    setTimeout(() => abort.abort(), 200);
    const error = await client.leaseTasks(id, { leaseDurationMs: 10_000, waitMs: 10_000, signal: abort.signal }).catch((e: unknown) => e);
    assert.ok(error instanceof TaskqError);
    assert.equal(error.code, Code.Canceled);
  });

  it("retries UNAVAILABLE until the server is up", async () => {
    const port = await freePort();
    const late = createTaskqClient({ address: `127.0.0.1:${port}`, retry: { maxAttempts: 8, initialBackoffMs: 100 } });
    const unretried = createTaskqClient({ address: `127.0.0.1:${port}`, retry: false });
    let lateServer: TestServer | undefined;
    try {
      await assert.rejects(unretried.getQueue("q"), (error: TaskqError) => error.code === Code.Unavailable);
      const answer = late.getQueue("q").catch((e: unknown) => e);
      await new Promise((resolve) => setTimeout(resolve, 300));
      lateServer = await startServer({ port });
      // The server answered: the queue does not exist (rather than UNAVAILABLE).
      assert.ok((await answer) instanceof QueueNotFoundError);
    } finally {
      await late.close();
      await unretried.close();
      await lateServer?.remove();
    }
  });
});
