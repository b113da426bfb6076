package dev.taskq.client;

import io.grpc.EquivalentAddressGroup;
import io.grpc.ManagedChannelBuilder;
import io.grpc.NameResolver;
import io.grpc.ProxyDetector;
import io.grpc.Status;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.SocketAddress;
import java.util.ArrayList;
import java.util.List;

/**
 * The addresses of an {@code ipv4:}/{@code ipv6:} list, as gRPC's C core resolves them:
 * grpc-java has no resolver for them. The default policy (pick first) uses the first server
 * that accepts a connection. The authority (and the name TLS checks, unless a server name is
 * given) is the first entry.
 */
final class ListNameResolver extends NameResolver {
  /** The scheme of the channel's target; the resolver is the channel's own, not registered. */
  static final String SCHEME = "taskq-list";

  private final List<String> endpoints;
  private final ProxyDetector proxyDetector;

  private ListNameResolver(List<String> endpoints, ProxyDetector proxyDetector) {
    this.endpoints = endpoints;
    this.proxyDetector = proxyDetector;
  }

  /** Makes {@code builder}'s channel resolve its target to {@code endpoints} (ip:port, [ip]:port). */
  @SuppressWarnings("deprecation") // per channel, not the process-wide NameResolverRegistry
  static void install(ManagedChannelBuilder<?> builder, List<String> endpoints) {
    builder.nameResolverFactory(new NameResolver.Factory() {
      @Override
      public NameResolver newNameResolver(URI targetUri, NameResolver.Args args) {
        return SCHEME.equals(targetUri.getScheme()) ? new ListNameResolver(endpoints, args.getProxyDetector()) : null;
      }

      @Override
      public String getDefaultScheme() {
        return SCHEME;
      }
    });
  }

  @Override
  public String getServiceAuthority() {
    return endpoints.get(0);
  }

  @Override
  public void start(Listener2 listener) {
    List<EquivalentAddressGroup> groups = new ArrayList<>();
    for (String endpoint : endpoints) {
      int colon = endpoint.lastIndexOf(':');
      String host = endpoint.substring(0, colon).replace("[", "").replace("]", "");
      try {
        // A literal: parsed, never looked up.
        InetSocketAddress address =
            new InetSocketAddress(InetAddress.getByName(host), Integer.parseInt(endpoint.substring(colon + 1)));
        // As grpc-java's DNS resolver does: an HTTP CONNECT proxy, when one is configured.
        SocketAddress proxied = proxyDetector == null ? null : proxyDetector.proxyFor(address);
        groups.add(new EquivalentAddressGroup(proxied != null ? proxied : address));
      } catch (IOException e) {
        listener.onError(Status.UNAVAILABLE.withDescription("cannot use " + endpoint + ": " + e.getMessage()));
        return;
      }
    }
    listener.onResult(ResolutionResult.newBuilder().setAddresses(groups).build());
  }

  @Override
  public void shutdown() {}
}
