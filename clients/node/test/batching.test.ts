// createTask batching: concurrent creates share BatchCreateTasks calls; each caller gets its
// own outcome.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Batcher, createTaskqClient, TaskAlreadyExistsError, type TaskqClient } from "@taskq/client";
import { callCounter, startServer, uniqueQueue, type TestServer } from "./server.js";

describe("createTask batching", () => {
  let server: TestServer;
  let client: TaskqClient;
  let calls = callCounter();

  before(async () => {
    server = await startServer();
  });

  after(async () => {
    await server.remove();
  });

  async function withClient(options: Parameters<typeof createTaskqClient>[0], body: () => Promise<void>) {
    calls = callCounter();
    client = createTaskqClient({ address: server.address, interceptors: [calls.interceptor], ...options });
    try {
      await body();
    } finally {
      await client.close();
    }
  }

  it("coalesces concurrent createTask calls into one BatchCreateTasks", () =>
    withClient({}, async () => {
      const id = uniqueQueue("coalesce");
      await client.createQueue(id, { type: "pull" });
      const tasks = await Promise.all(Array.from({ length: 50 }, (_, i) => client.createTask(id, { payload: `p${i}` })));
      assert.equal(new Set(tasks.map((task) => task.name)).size, 50);
      assert.equal(calls.count("BatchCreateTasks"), 1);
      assert.equal(calls.count("CreateTask"), 0);
      assert.equal((await client.getQueueStats(id)).tasksCount, 50n);
    }));

  it("rejects only the caller whose task was refused", () =>
    withClient({}, async () => {
      const id = uniqueQueue("dup");
      await client.createQueue(id, { type: "pull" });
      await client.createTask(id, { name: "report-q3" });
      const before = calls.count("BatchCreateTasks");
      const [first, duplicate, last] = await Promise.allSettled([
        client.createTask(id, { name: "a" }),
        client.createTask(id, { name: "report-q3" }),
        client.createTask(id, { name: "b" }),
      ]);
      assert.equal(calls.count("BatchCreateTasks") - before, 1);
      assert.equal(first.status, "fulfilled");
      assert.equal(last.status, "fulfilled");
      assert.equal(duplicate.status, "rejected");
      const error = (duplicate as PromiseRejectedResult).reason;
      assert.ok(error instanceof TaskAlreadyExistsError);
      assert.equal(error.reason, "TASK_ALREADY_EXISTS");
    }));

  it("splits batches at maxItems and keeps queues apart", () =>
    withClient({ batching: { maxItems: 100 } }, async () => {
      const [one, two] = [uniqueQueue("split"), uniqueQueue("split")];
      await client.createQueue(one, { type: "pull" });
      await client.createQueue(two, { type: "pull" });
      await Promise.all([
        ...Array.from({ length: 250 }, () => client.createTask(one)),
        ...Array.from({ length: 10 }, () => client.createTask(two)),
      ]);
      assert.equal(calls.count("BatchCreateTasks"), 4); // 100 + 100 + 50, and 10
      assert.equal((await client.getQueueStats(one)).tasksCount, 250n);
      assert.equal((await client.getQueueStats(two)).tasksCount, 10n);
    }));

  it("sends each create on its own when batching is off", () =>
    withClient({ batching: false }, async () => {
      const id = uniqueQueue("alone");
      await client.createQueue(id, { type: "pull" });
      await Promise.all([client.createTask(id), client.createTask(id), client.createTask(id)]);
      assert.equal(calls.count("CreateTask"), 3);
      assert.equal(calls.count("BatchCreateTasks"), 0);
    }));

  it("makes a repeated create with the same requestId return the first task", () =>
    withClient({}, async () => {
      const id = uniqueQueue("idem");
      await client.createQueue(id, { type: "pull" });
      const first = await client.createTask(id, { payload: "once" }, { requestId: "req-1" });
      const again = await client.createTask(id, { payload: "once" }, { requestId: "req-1", batch: false });
      assert.equal(again.name, first.name);
      assert.equal((await client.getQueueStats(id)).tasksCount, 1n);
    }));

  it("fails every item of a batch whose call fails", async () => {
    const batcher = new Batcher<number, number>(async () => {
      throw new Error("down");
    });
    const outcomes = await Promise.allSettled([batcher.add("k", 1), batcher.add("k", 2)]);
    assert.deepEqual(outcomes.map((outcome) => outcome.status), ["rejected", "rejected"]);
  });
});
