// Google's official Node.js Cloud Tasks client (@google-cloud/tasks, v2) against a real taskq,
// configured as an emulator user would: plaintext channel, no credentials, endpoint = taskq's
// address. HTTP targets point at a loopback HTTP server of this test, which records what it gets.
//
// The server is `$TASKQ_BIN serve` (default: the checkout's .venv/bin/taskq) on a free port.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import tasks from "@google-cloud/tasks";
import * as grpc from "@grpc/grpc-js";

// google-auth-library asks the GCE metadata server (a link-local address) whether it runs on
// Google Cloud when nothing says which universe the client is in; no test may send traffic
// off this machine, so both the client option below and this switch keep it from asking.
process.env.METADATA_SERVER_DETECTION = "none";

const CHECKOUT = fileURLToPath(new URL("../../../../", import.meta.url));
const TASKQ_BIN = process.env.TASKQ_BIN || join(CHECKOUT, ".venv/bin/taskq");

const PARENT = "projects/taskq-node/locations/us-central1";
const HOUR = 3600;

let taskq; // { child, address, dataDir, stderr() }
let receiver; // { base, requests, server }
let client;

// Fixtures --------------------------------------------------------------------------------------

async function startTaskq() {
  const dataDir = await mkdtemp(join(tmpdir(), "taskq-cloudtasks-node-"));
  const child = spawn(
    TASKQ_BIN,
    ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--durability", "nosync",
      "--http-allow-networks", "127.0.0.0/8"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  child.stderr.on("data", (chunk) => {
    stderr += chunk.toString();
  });
  const address = await new Promise((resolve, reject) => {
    let stdout = "";
    const timer = setTimeout(() => reject(new Error(`taskq did not start in 30 s:\n${stderr}`)), 30_000);
    child.stdout.on("data", (chunk) => {
      stdout += chunk.toString();
      const match = /taskq listening on (\S+:\d+)/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`taskq exited with ${code} before listening:\n${stderr}`));
    });
    child.once("error", reject);
  });
  return { child, address, dataDir, stderr: () => stderr };
}

async function stopTaskq(server) {
  if (server.child.exitCode === null) {
    await new Promise((resolve) => {
      const timer = setTimeout(() => server.child.kill("SIGKILL"), 20_000);
      server.child.once("exit", () => {
        clearTimeout(timer);
        resolve();
      });
      server.child.kill("SIGTERM");
    });
  }
  await rm(server.dataDir, { recursive: true, force: true });
}

/** An HTTP server on 127.0.0.1 recording every request; paths under /fail answer 500. */
async function startReceiver() {
  const requests = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => {
      requests.push({ method: req.method, path: req.url, headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(req.url.startsWith("/fail") ? 500 : 200, { "Content-Type": "text/plain" });
      res.end(req.url.startsWith("/fail") ? "failing on purpose" : "ok");
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return { base: `http://127.0.0.1:${port}`, requests, server };
}

async function waitFor(what, check, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function received(path) {
  return receiver.requests.filter((r) => r.path === path);
}

/** The requests to `path`, or false while there are none (for waitFor). */
function arrived(path) {
  const got = received(path);
  return got.length > 0 && got;
}

async function rejectsWith(promise, code) {
  await assert.rejects(promise, (error) => {
    assert.equal(error.code, code, `expected ${grpc.status[code]}, got: ${error.message}`);
    return true;
  });
}

const queueName = (id, parent = PARENT) => `${parent}/queues/${id}`;
const shortName = (name) => name.split("/").pop();
const inAnHour = () => ({ seconds: Math.floor(Date.now() / 1000) + HOUR });
const seconds = (duration) => Number(duration.seconds) + (duration.nanos || 0) / 1e9;

before(async () => {
  [taskq, receiver] = await Promise.all([startTaskq(), startReceiver()]);
  const [host, port] = [taskq.address.slice(0, taskq.address.lastIndexOf(":")),
    Number(taskq.address.slice(taskq.address.lastIndexOf(":") + 1))];
  // The emulator settings: where the server is, and a plaintext channel (no credentials).
  client = new tasks.v2.CloudTasksClient({
    servicePath: host,
    port,
    sslCreds: grpc.credentials.createInsecure(),
    universeDomain: "googleapis.com",
  });
});

after(async () => {
  await client?.close();
  receiver?.server.close();
  if (taskq) {
    await stopTaskq(taskq);
  }
});

// Queues ----------------------------------------------------------------------------------------

test("CreateQueue with rate limits and a retry config; GetQueue reads it back", async () => {
  const name = queueName("orders");
  const [created] = await client.createQueue({
    parent: PARENT,
    queue: {
      name,
      rateLimits: { maxDispatchesPerSecond: 5, maxConcurrentDispatches: 3 },
      retryConfig: { maxAttempts: 4, minBackoff: { seconds: 1 }, maxBackoff: { seconds: 20 }, maxDoublings: 3 },
    },
  });
  assert.equal(created.name, name);
  const [queue] = await client.getQueue({ name });
  assert.equal(queue.name, name);
  assert.equal(queue.state, "RUNNING");
  assert.equal(queue.rateLimits.maxDispatchesPerSecond, 5);
  assert.equal(queue.rateLimits.maxConcurrentDispatches, 3);
  assert.ok(queue.rateLimits.maxBurstSize > 0, "max_burst_size (output only) is filled in");
  assert.equal(queue.retryConfig.maxAttempts, 4);
  assert.equal(seconds(queue.retryConfig.minBackoff), 1);
  assert.equal(seconds(queue.retryConfig.maxBackoff), 20);
  assert.equal(queue.retryConfig.maxDoublings, 3);
});

test("a queue created with a name alone gets Cloud Tasks' defaults", async () => {
  const name = queueName("defaults");
  await client.createQueue({ parent: PARENT, queue: { name } });
  const [queue] = await client.getQueue({ name });
  assert.equal(queue.name, name);
  assert.equal(queue.state, "RUNNING");
  assert.equal(queue.rateLimits.maxDispatchesPerSecond, 500);
  assert.equal(queue.rateLimits.maxConcurrentDispatches, 1000);
  assert.ok(queue.rateLimits.maxBurstSize > 0);
  assert.equal(queue.retryConfig.maxAttempts, 100);
  assert.equal(seconds(queue.retryConfig.minBackoff), 0.1);
  assert.equal(seconds(queue.retryConfig.maxBackoff), 3600);
  assert.equal(queue.retryConfig.maxDoublings, 16);
});

test("CreateQueue of an existing name is ALREADY_EXISTS", async () => {
  await rejectsWith(client.createQueue({ parent: PARENT, queue: { name: queueName("orders") } }),
    grpc.status.ALREADY_EXISTS);
});

test("ListQueues pages one queue at a time, only the parent's queues", async () => {
  const parent = "projects/taskq-node/locations/europe-west1";
  const ids = ["list-a", "list-b", "list-c"];
  for (const id of ids) {
    await client.createQueue({ parent, queue: { name: queueName(id, parent) } });
  }
  const seen = [];
  let request = { parent, pageSize: 1 };
  let pages = 0;
  while (request) {
    const [queues, next] = await client.listQueues(request, { autoPaginate: false });
    pages += 1;
    assert.ok(queues.length <= 1, `page ${pages} has ${queues.length} queues`);
    seen.push(...queues.map((q) => q.name));
    request = next;
    assert.ok(pages < 20, "paging ends");
  }
  assert.ok(pages >= 3, `${pages} pages`);
  assert.deepEqual(seen.sort(), ids.map((id) => queueName(id, parent)));
  // The client's own paging (an async iterator that fetches page after page) sees the same;
  // autoPaginate: false only agrees with what the iterator does (gax warns when it is not said).
  const all = [];
  for await (const queue of client.listQueuesAsync({ parent, pageSize: 1 }, { autoPaginate: false })) {
    all.push(queue.name);
  }
  assert.deepEqual(all.sort(), ids.map((id) => queueName(id, parent)));
});

test("UpdateQueue changes only the fields of the update mask", async () => {
  const name = queueName("orders");
  const [updated] = await client.updateQueue({
    queue: { name, rateLimits: { maxDispatchesPerSecond: 7, maxConcurrentDispatches: 999 } },
    updateMask: { paths: ["rate_limits.max_dispatches_per_second"] },
  });
  assert.equal(updated.name, name);
  assert.equal(updated.rateLimits.maxDispatchesPerSecond, 7);
  const [queue] = await client.getQueue({ name });
  assert.equal(queue.rateLimits.maxDispatchesPerSecond, 7);
  assert.equal(queue.rateLimits.maxConcurrentDispatches, 3, "not in the mask: unchanged");
  assert.equal(queue.retryConfig.maxAttempts, 4);
  assert.equal(seconds(queue.retryConfig.maxBackoff), 20);
});

// Queue-level http_target (header_overrides, http_method) is not in this client's v2 Queue:
// @google-cloud/tasks 6.3.0, the newest for Node.js 20 (7.x needs 22), predates it. The Go test
// covers it. Tasks carry their own HttpRequest here.

// Tasks -----------------------------------------------------------------------------------------

test("http_request tasks (POST with body and headers, GET) reach the HTTP server as Google-Cloud-Tasks", async () => {
  const queue = queueName("deliver");
  await client.createQueue({ parent: PARENT, queue: { name: queue } });
  const [post] = await client.createTask({
    parent: queue,
    task: {
      httpRequest: {
        url: `${receiver.base}/post/path?lang=node`,
        httpMethod: "POST",
        headers: { "Content-Type": "application/json", "X-Test-Client": "node", "User-Agent": "mine" },
        body: Buffer.from('{"order": 42}'),
      },
    },
  });
  const [get] = await client.createTask({
    parent: queue,
    task: { httpRequest: { url: `${receiver.base}/get/path`, httpMethod: "GET" } },
  });
  assert.ok(post.name.startsWith(`${queue}/tasks/`), post.name);
  assert.ok(get.name.startsWith(`${queue}/tasks/`), get.name);

  const [postRequest] = await waitFor("the POST", () => arrived("/post/path?lang=node"));
  assert.equal(postRequest.method, "POST");
  assert.equal(postRequest.body.toString(), '{"order": 42}');
  assert.equal(postRequest.headers["content-type"], "application/json");
  assert.equal(postRequest.headers["x-test-client"], "node");
  assert.equal(postRequest.headers["x-cloudtasks-queuename"], "deliver");
  assert.equal(postRequest.headers["x-cloudtasks-taskname"], shortName(post.name));
  // Cloud Tasks documents HttpRequest.headers' User-Agent as set to this, whatever the task says.
  assert.equal(postRequest.headers["user-agent"], "Google-Cloud-Tasks");

  const [getRequest] = await waitFor("the GET", () => arrived("/get/path"));
  assert.equal(getRequest.method, "GET");
  assert.equal(getRequest.body.length, 0);
  assert.equal(getRequest.headers["x-cloudtasks-queuename"], "deliver");
  assert.equal(getRequest.headers["x-cloudtasks-taskname"], shortName(get.name));

  // A task answered with 2xx is done: Cloud Tasks removes it.
  await waitFor("the delivered task to be gone", async () => {
    try {
      await client.getTask({ name: post.name });
      return false;
    } catch (error) {
      assert.equal(error.code, grpc.status.NOT_FOUND, error.message);
      return true;
    }
  });
});

test("a named task, then the same name again: ALREADY_EXISTS", async () => {
  const queue = queueName("hold");
  await client.createQueue({ parent: PARENT, queue: { name: queue } });
  const name = `${queue}/tasks/named-once`;
  const task = { name, scheduleTime: inAnHour(), httpRequest: { url: `${receiver.base}/named` } };
  const [created] = await client.createTask({ parent: queue, task });
  assert.equal(created.name, name);
  await rejectsWith(client.createTask({ parent: queue, task }), grpc.status.ALREADY_EXISTS);
});

test("GetTask and ListTasks: the body only in the FULL view", async () => {
  const queue = queueName("hold");
  const name = `${queue}/tasks/with-body`;
  const body = Buffer.from("the body of the task");
  const scheduleTime = inAnHour();
  await client.createTask({
    parent: queue,
    task: {
      name,
      scheduleTime,
      dispatchDeadline: { seconds: 30 },
      httpRequest: { url: `${receiver.base}/with-body`, httpMethod: "PUT", headers: { "X-Kind": "body" }, body },
    },
  });

  const [basic] = await client.getTask({ name });
  assert.equal(basic.name, name);
  assert.equal(basic.view, "BASIC");
  assert.equal(basic.httpRequest.url, `${receiver.base}/with-body`);
  assert.equal(basic.httpRequest.httpMethod, "PUT");
  assert.equal((basic.httpRequest.body ?? Buffer.alloc(0)).length, 0, "no body in the BASIC view");
  assert.equal(Number(basic.scheduleTime.seconds), scheduleTime.seconds);
  assert.ok(Number(basic.createTime.seconds) > 0);
  assert.equal(basic.dispatchCount, 0);
  assert.equal(seconds(basic.dispatchDeadline), 30);

  const [full] = await client.getTask({ name, responseView: "FULL" });
  assert.equal(full.view, "FULL");
  assert.deepEqual(Buffer.from(full.httpRequest.body), body);
  assert.equal(full.httpRequest.headers["X-Kind"], "body");

  const [listedBasic] = await client.listTasks({ parent: queue });
  const [listedFull] = await client.listTasks({ parent: queue, responseView: "FULL" });
  assert.deepEqual(listedBasic.map((t) => t.name).sort(), [`${queue}/tasks/named-once`, name].sort());
  const basicOne = listedBasic.find((t) => t.name === name);
  const fullOne = listedFull.find((t) => t.name === name);
  assert.equal((basicOne.httpRequest.body ?? Buffer.alloc(0)).length, 0);
  assert.deepEqual(Buffer.from(fullOne.httpRequest.body), body);
});

test("ListTasks pages two tasks at a time; every page together holds every task once", async () => {
  const queue = queueName("paged");
  await client.createQueue({ parent: PARENT, queue: { name: queue } });
  const want = [];
  for (let i = 0; i < 5; i += 1) {
    const name = `${queue}/tasks/paged-${i}`;
    want.push(name);
    await client.createTask({ parent: queue, task: { name, scheduleTime: inAnHour(), httpRequest: { url: `${receiver.base}/paged` } } });
  }
  const seen = [];
  let request = { parent: queue, pageSize: 2 };
  let pages = 0;
  while (request) {
    const [tasksOfPage, next] = await client.listTasks(request, { autoPaginate: false });
    pages += 1;
    assert.ok(tasksOfPage.length <= 2, `page ${pages} has ${tasksOfPage.length} tasks`);
    seen.push(...tasksOfPage.map((t) => t.name));
    request = next;
    assert.ok(pages < 20, "paging ends");
  }
  assert.ok(pages >= 3, `${pages} pages`);
  assert.deepEqual(seen.sort(), want);
  const all = [];
  for await (const task of client.listTasksAsync({ parent: queue, pageSize: 2 }, { autoPaginate: false })) {
    all.push(task.name);
  }
  assert.deepEqual(all.sort(), want);
});

test("a paused queue delivers nothing; resumed, it delivers", async () => {
  const queue = queueName("pausable");
  await client.createQueue({ parent: PARENT, queue: { name: queue } });
  const [paused] = await client.pauseQueue({ name: queue });
  assert.equal(paused.state, "PAUSED");
  await client.createTask({ parent: queue, task: { httpRequest: { url: `${receiver.base}/paused` } } });
  // Long enough for an idle running queue to deliver many times over (tasks arrive in ms).
  await sleep(1000);
  assert.equal(received("/paused").length, 0, "delivered while paused");
  const [still] = await client.getQueue({ name: queue });
  assert.equal(still.state, "PAUSED");
  const [resumed] = await client.resumeQueue({ name: queue });
  assert.equal(resumed.state, "RUNNING");
  await waitFor("the task after ResumeQueue", () => received("/paused").length === 1);
});

test("RunTask delivers a task scheduled an hour ahead now", async () => {
  const queue = queueName("hold");
  const [task] = await client.createTask({
    parent: queue,
    task: { scheduleTime: inAnHour(), httpRequest: { url: `${receiver.base}/run-now`, body: Buffer.from("run") } },
  });
  await sleep(300);
  assert.equal(received("/run-now").length, 0);
  const [ran] = await client.runTask({ name: task.name });
  assert.equal(ran.name, task.name);
  const [request] = await waitFor("the task run by RunTask", () => arrived("/run-now"));
  assert.equal(request.method, "POST", "POST is the default method");
  assert.equal(request.body.toString(), "run");
  assert.equal(request.headers["x-cloudtasks-taskname"], shortName(task.name));
});

test("DeleteTask; then GetTask and DeleteTask are NOT_FOUND", async () => {
  const name = `${queueName("hold")}/tasks/with-body`;
  await client.deleteTask({ name });
  await rejectsWith(client.getTask({ name }), grpc.status.NOT_FOUND);
  await rejectsWith(client.deleteTask({ name }), grpc.status.NOT_FOUND);
});

test("PurgeQueue removes every task", async () => {
  const queue = queueName("hold");
  for (let i = 0; i < 3; i += 1) {
    await client.createTask({ parent: queue, task: { scheduleTime: inAnHour(), httpRequest: { url: `${receiver.base}/purged` } } });
  }
  const [before] = await client.listTasks({ parent: queue });
  assert.ok(before.length >= 4, `${before.length} tasks before the purge`);
  const [purged] = await client.purgeQueue({ name: queue });
  assert.equal(purged.name, queue);
  assert.ok(purged.purgeTime && Number(purged.purgeTime.seconds) > 0, "purge_time is set");
  await waitFor("an empty queue after PurgeQueue", async () => (await client.listTasks({ parent: queue }))[0].length === 0);
  assert.equal(received("/purged").length, 0);
});

test("DeleteQueue; then GetQueue is NOT_FOUND", async () => {
  const queue = queueName("hold");
  await client.deleteQueue({ name: queue });
  await rejectsWith(client.getQueue({ name: queue }), grpc.status.NOT_FOUND);
  const [remaining] = await client.listQueues({ parent: PARENT });
  assert.ok(!remaining.some((q) => q.name === queue));
});

test("documented errors: INVALID_ARGUMENT for bad names, NOT_FOUND for what is missing", async () => {
  await rejectsWith(client.getQueue({ name: `${PARENT}/queues/bad_name!` }), grpc.status.INVALID_ARGUMENT);
  await rejectsWith(client.createQueue({ parent: PARENT, queue: { name: "queues/no-parent" } }),
    grpc.status.INVALID_ARGUMENT);
  await rejectsWith(client.createQueue({ parent: PARENT, queue: { name: queueName("elsewhere", "projects/other/locations/l") } }),
    grpc.status.INVALID_ARGUMENT);
  await rejectsWith(client.getQueue({ name: queueName("never-made") }), grpc.status.NOT_FOUND);
  await rejectsWith(client.createTask({ parent: queueName("never-made"), task: { httpRequest: { url: `${receiver.base}/x` } } }),
    grpc.status.NOT_FOUND);
  await rejectsWith(client.listTasks({ parent: queueName("never-made") }), grpc.status.NOT_FOUND);
  await rejectsWith(client.pauseQueue({ name: queueName("never-made") }), grpc.status.NOT_FOUND);
  await rejectsWith(client.getTask({ name: `${queueName("orders")}/tasks/never-made` }), grpc.status.NOT_FOUND);
  await rejectsWith(client.createTask({ parent: queueName("orders"), task: { httpRequest: { url: "not a url" } } }),
    grpc.status.INVALID_ARGUMENT);
});

test("a handler answering 500 is retried: dispatch_count, response_count, last_attempt", async () => {
  const queue = queueName("flaky");
  await client.createQueue({
    parent: PARENT,
    queue: { name: queue, retryConfig: { maxAttempts: 5, minBackoff: { seconds: 1 }, maxBackoff: { seconds: 1 } } },
  });
  const [task] = await client.createTask({
    parent: queue,
    task: { httpRequest: { url: `${receiver.base}/fail/once-more`, body: Buffer.from("doomed") } },
  });
  const deliveries = await waitFor("two attempts", () => {
    const got = received("/fail/once-more");
    return got.length >= 2 && got;
  });
  assert.equal(deliveries[0].headers["x-cloudtasks-taskretrycount"], "0");
  assert.equal(deliveries[1].headers["x-cloudtasks-taskretrycount"], "1");
  assert.equal(deliveries[1].headers["x-cloudtasks-taskname"], shortName(task.name));
  const seen = await waitFor("the attempts on GetTask", async () => {
    const [t] = await client.getTask({ name: task.name });
    return t.dispatchCount >= 2 && t.responseCount >= 2 && t.lastAttempt?.responseStatus && t;
  });
  assert.equal(deliveries[1].headers["x-cloudtasks-taskpreviousresponse"], "500");
  assert.ok(seen.firstAttempt?.dispatchTime, "first_attempt.dispatch_time");
  assert.ok(seen.lastAttempt.dispatchTime, "last_attempt.dispatch_time");
  assert.ok(seen.lastAttempt.responseTime, "last_attempt.response_time");
  assert.equal(seen.lastAttempt.responseStatus.code, grpc.status.INTERNAL, "HTTP 500 is INTERNAL");
});

test("a task whose attempts ran out is deleted, and its name stays taken", async () => {
  const queue = queueName("exhausted");
  await client.createQueue({ parent: PARENT, queue: { name: queue, retryConfig: { maxAttempts: 1 } } });
  const task = { name: `${queue}/tasks/only-once`, httpRequest: { url: `${receiver.base}/fail/only-once` } };
  await client.createTask({ parent: queue, task });
  await waitFor("the one attempt", () => arrived("/fail/only-once"));
  await waitFor("the task to be deleted", async () => {
    try {
      await client.getTask({ name: task.name });
      return false;
    } catch (error) {
      assert.equal(error.code, grpc.status.NOT_FOUND, error.message);
      return true;
    }
  });
  assert.equal(received("/fail/only-once").length, 1, "max_attempts 1: no second attempt");
  assert.deepEqual((await client.listTasks({ parent: queue }))[0], []);
  await rejectsWith(client.runTask({ name: task.name }), grpc.status.NOT_FOUND);
  await rejectsWith(client.deleteTask({ name: task.name }), grpc.status.NOT_FOUND);
  await rejectsWith(client.createTask({ parent: queue, task }), grpc.status.ALREADY_EXISTS);
});
