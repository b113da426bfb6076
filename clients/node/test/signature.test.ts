// verifySignature and verifyRequestSignature against signatures computed here, with
// node:crypto, from the documented formula.

import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { createServer, request as httpRequest, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { SIGNATURE_HEADER, verifyRequestSignature, verifySignature, type SignedRequest } from "@taskq/client";

/** HMAC-SHA256(secret, t \n METHOD \n target \n queue \n task \n hex(SHA-256(body))), hex. */
function sign(secret: string, t: number, method: string, target: string, queue: string, task: string, body = ""): string {
  const bodyHash = createHash("sha256").update(body, "utf8").digest("hex");
  return createHmac("sha256", Buffer.from(secret, "utf8"))
    .update(`${t}\n${method}\n${target}\n${queue}\n${task}\n${bodyHash}`, "utf8")
    .digest("hex");
}

const T = 1767225600;
const SECRET = "whsec-test";
const TARGET = "/base/path%2Fx?x=1&y=a%20b";
const BODY = '{"to":"ada@example.com"}';
const GOOD = sign(SECRET, T, "PUT", TARGET, "emails", "task-1", BODY);
const OTHER = sign("old-secret", T, "PUT", TARGET, "emails", "task-1", BODY);

const base: SignedRequest = {
  header: `t=${T},v1=${GOOD}`,
  secret: SECRET,
  method: "PUT",
  target: TARGET,
  queue: "emails",
  task: "task-1",
  body: new TextEncoder().encode(BODY),
  now: new Date((T + 42) * 1000),
};

describe("verifySignature", () => {
  it("matches a vector computed with Python's hmac, so that the test's sign() cannot drift", () => {
    assert.equal(GOOD, "ccc92a16a8320a57212d17018478ff955b1ce98e7886549c039c62a839f545d4");
    // A secret is used as its UTF-8 bytes; no body hashes the empty string.
    const header = "t=1767225600,v1=7d5efbdb46753481e88222b4af26e9a1baa25115a6cbf76944dc7ec452529522";
    const request = { header, secret: "kéy", method: "POST", target: "/", queue: "q", task: "t", now: new Date(T * 1000) };
    assert.equal(verifySignature(request), true);
  });

  const cases: [string, Partial<SignedRequest>, boolean][] = [
    ["correct", {}, true],
    ["the body as a string", { body: BODY }, true],
    ["the method in lower case", { method: "put" }, true],
    ["spaces around entries", { header: ` t=${T} , v1=${GOOD} ` }, true],
    ["v1 before t", { header: `v1=${GOOD},t=${T}` }, true],
    ["an unknown version is ignored", { header: `t=${T},v0=zz,v1=${GOOD}` }, true],
    ["several header values", { header: [`t=${T}`, `v1=${GOOD}`] }, true],
    ["rotation: the second v1 matches", { header: `t=${T},v1=${OTHER},v1=${GOOD}` }, true],
    ["rotation: the first v1 matches", { header: `t=${T},v1=${GOOD},v1=${OTHER}` }, true],
    ["rotation: only other secrets", { header: `t=${T},v1=${OTHER},v1=${OTHER}` }, false],
    ["wrong secret", { secret: "whsec-tesT" }, false],
    ["empty secret", { secret: "" }, false],
    ["tampered body", { body: '{"to":"eve@example.com"}' }, false],
    ["no body", { body: undefined }, false],
    ["tampered target path", { target: "/base/path/x?x=1&y=a%20b" }, false],
    ["tampered target query", { target: "/base/path%2Fx?x=2&y=a%20b" }, false],
    ["target without its query", { target: "/base/path%2Fx" }, false],
    ["tampered method", { method: "POST" }, false],
    ["tampered queue", { queue: "emails2" }, false],
    ["tampered task", { task: "task-2" }, false],
    ["tampered t", { header: `t=${T + 1},v1=${GOOD}` }, false],
    ["signature in upper case hex", { header: `t=${T},v1=${GOOD.toUpperCase()}` }, false],
    ["truncated signature", { header: `t=${T},v1=${GOOD.slice(0, 63)}` }, false],
    ["300 s old: within the default tolerance", { now: new Date((T + 300) * 1000) }, true],
    ["301 s old", { now: new Date((T + 301) * 1000) }, false],
    ["301 s in the future", { now: new Date((T - 301) * 1000) }, false],
    ["an hour old", { now: new Date((T + 3600) * 1000) }, false],
    ["within a custom tolerance", { now: new Date((T + 3600) * 1000), toleranceMs: 7_200_000 }, true],
    ["outside a custom tolerance", { now: new Date((T + 11) * 1000), toleranceMs: 10_000 }, false],
    ["now defaults to the current time", { now: undefined }, false],
    ["an invalid now", { now: new Date(Number.NaN) }, false],
    ["no header", { header: undefined }, false],
    ["null header", { header: null }, false],
    ["empty header", { header: "" }, false],
    ["blank header", { header: "  " }, false],
    ["no t", { header: `v1=${GOOD}` }, false],
    ["empty t", { header: `t=,v1=${GOOD}` }, false],
    ["t not a number", { header: `t=soon,v1=${GOOD}` }, false],
    ["t with a fraction", { header: `t=${T}.0,v1=${GOOD}` }, false],
    ["negative t", { header: `t=-${T},v1=${GOOD}` }, false],
    ["two t", { header: `t=${T},t=${T},v1=${GOOD}` }, false],
    ["huge t", { header: `t=99999999999999999999999,v1=${GOOD}` }, false],
    ["no v1", { header: `t=${T}` }, false],
    ["only another version", { header: `t=${T},v0=${GOOD}` }, false],
    ["garbage", { header: "garbage" }, false],
    ["a garbage entry", { header: `t=${T},v1=${GOOD},garbage` }, false],
    ["semicolons", { header: `t=${T};v1=${GOOD}` }, false],
    ["not a string", { header: 42 as unknown as string }, false],
  ];
  for (const [name, change, valid] of cases) {
    it(`${valid ? "accepts" : "rejects"}: ${name}`, () => {
      assert.equal(verifySignature({ ...base, ...change }), valid);
    });
  }

  it("compares with the current time by default", () => {
    const now = Math.floor(Date.now() / 1000);
    const header = `t=${now},v1=${sign(SECRET, now, "POST", "/", "q", "t")}`;
    assert.equal(verifySignature({ header, secret: SECRET, method: "POST", target: "/", queue: "q", task: "t" }), true);
  });
});

describe("verifyRequestSignature", () => {
  it("verifies the requests a node:http server receives, by their raw target", async () => {
    const verdicts: boolean[] = [];
    const server = createServer((request: IncomingMessage, response) => {
      const chunks: Buffer[] = [];
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.on("end", () => {
        verdicts.push(verifyRequestSignature(request, Buffer.concat(chunks), SECRET));
        response.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    const send = (method: string, path: string, body: string, headers: Record<string, string>) =>
      new Promise<void>((resolve, reject) => {
        const request = httpRequest({ host: "127.0.0.1", port, method, path, headers }, (response) => {
          response.resume();
          response.on("end", resolve);
        });
        request.on("error", reject);
        request.end(body);
      });
    const signed = (method: string, target: string, body: string) => {
      const t = Math.floor(Date.now() / 1000);
      return {
        [SIGNATURE_HEADER]: `t=${t},v1=${sign(SECRET, t, method, target, "emails", "task-7", body)}`,
        "X-AppEngine-QueueName": "emails",
        "X-AppEngine-TaskName": "task-7",
      };
    };
    const target = "/work/a%2Fb/%7e?x=1&y=caf%C3%A9";
    try {
      await send("POST", target, "hello", signed("POST", target, "hello"));
      await send("DELETE", "/work", "", signed("DELETE", "/work", ""));
      await send("POST", target, "hello!", signed("POST", target, "hello")); // another body
      await send("POST", "/work/a/b/~?x=1&y=caf%C3%A9", "hello", signed("POST", target, "hello")); // another target
      await send("POST", target, "hello", { ...signed("POST", target, "hello"), "X-AppEngine-TaskName": "task-8" });
      await send("POST", target, "hello", {}); // unsigned
    } finally {
      server.close();
    }
    assert.deepEqual(verdicts, [true, true, false, false, false, false]);
  });
});
