// The README's example (examples/quickstart.ts) runs as written against a real server.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { startServer, type TestServer } from "./server.js";

const EXAMPLE = fileURLToPath(new URL("../examples/quickstart.js", import.meta.url));

describe("examples/quickstart", () => {
  let server: TestServer;

  before(async () => {
    server = await startServer();
  });

  after(async () => {
    await server.remove();
  });

  it("runs, twice, against a server", async () => {
    for (let run = 0; run < 2; run++) {
      const { stdout } = await promisify(execFile)(process.execPath, [EXAMPLE], {
        env: { ...process.env, TASKQ_ADDRESS: server.address },
        timeout: 20_000,
      });
      assert.match(stdout, /queued 3 emails/);
      for (const to of ["ada", "grace", "alan"]) {
        assert.match(stdout, new RegExp(`sending to ${to} \\(attempt 1\\)`));
      }
      assert.match(stdout, /building report Q3 revenue \(tag q3\)/);
    }
  });
});
