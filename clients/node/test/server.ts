// Test fixtures: a real taskq server in a child process, and an RPC-counting interceptor.
//
// The server is `$TASKQ_BIN serve` (default: this checkout's .venv/bin/taskq) on a free
// port with a temporary data directory; it prints `taskq listening on 127.0.0.1:PORT` when
// ready, and SIGTERM stops it (exit 0).

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Interceptor } from "@connectrpc/connect";

/** build/test/server.js -> the checkout's root. */
const CHECKOUT = fileURLToPath(new URL("../../../../", import.meta.url));
const TASKQ_BIN = process.env.TASKQ_BIN || join(CHECKOUT, ".venv/bin/taskq");

export interface TestServer {
  /** host:port */
  readonly address: string;
  readonly port: number;
  readonly dataDir: string;
  /** SIGTERM, then waits for exit 0. The data directory stays (see `remove`). */
  stop(): Promise<void>;
  /** Stops the server if running and deletes its data directory. */
  remove(): Promise<void>;
}

/** Starts a server: on a free port, or `port`; in a new data directory, or `dataDir`; with
 * `env` added to its environment (TASKQ_TLS_CERT_FILE, ...). */
export async function startServer(
  options: { port?: number; dataDir?: string; env?: Record<string, string> } = {},
): Promise<TestServer> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), "taskq-node-test-")));
  const child = spawn(
    TASKQ_BIN,
    ["serve", "--listen", `127.0.0.1:${options.port ?? 0}`, "--data-dir", dataDir, "--durability", "nosync"],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...options.env } },
  );
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const port = await new Promise<number>((resolve, reject) => {
    let stdout = "";
    const timer = setTimeout(() => reject(new Error(`taskq did not start in 15 s:\n${stderr}`)), 15_000);
    child.stdout!.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /taskq listening on [^\s:]+:(\d+)/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`taskq exited with ${code} before listening:\n${stderr}`));
    });
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
  let exited: Promise<void> | undefined;
  const stop = () => {
    exited ??= stopProcess(child, () => stderr);
    return exited;
  };
  return {
    address: `127.0.0.1:${port}`,
    port,
    dataDir,
    stop,
    async remove() {
      await stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

function stopProcess(child: ChildProcess, stderr: () => string): Promise<void> {
  if (child.exitCode !== null) {
    return Promise.resolve();
  }
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) {
        resolve();
      } else {
        reject(new Error(`taskq exited with ${code ?? signal} after SIGTERM:\n${stderr()}`));
      }
    });
    child.kill("SIGTERM");
  });
}

/** A port nothing listens on (it was free a moment ago). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

/** An interceptor counting the calls made through it, by method name (attempts included). */
export function callCounter(): { interceptor: Interceptor; counts: Map<string, number>; count(method: string): number } {
  const counts = new Map<string, number>();
  return {
    counts,
    count: (method) => counts.get(method) ?? 0,
    interceptor: (next) => async (request) => {
      counts.set(request.method.name, (counts.get(request.method.name) ?? 0) + 1);
      return next(request);
    },
  };
}

/** An interceptor recording the messages a client sends on its streams. */
export function streamRecorder(): { interceptor: Interceptor; sent: unknown[] } {
  const sent: unknown[] = [];
  return {
    sent,
    interceptor: (next) => async (request) => {
      if (!request.stream) {
        return next(request);
      }
      const messages = request.message;
      async function* recorded() {
        for await (const message of messages) {
          sent.push(message);
          yield message;
        }
      }
      return next({ ...request, message: recorded() });
    },
  };
}

/** A unique queue id per test. */
let queueCounter = 0;
export function uniqueQueue(prefix: string): string {
  queueCounter += 1;
  return `${prefix}-${process.pid}-${queueCounter}`;
}

/** Waits until `condition()` is true (polling every 25 ms), or fails after `timeoutMs`. */
export async function eventually(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A promise with its resolve function, for tests that coordinate with handlers. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

export const quiet = (): void => {};

/** tests/support/flaky_proxy.py in front of a server: a TCP proxy that loses the answers to
 * the first calls on purpose, after the server has done the work (see that file). */
export interface FlakyProxy {
  /** host:port to connect to instead of the server's. */
  readonly address: string;
  /** The next line the proxy prints ("dropped response on stream N" per lost answer), or
   * rejects after `timeoutMs`. */
  nextLine(timeoutMs?: number): Promise<string>;
  /** Stops the proxy (the end of its input) and waits for it to exit. */
  close(): Promise<void>;
}

/** Starts a flaky proxy to `target` (host:port) that loses the answers to the first `drops`
 * calls. */
export async function startFlakyProxy(target: string, drops: number): Promise<FlakyProxy> {
  // Any Python 3.11+ runs it (standard library only); the checkout's virtualenv has one.
  const venvPython = join(CHECKOUT, ".venv/bin/python");
  const child = spawn(
    existsSync(venvPython) ? venvPython : "python3",
    [join(CHECKOUT, "tests/support/flaky_proxy.py"), "--target", target, "--drop-responses", String(drops)],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const nextLine = async (timeoutMs = 10_000): Promise<string> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the flaky proxy printed nothing in ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const line = await Promise.race([lines.next(), timeout]);
      if (line.done) {
        throw new Error("the flaky proxy exited");
      }
      return line.value.trim();
    } finally {
      clearTimeout(timer);
    }
  };
  const first = await nextLine(15_000);
  const prefix = "flaky_proxy listening on ";
  if (!first.startsWith(prefix)) {
    child.kill();
    throw new Error(`the flaky proxy printed ${JSON.stringify(first)} instead of its address`);
  }
  return {
    address: first.slice(prefix.length),
    nextLine,
    async close() {
      child.stdin!.end();
      await exited;
    },
  };
}
