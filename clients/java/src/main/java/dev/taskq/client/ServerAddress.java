package dev.taskq.client;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Pattern;

/**
 * A server address read by the rules every taskq client shares (the Python client and the
 * {@code taskq} CLI, Go, TypeScript):
 *
 * <table>
 *   <caption>Address forms</caption>
 *   <tr><th>address</th><th>port</th><th>TLS</th></tr>
 *   <tr><td>{@code host:port}, {@code [ipv6]:port}</td><td>as given</td><td>when TLS settings are given</td></tr>
 *   <tr><td>{@code host}, {@code [ipv6]}</td><td>50051, taskq's own</td><td>when TLS settings are given</td></tr>
 *   <tr><td>{@code https://host[:port]}</td><td>as given, else 443</td><td>always</td></tr>
 *   <tr><td>{@code http://host[:port]}</td><td>as given, else 80</td><td>never</td></tr>
 *   <tr><td>{@code dns:///host[:port]}, {@code dns://dns-server/host[:port]}</td><td>as given, else 50051</td><td>when TLS settings are given</td></tr>
 *   <tr><td>{@code unix:path}, {@code unix:///absolute/path}</td><td>(a Unix socket)</td><td>when TLS settings are given</td></tr>
 *   <tr><td>{@code ipv4:ip[:port],...}, {@code ipv6:[ip][:port],...}</td><td>each as given, else 50051</td><td>when TLS settings are given</td></tr>
 * </table>
 *
 * <p>Only a URL's scheme brings its default port: a bare host means taskq's port, never 443 or
 * 80 (grpc-java's defaults, which would miss a server on 50051 without a word). Anything else
 * (another scheme, a path, query or user after the host, a port outside 1-65535, an IPv6
 * address without brackets, spaces) throws {@link InvalidAddressException} at once, instead of
 * failing later in gRPC's resolver.
 */
public final class ServerAddress {
  /** The port of an address that names none and is not a URL: the one {@code taskq serve} uses. */
  public static final int DEFAULT_PORT = 50051;

  /** The accepted forms, at the end of every {@link InvalidAddressException}'s message. */
  public static final String FORMS = "host[:port], [ipv6][:port], https://host[:port], http://host[:port], "
      + "dns:///host[:port], unix:path or ipv4:ip[:port],...";

  /** What an address says about TLS. */
  public enum Tls {
    /** The address leaves it to the client's settings: TLS when they are given. */
    FROM_SETTINGS,
    /** An {@code https://} address. */
    ALWAYS,
    /** An {@code http://} address: TLS settings with it are an error. */
    NEVER,
  }

  /** Which form an address has. */
  enum Kind { ENDPOINT, DNS, UNIX, LIST }

  private static final Pattern HOST_NAME = Pattern.compile("[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\\.?");

  private final String target;
  private final Tls tls;
  private final Kind kind;
  private final List<String> endpoints;

  private ServerAddress(String target, Tls tls, Kind kind, List<String> endpoints) {
    this.target = target;
    this.tls = tls;
    this.kind = kind;
    this.endpoints = List.copyOf(endpoints);
  }

  /**
   * Where the address leads, in gRPC's notation: host:port, dns://[server]/host:port, unix:path
   * or an ipv4:/ipv6: list, with the default port added.
   */
  public String target() {
    return target;
  }

  /** What the address says about TLS. */
  public Tls tls() {
    return tls;
  }

  Kind kind() {
    return kind;
  }

  /** The host:port entries of an ipv4:/ipv6: list; the one host:port of other forms. */
  List<String> endpoints() {
    return endpoints;
  }

  /**
   * Whether every server the address names is on this machine: a Unix socket, localhost or a
   * loopback IP address (127.0.0.0/8, ::1). Traffic to it never crosses a network.
   */
  public boolean isLocal() {
    for (String endpoint : endpoints) {
      String host = endpoint.substring(0, endpoint.lastIndexOf(':'));
      if (host.equalsIgnoreCase("localhost") || host.equalsIgnoreCase("localhost.")) {
        continue;
      }
      boolean loopback = host.startsWith("[")
          ? "::1".equals(IpAddresses.normalizeIpv6(host.substring(1, host.length() - 1).replaceFirst("%.*", "")))
          : IpAddresses.isIpv4(host) && host.startsWith("127.");
      if (!loopback) {
        return false;
      }
    }
    return true;
  }

  @Override
  public String toString() {
    return target;
  }

  /** Reads a server address; throws {@link InvalidAddressException} if it is malformed. */
  public static ServerAddress parse(String address) {
    String text = address.strip();
    int colon = text.indexOf(':');
    boolean separator = colon >= 0;
    String scheme = (separator ? text.substring(0, colon) : text).toLowerCase(Locale.ROOT);
    String rest = separator ? text.substring(colon + 1) : "";
    if (separator && (scheme.equals("http") || scheme.equals("https")) && rest.startsWith("//")) {
      return url(address, rest.substring(2), scheme);
    }
    if (separator && scheme.equals("dns") && rest.startsWith("//")) {
      int slash = rest.indexOf('/', 2);
      if (slash < 0) {
        throw new InvalidAddressException(address,
            "dns: addresses are dns:///host:port (or dns://dns-server/host:port)");
      }
      String endpoint = endpoint(address, rest.substring(slash + 1));
      return new ServerAddress("dns://" + rest.substring(2, slash) + "/" + endpoint, Tls.FROM_SETTINGS,
          Kind.DNS, List.of(endpoint));
    }
    if (separator && (scheme.equals("ipv4") || scheme.equals("ipv6"))) {
      List<String> endpoints = new ArrayList<>();
      for (String part : rest.split(",", -1)) {
        endpoints.add(ipEndpoint(address, scheme, part));
      }
      return new ServerAddress(scheme + ":" + String.join(",", endpoints), Tls.FROM_SETTINGS, Kind.LIST,
          endpoints);
    }
    if (separator && scheme.equals("unix")) {
      if (rest.replaceAll("^/+|/+$", "").isEmpty()) {
        throw new InvalidAddressException(address, "unix: needs the path of a socket");
      }
      return new ServerAddress(text, Tls.FROM_SETTINGS, Kind.UNIX, List.of());
    }
    if (text.contains("://")) {
      throw new InvalidAddressException(address, scheme + ":// is not supported");
    }
    String endpoint = endpoint(address, text);
    return new ServerAddress(endpoint, Tls.FROM_SETTINGS, Kind.ENDPOINT, List.of(endpoint));
  }

  /** The rest of an http:// or https:// address, after the "//". */
  private static ServerAddress url(String address, String rest, String scheme) {
    int end = indexOfAny(rest, "/?#");
    String authority = end < 0 ? rest : rest.substring(0, end);
    String tail = end < 0 ? "" : rest.substring(end);
    if (!tail.isEmpty() && !tail.equals("/")) {
      int pathEnd = indexOfAny(tail, "?#");
      String path = pathEnd < 0 ? tail : tail.substring(0, pathEnd);
      // A URL that ends in "?" or "#" has an empty query or fragment: nothing after the host.
      if ((!path.isEmpty() && !path.equals("/")) || !tail.substring(path.length()).replaceAll("[?#]", "").isEmpty()) {
        throw new InvalidAddressException(address, "a server address has no path, query or fragment");
      }
    }
    if (authority.contains("@")) {
      throw new InvalidAddressException(address, "a server address has no user name or password");
    }
    String host;
    String port;
    if (authority.startsWith("[")) {
      int close = authority.indexOf(']');
      if (close < 0) {
        throw new InvalidAddressException(address, "an IPv6 address opened with [ is closed with ]");
      }
      host = authority.substring(1, close);
      port = authority.substring(close + 1);
      if (!port.isEmpty() && !port.startsWith(":")) {
        throw new InvalidAddressException(address, "only :port may follow an IPv6 address");
      }
      port = port.isEmpty() ? "" : port.substring(1);
      if (host.isEmpty()) {
        throw new InvalidAddressException(address, "the host is missing");
      }
      String normalized = IpAddresses.normalizeIpv6(host);
      if (normalized == null) {
        throw new InvalidAddressException(address, quote(host) + " is not an IPv6 address");
      }
      host = "[" + normalized + "]";
    } else {
      int hostEnd = authority.indexOf(':');
      host = (hostEnd < 0 ? authority : authority.substring(0, hostEnd)).toLowerCase(Locale.ROOT);
      port = hostEnd < 0 ? "" : authority.substring(hostEnd + 1);
      if (host.isEmpty()) {
        throw new InvalidAddressException(address, "the host is missing");
      }
      if (!HOST_NAME.matcher(host).matches()) {
        throw new InvalidAddressException(address, quote(host) + " is not a host name or IP address");
      }
    }
    int number = scheme.equals("https") ? 443 : 80;
    if (!port.isEmpty()) { // "https://host:" is the default port, as in a URL
      number = number(port);
      if (number < 0) {
        throw new InvalidAddressException(address,
            "the port must be a number from 1 to 65535, not " + quote(port));
      }
      if (number == 0) {
        throw new InvalidAddressException(address, "port 0 cannot be connected to");
      }
    }
    String endpoint = host + ":" + number;
    return new ServerAddress(endpoint, scheme.equals("https") ? Tls.ALWAYS : Tls.NEVER, Kind.ENDPOINT,
        List.of(endpoint));
  }

  /** host:port from host, host:port, [ipv6] or [ipv6]:port, with the default port. */
  private static String endpoint(String address, String text) {
    if (text.startsWith("[")) {
      int close = text.indexOf(']');
      if (close < 0) {
        throw new InvalidAddressException(address, "an IPv6 address opened with [ is closed with ]");
      }
      String host = text.substring(1, close);
      String rest = text.substring(close + 1);
      if (IpAddresses.normalizeIpv6(host) == null) {
        throw new InvalidAddressException(address, quote(host) + " is not an IPv6 address");
      }
      if (!rest.isEmpty() && !rest.startsWith(":")) {
        throw new InvalidAddressException(address, "only :port may follow an IPv6 address");
      }
      return "[" + host + "]:" + (rest.isEmpty() ? DEFAULT_PORT : port(address, rest.substring(1)));
    }
    if (text.chars().filter(c -> c == ':').count() > 1) {
      throw new InvalidAddressException(address, "an IPv6 address goes in brackets, as in [::1]:50051");
    }
    int colon = text.indexOf(':');
    String host = colon < 0 ? text : text.substring(0, colon);
    if (host.isEmpty()) {
      throw new InvalidAddressException(address, "the host is missing");
    }
    if (!HOST_NAME.matcher(host).matches()) {
      throw new InvalidAddressException(address, quote(host) + " is not a host name or IP address");
    }
    return host + ":" + (colon < 0 ? DEFAULT_PORT : port(address, text.substring(colon + 1)));
  }

  /** One ip:port of an ipv4: or ipv6: list, with the default port. */
  private static String ipEndpoint(String address, String scheme, String text) {
    String endpoint = endpoint(address, text);
    String host = endpoint.substring(0, endpoint.lastIndexOf(':'));
    boolean valid = scheme.equals("ipv4")
        ? IpAddresses.isIpv4(host)
        : host.startsWith("[") && IpAddresses.normalizeIpv6(host.substring(1, host.length() - 1)) != null;
    if (!valid) {
      throw new InvalidAddressException(address, scheme + ": lists " + scheme + " addresses, not " + quote(text));
    }
    return endpoint;
  }

  private static int port(String address, String text) {
    int port = number(text);
    if (port < 1 || port > 65535) {
      throw new InvalidAddressException(address, "the port must be a number from 1 to 65535, not " + quote(text));
    }
    return port;
  }

  /** The value of a string of ASCII digits (leading zeros allowed), -1 for anything else or
   * more than 65535. */
  private static int number(String text) {
    if (!text.matches("[0-9]+")) {
      return -1;
    }
    String digits = text.replaceFirst("^0+(?=.)", "");
    return digits.length() > 5 || Integer.parseInt(digits) > 65535 ? -1 : Integer.parseInt(digits);
  }

  private static int indexOfAny(String text, String characters) {
    for (int i = 0; i < text.length(); i++) {
      if (characters.indexOf(text.charAt(i)) >= 0) {
        return i;
      }
    }
    return -1;
  }

  /** The text in single quotes, as the other clients' messages have it, control characters escaped. */
  static String quote(String text) {
    StringBuilder quoted = new StringBuilder("'");
    for (char c : text.toCharArray()) {
      switch (c) {
        case '\n' -> quoted.append("\\n");
        case '\r' -> quoted.append("\\r");
        case '\t' -> quoted.append("\\t");
        case '\\' -> quoted.append("\\\\");
        case '\'' -> quoted.append("\\'");
        default -> {
          if (c < 0x20 || c == 0x7f) {
            quoted.append(String.format("\\x%02x", (int) c));
          } else {
            quoted.append(c);
          }
        }
      }
    }
    return quoted.append('\'').toString();
  }
}
