// The README's example: create tasks (batched), handle a push queue with a Worker, and a
// pull queue with a PullWorker. Run it against `make serve`:
//
//     npm run build && npm run build:test && node build/examples/quickstart.js
//
// TASKQ_ADDRESS overrides the address (the tests run it against their own server).

import { createTaskqClient, PullWorker, QueueAlreadyExistsError, Worker } from "@taskq/client";

// The client sends $TASKQ_TOKEN (or the token in $TASKQ_TOKEN_FILE), if set, with every call.
const client = createTaskqClient({ address: process.env.TASKQ_ADDRESS ?? "127.0.0.1:50051" });

// Two queues (a second run finds them there already).
for (const [queue, type] of [["node-emails", "push"], ["node-reports", "pull"]] as const) {
  await client.createQueue(queue, { type, maxAttempts: 5 }).catch((error: unknown) => {
    if (!(error instanceof QueueAlreadyExistsError)) throw error;
  });
}

// Creates made together share one BatchCreateTasks call; each gets its own task back.
const emails = await Promise.all(
  ["ada", "grace", "alan"].map((to) => client.createTask("node-emails", { payload: JSON.stringify({ to }) })),
);
console.log(`queued ${emails.length} emails`);
await client.createTask("node-reports", { payload: "Q3 revenue", tag: "q3" });

// Push: the server streams tasks to the worker; a handler that resolves acks its task, one
// that throws nacks it (retried with backoff; throw PermanentError to give up at once).
const sent = new Set<string>();
const worker = new Worker(
  client,
  "node-emails",
  async (task) => {
    const { to } = JSON.parse(new TextDecoder().decode(task.payload)) as { to: string };
    console.log(`sending to ${to} (attempt ${task.attemptCount})`);
    sent.add(task.name);
    if (emails.every((email) => sent.has(email.name))) void worker.stop(); // demo: stop when done
  },
  { concurrency: 4 },
);
await worker.run(); // until stop(), SIGTERM handling is yours: process.once("SIGTERM", () => worker.stop())

// Pull: lease → handle → delete, with the lease extended while the handler runs.
const reports = new PullWorker(
  client,
  "node-reports",
  async (task) => {
    console.log(`building report ${new TextDecoder().decode(task.payload)} (tag ${task.tag})`);
    void reports.stop(); // demo: one task is enough
  },
  { leaseDurationMs: 60_000, tag: "q3" },
);
await reports.run();

await client.close();
