package dev.taskq.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.taskq.v1.GetQueueRequest;
import dev.taskq.v1.GetQueueResponse;
import dev.taskq.v1.Queue;
import dev.taskq.v1.QueueServiceGrpc;
import dev.taskq.v1.StreamTasksRequest;
import dev.taskq.v1.StreamTasksResponse;
import dev.taskq.v1.Task;
import dev.taskq.v1.TaskAck;
import dev.taskq.v1.TaskServiceGrpc;
import io.grpc.Grpc;
import io.grpc.InsecureServerCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.netty.shaded.io.netty.channel.epoll.Epoll;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollServerDomainSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.unix.DomainSocketAddress;
import io.grpc.stub.StreamObserver;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bearer tokens, against a stand-in gRPC server that checks "authorization: Bearer <token>" the
 * way taskq's authentication does (TokenServerTest goes through the real server when it checks
 * tokens; the committed one did not yet). A call with the
 * right token is answered; one with another token or none gets UNAUTHENTICATED. The stand-in
 * also listens on a Unix socket (Linux: grpc-java's Unix sockets need epoll), for the unix:
 * form, and the dns:///, ipv4: and [ipv6] forms reach it too.
 */
class TokenTest {
  private static final String TOKEN = "s3cret-token_1.A/b+c=";

  @TempDir
  static Path dir;

  private static final Map<String, List<String>> HEADERS = new ConcurrentHashMap<>();
  private static final List<String> ACKED = new CopyOnWriteArrayList<>();
  private static final List<Server> SERVERS = new ArrayList<>();
  private static int port;
  private static Path socket;

  @BeforeAll
  static void startStandIn() throws Exception {
    ServerInterceptor check = new ServerInterceptor() {
      @Override
      public <Q, A> ServerCall.Listener<Q> interceptCall(
          ServerCall<Q, A> call, Metadata headers, ServerCallHandler<Q, A> next) {
        String value = headers.get(Tokens.AUTHORIZATION);
        HEADERS.computeIfAbsent(call.getMethodDescriptor().getBareMethodName(), key -> new CopyOnWriteArrayList<>())
            .add(String.valueOf(value));
        if (!("Bearer " + TOKEN).equals(value)) {
          call.close(Status.UNAUTHENTICATED.withDescription("a valid bearer token is required"), new Metadata());
          return new ServerCall.Listener<>() {};
        }
        return next.startCall(call, headers);
      }
    };
    QueueServiceGrpc.QueueServiceImplBase queues = new QueueServiceGrpc.QueueServiceImplBase() {
      @Override
      public void getQueue(GetQueueRequest request, StreamObserver<GetQueueResponse> response) {
        response.onNext(GetQueueResponse.newBuilder()
            .setQueue(Queue.newBuilder().setName(request.getName())).build());
        response.onCompleted();
      }
    };
    TaskServiceGrpc.TaskServiceImplBase tasks = new TaskServiceGrpc.TaskServiceImplBase() {
      @Override
      public StreamObserver<StreamTasksRequest> streamTasks(StreamObserver<StreamTasksResponse> responses) {
        return new StreamObserver<>() {
          @Override
          public void onNext(StreamTasksRequest request) {
            if (request.hasSubscription()) {
              responses.onNext(StreamTasksResponse.newBuilder().addTasks(Task.newBuilder()
                  .setName(request.getSubscription().getQueue() + "/tasks/one")
                  .setPayload(ByteString.copyFromUtf8("hello"))
                  .setLeaseToken("lease-1")
                  .setLeaseExpireTime(ProtoTimes.timestamp(java.time.Instant.now().plusSeconds(60))))
                  .build());
            }
            for (TaskAck ack : request.getAcksList()) {
              ACKED.add(ack.getName());
            }
          }

          @Override
          public void onError(Throwable error) {}

          @Override
          public void onCompleted() {
            responses.onCompleted();
          }
        };
      }
    };
    // All interfaces, so that [::1] reaches it too.
    SERVERS.add(Grpc.newServerBuilderForPort(0, InsecureServerCredentials.create())
        .addService(ServerInterceptors.intercept(queues, check))
        .addService(ServerInterceptors.intercept(tasks, check))
        .build().start());
    port = SERVERS.get(0).getPort();
    // grpc-netty-shaded brings epoll for Linux on x86_64 and aarch64; elsewhere unix: is not
    // tested (nor does grpc-java connect to Unix sockets).
    assertTrue(Epoll.isAvailable() || !System.getProperty("os.name").startsWith("Linux")
        || !System.getProperty("os.arch").matches("amd64|x86_64|aarch64"), "epoll: " + Epoll.unavailabilityCause());
    if (Epoll.isAvailable()) {
      socket = dir.resolve("taskq.sock");
      SERVERS.add(NettyServerBuilder.forAddress(new DomainSocketAddress(socket.toString()))
          .channelType(EpollServerDomainSocketChannel.class)
          .bossEventLoopGroup(new EpollEventLoopGroup(1))
          .workerEventLoopGroup(new EpollEventLoopGroup(1))
          .addService(ServerInterceptors.intercept(queues, check))
          .build().start());
    }
  }

  @AfterAll
  static void stopStandIn() {
    SERVERS.forEach(Server::shutdownNow);
  }

  @BeforeEach
  void forget() {
    HEADERS.clear();
    ACKED.clear();
  }

  private static List<String> seen(String method) {
    return HEADERS.getOrDefault(method, List.of());
  }

  @Test
  void theTokenIsSentWithUnaryCalls() {
    try (TaskqClient client = TaskqClient.builder("127.0.0.1:" + port).token(TOKEN).build()) {
      assertEquals("queues/q", client.getQueue("q").getName());
    }
    assertEquals(List.of("Bearer " + TOKEN), seen("GetQueue"));
  }

  @Test
  void aWrongTokenOrNoneIsUnauthenticated() {
    for (String token : new String[] {"wrong", "", null}) {
      try (TaskqClient client = TaskqClient.builder("127.0.0.1:" + port).token(token).build()) {
        assertEquals(Status.Code.UNAUTHENTICATED,
            assertThrows(TaskqException.class, () -> client.getQueue("q")).code());
      }
    }
    assertEquals(List.of("Bearer wrong", "null", "null"), seen("GetQueue"), "no header without a token");
  }

  @Test
  void thePushWorkersStreamCarriesTheToken() throws Exception {
    CountDownLatch handled = new CountDownLatch(1);
    try (TaskqClient client = TaskqClient.builder("127.0.0.1:" + port).token(TOKEN).build();
        Worker worker = Worker.builder(client, "push", task -> handled.countDown()).build().start()) {
      assertTrue(handled.await(10, TimeUnit.SECONDS), "the worker received the task");
      Fixtures.eventually(Duration.ofSeconds(10), "the ack", () -> ACKED.size() == 1);
    }
    assertEquals(List.of("queues/push/tasks/one"), ACKED);
    assertEquals(List.of("Bearer " + TOKEN), seen("StreamTasks"));
  }

  @Test
  void aWorkerWithAWrongTokenStopsWithUnauthenticated() throws Exception {
    try (TaskqClient client = TaskqClient.builder("127.0.0.1:" + port).token("wrong").build();
        Worker worker = Worker.builder(client, "push", task -> { }).build().start()) {
      ExecutionException stopped = assertThrows(ExecutionException.class,
          () -> worker.termination().get(10, TimeUnit.SECONDS));
      assertEquals(Status.Code.UNAUTHENTICATED, TaskqException.from(stopped.getCause()).code());
    }
  }

  @Test
  void aTokenThatCannotBeAHeaderIsRefused() {
    for (String token : new String[] {"two words", "line\nbreak", "naïve", " \n"}) {
      assertThrows(InvalidTokenException.class, () -> TaskqClient.builder("127.0.0.1:" + port).token(token));
    }
  }

  @Test
  void aTokenFileIsReadAgainWhenItChangesAndKeptWhileItIsGone() throws Exception {
    Path file = Files.writeString(dir.resolve("token"), "first-token\n");
    try (TaskqClient client = TaskqClient.builder("127.0.0.1:" + port).tokenFile(file).build()) {
      assertThrows(TaskqException.class, () -> client.getQueue("q"));
      Files.writeString(file, "the-second-token");
      assertThrows(TaskqException.class, () -> client.getQueue("q"));
      Files.delete(file);
      assertThrows(TaskqException.class, () -> client.getQueue("q"));
    }
    assertEquals(List.of("Bearer first-token", "Bearer the-second-token", "Bearer the-second-token"),
        seen("GetQueue"));
    InvalidTokenException error = assertThrows(InvalidTokenException.class,
        () -> TaskqClient.builder("127.0.0.1:" + port).tokenFile(file).build());
    assertTrue(error.getMessage().startsWith("cannot read the token file " + file), error.getMessage());
  }

  @Test
  void theEnvironmentGivesTheTokenElseTheTokenFile() throws Exception {
    Path file = Files.writeString(dir.resolve("env-token"), "from-a-file\n");
    assertEquals("from-the-environment", Tokens.fromEnvironment(
        Map.of("TASKQ_TOKEN", "from-the-environment", "TASKQ_TOKEN_FILE", file.toString())).token());
    assertEquals("from-a-file", Tokens.fromEnvironment(
        Map.of("TASKQ_TOKEN", "", "TASKQ_TOKEN_FILE", file.toString())).token());
    assertEquals(null, Tokens.fromEnvironment(Map.of()));
  }

  @Test
  void aTokenGoesInPlainTextOnlyToThisMachine() {
    // Clients are built and closed without a call: grpc-java connects (and resolves) nothing.
    Map<String, Boolean> refused = new java.util.LinkedHashMap<>();
    refused.put("10.1.2.3:50051", true);
    refused.put("taskq.example.com", true);
    refused.put("http://taskq.example.com", true);
    refused.put("ipv4:127.0.0.1:7001,10.1.2.3:7002", true);
    refused.put("https://taskq.example.com", false);
    refused.put("localhost:50051", false);
    refused.put("LOCALHOST.", false);
    refused.put("127.0.0.2:50051", false);
    refused.put("[::1]:50051", false);
    refused.put("[0:0::1]:50051", false);
    refused.put("unix:/run/taskq.sock", false);
    refused.put("dns:///localhost:50051", false);
    refused.put("ipv4:127.0.0.1:7001,127.0.0.2:7002", false);
    refused.forEach((address, no) -> {
      TaskqClient.Builder builder = TaskqClient.builder(address).token("secret");
      if (no) {
        PlaintextTokenException error = assertThrows(PlaintextTokenException.class, builder::build, address);
        assertTrue(error.getMessage().startsWith("refusing to send a token in plain text to " + address));
      } else {
        builder.build().close();
      }
    });
    TaskqClient.builder("10.1.2.3:50051").token("secret").allowPlaintextToken().build().close();
    TaskqClient.builder("10.1.2.3:50051").token("secret").tls(TlsSettings.DEFAULT).build().close();
  }

  @Test
  void aClientOnAChannelOfTheCallersSendsTheToken() {
    ManagedChannel channel = Grpc.newChannelBuilder("127.0.0.1:" + port,
        io.grpc.InsecureChannelCredentials.create()).build();
    try (TaskqClient client = TaskqClient.builder(channel).token(TOKEN).build()) {
      assertEquals("queues/q", client.getQueue("q").getName());
    } finally {
      channel.shutdownNow();
    }
    assertEquals(List.of("Bearer " + TOKEN), seen("GetQueue"));
  }

  @Test
  void unixSocketsDnsIpListsAndIpv6ReachTheServer() throws Exception {
    int dead;
    try (ServerSocket closed = new ServerSocket(0)) {
      dead = closed.getLocalPort();
    }
    List<String> targets = new ArrayList<>(List.of(
        "dns:///127.0.0.1:" + port,
        "dns:///localhost:" + port,
        "ipv4:127.0.0.1:" + dead + ",127.0.0.1:" + port, // the first that connects
        "http://127.0.0.1:" + port));
    if (socket != null) {
      targets.add("unix:" + socket);
      targets.add("unix://" + socket);
    }
    if (ipv6Loopback()) {
      targets.add("[::1]:" + port);
      targets.add("ipv6:[::1]:" + port);
      targets.add("dns:///[::1]:" + port);
    }
    for (String target : targets) {
      try (TaskqClient client = TaskqClient.builder(target).token(TOKEN).build()) {
        assertEquals("queues/q", client.getQueue("q").getName(), target);
      }
    }
  }

  private static boolean ipv6Loopback() {
    try (ServerSocket probe = new ServerSocket(0, 1, java.net.InetAddress.getByName("::1"))) {
      return true;
    } catch (Exception e) {
      return false;
    }
  }
}
