package dev.taskq.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.HttpConnectProxiedSocketAddress;
import io.grpc.ProxiedSocketAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.SocketAddress;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The address rules every taskq client shares (the Python client's tests/client/test_address.py
 * holds the same table): a URL's scheme says TLS and brings its default port, a bare host means
 * taskq's port 50051 (never 443 or 80), and a malformed address is refused at once with what is
 * wrong.
 */
class AddressTest {
  private static final ServerAddress.Tls SETTINGS = ServerAddress.Tls.FROM_SETTINGS;

  static Stream<Arguments> accepted() {
    return Stream.of(
        Arguments.of("127.0.0.1:50051", "127.0.0.1:50051", SETTINGS),
        Arguments.of("taskq.example.com:8443", "taskq.example.com:8443", SETTINGS),
        Arguments.of("taskq", "taskq:50051", SETTINGS),
        Arguments.of("localhost", "localhost:50051", SETTINGS),
        Arguments.of("[::1]:7000", "[::1]:7000", SETTINGS),
        Arguments.of("[::1]", "[::1]:50051", SETTINGS),
        Arguments.of("https://taskq.example.com", "taskq.example.com:443", ServerAddress.Tls.ALWAYS),
        Arguments.of("https://taskq.example.com/", "taskq.example.com:443", ServerAddress.Tls.ALWAYS),
        Arguments.of("HTTPS://taskq.example.com:8443", "taskq.example.com:8443", ServerAddress.Tls.ALWAYS),
        Arguments.of("https://[2001:db8::1]:9000", "[2001:db8::1]:9000", ServerAddress.Tls.ALWAYS),
        Arguments.of("http://127.0.0.1:50051", "127.0.0.1:50051", ServerAddress.Tls.NEVER),
        Arguments.of("http://taskq.example.com", "taskq.example.com:80", ServerAddress.Tls.NEVER),
        Arguments.of("dns:///taskq.example.com:50051", "dns:///taskq.example.com:50051", SETTINGS),
        Arguments.of("dns:///taskq.example.com", "dns:///taskq.example.com:50051", SETTINGS),
        Arguments.of("dns://8.8.8.8/taskq.example.com:7000", "dns://8.8.8.8/taskq.example.com:7000", SETTINGS),
        Arguments.of("unix:/run/taskq.sock", "unix:/run/taskq.sock", SETTINGS),
        Arguments.of("unix:///run/taskq.sock", "unix:///run/taskq.sock", SETTINGS),
        Arguments.of("  localhost:50051\n", "localhost:50051", SETTINGS),
        Arguments.of("ipv4:127.0.0.1:7001,127.0.0.1:7002", "ipv4:127.0.0.1:7001,127.0.0.1:7002", SETTINGS),
        Arguments.of("ipv4:10.0.0.1", "ipv4:10.0.0.1:50051", SETTINGS),
        Arguments.of("ipv6:[::1]:7001,[::2]", "ipv6:[::1]:7001,[::2]:50051", SETTINGS),
        // IPv6 hosts of URLs are written as RFC 5952 says, as Python's and Go's clients do.
        Arguments.of("https://[2001:DB8:0:0:0:0:0:1]", "[2001:db8::1]:443", ServerAddress.Tls.ALWAYS),
        Arguments.of("https://[::FFFF:192.0.2.1]", "[::ffff:192.0.2.1]:443", ServerAddress.Tls.ALWAYS));
  }

  @ParameterizedTest
  @MethodSource("accepted")
  void acceptedAddressesConnectWhereTheirFormSays(String address, String target, ServerAddress.Tls tls) {
    ServerAddress parsed = ServerAddress.parse(address);
    assertEquals(List.of(target, tls), List.of(parsed.target(), parsed.tls()));
  }

  static Stream<Arguments> refused() {
    return Stream.of(
        Arguments.of("", "the host is missing"),
        Arguments.of("localhost:", "the port must be a number from 1 to 65535"),
        Arguments.of("localhost:http", "the port must be a number from 1 to 65535, not 'http'"),
        Arguments.of("localhost:70000", "the port must be a number from 1 to 65535"),
        Arguments.of("localhost:0", "the port must be a number from 1 to 65535"),
        Arguments.of("::1", "an IPv6 address goes in brackets"),
        Arguments.of("[::1", "closed with ]"),
        Arguments.of("[not-ipv6]:1", "is not an IPv6 address"),
        Arguments.of("[::1]x", "only :port may follow an IPv6 address"),
        Arguments.of("local host:1", "is not a host name or IP address"),
        Arguments.of("localhost:50051/path", "the port must be a number"),
        Arguments.of("https://taskq.example.com/v1", "no path, query or fragment"),
        Arguments.of("https://taskq.example.com?x=1", "no path, query or fragment"),
        Arguments.of("https://user:pw@taskq.example.com", "no user name or password"),
        Arguments.of("https://", "the host is missing"),
        // Python's urllib says "Port out of range 0-65535" here.
        Arguments.of("https://taskq.example.com:99999", "the port must be a number from 1 to 65535, not '99999'"),
        Arguments.of("https://taskq.example.com:0", "port 0 cannot be connected to"),
        Arguments.of("grpc://taskq.example.com:50051", "grpc:// is not supported"),
        Arguments.of("dns://taskq.example.com", "dns:///host:port"),
        Arguments.of("unix:", "needs the path of a socket"),
        Arguments.of("ipv4:localhost:7001", "ipv4: lists ipv4 addresses, not 'localhost:7001'"),
        Arguments.of("ipv4:127.0.0.1:7001,", "the host is missing"),
        Arguments.of("ipv6:127.0.0.1", "ipv6: lists ipv6 addresses"),
        // Checked without the resolver: InetAddress.getByName would look these up.
        Arguments.of("[abc]", "is not an IPv6 address"),
        Arguments.of("[1.2.3.4]", "is not an IPv6 address"),
        Arguments.of("ipv4:010.0.0.1", "ipv4: lists ipv4 addresses"));
  }

  @ParameterizedTest
  @MethodSource("refused")
  void malformedAddressesAreRefusedWithTheReason(String address, String reason) {
    InvalidAddressException error = assertThrows(InvalidAddressException.class, () -> ServerAddress.parse(address));
    assertTrue(error.getMessage().contains(reason), error.getMessage());
    assertTrue(error.getMessage().contains("https://host[:port]"), "the accepted forms: " + error.getMessage());
    assertEquals(address, error.address());
  }

  @Test
  void theMessageQuotesTheAddressAsGiven() {
    assertTrue(assertThrows(InvalidAddressException.class, () -> ServerAddress.parse("taskq.internal:grpc"))
        .getMessage().startsWith("invalid server address 'taskq.internal:grpc': the port must be a number from 1 "
            + "to 65535, not 'grpc' (use host[:port], "));
  }

  @Test
  void aClientWithAMalformedAddressFailsAtOnceNotInTheResolver() {
    assertThrows(InvalidAddressException.class, () -> TaskqClient.connect("taskq.example.com:fifty"));
    assertThrows(InvalidAddressException.class, () -> TaskqClient.connect("grpc://taskq.example.com"));
  }

  @Test
  void tlsSettingsWithAnHttpAddressAreRefused() {
    InvalidAddressException error = assertThrows(InvalidAddressException.class,
        () -> TaskqClient.builder("http://127.0.0.1:50051").tls(TlsSettings.DEFAULT).build());
    assertTrue(error.getMessage().contains("http:// means plain text"), error.getMessage());
  }

  @Test
  void aBareHostIsDialedOnPort50051AndAnHttpsOneOn443() throws Exception {
    int dead;
    try (ServerSocket socket = new ServerSocket(0)) {
      dead = socket.getLocalPort(); // nothing listens there once closed
    }
    for (String[] c : new String[][] {
        {"127.0.0.1", "127.0.0.1:50051"},
        {"[::1]", "[::1]:50051"},
        {"https://127.0.0.1", "127.0.0.1:443"},
        {"http://127.0.0.1", "127.0.0.1:80"},
        {"dns:///127.0.0.1", "127.0.0.1:50051"},
        {"ipv4:127.0.0.1", "127.0.0.1:50051"},
        {"127.0.0.1:7000", "127.0.0.1:7000"},
    }) {
      // The proxy detector sees where each connection goes, and sends it to a dead proxy.
      List<SocketAddress> dialed = new CopyOnWriteArrayList<>();
      try (TaskqClient client = TaskqClient.builder(c[0])
          .retry(CallRetry.DISABLED)
          .configureChannel(builder -> builder.proxyDetector(target -> {
            dialed.add(target);
            return (ProxiedSocketAddress) HttpConnectProxiedSocketAddress.newBuilder()
                .setTargetAddress((InetSocketAddress) target)
                .setProxyAddress(new InetSocketAddress("127.0.0.1", dead))
                .build();
          }))
          .build()) {
        TaskqException error = assertThrows(TaskqException.class, () -> client.getQueue("q"));
        assertEquals(io.grpc.Status.Code.UNAVAILABLE, error.code(), c[0] + ": " + error.getMessage());
        assertTrue(!dialed.isEmpty(), c[0] + " was dialed nowhere: " + error.getMessage());
      }
      InetSocketAddress target = (InetSocketAddress) dialed.get(0);
      assertEquals(c[1], target.getHostString() + ":" + target.getPort(), c[0]);
    }
  }
}
