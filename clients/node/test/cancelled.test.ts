// A CANCELLED the caller did not cause is retried like UNAVAILABLE: a server stopping
// gracefully cancels the calls it has received but not yet handled. The real server cannot be
// made to do that on cue, so a stand-in TaskService answers CANCELLED to the first attempts.

import assert from "node:assert/strict";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createTaskqClient, TaskqError } from "@taskq/client";
import { TaskSchema } from "@taskq/client/gen/taskq/v1/task_pb";
import { CreateTaskResponseSchema, TaskService } from "@taskq/client/gen/taskq/v1/task_service_pb";

describe("a CANCELLED the caller did not cause", () => {
  let server: http2.Http2Server;
  let address: string;
  /** CreateTask answers CANCELLED while this is above 0 (and counts it down). */
  let failures = 0;
  let requestIds: string[] = [];

  before(async () => {
    const routes = (router: ConnectRouter) =>
      router.service(TaskService, {
        createTask(request) {
          requestIds.push(request.requestId);
          if (failures > 0) {
            failures--;
            throw new ConnectError("server shutting down", Code.Canceled);
          }
          return create(CreateTaskResponseSchema, {
            task: create(TaskSchema, { name: `${request.parent}/tasks/t` }),
          });
        },
      });
    server = http2.createServer(connectNodeAdapter({ routes, grpc: true, connect: false, grpcWeb: false }));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const fresh = (count: number) => {
    failures = count;
    requestIds = [];
  };

  it("is retried with the same request", async () => {
    fresh(2);
    const client = createTaskqClient({ address, batching: false, retry: { initialBackoffMs: 10 } });
    try {
      const task = await client.createTask("q", { payload: "x" });
      assert.equal(task.name, "queues/q/tasks/t");
    } finally {
      await client.close();
    }
    assert.equal(requestIds.length, 3);
    assert.ok(requestIds[0]);
    assert.deepEqual(new Set(requestIds), new Set([requestIds[0]]));
  });

  it("is reported as UNAVAILABLE, and thrown so without retries", async () => {
    fresh(1);
    const client = createTaskqClient({ address, batching: false, retry: false });
    try {
      const error = await client.createTask("q", { payload: "x" }).catch((e: unknown) => e);
      assert.ok(error instanceof TaskqError, String(error));
      assert.equal(error.code, Code.Unavailable);
    } finally {
      await client.close();
    }
    assert.equal(requestIds.length, 1);
  });

  it("is not retried once the caller aborted the call", async () => {
    fresh(1_000_000);
    const client = createTaskqClient({ address, batching: false, retry: { initialBackoffMs: 200, maxBackoffMs: 200 } });
    try {
      const abort = new AbortController();
      setTimeout(() => abort.abort(), 500);
      const started = Date.now();
      const error = await client.createTask("q", { payload: "x" }, { signal: abort.signal }).catch((e: unknown) => e);
      assert.ok(error instanceof TaskqError, String(error));
      assert.equal(error.code, Code.Canceled);
      assert.ok(Date.now() - started < 5000, "gave up soon after the abort, not at the budget's end");
    } finally {
      await client.close();
      failures = 0;
    }
  });
});
