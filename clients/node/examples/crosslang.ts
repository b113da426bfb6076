// The TypeScript part of the cross-language check (tests/crosslang/check.sh): lease the task
// with a given tag from a pull queue and print its name, lease token, payload and the
// attributes it was created with, as one JSON line. Nothing else; the lease is left for
// another language to acknowledge.
//
//     node build/examples/crosslang.js ADDRESS QUEUE TAG

import { createTaskqClient } from "@taskq/client";

const [address, queue, tag] = process.argv.slice(2);
if (!address || !queue || !tag) {
  console.error("usage: crosslang.js ADDRESS QUEUE TAG");
  process.exit(2);
}
const client = createTaskqClient({ address });
try {
  const tasks = await client.leaseTasks(queue, { leaseDurationMs: 300_000, tag, waitMs: 10_000 });
  if (tasks.length !== 1) throw new Error(`expected one task tagged ${tag}, leased ${tasks.length}`);
  const [task] = tasks;
  console.log(
    JSON.stringify({
      name: task.name,
      leaseToken: task.leaseToken,
      payload: new TextDecoder().decode(task.payload),
      attributes: task.attributes,
      attemptCount: task.attemptCount,
    }),
  );
} finally {
  await client.close();
}
