// Bearer tokens, against a stand-in gRPC server (Connect's, over HTTP/2) that checks
// "authorization: Bearer <token>" the way taskq's authentication does (the committed server did
// not check tokens yet). A call with the right token is answered; one with another token or none
// gets UNAUTHENTICATED. The stand-in also listens on a Unix socket, for the unix: form, and the
// dns:/// and ipv4: forms reach it too. The last test goes through the real server when it
// checks tokens.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createTaskqClient, InvalidTokenError, TaskqError, Worker } from "@taskq/client";
import { TaskSchema } from "@taskq/client/gen/taskq/v1/task_pb";
import { GetQueueResponseSchema, QueueService } from "@taskq/client/gen/taskq/v1/queue_service_pb";
import { QueueSchema } from "@taskq/client/gen/taskq/v1/queue_pb";
import { StreamTasksResponseSchema, TaskService, type StreamTasksRequest } from "@taskq/client/gen/taskq/v1/task_service_pb";
import { eventually, freePort, quiet, startServer, uniqueQueue, type TestServer } from "./server.js";

const TOKEN = "s3cret-token_1.A/b+c=";

describe("bearer tokens", () => {
  const servers: http2.Http2Server[] = [];
  let address: string;
  let port: number;
  let socket: string;
  /** The authorization values each method received. */
  const headers = new Map<string, string[]>();
  const acked: string[] = [];

  const check = (method: string, context: HandlerContext) => {
    const values = context.requestHeader.get("authorization");
    headers.set(method, [...(headers.get(method) ?? []), ...(values === null ? [] : [values])]);
    if (values !== `Bearer ${TOKEN}`) {
      throw new ConnectError("a valid bearer token is required", Code.Unauthenticated);
    }
  };

  before(async () => {
    const routes = (router: ConnectRouter) => {
      router.service(QueueService, {
        getQueue(request, context) {
          check("GetQueue", context);
          return create(GetQueueResponseSchema, { queue: create(QueueSchema, { name: request.name }) });
        },
      });
      router.service(TaskService, {
        async *streamTasks(requests: AsyncIterable<StreamTasksRequest>, context) {
          check("StreamTasks", context);
          const iterator = requests[Symbol.asyncIterator]();
          const subscription = await iterator.next();
          const queue = subscription.done ? "" : subscription.value.subscription?.queue;
          yield create(StreamTasksResponseSchema, {
            tasks: [
              create(TaskSchema, {
                name: `${queue}/tasks/one`,
                payload: new TextEncoder().encode("hello"),
                leaseToken: "lease-1",
                leaseExpireTime: timestampFromMs(Date.now() + 60_000),
              }),
            ],
          });
          for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
            acked.push(...next.value.acks.map((ack) => ack.name));
          }
        },
      });
    };
    const handler = connectNodeAdapter({ routes, grpc: true, connect: false, grpcWeb: false });
    const tcp = http2.createServer(handler);
    const unix = http2.createServer(handler);
    servers.push(tcp, unix);
    await new Promise<void>((resolve) => tcp.listen(0, "127.0.0.1", resolve));
    port = (tcp.address() as AddressInfo).port;
    address = `127.0.0.1:${port}`;
    socket = join(mkdtempSync(join(tmpdir(), "taskq-node-sock-")), "taskq.sock");
    await new Promise<void>((resolve) => unix.listen(socket, resolve));
  });

  after(async () => {
    for (const server of servers) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  const seen = (method: string) => headers.get(method) ?? [];

  it("are sent with unary calls", async () => {
    headers.clear();
    const client = createTaskqClient({ address, token: TOKEN });
    try {
      assert.equal((await client.getQueue("q")).name, "queues/q");
    } finally {
      await client.close();
    }
    assert.deepEqual(seen("GetQueue"), [`Bearer ${TOKEN}`]);
  });

  it("a wrong token, or none, is UNAUTHENTICATED", async () => {
    delete process.env.TASKQ_TOKEN;
    delete process.env.TASKQ_TOKEN_FILE;
    headers.clear();
    for (const token of ["wrong", ""]) {
      const client = createTaskqClient({ address, token });
      try {
        await assert.rejects(
          client.getQueue("q"),
          (error: unknown) => error instanceof TaskqError && error.code === Code.Unauthenticated,
        );
      } finally {
        await client.close();
      }
    }
    assert.deepEqual(seen("GetQueue"), ["Bearer wrong"], "no header without a token");
  });

  it("are sent on the push worker's stream", async () => {
    headers.clear();
    acked.length = 0;
    const client = createTaskqClient({ address, token: TOKEN });
    const handled: string[] = [];
    const worker = new Worker(client, "push", (task) => void handled.push(new TextDecoder().decode(task.payload)), {
      onError: quiet,
    });
    const run = worker.run();
    try {
      await eventually(() => acked.length === 1, 10_000, "the task handled and acknowledged");
    } finally {
      await worker.stop();
      await run;
      await client.close();
    }
    assert.deepEqual(handled, ["hello"]);
    assert.deepEqual(acked, ["queues/push/tasks/one"]);
    assert.deepEqual(seen("StreamTasks"), [`Bearer ${TOKEN}`]);
  });

  it("a worker with a wrong token stops with UNAUTHENTICATED", async () => {
    const client = createTaskqClient({ address, token: "wrong" });
    const worker = new Worker(client, "push", () => {}, { onError: quiet });
    try {
      await assert.rejects(
        worker.run(),
        (error: unknown) => error instanceof TaskqError && error.code === Code.Unauthenticated,
      );
    } finally {
      await client.close();
    }
  });

  it("a token that cannot be a header is refused when the client is made", () => {
    for (const token of ["two words", "line\nbreak", "naïve", " \n"]) {
      assert.throws(() => createTaskqClient({ address, token }), InvalidTokenError);
    }
  });

  it("a token file is read again when it changes, and kept while it is gone", async () => {
    headers.clear();
    const file = join(mkdtempSync(join(tmpdir(), "taskq-node-token-")), "token");
    writeFileSync(file, "first-token\n");
    const client = createTaskqClient({ address, tokenFile: file });
    try {
      await client.getQueue("q").catch(() => {});
      writeFileSync(file, "the-second-token");
      await client.getQueue("q").catch(() => {});
      rmSync(file);
      await client.getQueue("q").catch(() => {});
    } finally {
      await client.close();
    }
    assert.deepEqual(seen("GetQueue"), ["Bearer first-token", "Bearer the-second-token", "Bearer the-second-token"]);
    assert.throws(() => createTaskqClient({ address, tokenFile: file }), {
      name: "InvalidTokenError",
      message: new RegExp(`^cannot read the token file ${file}`),
    });
  });

  it("comes from the environment without an option: TASKQ_TOKEN, else TASKQ_TOKEN_FILE", async () => {
    headers.clear();
    const file = join(mkdtempSync(join(tmpdir(), "taskq-node-token-")), "token");
    writeFileSync(file, "from-a-file\n");
    const saved = { token: process.env.TASKQ_TOKEN, file: process.env.TASKQ_TOKEN_FILE };
    process.env.TASKQ_TOKEN = "from-the-environment";
    process.env.TASKQ_TOKEN_FILE = file;
    try {
      const call = async (options: { token?: string }) => {
        const client = createTaskqClient({ address, ...options });
        await client.getQueue("q").catch(() => {});
        await client.close();
      };
      await call({}); // TASKQ_TOKEN first
      await call({ token: "given" }); // an option wins
      await call({ token: "" }); // none, said so
      delete process.env.TASKQ_TOKEN;
      await call({}); // then TASKQ_TOKEN_FILE
    } finally {
      for (const [name, value] of [["TASKQ_TOKEN", saved.token], ["TASKQ_TOKEN_FILE", saved.file]] as const) {
        if (value === undefined) {
          delete process.env[name];
        } else {
          process.env[name] = value;
        }
      }
    }
    assert.deepEqual(seen("GetQueue"), ["Bearer from-the-environment", "Bearer given", "Bearer from-a-file"]);
  });

  it("goes in plain text only to this machine", () => {
    // Clients are made and closed without a call: nothing is dialed.
    for (const [address, options, refused] of [
      ["10.1.2.3:50051", {}, true],
      ["taskq.example.com", {}, true],
      ["http://taskq.example.com", {}, true],
      ["ipv4:127.0.0.1:7001,10.1.2.3:7002", {}, true],
      ["10.1.2.3:50051", { allowPlaintextToken: true }, false],
      ["10.1.2.3:50051", { tls: {} }, false],
      ["https://taskq.example.com", {}, false],
      ["localhost:50051", {}, false],
      ["LOCALHOST.", {}, false],
      ["127.0.0.2:50051", {}, false],
      ["[::1]:50051", {}, false],
      ["[0:0::1]:50051", {}, false],
      ["unix:/run/taskq.sock", {}, false],
      ["dns:///localhost:50051", {}, false],
      ["ipv4:127.0.0.1:7001,127.0.0.2:7002", {}, false],
    ] as const) {
      const make = () => createTaskqClient({ address, token: "secret", ...options });
      if (refused) {
        assert.throws(make, { name: "PlaintextTokenError", message: /refusing to send a token in plain text/ }, address);
      } else {
        void make().close();
      }
    }
  });

  it("unix:, dns:///, ipv4: lists and http:// reach the server", async () => {
    const dead = await freePort();
    for (const target of [
      `unix:${socket}`,
      `unix://${socket}`,
      `dns:///127.0.0.1:${port}`,
      `dns:///localhost:${port}`,
      `ipv4:127.0.0.1:${dead},127.0.0.1:${port}`, // the first that connects
      `http://127.0.0.1:${port}`,
    ]) {
      const client = createTaskqClient({ address: target, token: TOKEN, retry: { initialBackoffMs: 10 } });
      try {
        assert.equal((await client.getQueue("q")).name, "queues/q", target);
      } finally {
        await client.close();
      }
    }
  });
});

// The token through a real taskq server configured with a tokens file (auth_tokens_file,
// TASKQ_AUTH_TOKENS_FILE: the SHA-256 of each token with its roles). A server without
// authentication answers a call without a token: the test is then skipped, the stand-in tests
// above standing in for it.
describe("bearer tokens against the real server", () => {
  const token = "taskq_node-test-token-0123456789abcdefghijklmnopq";
  let server: TestServer | undefined;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "taskq-node-auth-"));
    const digest = createHash("sha256").update(token).digest("hex");
    writeFileSync(join(dir, "tokens.yaml"), `tokens:\n  - name: node-test\n    sha256: ${digest}\n    roles: [admin]\n`);
    server = await startServer({ env: { TASKQ_AUTH_TOKENS_FILE: join(dir, "tokens.yaml") } });
  });

  after(async () => {
    await server?.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  it("a call with the token works, the worker's stream too; a wrong token is UNAUTHENTICATED", async (t) => {
    const anonymous = createTaskqClient({ address: server!.address, retry: false });
    const answer = await anonymous.getQueue("anything").catch((error: unknown) => error);
    await anonymous.close();
    if (!(answer instanceof TaskqError && answer.code === Code.Unauthenticated)) {
      t.skip(`this server does not check tokens (a call without one got ${String(answer)})`);
      return;
    }
    const client = createTaskqClient({ address: server!.address, token });
    const wrong = createTaskqClient({ address: server!.address, token: "taskq_wrong" });
    try {
      const id = uniqueQueue("auth");
      await client.createQueue(id, { type: "push" });
      await client.createTask(id, { payload: "hello" });
      let handled = 0;
      const worker = new Worker(client, id, () => void handled++, { onError: quiet });
      const run = worker.run();
      try {
        await eventually(() => handled === 1, 10_000, "the task handled");
      } finally {
        await worker.stop();
        await run;
      }
      await assert.rejects(
        wrong.getQueue(id),
        (error: unknown) => error instanceof TaskqError && error.code === Code.Unauthenticated,
      );
      await assert.rejects(
        new Worker(wrong, id, () => {}, { onError: quiet }).run(),
        (error: unknown) => error instanceof TaskqError && error.code === Code.Unauthenticated,
      );
    } finally {
      await client.close();
      await wrong.close();
    }
  });
});
