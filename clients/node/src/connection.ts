// How the client's HTTP/2 sessions reach the server an address names: Connect's transport is
// given a base URL (for the :scheme and :authority of its requests) and opens each session
// through `createConnection`, which connects where the address leads, over TLS when the address
// or the settings say so. This is what gRPC's resolvers do in the other clients: a host name
// through the system's resolver (dns://server/ through that DNS server), a Unix socket, or an
// ipv4:/ipv6: list, used in turn from the first.

import { Resolver } from "node:dns";
import type { LookupFunction, NetConnectOpts, Socket } from "node:net";
import { connect as netConnect, isIP, isIPv4, isIPv6 } from "node:net";
import type { Duplex } from "node:stream";
import { checkServerIdentity, connect as tlsConnect, type ConnectionOptions, type PeerCertificate } from "node:tls";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { formatEndpoint, InvalidAddressError, parseAddress, type Destination, type Endpoint } from "./address.js";
import { readTlsSettings, type TlsMaterial, type TlsSettings } from "./tls.js";

/** Errors of connections that were never made (refused, unreachable, a failed TLS handshake):
 * `connectionFailureIsUnavailable` reports the calls they fail as UNAVAILABLE, as gRPC does. */
const connectFailures = new WeakSet<Error>();

/** An interceptor (the innermost) that reports a call failed by a connection that could not be
 * made as UNAVAILABLE: Connect says INTERNAL for a refused TLS handshake, where gRPC says
 * UNAVAILABLE (and the client retries it, as a server coming up may still be loading its
 * certificates). */
export function connectionFailureIsUnavailable(): Interceptor {
  return (next) => async (request) => {
    try {
      return await next(request);
    } catch (error) {
      const failure = ConnectError.from(error);
      if (failure.code === Code.Unavailable || !causes(failure).some((cause) => connectFailures.has(cause))) {
        throw error;
      }
      throw new ConnectError(`cannot connect: ${failure.rawMessage}`, Code.Unavailable, failure.metadata, undefined, failure);
    }
  };
}

function causes(error: Error): Error[] {
  const chain: Error[] = [];
  for (let cause: unknown = error; cause instanceof Error && !chain.includes(cause); cause = cause.cause) {
    chain.push(cause);
  }
  return chain;
}

/** Whether every server `destination` names is on this machine: a Unix socket, localhost or a
 * loopback IP address (127.0.0.0/8, ::1). Traffic to it never crosses a network. */
export function isLocal(destination: Destination): boolean {
  const endpoints =
    destination.kind === "unix" ? [] : destination.kind === "list" ? destination.endpoints : [destination.endpoint];
  return endpoints.every(({ host }) => {
    const name = host.toLowerCase();
    if (name === "localhost" || name === "localhost.") {
      return true;
    }
    if (isIPv4(host)) {
      return host.startsWith("127.");
    }
    return isIPv6(host) && isIPv6Loopback(host.replace(/%.*$/, ""));
  });
}

function isIPv6Loopback(host: string): boolean {
  try {
    return new URL(`http://[${host}]/`).hostname === "[::1]";
  } catch {
    return false;
  }
}

/** What the transport needs to reach the server. */
export interface Connection {
  /** The base URL of the requests: http:// or https:// and the authority. */
  readonly baseUrl: string;
  /** Opens a socket (a TLS one when `tls`) to the server, for http2.connect. */
  readonly createConnection: () => Duplex;
  readonly tls: boolean;
  /** Whether the server is on this machine (see isLocal). */
  readonly local: boolean;
}

/** Reads `address` and the TLS settings; throws InvalidAddressError or InvalidTlsSettingsError. */
export function connectionFor(address: string, settings: TlsSettings | undefined): Connection {
  const parsed = parseAddress(address);
  if (parsed.tls === false && settings !== undefined) {
    throw new InvalidAddressError(address, "http:// means plain text, but TLS settings were given (use https:// or host:port)");
  }
  const tls = settings !== undefined || parsed.tls === true;
  const material = tls ? readTlsSettings(settings ?? {}) : undefined;
  const destination = parsed.destination;
  let authority: string;
  let open: () => Socket;
  switch (destination.kind) {
    case "endpoint":
    case "dns": {
      const endpoint = destination.endpoint;
      authority = formatEndpoint(endpoint);
      const lookup =
        destination.kind === "dns" && destination.dnsServer !== "" ? lookupThrough(destination.dnsServer) : undefined;
      open = () => connectTo(endpoint, undefined, lookup);
      break;
    }
    case "unix":
      // As gRPC: a Unix socket's authority, and the name TLS checks, is localhost.
      authority = "localhost";
      open = () => connectTo(undefined, destination.path, undefined);
      break;
    case "list": {
      // The first endpoint first; after a connection fails, the next one (gRPC's pick first
      // tries them in turn too). The authority (and the name TLS checks) is the first entry's.
      authority = formatEndpoint(destination.endpoints[0]!);
      let next = 0;
      open = () => {
        const endpoint = destination.endpoints[next % destination.endpoints.length]!;
        const socket = connectTo(endpoint, undefined, undefined);
        const index = next;
        socket.once("error", (error) => {
          if (connectFailures.has(error) && next === index) {
            next += 1;
          }
        });
        return socket;
      };
      break;
    }
  }

  function connectTo(endpoint: Endpoint | undefined, path: string | undefined, through: LookupFunction | undefined): Socket {
    const where: NetConnectOpts =
      path !== undefined ? { path } : { host: endpoint!.host, port: endpoint!.port, lookup: through };
    const socket = material ? tlsConnect(tlsOptions(where, material)) : netConnect(where);
    // Before the session sees the error: it was the connection's (or the handshake's).
    let connected = false;
    socket.once(material ? "secureConnect" : "connect", () => (connected = true));
    socket.once("error", (error) => {
      if (!connected) {
        connectFailures.add(error);
      }
    });
    return socket;
  }

  function tlsOptions(where: NetConnectOpts, material: TlsMaterial): ConnectionOptions {
    // The name the certificate must hold: the server name, else the authority's host.
    const name = material.serverName ?? hostOf(authority);
    return {
      ...where,
      ALPNProtocols: ["h2"],
      ca: material.ca,
      cert: material.cert,
      key: material.key,
      // SNI carries names, not IP addresses (RFC 6066).
      servername: isIP(name) ? "" : name,
      checkServerIdentity: (_host: string, certificate: PeerCertificate) => checkServerIdentity(name, certificate),
    };
  }

  return {
    baseUrl: `${tls ? "https" : "http"}://${authority}`,
    createConnection: open,
    tls,
    local: isLocal(destination),
  };
}

/** The host of host:port ([ipv6]:port), unbracketed. */
function hostOf(authority: string): string {
  const host = authority.slice(0, authority.lastIndexOf(":"));
  return host.startsWith("[") ? host.slice(1, -1) : host;
}

/** A lookup function for net.connect that asks `server` (ip or ip:port, [ipv6]:port) instead
 * of the system's resolver, as dns://server/host does in gRPC. */
function lookupThrough(server: string): LookupFunction {
  const resolver = new Resolver();
  resolver.setServers([server]);
  return (hostname, options, callback) => {
    const all = typeof options === "object" && options.all === true;
    const family = typeof options === "object" ? options.family : options;
    const done = (error: NodeJS.ErrnoException | null, addresses: { address: string; family: number }[]) => {
      if (error || addresses.length === 0) {
        const failure = error ?? Object.assign(new Error(`${hostname} has no address at ${server}`), { code: "ENOTFOUND" });
        (callback as (error: NodeJS.ErrnoException) => void)(failure);
      } else if (all) {
        (callback as (error: null, addresses: { address: string; family: number }[]) => void)(null, addresses);
      } else {
        (callback as (error: null, address: string, family: number) => void)(null, addresses[0]!.address, addresses[0]!.family);
      }
    };
    const v6 = () =>
      resolver.resolve6(hostname, (error, addresses) => done(error, (addresses ?? []).map((address) => ({ address, family: 6 }))));
    if (family === 6 || family === "IPv6") {
      v6();
      return;
    }
    resolver.resolve4(hostname, (error, addresses) => {
      if ((error || addresses.length === 0) && family !== 4 && family !== "IPv4") {
        v6();
      } else {
        done(error, (addresses ?? []).map((address) => ({ address, family: 4 })));
      }
    });
  };
}
