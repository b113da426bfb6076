// Verifying the X-Taskq-Signature header of HTTP push requests (version v1).
//
// A queue with an HTTP target delivers each task as an HTTP request; when the server has
// signing secrets, the request carries
//
//     X-Taskq-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]
//
// with one v1 per secret the server signs with (several while secrets are rotated). Each is
// the hex HMAC-SHA256, keyed with the secret, of
//
//     t \n METHOD \n target \n queue id \n task id \n hex(SHA-256(body))
//
// where the target is the request target as sent (path, and `?` and the query if any), and the
// queue and task ids are the X-AppEngine-QueueName and X-AppEngine-TaskName headers.

import { createHash, createHmac, timingSafeEqual } from "node:crypto";

/** The header carrying the signature. */
export const SIGNATURE_HEADER = "X-Taskq-Signature";

/** How far the signature's time may be from the receiver's clock, either way, ms, unless
 * `toleranceMs` says otherwise: 5 minutes. */
export const DEFAULT_SIGNATURE_TOLERANCE_MS = 300_000;

/** What `verifySignature` checks. */
export interface SignedRequest {
  /** The X-Taskq-Signature header's value (several values are joined with commas). */
  header: string | readonly string[] | undefined | null;
  /** The secret shared with the server (used as its UTF-8 bytes). */
  secret: string;
  /** The request's method. */
  method: string;
  /** The request target as sent: the path, and `?` and the query if any, percent-encoding
   * untouched (Node's `request.url`). */
  target: string;
  /** The X-AppEngine-QueueName header: the queue's id. */
  queue: string;
  /** The X-AppEngine-TaskName header: the task's id. */
  task: string;
  /** The raw body (a string counts as its UTF-8 bytes); unset or empty when there is none. */
  body?: Uint8Array | string;
  /** The receiver's time; default now. */
  now?: Date;
  /** How far t may be from `now`, either way, ms; default 300,000. */
  toleranceMs?: number;
}

/**
 * Whether an HTTP push request's X-Taskq-Signature header is valid: its `t` is within the
 * tolerance of now, and one of its `v1` signatures is the one `secret` gives for this
 * request (compared in constant time). A missing or malformed header is not valid; it never
 * throws for one.
 */
export function verifySignature(request: SignedRequest): boolean {
  const parsed = parseHeader(request.header);
  if (parsed === undefined || !request.secret) {
    return false;
  }
  const now = (request.now ?? new Date()).getTime();
  const toleranceMs = request.toleranceMs ?? DEFAULT_SIGNATURE_TOLERANCE_MS;
  if (!(Math.abs(now - Number(parsed.timestamp) * 1000) <= toleranceMs)) {
    return false;
  }
  const body = request.body ?? new Uint8Array();
  const message = [
    parsed.timestamp,
    String(request.method).toUpperCase(),
    request.target,
    request.queue,
    request.task,
    createHash("sha256").update(body).digest("hex"),
  ].join("\n");
  const expected = Buffer.from(createHmac("sha256", request.secret).update(message).digest("hex"));
  let valid = false;
  for (const signature of parsed.signatures) {
    const candidate = Buffer.from(signature);
    if (candidate.length === expected.length && timingSafeEqual(candidate, expected)) {
      valid = true;
    }
  }
  return valid;
}

/** The parts of a request `verifyRequestSignature` reads: Node's `http.IncomingMessage`
 * and `http2.Http2ServerRequest` have them. */
export interface IncomingRequest {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly headers: Readonly<Record<string, string | readonly string[] | undefined>>;
}

/**
 * `verifySignature` for a request a Node HTTP server received: method, target (`url`) and
 * headers come from the request; the raw body, which the request's stream has already
 * delivered, is given.
 *
 *     http.createServer(async (request, response) => {
 *       const chunks: Buffer[] = [];
 *       for await (const chunk of request) chunks.push(chunk);
 *       const body = Buffer.concat(chunks);
 *       if (!verifyRequestSignature(request, body, secret)) { response.writeHead(403).end(); return; }
 *       ...
 *     });
 */
export function verifyRequestSignature(
  request: IncomingRequest,
  body: Uint8Array | string | undefined,
  secret: string,
  options: { now?: Date; toleranceMs?: number } = {},
): boolean {
  const single = (name: string) => {
    const value = request.headers[name];
    return typeof value === "string" ? value : (value?.[0] ?? "");
  };
  return verifySignature({
    header: request.headers[SIGNATURE_HEADER.toLowerCase()],
    secret,
    method: request.method ?? "",
    target: request.url ?? "",
    queue: single("x-appengine-queuename"),
    task: single("x-appengine-taskname"),
    body,
    ...options,
  });
}

/** The header's t (decimal digits) and its v1 values; undefined when it is malformed or has
 * no t or no v1. Entries are separated by commas, with optional spaces around them; empty
 * entries and those of other versions are ignored. */
function parseHeader(header: SignedRequest["header"]): { timestamp: string; signatures: string[] } | undefined {
  const text = typeof header === "string" ? header : Array.isArray(header) ? header.join(",") : undefined;
  if (text === undefined) {
    return undefined;
  }
  let timestamp: string | undefined;
  const signatures: string[] = [];
  for (const raw of text.split(",")) {
    const entry = raw.trim();
    if (entry === "") {
      continue;
    }
    const equals = entry.indexOf("=");
    if (equals < 0) {
      return undefined;
    }
    const key = entry.slice(0, equals);
    const value = entry.slice(equals + 1);
    if (key === "t") {
      if (timestamp !== undefined || !/^[0-9]{1,15}$/.test(value)) {
        return undefined;
      }
      timestamp = value;
    } else if (key === "v1") {
      signatures.push(value);
    }
  }
  return timestamp === undefined || signatures.length === 0 ? undefined : { timestamp, signatures };
}
