// Retries of unary calls against the real server: across a restart of the server, and after an
// answer lost once the server had done the work (through tests/support/flaky_proxy.py).

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, createTaskqClient, TaskqError, type TaskqClient, type TaskqClientOptions } from "@taskq/client";
import { startFlakyProxy, startServer, uniqueQueue, type TestServer } from "./server.js";

/** How long the restart test keeps the server down, ms: longer than gRPC's own retry policy
 * used to cover. */
const DOWNTIME_MS = 2000;

const isUnavailable = (error: unknown) => error instanceof TaskqError && error.code === Code.Unavailable;

describe("retries", () => {
  let server: TestServer;
  let direct: TaskqClient;

  before(async () => {
    server = await startServer();
    direct = createTaskqClient({ address: server.address });
  });

  after(async () => {
    await direct.close();
    await server.remove();
  });

  it("a create made while the server is down succeeds once it is back, and adds one task", async () => {
    // A server of its own: the test restarts it on the same port and data directory.
    const own = await startServer();
    const client = createTaskqClient({ address: own.address });
    const unretried = createTaskqClient({ address: own.address, retry: false, batching: false });
    let restarted: TestServer | undefined;
    try {
      const id = uniqueQueue("restart");
      await client.createQueue(id, { type: "pull" });
      await own.stop();
      await assert.rejects(unretried.createTask(id, { payload: "lost" }), isUnavailable);

      const restart = new Promise<TestServer>((resolve, reject) =>
        setTimeout(() => startServer({ port: own.port, dataDir: own.dataDir }).then(resolve, reject), DOWNTIME_MS),
      );
      const created = client.createTask(id, { payload: "made during the restart" }); // batched
      restarted = await restart;
      const task = await created;
      const stats = await client.getQueueStats(id);
      assert.equal(stats.tasksCount, 1n, `exactly the one task created (${task.name})`);
    } finally {
      await client.close();
      await unretried.close();
      await restarted?.stop();
      await own.remove();
    }
  });

  const modes: [string, TaskqClientOptions][] = [
    ["BatchCreateTasks", {}],
    ["CreateTask", { batching: false }],
    ["without retries", { batching: false, retry: false }],
  ];
  for (const [mode, options] of modes) {
    it(`a create whose answer is lost after the server made it: ${mode}`, async () => {
      const id = uniqueQueue("lost");
      await direct.createQueue(id, { type: "pull" });
      const proxy = await startFlakyProxy(server.address, 1);
      const client = createTaskqClient({ address: proxy.address, ...options });
      try {
        const outcome = await client.createTask(id, { payload: "once" }).then(
          (task) => ({ task }),
          (error: unknown) => ({ error }),
        );
        assert.match(await proxy.nextLine(), /^dropped response on stream/);
        const names: string[] = [];
        for await (const task of direct.listTasks(id)) {
          names.push(task.name);
        }
        if (options.retry === false) {
          // What the retries recover from: UNAVAILABLE, although the task was created.
          assert.ok("error" in outcome && isUnavailable(outcome.error), String(outcome));
          assert.equal(names.length, 1);
        } else {
          // The retry carried the same request_id: the server answered with the task it had
          // made instead of adding a second one.
          assert.ok("task" in outcome, String("error" in outcome && outcome.error));
          assert.deepEqual(names, [outcome.task.name]);
        }
      } finally {
        await client.close();
        await proxy.close();
      }
    });
  }
});
