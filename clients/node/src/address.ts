// Server addresses: what the client accepts, where it connects, and whether the address itself
// asks for TLS. The rules are every taskq client's (the Python client and the CLI, Go, Java):
//
// | address                                            | port                      | TLS                         |
// |----------------------------------------------------|---------------------------|-----------------------------|
// | `host:port`, `[ipv6]:port`                         | as given                  | when TLS settings are given |
// | `host`, `[ipv6]`                                   | 50051, taskq's own        | when TLS settings are given |
// | `https://host[:port]`                              | as given, else 443        | always                      |
// | `http://host[:port]`                               | as given, else 80         | never                       |
// | `dns:///host[:port]`, `dns://dns-server/host[:port]` | as given, else 50051    | when TLS settings are given |
// | `unix:path`, `unix:///absolute/path`               | (a Unix socket)           | when TLS settings are given |
// | `ipv4:ip[:port],...`, `ipv6:[ip][:port],...`       | each as given, else 50051 | when TLS settings are given |
//
// Only a URL's scheme brings its default port: a bare host is taskq's port, never 443 or 80.
// Anything else (another scheme, a path, query or user after the host, a port outside 1-65535,
// an IPv6 address without brackets, spaces) throws InvalidAddressError when the client is
// made, instead of failing later with UNAVAILABLE.

import { isIPv4, isIPv6 } from "node:net";

/** The port of an address that names none and is not a URL: the one `taskq serve` uses. */
export const DEFAULT_PORT = 50051;

/** The accepted forms, at the end of every InvalidAddressError's message. */
export const ADDRESS_FORMS =
  "host[:port], [ipv6][:port], https://host[:port], http://host[:port], dns:///host[:port], unix:path " +
  "or ipv4:ip[:port],...";

/** A server address that is none of the accepted forms; the message says why. */
export class InvalidAddressError extends Error {
  override readonly name = "InvalidAddressError";
  /** The address as given. */
  readonly address: string;
  /** What is wrong with it. */
  readonly reason: string;

  constructor(address: string, reason: string) {
    super(`invalid server address ${quote(address)}: ${reason} (use ${ADDRESS_FORMS})`);
    this.address = address;
    this.reason = reason;
  }
}

/** One host and port to connect to; `host` is unbracketed (`::1`). */
export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

/** Where an address leads. */
export type Destination =
  | { readonly kind: "endpoint"; readonly endpoint: Endpoint }
  | { readonly kind: "dns"; readonly dnsServer: string; readonly endpoint: Endpoint }
  | { readonly kind: "unix"; readonly path: string }
  | { readonly kind: "list"; readonly endpoints: readonly Endpoint[] };

/** An address read by the rules above. */
export interface Address {
  /** Where it leads, in gRPC's notation: host:port, dns://[server]/host:port, unix:path or an
   * ipv4:/ipv6: list, with the default port added. */
  readonly target: string;
  /** true for https://, false for http://, undefined when the address leaves it to the
   * settings. */
  readonly tls: boolean | undefined;
  readonly destination: Destination;
}

const HOST_NAME = /^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$/;

/** Reads a server address; throws InvalidAddressError if it is malformed. */
export function parseAddress(address: string): Address {
  const text = address.trim();
  const colon = text.indexOf(":");
  const separator = colon >= 0;
  const scheme = (separator ? text.slice(0, colon) : text).toLowerCase();
  const rest = separator ? text.slice(colon + 1) : "";
  if (separator && (scheme === "http" || scheme === "https") && rest.startsWith("//")) {
    return parseUrl(address, rest.slice(2), scheme);
  }
  if (separator && scheme === "dns" && rest.startsWith("//")) {
    const slash = rest.indexOf("/", 2);
    if (slash < 0) {
      throw new InvalidAddressError(address, "dns: addresses are dns:///host:port (or dns://dns-server/host:port)");
    }
    const dnsServer = rest.slice(2, slash);
    const endpoint = parseEndpoint(address, rest.slice(slash + 1));
    return {
      target: `dns://${dnsServer}/${formatEndpoint(endpoint)}`,
      tls: undefined,
      destination: { kind: "dns", dnsServer, endpoint },
    };
  }
  if (separator && (scheme === "ipv4" || scheme === "ipv6")) {
    const endpoints = rest.split(",").map((part) => parseIpEndpoint(address, scheme, part));
    return {
      target: `${scheme}:${endpoints.map(formatEndpoint).join(",")}`,
      tls: undefined,
      destination: { kind: "list", endpoints },
    };
  }
  if (separator && scheme === "unix") {
    if (rest.replace(/^\/+|\/+$/g, "") === "") {
      throw new InvalidAddressError(address, "unix: needs the path of a socket");
    }
    // unix:path is relative (or absolute, with a leading /); unix:///path is absolute.
    const path = rest.startsWith("//") ? rest.replace(/^\/\/[^/]*/, "") : rest;
    return { target: text, tls: undefined, destination: { kind: "unix", path } };
  }
  if (text.includes("://")) {
    throw new InvalidAddressError(address, `${scheme}:// is not supported`);
  }
  const endpoint = parseEndpoint(address, text);
  return { target: formatEndpoint(endpoint), tls: undefined, destination: { kind: "endpoint", endpoint } };
}

/** host:port, with IPv6 addresses in brackets. */
export function formatEndpoint(endpoint: Endpoint): string {
  return `${endpoint.host.includes(":") ? `[${endpoint.host}]` : endpoint.host}:${endpoint.port}`;
}

/** The rest of an http:// or https:// address, after the "//". */
function parseUrl(address: string, rest: string, scheme: "http" | "https"): Address {
  const end = rest.search(/[/?#]/);
  const authority = end < 0 ? rest : rest.slice(0, end);
  const tail = end < 0 ? "" : rest.slice(end);
  if (tail !== "" && tail !== "/") {
    const pathEnd = tail.search(/[?#]/);
    const path = pathEnd < 0 ? tail : tail.slice(0, pathEnd);
    // A URL that ends in "?" or "#" has an empty query or fragment: nothing after the host.
    if ((path !== "" && path !== "/") || tail.slice(path.length).replace(/[?#]/g, "") !== "") {
      throw new InvalidAddressError(address, "a server address has no path, query or fragment");
    }
  }
  if (authority.includes("@")) {
    throw new InvalidAddressError(address, "a server address has no user name or password");
  }
  let host: string;
  let port: string;
  if (authority.startsWith("[")) {
    const close = authority.indexOf("]");
    if (close < 0) {
      throw new InvalidAddressError(address, "an IPv6 address opened with [ is closed with ]");
    }
    host = authority.slice(1, close);
    port = authority.slice(close + 1);
    if (port !== "" && !port.startsWith(":")) {
      throw new InvalidAddressError(address, "only :port may follow an IPv6 address");
    }
    port = port.slice(1);
    if (host === "") {
      throw new InvalidAddressError(address, "the host is missing");
    }
    if (!isIPv6(host)) {
      throw new InvalidAddressError(address, `${quote(host)} is not an IPv6 address`);
    }
    host = normalizeIPv6(host);
  } else {
    const hostEnd = authority.indexOf(":");
    host = (hostEnd < 0 ? authority : authority.slice(0, hostEnd)).toLowerCase(); // as a URL's host is read
    port = hostEnd < 0 ? "" : authority.slice(hostEnd + 1);
    if (host === "") {
      throw new InvalidAddressError(address, "the host is missing");
    }
    if (!HOST_NAME.test(host)) {
      throw new InvalidAddressError(address, `${quote(host)} is not a host name or IP address`);
    }
  }
  let number = scheme === "https" ? 443 : 80;
  if (port !== "") {
    // "https://host:" is the default port, as in a URL.
    if (!/^[0-9]+$/.test(port) || Number(port) > 65535) {
      throw new InvalidAddressError(address, `the port must be a number from 1 to 65535, not ${quote(port)}`);
    }
    if (Number(port) === 0) {
      throw new InvalidAddressError(address, "port 0 cannot be connected to");
    }
    number = Number(port);
  }
  const endpoint = { host, port: number };
  return {
    target: formatEndpoint(endpoint),
    tls: scheme === "https",
    destination: { kind: "endpoint", endpoint },
  };
}

/** host, host:port, [ipv6] or [ipv6]:port, with the default port. */
function parseEndpoint(address: string, text: string): Endpoint {
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) {
      throw new InvalidAddressError(address, "an IPv6 address opened with [ is closed with ]");
    }
    const host = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (!isIPv6(host)) {
      throw new InvalidAddressError(address, `${quote(host)} is not an IPv6 address`);
    }
    if (rest !== "" && !rest.startsWith(":")) {
      throw new InvalidAddressError(address, "only :port may follow an IPv6 address");
    }
    return { host, port: rest === "" ? DEFAULT_PORT : parsePort(address, rest.slice(1)) };
  }
  if (text.split(":").length > 2) {
    throw new InvalidAddressError(address, "an IPv6 address goes in brackets, as in [::1]:50051");
  }
  const colon = text.indexOf(":");
  const host = colon < 0 ? text : text.slice(0, colon);
  if (host === "") {
    throw new InvalidAddressError(address, "the host is missing");
  }
  if (!HOST_NAME.test(host)) {
    throw new InvalidAddressError(address, `${quote(host)} is not a host name or IP address`);
  }
  return { host, port: colon < 0 ? DEFAULT_PORT : parsePort(address, text.slice(colon + 1)) };
}

/** One ip:port of an ipv4: or ipv6: list. */
function parseIpEndpoint(address: string, scheme: "ipv4" | "ipv6", text: string): Endpoint {
  const endpoint = parseEndpoint(address, text);
  if (!(scheme === "ipv4" ? isIPv4(endpoint.host) : isIPv6(endpoint.host))) {
    throw new InvalidAddressError(address, `${scheme}: lists ${scheme} addresses, not ${quote(text)}`);
  }
  return endpoint;
}

function parsePort(address: string, text: string): number {
  const port = Number(text);
  if (!/^[0-9]+$/.test(text) || port < 1 || port > 65535) {
    throw new InvalidAddressError(address, `the port must be a number from 1 to 65535, not ${quote(text)}`);
  }
  return port;
}

/** An IPv6 address written as RFC 5952 says (lowercase, longest run of zeros as ::), as the
 * other clients write a URL's IPv6 host. */
function normalizeIPv6(host: string): string {
  const zone = host.indexOf("%");
  const bare = zone < 0 ? host : host.slice(0, zone);
  try {
    const normalized = new URL(`http://[${bare}]/`).hostname.slice(1, -1);
    return zone < 0 ? normalized : normalized + host.slice(zone);
  } catch {
    return host;
  }
}

/** The text in single quotes, as the other clients' messages have it, control characters
 * escaped. */
function quote(text: string): string {
  const escaped = JSON.stringify(text).slice(1, -1).replace(/\\"/g, '"').replace(/'/g, "\\'");
  return `'${escaped}'`;
}
