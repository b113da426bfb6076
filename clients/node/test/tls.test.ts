// The client against a real taskq server that requires TLS with client certificates (mTLS),
// set up through TASKQ_TLS_CERT_FILE, TASKQ_TLS_KEY_FILE and TASKQ_TLS_CLIENT_CA_FILE. Its
// certificate is for localhost, 127.0.0.1 and taskq.internal (made with openssl).

import assert from "node:assert/strict";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  Code,
  createTaskqClient,
  InvalidTlsSettingsError,
  QueueNotFoundError,
  TaskqError,
  Worker,
  type TaskqClientOptions,
  type TlsSettings,
} from "@taskq/client";
import { makeCertificates, type Certificates } from "./certificates.js";
import { eventually, quiet, startServer, uniqueQueue, type TestServer } from "./server.js";

describe("TLS", () => {
  let certificates: Certificates;
  let server: TestServer;
  let mtls: TlsSettings;

  before(async () => {
    certificates = makeCertificates("localhost", "127.0.0.1", "taskq.internal");
    server = await startServer({
      env: {
        TASKQ_TLS_CERT_FILE: certificates.serverCert,
        TASKQ_TLS_KEY_FILE: certificates.serverKey,
        TASKQ_TLS_CLIENT_CA_FILE: certificates.ca,
      },
    });
    mtls = { caFile: certificates.ca, certFile: certificates.clientCert, keyFile: certificates.clientKey };
  });

  after(async () => {
    await server?.remove();
    rmSync(certificates.dir, { recursive: true, force: true });
  });

  /** Runs `use` with a client, closed afterwards. */
  async function withClient(options: TaskqClientOptions, use: (client: ReturnType<typeof createTaskqClient>) => Promise<void>) {
    const client = createTaskqClient(options);
    try {
      await use(client);
    } finally {
      await client.close();
    }
  }

  /** A call fails with UNAVAILABLE (a refused handshake) whose message matches `why`. */
  async function refused(options: TaskqClientOptions, why: RegExp = /./) {
    await withClient({ ...options, retry: false, timeoutMs: 10_000 }, async (client) => {
      await assert.rejects(client.getQueue("anything"), (error: unknown) => {
        assert.ok(error instanceof TaskqError, String(error));
        assert.equal(error.code, Code.Unavailable, error.message);
        assert.match(error.message, why);
        return true;
      });
    });
  }

  it("makes unary calls over mTLS", async () => {
    await withClient({ address: server.address, tls: mtls }, async (client) => {
      const id = uniqueQueue("tls-pull");
      await client.createQueue(id, { type: "pull" });
      await client.createTask(id, { payload: "hello" });
      const [task] = await client.leaseTasks(id, { leaseDurationMs: 60_000 });
      assert.equal(new TextDecoder().decode(task!.payload), "hello");
      await client.deleteTask(task!);
      assert.equal((await client.getQueueStats(id)).tasksCount, 0n);
    });
  });

  it("streams tasks to the push worker over mTLS, at an https:// address", async () => {
    await withClient({ address: `https://localhost:${server.port}`, tls: mtls }, async (client) => {
      const id = uniqueQueue("tls-push");
      await client.createQueue(id, { type: "push" });
      await Promise.all(Array.from({ length: 5 }, (_, i) => client.createTask(id, { payload: `job ${i}` })));
      let handled = 0;
      const worker = new Worker(client, id, () => void handled++, { concurrency: 2, onError: quiet });
      const run = worker.run();
      try {
        await eventually(async () => handled === 5 && (await client.getQueueStats(id)).tasksCount === 0n, 10_000,
          "5 tasks handled and acknowledged");
      } finally {
        await worker.stop();
        await run;
      }
    });
  });

  it("connects to a dns:/// address", async () => {
    await withClient({ address: `dns:///localhost:${server.port}`, tls: mtls }, async (client) => {
      await assert.rejects(client.getQueue("missing"), QueueNotFoundError);
    });
  });

  it("is refused without a client certificate", async () => {
    await refused({ address: server.address, tls: { caFile: certificates.ca } });
  });

  it("is refused in plain text", async () => {
    await refused({ address: server.address });
  });

  it("trusts only Node's CAs at an https:// address without a CA file", async () => {
    await refused({ address: `https://127.0.0.1:${server.port}` }, /certificate/);
  });

  it("checks the server name instead of the address's host", async () => {
    await withClient({ address: server.address, tls: { ...mtls, serverName: "taskq.internal" } }, async (client) => {
      await assert.rejects(client.getQueue("missing"), QueueNotFoundError);
    });
    await refused({ address: server.address, tls: { ...mtls, serverName: "elsewhere.example" } }, /elsewhere\.example/);
  });

  it("names a file it cannot use when the client is made", () => {
    const missing = join(certificates.dir, "missing.pem");
    const empty = join(certificates.dir, "empty.pem");
    writeFileSync(empty, "nothing here\n");
    for (const [tls, message] of [
      [{ caFile: missing }, `cannot read caFile ${missing}: no such file or directory`],
      [{ caFile: certificates.clientKey }, `caFile ${certificates.clientKey} holds no PEM certificate`],
      [{ certFile: certificates.clientCert }, "certFile and keyFile go together"],
      [{ keyFile: certificates.clientKey }, "certFile and keyFile go together"],
      [{ certFile: certificates.clientCert, keyFile: empty }, `keyFile ${empty} holds no PEM private key`],
    ] as [TlsSettings, string][]) {
      assert.throws(
        () => createTaskqClient({ address: "127.0.0.1:50051", tls }),
        (error: unknown) => error instanceof InvalidTlsSettingsError && error.message.includes(message),
      );
    }
  });
});
