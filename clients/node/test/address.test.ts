// The address rules every taskq client shares (the Python client's tests/client/test_address.py
// holds the same table): a URL's scheme says TLS and brings its default port, a bare host means
// taskq's port 50051 (never 443 or 80), and a malformed address is refused at once with what is
// wrong.

import assert from "node:assert/strict";
import net from "node:net";
import { syncBuiltinESMExports } from "node:module";
import tls from "node:tls";
import { describe, it } from "node:test";
import { createTaskqClient, InvalidAddressError, parseAddress, TaskqError, Code } from "@taskq/client";
import { freePort } from "./server.js";

describe("addresses", () => {
  const accepted: [string, string, boolean | undefined][] = [
    ["127.0.0.1:50051", "127.0.0.1:50051", undefined],
    ["taskq.example.com:8443", "taskq.example.com:8443", undefined],
    ["taskq", "taskq:50051", undefined],
    ["localhost", "localhost:50051", undefined],
    ["[::1]:7000", "[::1]:7000", undefined],
    ["[::1]", "[::1]:50051", undefined],
    ["https://taskq.example.com", "taskq.example.com:443", true],
    ["https://taskq.example.com/", "taskq.example.com:443", true],
    ["HTTPS://taskq.example.com:8443", "taskq.example.com:8443", true],
    ["https://[2001:db8::1]:9000", "[2001:db8::1]:9000", true],
    ["http://127.0.0.1:50051", "127.0.0.1:50051", false],
    ["http://taskq.example.com", "taskq.example.com:80", false],
    ["dns:///taskq.example.com:50051", "dns:///taskq.example.com:50051", undefined],
    ["dns:///taskq.example.com", "dns:///taskq.example.com:50051", undefined],
    ["dns://8.8.8.8/taskq.example.com:7000", "dns://8.8.8.8/taskq.example.com:7000", undefined],
    ["unix:/run/taskq.sock", "unix:/run/taskq.sock", undefined],
    ["unix:///run/taskq.sock", "unix:///run/taskq.sock", undefined],
    ["  localhost:50051\n", "localhost:50051", undefined],
    ["ipv4:127.0.0.1:7001,127.0.0.1:7002", "ipv4:127.0.0.1:7001,127.0.0.1:7002", undefined],
    ["ipv4:10.0.0.1", "ipv4:10.0.0.1:50051", undefined],
    ["ipv6:[::1]:7001,[::2]", "ipv6:[::1]:7001,[::2]:50051", undefined],
  ];
  for (const [address, target, tls] of accepted) {
    it(`reads ${JSON.stringify(address)} as ${target}`, () => {
      const parsed = parseAddress(address);
      assert.deepEqual([parsed.target, parsed.tls], [target, tls]);
    });
  }

  const refused: [string, string][] = [
    ["", "the host is missing"],
    ["localhost:", "the port must be a number from 1 to 65535"],
    ["localhost:http", "the port must be a number from 1 to 65535, not 'http'"],
    ["localhost:70000", "the port must be a number from 1 to 65535"],
    ["localhost:0", "the port must be a number from 1 to 65535"],
    ["::1", "an IPv6 address goes in brackets"],
    ["[::1", "closed with ]"],
    ["[not-ipv6]:1", "is not an IPv6 address"],
    ["[::1]x", "only :port may follow an IPv6 address"],
    ["local host:1", "is not a host name or IP address"],
    ["localhost:50051/path", "the port must be a number"],
    ["https://taskq.example.com/v1", "no path, query or fragment"],
    ["https://taskq.example.com?x=1", "no path, query or fragment"],
    ["https://user:pw@taskq.example.com", "no user name or password"],
    ["https://", "the host is missing"],
    // Python's urllib says "Port out of range 0-65535" here.
    ["https://taskq.example.com:99999", "the port must be a number from 1 to 65535, not '99999'"],
    ["https://taskq.example.com:0", "port 0 cannot be connected to"],
    ["grpc://taskq.example.com:50051", "grpc:// is not supported"],
    ["dns://taskq.example.com", "dns:///host:port"],
    ["unix:", "needs the path of a socket"],
    ["ipv4:localhost:7001", "ipv4: lists ipv4 addresses, not 'localhost:7001'"],
    ["ipv4:127.0.0.1:7001,", "the host is missing"],
    ["ipv6:127.0.0.1", "ipv6: lists ipv6 addresses"],
  ];
  for (const [address, reason] of refused) {
    it(`refuses ${JSON.stringify(address)}: ${reason}`, () => {
      assert.throws(
        () => parseAddress(address),
        (error: unknown) =>
          error instanceof InvalidAddressError &&
          error.message.includes(reason) &&
          error.message.includes("https://host[:port]"), // the accepted forms
      );
    });
  }

  it("quotes the address as given", () => {
    assert.throws(() => parseAddress("taskq.internal:grpc"), {
      message: /^invalid server address 'taskq.internal:grpc': the port must be a number from 1 to 65535, not 'grpc' \(use host\[:port\], /,
    });
  });

  it("makes a client with a malformed address fail at once, not in the resolver", () => {
    assert.throws(() => createTaskqClient({ address: "taskq.example.com:fifty" }), InvalidAddressError);
    assert.throws(() => createTaskqClient({ address: "grpc://taskq.example.com" }), InvalidAddressError);
  });

  it("refuses TLS settings with an http:// address", () => {
    assert.throws(() => createTaskqClient({ address: "http://127.0.0.1:50051", tls: {} }), {
      name: "InvalidAddressError",
      message: /http:\/\/ means plain text/,
    });
  });

  it("connects a bare host to port 50051, https:// to 443 over TLS, http:// to 80", async () => {
    // net.connect and tls.connect record where they are asked to connect, and connect to a
    // port nothing listens on instead.
    const dead = await freePort();
    const dialed: string[] = [];
    const { connect: netConnect } = net;
    const { connect: tlsConnect } = tls;
    const record = (kind: string, options: { host?: string; port?: number }) => {
      dialed.push(`${kind} ${options.host}:${options.port}`);
      return netConnect({ host: "127.0.0.1", port: dead });
    };
    net.connect = ((options: net.NetConnectOpts) => record("tcp", options as net.TcpNetConnectOpts)) as typeof net.connect;
    tls.connect = ((options: tls.ConnectionOptions) => record("tls", options)) as typeof tls.connect;
    syncBuiltinESMExports();
    try {
      for (const [address, want] of [
        ["127.0.0.1", "tcp 127.0.0.1:50051"],
        ["[::1]", "tcp ::1:50051"],
        ["https://127.0.0.1", "tls 127.0.0.1:443"],
        ["http://127.0.0.1", "tcp 127.0.0.1:80"],
        ["dns:///127.0.0.1", "tcp 127.0.0.1:50051"],
        ["ipv4:127.0.0.1", "tcp 127.0.0.1:50051"],
        ["https://127.0.0.1:50052", "tls 127.0.0.1:50052"],
      ] as const) {
        dialed.length = 0;
        const client = createTaskqClient({ address, retry: false, timeoutMs: 5_000 });
        await assert.rejects(
          client.getQueue("q"),
          (error: unknown) => error instanceof TaskqError && error.code === Code.Unavailable,
        );
        await client.close();
        assert.equal(dialed[0], want, address);
      }
    } finally {
      net.connect = netConnect;
      tls.connect = tlsConnect;
      syncBuiltinESMExports();
    }
  });
});
