package dev.taskq.cloudtasks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.google.api.gax.core.NoCredentialsProvider;
import com.google.api.gax.grpc.GrpcTransportChannel;
import com.google.api.gax.grpc.InstantiatingGrpcChannelProvider;
import com.google.api.gax.rpc.ApiException;
import com.google.api.gax.rpc.FixedTransportChannelProvider;
import com.google.api.gax.rpc.StatusCode;
import com.google.cloud.tasks.v2.CloudTasksClient;
import com.google.cloud.tasks.v2.CloudTasksClient.ListQueuesPage;
import com.google.cloud.tasks.v2.CloudTasksClient.ListTasksPage;
import com.google.cloud.tasks.v2.CloudTasksSettings;
import com.google.cloud.tasks.v2.CreateTaskRequest;
import com.google.cloud.tasks.v2.GetTaskRequest;
import com.google.cloud.tasks.v2.HttpMethod;
import com.google.cloud.tasks.v2.HttpRequest;
import com.google.cloud.tasks.v2.ListQueuesRequest;
import com.google.cloud.tasks.v2.ListTasksRequest;
import com.google.cloud.tasks.v2.Queue;
import com.google.cloud.tasks.v2.QueueName;
import com.google.cloud.tasks.v2.RateLimits;
import com.google.cloud.tasks.v2.RetryConfig;
import com.google.cloud.tasks.v2.Task;
import com.google.cloud.tasks.v2.TaskName;
import com.google.protobuf.ByteString;
import com.google.protobuf.Duration;
import com.google.protobuf.FieldMask;
import com.google.protobuf.Timestamp;
import com.sun.net.httpserver.HttpServer;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.function.Executable;

/**
 * Google's official Java Cloud Tasks client (google-cloud-tasks, v2) against a real taskq,
 * configured as an emulator user would: a plaintext channel to taskq's address and no
 * credentials. HTTP targets point at a loopback HTTP server of this test, which records what it
 * gets. The tests run in order and share the server, its queues and its tasks.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class OfficialJavaClientTest {
  private static final String PARENT = "projects/taskq-java/locations/us-central1";
  private static final String HOLD = queueName("hold");

  private Process taskq;
  private Path dataDir;
  private final StringBuffer taskqLog = new StringBuffer();
  private String address;
  private HttpServer receiver;
  private String base;
  private final List<Received> requests = new CopyOnWriteArrayList<>();
  private ManagedChannel channel;
  private CloudTasksClient client;

  record Received(String method, String path, Map<String, String> headers, String body) {
    /** A header, by its name in any case. */
    String header(String name) {
      return headers.get(name.toLowerCase());
    }
  }

  // Fixtures -----------------------------------------------------------------------------------

  @BeforeAll
  void start() throws Exception {
    startReceiver();
    startTaskq();
    // The emulator settings: a plaintext channel to the server, no credentials.
    channel = ManagedChannelBuilder.forTarget(address).usePlaintext().build();
    CloudTasksSettings settings =
        CloudTasksSettings.newBuilder()
            .setTransportChannelProvider(
                FixedTransportChannelProvider.create(GrpcTransportChannel.create(channel)))
            .setCredentialsProvider(NoCredentialsProvider.create())
            .build();
    client = CloudTasksClient.create(settings);
  }

  @AfterAll
  void stop() throws Exception {
    if (client != null) {
      client.close();
    }
    if (channel != null) {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
    if (receiver != null) {
      receiver.stop(0);
    }
    if (taskq != null) {
      taskq.destroy(); // SIGTERM
      if (!taskq.waitFor(20, TimeUnit.SECONDS)) {
        taskq.destroyForcibly().waitFor();
      }
    }
    if (dataDir != null) {
      try (Stream<Path> paths = Files.walk(dataDir)) {
        paths.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
      }
    }
  }

  private void startTaskq() throws Exception {
    String bin = System.getenv("TASKQ_BIN");
    if (bin == null || bin.isEmpty()) {
      bin = System.getProperty("taskq.defaultBin");
    }
    dataDir = Files.createTempDirectory("taskq-cloudtasks-java-");
    taskq =
        new ProcessBuilder(
                bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir.toString(),
                "--durability", "nosync", "--http-allow-networks", "127.0.0.0/8")
            .start();
    Thread logReader =
        new Thread(
            () -> {
              try (BufferedReader err =
                  new BufferedReader(new InputStreamReader(taskq.getErrorStream(), StandardCharsets.UTF_8))) {
                for (String line; (line = err.readLine()) != null; ) {
                  taskqLog.append(line).append('\n');
                }
              } catch (IOException ignored) {
                // the server ended
              }
            });
    logReader.setDaemon(true);
    logReader.start();
    CompletableFuture<String> found =
        CompletableFuture.supplyAsync(
            () -> {
              Pattern pattern = Pattern.compile("taskq listening on (\\S+:\\d+)");
              try {
                BufferedReader out =
                    new BufferedReader(new InputStreamReader(taskq.getInputStream(), StandardCharsets.UTF_8));
                for (String line; (line = out.readLine()) != null; ) {
                  Matcher m = pattern.matcher(line);
                  if (m.find()) {
                    return m.group(1);
                  }
                }
              } catch (IOException e) {
                throw new RuntimeException(e);
              }
              throw new IllegalStateException("taskq exited before listening:\n" + taskqLog);
            });
    address = found.get(30, TimeUnit.SECONDS);
  }

  /** An HTTP server on 127.0.0.1 recording every request; paths under /fail answer 500. */
  private void startReceiver() throws IOException {
    receiver = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
    receiver.createContext(
        "/",
        exchange -> {
          byte[] body = exchange.getRequestBody().readAllBytes();
          Map<String, String> headers = new HashMap<>();
          exchange.getRequestHeaders().forEach((k, v) -> headers.put(k.toLowerCase(), String.join(",", v)));
          requests.add(
              new Received(
                  exchange.getRequestMethod(),
                  exchange.getRequestURI().toString(),
                  headers,
                  new String(body, StandardCharsets.UTF_8)));
          boolean failing = exchange.getRequestURI().getPath().startsWith("/fail");
          byte[] answer = (failing ? "failing on purpose" : "ok").getBytes(StandardCharsets.UTF_8);
          exchange.sendResponseHeaders(failing ? 500 : 200, answer.length);
          exchange.getResponseBody().write(answer);
          exchange.close();
        });
    receiver.start();
    base = "http://127.0.0.1:" + receiver.getAddress().getPort();
  }

  private List<Received> at(String path) {
    return requests.stream().filter(r -> r.path().equals(path)).toList();
  }

  private static void waitFor(String what, BooleanSupplier check) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    while (!check.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        fail("timed out waiting for " + what);
      }
      Thread.sleep(50);
    }
  }

  private static void assertCode(StatusCode.Code want, Executable call) {
    try {
      call.execute();
    } catch (ApiException e) {
      assertEquals(want, e.getStatusCode().getCode(), () -> "the call failed with: " + e.getMessage());
      return;
    } catch (Throwable t) {
      fail("expected " + want + ", got " + t, t);
    }
    fail("expected " + want + ", the call succeeded");
  }

  private static String queueName(String id) {
    return PARENT + "/queues/" + id;
  }

  private static String shortName(String name) {
    return name.substring(name.lastIndexOf('/') + 1);
  }

  private static Timestamp inAnHour() {
    return Timestamp.newBuilder().setSeconds(Instant.now().getEpochSecond() + 3600).build();
  }

  private static Duration seconds(long s) {
    return Duration.newBuilder().setSeconds(s).build();
  }

  private static double seconds(Duration d) {
    return d.getSeconds() + d.getNanos() / 1e9;
  }

  private Task httpTask(String path, HttpMethod method, String body, Map<String, String> headers) {
    HttpRequest.Builder request = HttpRequest.newBuilder().setUrl(base + path).setHttpMethod(method).putAllHeaders(headers);
    if (!body.isEmpty()) {
      request.setBody(ByteString.copyFromUtf8(body));
    }
    return Task.newBuilder().setHttpRequest(request).build();
  }

  private List<Task> allTasks(String queue, Task.View view) {
    List<Task> found = new ArrayList<>();
    client.listTasks(ListTasksRequest.newBuilder().setParent(queue).setResponseView(view).build())
        .iterateAll()
        .forEach(found::add);
    return found;
  }

  // Queues -------------------------------------------------------------------------------------

  @Test
  @Order(1)
  void createQueueWithRateLimitsAndRetryConfigThenGetIt() {
    String name = queueName("orders");
    Queue created =
        client.createQueue(
            PARENT,
            Queue.newBuilder()
                .setName(name)
                .setRateLimits(RateLimits.newBuilder().setMaxDispatchesPerSecond(5).setMaxConcurrentDispatches(3))
                .setRetryConfig(
                    RetryConfig.newBuilder()
                        .setMaxAttempts(4)
                        .setMinBackoff(seconds(1))
                        .setMaxBackoff(seconds(20))
                        .setMaxDoublings(3))
                .build());
    assertEquals(name, created.getName());
    // The name parses as the library's resource name and reads back the same.
    assertEquals(QueueName.of("taskq-java", "us-central1", "orders"), QueueName.parse(created.getName()));
    Queue queue = client.getQueue(QueueName.of("taskq-java", "us-central1", "orders"));
    assertEquals(name, queue.getName());
    assertEquals(Queue.State.RUNNING, queue.getState());
    assertEquals(5, queue.getRateLimits().getMaxDispatchesPerSecond());
    assertEquals(3, queue.getRateLimits().getMaxConcurrentDispatches());
    assertTrue(queue.getRateLimits().getMaxBurstSize() > 0, "max_burst_size (output only) is filled in");
    assertEquals(4, queue.getRetryConfig().getMaxAttempts());
    assertEquals(1, seconds(queue.getRetryConfig().getMinBackoff()));
    assertEquals(20, seconds(queue.getRetryConfig().getMaxBackoff()));
    assertEquals(3, queue.getRetryConfig().getMaxDoublings());
  }

  @Test
  @Order(2)
  void aQueueCreatedWithANameAloneGetsCloudTasksDefaults() {
    String name = queueName("defaults");
    client.createQueue(PARENT, Queue.newBuilder().setName(name).build());
    Queue queue = client.getQueue(name);
    assertEquals(name, queue.getName());
    assertEquals(500, queue.getRateLimits().getMaxDispatchesPerSecond());
    assertEquals(1000, queue.getRateLimits().getMaxConcurrentDispatches());
    assertTrue(queue.getRateLimits().getMaxBurstSize() > 0);
    assertEquals(100, queue.getRetryConfig().getMaxAttempts());
    assertEquals(0.1, seconds(queue.getRetryConfig().getMinBackoff()), 1e-9);
    assertEquals(3600, seconds(queue.getRetryConfig().getMaxBackoff()));
    assertEquals(16, queue.getRetryConfig().getMaxDoublings());
  }

  @Test
  @Order(3)
  void createQueueOfAnExistingNameIsAlreadyExists() {
    assertCode(
        StatusCode.Code.ALREADY_EXISTS,
        () -> client.createQueue(PARENT, Queue.newBuilder().setName(queueName("orders")).build()));
  }

  @Test
  @Order(4)
  void listQueuesPagesOneQueueAtATime() {
    String other = "projects/taskq-java/locations/europe-west1";
    List<String> want = List.of(other + "/queues/list-a", other + "/queues/list-b", other + "/queues/list-c");
    for (String name : want) {
      client.createQueue(other, Queue.newBuilder().setName(name).build());
    }
    ListQueuesRequest request = ListQueuesRequest.newBuilder().setParent(other).setPageSize(1).build();
    List<String> seen = new ArrayList<>();
    int pages = 0;
    ListQueuesPage page = client.listQueues(request).getPage();
    while (true) {
      pages++;
      List<Queue> values = new ArrayList<>();
      page.getValues().forEach(values::add);
      assertTrue(values.size() <= 1, "page " + pages + " has " + values.size() + " queues");
      values.forEach(q -> seen.add(q.getName()));
      if (!page.hasNextPage() || pages > 20) {
        break;
      }
      page = page.getNextPage();
    }
    assertTrue(pages >= 3, pages + " pages");
    assertEquals(want, seen.stream().sorted().toList());
    // iterateAll walks every page.
    List<String> all = new ArrayList<>();
    client.listQueues(request).iterateAll().forEach(q -> all.add(q.getName()));
    assertEquals(want, all.stream().sorted().toList());
  }

  @Test
  @Order(5)
  void updateQueueChangesOnlyTheFieldsOfTheMask() {
    String name = queueName("orders");
    Queue updated =
        client.updateQueue(
            Queue.newBuilder()
                .setName(name)
                .setRateLimits(RateLimits.newBuilder().setMaxDispatchesPerSecond(7).setMaxConcurrentDispatches(999))
                .build(),
            FieldMask.newBuilder().addPaths("rate_limits.max_dispatches_per_second").build());
    assertEquals(name, updated.getName());
    assertEquals(7, updated.getRateLimits().getMaxDispatchesPerSecond());
    Queue queue = client.getQueue(name);
    assertEquals(7, queue.getRateLimits().getMaxDispatchesPerSecond());
    assertEquals(3, queue.getRateLimits().getMaxConcurrentDispatches(), "not in the mask: unchanged");
    assertEquals(4, queue.getRetryConfig().getMaxAttempts());
    assertEquals(20, seconds(queue.getRetryConfig().getMaxBackoff()));
  }

  @Test
  @Order(6)
  void theOtherEmulatorSettingsInstantiatingGrpcChannelProviderWithPlaintext() throws Exception {
    CloudTasksSettings settings =
        CloudTasksSettings.newBuilder()
            .setEndpoint(address)
            .setCredentialsProvider(NoCredentialsProvider.create())
            .setTransportChannelProvider(
                InstantiatingGrpcChannelProvider.newBuilder()
                    .setEndpoint(address)
                    .setChannelConfigurator(ManagedChannelBuilder::usePlaintext)
                    .build())
            .build();
    try (CloudTasksClient other = CloudTasksClient.create(settings)) {
      assertEquals(7, other.getQueue(queueName("orders")).getRateLimits().getMaxDispatchesPerSecond());
    }
  }

  // Queue-level http_target (header_overrides, http_method) is not in this client's v2 Queue
  // (google-cloud-tasks' v2 protos leave it out); the Go test covers it. Tasks carry their own
  // HttpRequest here.

  // Tasks --------------------------------------------------------------------------------------

  @Test
  @Order(10)
  void httpRequestTasksReachTheHttpServerAsGoogleCloudTasks() throws Exception {
    String queue = queueName("deliver");
    client.createQueue(PARENT, Queue.newBuilder().setName(queue).build());
    Task post =
        client.createTask(
            queue,
            httpTask(
                "/post/path?lang=java",
                HttpMethod.POST,
                "{\"order\": 42}",
                Map.of("Content-Type", "application/json", "X-Test-Client", "java", "User-Agent", "mine")));
    Task get = client.createTask(queue, httpTask("/get/path", HttpMethod.GET, "", Map.of()));
    assertTrue(post.getName().startsWith(queue + "/tasks/"), post.getName());
    assertTrue(get.getName().startsWith(queue + "/tasks/"), get.getName());

    waitFor("the POST", () -> !at("/post/path?lang=java").isEmpty());
    Received p = at("/post/path?lang=java").get(0);
    assertEquals("POST", p.method());
    assertEquals("{\"order\": 42}", p.body());
    assertEquals("application/json", p.header("Content-Type"));
    assertEquals("java", p.header("X-Test-Client"));
    assertEquals("deliver", p.header("X-CloudTasks-QueueName"));
    assertEquals(shortName(post.getName()), p.header("X-CloudTasks-TaskName"));
    TaskName parsed = TaskName.parse(post.getName());
    assertEquals(List.of("taskq-java", "us-central1", "deliver"), List.of(parsed.getProject(), parsed.getLocation(), parsed.getQueue()));
    // Cloud Tasks documents HttpRequest.headers' User-Agent as set to this, whatever the task says.
    assertEquals("Google-Cloud-Tasks", p.header("User-Agent"));

    waitFor("the GET", () -> !at("/get/path").isEmpty());
    Received g = at("/get/path").get(0);
    assertEquals("GET", g.method());
    assertEquals("", g.body());
    assertEquals("deliver", g.header("X-CloudTasks-QueueName"));
    assertEquals(shortName(get.getName()), g.header("X-CloudTasks-TaskName"));

    // A task answered with 2xx is done: Cloud Tasks removes it.
    waitFor(
        "the delivered task to be gone",
        () -> {
          try {
            client.getTask(post.getName());
            return false;
          } catch (ApiException e) {
            assertEquals(StatusCode.Code.NOT_FOUND, e.getStatusCode().getCode(), e.getMessage());
            return true;
          }
        });
  }

  @Test
  @Order(11)
  void aNamedTaskThenTheSameNameAgainIsAlreadyExists() {
    client.createQueue(PARENT, Queue.newBuilder().setName(HOLD).build());
    Task task =
        httpTask("/named", HttpMethod.POST, "", Map.of()).toBuilder()
            .setName(HOLD + "/tasks/named-once")
            .setScheduleTime(inAnHour())
            .build();
    assertEquals(task.getName(), client.createTask(HOLD, task).getName());
    assertCode(StatusCode.Code.ALREADY_EXISTS, () -> client.createTask(HOLD, task));
  }

  @Test
  @Order(12)
  void getTaskAndListTasksHaveTheBodyOnlyInTheFullView() {
    String name = HOLD + "/tasks/with-body";
    Timestamp when = inAnHour();
    client.createTask(
        HOLD,
        httpTask("/with-body", HttpMethod.PUT, "the body of the task", Map.of("X-Kind", "body")).toBuilder()
            .setName(name)
            .setScheduleTime(when)
            .setDispatchDeadline(seconds(30))
            .build());

    Task basic = client.getTask(name);
    assertEquals(name, basic.getName());
    assertEquals(Task.View.BASIC, basic.getView());
    assertEquals(base + "/with-body", basic.getHttpRequest().getUrl());
    assertEquals(HttpMethod.PUT, basic.getHttpRequest().getHttpMethod());
    assertTrue(basic.getHttpRequest().getBody().isEmpty(), "no body in the BASIC view");
    assertEquals(when.getSeconds(), basic.getScheduleTime().getSeconds());
    assertTrue(basic.getCreateTime().getSeconds() > 0);
    assertEquals(0, basic.getDispatchCount());
    assertEquals(30, seconds(basic.getDispatchDeadline()));

    Task full = client.getTask(GetTaskRequest.newBuilder().setName(name).setResponseView(Task.View.FULL).build());
    assertEquals(Task.View.FULL, full.getView());
    assertEquals("the body of the task", full.getHttpRequest().getBody().toStringUtf8());
    assertEquals("body", full.getHttpRequest().getHeadersMap().get("X-Kind"));

    List<Task> listedBasic = allTasks(HOLD, Task.View.BASIC);
    List<Task> listedFull = allTasks(HOLD, Task.View.FULL);
    assertEquals(
        List.of(HOLD + "/tasks/named-once", name), listedBasic.stream().map(Task::getName).sorted().toList());
    Task basicOne = listedBasic.stream().filter(t -> t.getName().equals(name)).findFirst().orElseThrow();
    Task fullOne = listedFull.stream().filter(t -> t.getName().equals(name)).findFirst().orElseThrow();
    assertTrue(basicOne.getHttpRequest().getBody().isEmpty());
    assertEquals("the body of the task", fullOne.getHttpRequest().getBody().toStringUtf8());
  }

  @Test
  @Order(13)
  void listTasksPagesTwoTasksAtATimeAndThePagesTogetherHoldEveryTaskOnce() {
    String queue = queueName("paged");
    client.createQueue(PARENT, Queue.newBuilder().setName(queue).build());
    List<String> want = new ArrayList<>();
    for (int i = 0; i < 5; i++) {
      String name = queue + "/tasks/paged-" + i;
      want.add(name);
      client.createTask(
          queue,
          httpTask("/paged", HttpMethod.POST, "", Map.of()).toBuilder().setName(name).setScheduleTime(inAnHour()).build());
    }
    ListTasksRequest request = ListTasksRequest.newBuilder().setParent(queue).setPageSize(2).build();
    List<String> seen = new ArrayList<>();
    int pages = 0;
    ListTasksPage page = client.listTasks(request).getPage();
    while (true) {
      pages++;
      List<Task> values = new ArrayList<>();
      page.getValues().forEach(values::add);
      assertTrue(values.size() <= 2, "page " + pages + " has " + values.size() + " tasks");
      values.forEach(t -> seen.add(t.getName()));
      if (!page.hasNextPage() || pages > 20) {
        break;
      }
      page = page.getNextPage();
    }
    assertTrue(pages >= 3, pages + " pages");
    assertEquals(want, seen.stream().sorted().toList());
    List<String> all = new ArrayList<>();
    client.listTasks(request).iterateAll().forEach(t -> all.add(t.getName()));
    assertEquals(want, all.stream().sorted().toList());
  }

  @Test
  @Order(14)
  void aPausedQueueDeliversNothingResumedItDelivers() throws Exception {
    String queue = queueName("pausable");
    client.createQueue(PARENT, Queue.newBuilder().setName(queue).build());
    assertEquals(Queue.State.PAUSED, client.pauseQueue(queue).getState());
    client.createTask(queue, httpTask("/paused", HttpMethod.POST, "", Map.of()));
    // Long enough for an idle running queue to deliver many times over (tasks arrive in ms).
    Thread.sleep(1000);
    assertEquals(0, at("/paused").size(), "delivered while paused");
    assertEquals(Queue.State.PAUSED, client.getQueue(queue).getState());
    assertEquals(Queue.State.RUNNING, client.resumeQueue(queue).getState());
    waitFor("the task after ResumeQueue", () -> at("/paused").size() == 1);
  }

  @Test
  @Order(15)
  void runTaskDeliversATaskScheduledAnHourAheadNow() throws Exception {
    Task task =
        client.createTask(
            HOLD,
            httpTask("/run-now", HttpMethod.HTTP_METHOD_UNSPECIFIED, "run", Map.of()).toBuilder()
                .setScheduleTime(inAnHour())
                .build());
    Thread.sleep(300);
    assertEquals(0, at("/run-now").size());
    assertEquals(task.getName(), client.runTask(task.getName()).getName());
    waitFor("the task run by RunTask", () -> !at("/run-now").isEmpty());
    Received r = at("/run-now").get(0);
    assertEquals("POST", r.method(), "POST is the default method");
    assertEquals("run", r.body());
    assertEquals(shortName(task.getName()), r.header("X-CloudTasks-TaskName"));
  }

  @Test
  @Order(16)
  void deleteTaskThenGetTaskAndDeleteTaskAreNotFound() {
    String name = HOLD + "/tasks/with-body";
    client.deleteTask(name);
    assertCode(StatusCode.Code.NOT_FOUND, () -> client.getTask(name));
    assertCode(StatusCode.Code.NOT_FOUND, () -> client.deleteTask(name));
  }

  @Test
  @Order(17)
  void purgeQueueRemovesEveryTask() throws Exception {
    for (int i = 0; i < 3; i++) {
      client.createTask(
          HOLD, httpTask("/purged", HttpMethod.POST, "", Map.of()).toBuilder().setScheduleTime(inAnHour()).build());
    }
    int before = allTasks(HOLD, Task.View.BASIC).size();
    assertTrue(before >= 4, before + " tasks before the purge");
    Queue purged = client.purgeQueue(HOLD);
    assertEquals(HOLD, purged.getName());
    assertTrue(purged.hasPurgeTime() && purged.getPurgeTime().getSeconds() > 0, "purge_time is set");
    waitFor("an empty queue after PurgeQueue", () -> allTasks(HOLD, Task.View.BASIC).isEmpty());
    assertEquals(0, at("/purged").size());
  }

  @Test
  @Order(18)
  void deleteQueueThenGetQueueIsNotFound() {
    client.deleteQueue(HOLD);
    assertCode(StatusCode.Code.NOT_FOUND, () -> client.getQueue(HOLD));
  }

  @Test
  @Order(19)
  void documentedErrors() {
    assertCode(StatusCode.Code.INVALID_ARGUMENT, () -> client.getQueue(PARENT + "/queues/bad_name!"));
    assertCode(
        StatusCode.Code.INVALID_ARGUMENT,
        () -> client.createQueue(PARENT, Queue.newBuilder().setName("queues/no-parent").build()));
    assertCode(
        StatusCode.Code.INVALID_ARGUMENT,
        () ->
            client.createQueue(
                PARENT, Queue.newBuilder().setName("projects/other/locations/l/queues/elsewhere").build()));
    assertCode(StatusCode.Code.NOT_FOUND, () -> client.getQueue(queueName("never-made")));
    assertCode(
        StatusCode.Code.NOT_FOUND,
        () -> client.createTask(queueName("never-made"), httpTask("/x", HttpMethod.POST, "", Map.of())));
    assertCode(StatusCode.Code.NOT_FOUND, () -> client.listTasks(queueName("never-made")).getPage());
    assertCode(StatusCode.Code.NOT_FOUND, () -> client.pauseQueue(queueName("never-made")));
    assertCode(StatusCode.Code.NOT_FOUND, () -> client.getTask(queueName("orders") + "/tasks/never-made"));
    assertCode(
        StatusCode.Code.INVALID_ARGUMENT,
        () ->
            client.createTask(
                CreateTaskRequest.newBuilder()
                    .setParent(queueName("orders"))
                    .setTask(Task.newBuilder().setHttpRequest(HttpRequest.newBuilder().setUrl("not a url")))
                    .build()));
  }

  @Test
  @Order(20)
  void aHandlerAnswering500IsRetried() throws Exception {
    String queue = queueName("flaky");
    client.createQueue(
        PARENT,
        Queue.newBuilder()
            .setName(queue)
            .setRetryConfig(RetryConfig.newBuilder().setMaxAttempts(5).setMinBackoff(seconds(1)).setMaxBackoff(seconds(1)))
            .build());
    Task task = client.createTask(queue, httpTask("/fail/once-more", HttpMethod.POST, "doomed", Map.of()));
    waitFor("two attempts", () -> at("/fail/once-more").size() >= 2);
    List<Received> got = at("/fail/once-more");
    assertEquals("0", got.get(0).header("X-CloudTasks-TaskRetryCount"));
    assertEquals("1", got.get(1).header("X-CloudTasks-TaskRetryCount"));
    assertEquals("500", got.get(1).header("X-CloudTasks-TaskPreviousResponse"));
    Task[] seen = new Task[1];
    waitFor(
        "the attempts on GetTask",
        () -> {
          seen[0] = client.getTask(task.getName());
          return seen[0].getDispatchCount() >= 2
              && seen[0].getResponseCount() >= 2
              && seen[0].getLastAttempt().hasResponseStatus();
        });
    Task t = seen[0];
    assertTrue(t.getFirstAttempt().hasDispatchTime(), "first_attempt.dispatch_time");
    assertTrue(t.getLastAttempt().hasDispatchTime(), "last_attempt.dispatch_time");
    assertTrue(t.getLastAttempt().hasResponseTime(), "last_attempt.response_time");
    assertEquals(
        com.google.rpc.Code.INTERNAL_VALUE,
        t.getLastAttempt().getResponseStatus().getCode(),
        "HTTP 500 is INTERNAL");
    assertNotNull(t.getLastAttempt().getResponseStatus().getMessage());
  }

  @Test
  @Order(21)
  void aTaskWhoseAttemptsRanOutIsDeletedAndItsNameStaysTaken() throws Exception {
    String queue = queueName("exhausted");
    client.createQueue(
        PARENT, Queue.newBuilder().setName(queue).setRetryConfig(RetryConfig.newBuilder().setMaxAttempts(1)).build());
    Task task =
        httpTask("/fail/only-once", HttpMethod.POST, "", Map.of()).toBuilder().setName(queue + "/tasks/only-once").build();
    client.createTask(queue, task);
    waitFor("the one attempt", () -> !at("/fail/only-once").isEmpty());
    waitFor(
        "the task to be deleted",
        () -> {
          try {
            client.getTask(task.getName());
            return false;
          } catch (ApiException e) {
            assertEquals(StatusCode.Code.NOT_FOUND, e.getStatusCode().getCode(), e.getMessage());
            return true;
          }
        });
    assertEquals(1, at("/fail/only-once").size(), "max_attempts 1: no second attempt");
    assertEquals(List.of(), allTasks(queue, Task.View.BASIC));
    assertCode(StatusCode.Code.NOT_FOUND, () -> client.runTask(task.getName()));
    assertCode(StatusCode.Code.NOT_FOUND, () -> client.deleteTask(task.getName()));
    assertCode(StatusCode.Code.ALREADY_EXISTS, () -> client.createTask(queue, task));
  }
}
