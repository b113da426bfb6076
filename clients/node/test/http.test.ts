// HTTP push fields through the client's settings, against a real server: a queue's
// httpTarget and a task's httpRequest are sent and read back.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, createTaskqClient, HttpMethod, TaskqError, type TaskqClient } from "@taskq/client";
import { startServer, uniqueQueue, type TestServer } from "./server.js";

describe("HTTP push fields", () => {
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

  it("creates a queue with an httpTarget and tasks with an httpRequest, and reads them back", async () => {
    const id = uniqueQueue("http");
    await client.createQueue(id, {
      type: "push",
      httpTarget: { uri: "https://worker.example.com/base", method: "PATCH", headers: { "X-Env": "test" } },
    });
    await client.pauseQueue(id); // no delivery attempts while the test reads the tasks

    const queue = await client.getQueue(id);
    assert.equal(queue.httpTarget?.uri, "https://worker.example.com/base");
    assert.equal(queue.httpTarget?.httpMethod, HttpMethod.PATCH);
    assert.deepEqual({ ...queue.httpTarget?.headers }, { "X-Env": "test" });

    const created = await client.createTask(id, {
      payload: '{"n":1}',
      httpRequest: { url: "/path?x=1", method: "PUT", headers: { "Content-Type": "application/json" } },
    });
    const task = await client.getTask(created);
    assert.equal(task.httpRequest?.url, "/path?x=1");
    assert.equal(task.httpRequest?.httpMethod, HttpMethod.PUT);
    assert.deepEqual({ ...task.httpRequest?.headers }, { "Content-Type": "application/json" });
    assert.equal(new TextDecoder().decode(task.payload), '{"n":1}');
    assert.equal(task.responseCount, 0);
    assert.equal(task.lastAttempt?.httpStatus ?? 0, 0);

    // Batched creates (createTask calls made together) and createTasks carry it too.
    // (The method in lower case: JavaScript callers may write it in any case.)
    const [batched, plain] = await Promise.all([
      client.createTask(id, { httpRequest: { url: "https://other.example.com/hook", method: "delete" as "DELETE" } }),
      client.createTask(id, { payload: "plain" }),
    ]);
    const [item] = await client.createTasks(id, [{ httpRequest: { method: HttpMethod.OPTIONS } }]);
    assert.equal(item?.status, "fulfilled");

    const absolute = await client.getTask(batched);
    assert.equal(absolute.httpRequest?.url, "https://other.example.com/hook");
    assert.equal(absolute.httpRequest?.httpMethod, HttpMethod.DELETE);
    assert.equal((await client.getTask(plain)).httpRequest?.url ?? "", "");
    const options = await client.getTask(item.status === "fulfilled" ? item.value : "");
    assert.equal(options.httpRequest?.httpMethod, HttpMethod.OPTIONS);

    // An update that names httpTarget replaces it (the method goes back to the default, POST).
    const updated = await client.updateQueue(id, { httpTarget: { uri: "https://worker.example.com/v2" } });
    assert.equal(updated.httpTarget?.uri, "https://worker.example.com/v2");
    assert.ok([HttpMethod.UNSPECIFIED, HttpMethod.POST].includes(updated.httpTarget!.httpMethod));
    assert.deepEqual({ ...updated.httpTarget?.headers }, {});
  });

  it("sets and removes a queue's target with updateQueue", async () => {
    const id = uniqueQueue("http-update");
    await client.createQueue(id, { type: "push" });
    await client.pauseQueue(id);
    const set = await client.updateQueue(id, { httpTarget: { uri: "https://worker.example.com/base" } });
    assert.equal(set.httpTarget?.uri, "https://worker.example.com/base");

    const removed = await client.updateQueue(id, { httpTarget: null });
    assert.equal(removed.httpTarget, undefined);
    assert.equal((await client.getQueue(id)).httpTarget, undefined);

    // A task of a queue without a target cannot carry a request.
    const error = await client.createTask(id, { httpRequest: { url: "/path" } }).catch((e: unknown) => e);
    assert.ok(error instanceof TaskqError);
    assert.equal(error.code, Code.InvalidArgument);
  });

  it("refuses an unknown method before sending anything", async () => {
    await assert.rejects(
      client.createQueue(uniqueQueue("bad"), { httpTarget: { method: "FETCH" as "POST" } }),
      (error: unknown) => error instanceof TypeError && /unsupported HTTP method FETCH/.test(error.message),
    );
    await assert.rejects(
      client.createTask("no-such-queue", { httpRequest: { method: "HTTP_METHOD_PUT" as "PUT" } }),
      TypeError,
    );
  });
});
