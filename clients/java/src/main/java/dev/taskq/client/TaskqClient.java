package dev.taskq.client;

import com.google.protobuf.FieldMask;
import dev.taskq.v1.BatchCreateTasksRequest;
import dev.taskq.v1.BatchCreateTasksResponse;
import dev.taskq.v1.BatchCreateTasksResult;
import dev.taskq.v1.BatchDeleteTasksRequest;
import dev.taskq.v1.CreateQueueRequest;
import dev.taskq.v1.CreateTaskRequest;
import dev.taskq.v1.DeleteQueueRequest;
import dev.taskq.v1.DeleteTaskRequest;
import dev.taskq.v1.GetQueueRequest;
import dev.taskq.v1.GetQueueStatsRequest;
import dev.taskq.v1.GetTaskRequest;
import dev.taskq.v1.LeaseTasksRequest;
import dev.taskq.v1.LeaseTasksResponse;
import dev.taskq.v1.ListQueuesRequest;
import dev.taskq.v1.ListQueuesResponse;
import dev.taskq.v1.ListTasksRequest;
import dev.taskq.v1.ListTasksResponse;
import dev.taskq.v1.ModifyLeaseRequest;
import dev.taskq.v1.ModifyLeaseResponse;
import dev.taskq.v1.PauseQueueRequest;
import dev.taskq.v1.PurgeQueueRequest;
import dev.taskq.v1.PurgeQueueResponse;
import dev.taskq.v1.Queue;
import dev.taskq.v1.QueueServiceGrpc;
import dev.taskq.v1.QueueStats;
import dev.taskq.v1.ResumeQueueRequest;
import dev.taskq.v1.RunTaskRequest;
import dev.taskq.v1.Task;
import dev.taskq.v1.TaskServiceGrpc;
import dev.taskq.v1.TaskView;
import dev.taskq.v1.UpdateQueueRequest;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ChannelCredentials;
import io.grpc.ClientInterceptor;
import io.grpc.ClientInterceptors;
import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCalls;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.Objects;
import java.util.Spliterator;
import java.util.Spliterators;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.stream.Stream;
import java.util.stream.StreamSupport;

/**
 * A connection to one taskq server: one method per RPC of {@code TaskService} and
 * {@code QueueService}, taking and returning the generated messages ({@code dev.taskq.v1}).
 *
 * <pre>{@code
 * try (TaskqClient client = TaskqClient.connect("127.0.0.1:50051")) {
 *   client.createTask("reports", Task.newBuilder().setPayload(ByteString.copyFromUtf8("Q3")).build());
 *   List<Task> leased = client.leaseTasks("reports", LeaseOptions.of(Duration.ofMinutes(1), 10));
 *   for (Task task : leased) { ...; client.ack(task); }
 * }
 * }</pre>
 *
 * <p>Queues are named by id ({@code "reports"}) or full name ({@code "queues/reports"}); tasks
 * by full name ({@code "queues/reports/tasks/t1"}). Every failed call throws, or completes its
 * future with, a {@link TaskqException}. Each call has a deadline ({@link Builder#timeout},
 * 30 s by default; a lease's {@code wait} comes on top) that covers its retries: a unary call
 * failing with UNAVAILABLE (a restart of the server) is made again with the same request, for
 * up to 15 s ({@link CallRetry}).
 *
 * <p>{@link #createTaskAsync} calls made within {@link BatchSettings#maxDelay} of each other
 * (2 ms by default) share one {@code BatchCreateTasks} call per queue; each caller still gets
 * its own task or its own error. Every create carries a random {@code request_id} unless it has
 * one, chosen before the first attempt and sent on every retry, so that a retried create cannot
 * add the task twice. An application that retries a create itself (after the client gave up)
 * must set its own, the same on each of its attempts.
 *
 * <p>A client is thread-safe; share one per server. {@link #close()} sends the creates still
 * waiting to be batched, then closes the channel if the client opened it.
 */
public final class TaskqClient implements AutoCloseable {
  /** The address {@code taskq serve} listens on by default. */
  public static final String DEFAULT_ADDRESS = "127.0.0.1:50051";

  /** The deadline of each call unless the builder sets another. */
  public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(30);

  /** How long {@link #close()} waits for batched creates in flight to be answered. */
  private static final Duration CLOSE_TIMEOUT = Duration.ofSeconds(30);

  private final Channel channel;
  private final ManagedChannel ownedChannel;
  private final Duration timeout;
  private final CallRetry retry;
  private final ScheduledThreadPoolExecutor timer;
  private final Batcher<CreateTaskRequest, Task> creates;
  private final AtomicBoolean closed = new AtomicBoolean();
  /**
   * Set by {@link #close()} once the creates still waiting are sent: calls waiting to be
   * retried then give up (those creates themselves may still retry).
   */
  private final AtomicBoolean retriesStopped = new AtomicBoolean();

  private TaskqClient(Builder builder) {
    Tokens token = builder.tokenSet ? builder.token
        : builder.tokenFile != null ? Tokens.fromFile(builder.tokenFile)
        : Tokens.fromEnvironment(System.getenv());
    List<ClientInterceptor> interceptors = new ArrayList<>(builder.interceptors);
    if (token != null) {
      // Last in the list, first to see a call: the caller's interceptors see the header.
      interceptors.add(token.interceptor());
    }
    if (builder.channel != null) {
      this.ownedChannel = null;
      this.channel = ClientInterceptors.intercept(builder.channel, interceptors);
    } else {
      this.ownedChannel = Channels.open(builder.address, builder.credentials, builder.tls,
          token != null && !builder.allowPlaintextToken, interceptors, builder.customizer);
      this.channel = ownedChannel;
    }
    this.timeout = builder.timeout;
    this.retry = builder.retry;
    this.timer = Threads.timer("taskq-batcher");
    this.creates = builder.batching.isEnabled()
        ? new Batcher<>(this::sendCreates, builder.batching,
            request -> request.getSerializedSize() + 6L, timer)
        : null;
  }

  /**
   * A client of the server at {@code address} (see {@link #builder(String)}), with the default
   * settings.
   */
  public static TaskqClient connect(String address) {
    return builder(address).build();
  }

  /**
   * A builder of a client that opens its own channel to {@code address}: {@code host:port}, a
   * bare host (port 50051), {@code https://host[:port]} (TLS, 443 without a port),
   * {@code http://host[:port]}, {@code dns:///host[:port]}, {@code unix:path} or an
   * {@code ipv4:}/{@code ipv6:} list (see {@link ServerAddress}). A malformed address makes
   * {@link Builder#build()} throw {@link InvalidAddressException}.
   */
  public static Builder builder(String address) {
    return new Builder(Objects.requireNonNull(address, "address"), null);
  }

  /**
   * A builder of a client on an existing channel, which {@link #close()} leaves open. The
   * channel's own settings apply: see {@link Builder} for what a client's channel is given.
   */
  public static Builder builder(Channel channel) {
    return new Builder(null, Objects.requireNonNull(channel, "channel"));
  }

  /** Settings of a {@link TaskqClient}. */
  public static final class Builder {
    private final String address;
    private final Channel channel;
    private Duration timeout = DEFAULT_TIMEOUT;
    private CallRetry retry = CallRetry.DEFAULT;
    private BatchSettings batching = BatchSettings.DEFAULT;
    private ChannelCredentials credentials;
    private TlsSettings tls;
    private boolean tokenSet;
    private Tokens token;
    private Path tokenFile;
    private boolean allowPlaintextToken;
    private List<ClientInterceptor> interceptors = List.of();
    private Consumer<ManagedChannelBuilder<?>> customizer = channelBuilder -> { };

    private Builder(String address, Channel channel) {
      this.address = address;
      this.channel = channel;
    }

    /**
     * The deadline of each call, its retries included (a lease's wait comes on top);
     * {@code null} waits indefinitely. Default 30 s.
     */
    public Builder timeout(Duration timeout) {
      this.timeout = timeout;
      return this;
    }

    /**
     * How unary calls failing with UNAVAILABLE are retried; {@link CallRetry#DISABLED} turns
     * retries off. Default {@link CallRetry#DEFAULT}: for up to 15 s.
     */
    public Builder retry(CallRetry retry) {
      this.retry = Objects.requireNonNull(retry, "retry");
      return this;
    }

    /** How creates are coalesced; {@link BatchSettings#DISABLED} sends each on its own. */
    public Builder batching(BatchSettings batching) {
      this.batching = Objects.requireNonNull(batching, "batching");
      return this;
    }

    /**
     * Credentials of your making for the channel, instead of those the address and {@link
     * #tls} choose (plain text, or TLS for an https:// address); not with {@link #tls}, nor
     * with an http:// address unless they are insecure ones. For clients opened from an address
     * only.
     */
    public Builder credentials(ChannelCredentials credentials) {
      this.credentials = Objects.requireNonNull(credentials, "credentials");
      return this;
    }

    /**
     * Connect over TLS with these settings (a CA file, a client certificate for mTLS, a server
     * name), whatever the address's form; an https:// address means TLS without them (the
     * JDK's CAs). {@link #build()} reads the files and throws {@link
     * InvalidTlsSettingsException} naming one that cannot be used. For clients opened from an
     * address only.
     */
    public Builder tls(TlsSettings tls) {
      this.tls = Objects.requireNonNull(tls, "tls");
      return this;
    }

    /**
     * Send {@code authorization: Bearer <token>} with every call, the push {@link Worker}'s
     * StreamTasks streams included; null or "" sends none, whatever the environment says.
     * Without {@code token} or {@link #tokenFile}, the client sends $TASKQ_TOKEN, else the token
     * in the file $TASKQ_TOKEN_FILE names, else none. Throws {@link InvalidTokenException} for a
     * token that is not one word of visible ASCII characters. A client opened from an address
     * refuses to send a token in plain text to another machine: see {@link
     * #allowPlaintextToken}.
     */
    public Builder token(String token) {
      this.token = token == null || token.isEmpty() ? null : Tokens.of(token);
      this.tokenSet = true;
      this.tokenFile = null;
      return this;
    }

    /**
     * Send the token held in {@code file} (surrounding whitespace ignored), read by {@link
     * #build()} and again before a call when the file has changed (a rotated Kubernetes
     * Secret); a file that cannot be read then leaves the previous token in use. See {@link
     * #token}.
     */
    public Builder tokenFile(Path file) {
      this.tokenFile = Objects.requireNonNull(file, "file");
      this.tokenSet = false;
      this.token = null;
      return this;
    }

    /**
     * Send the token even in plain text to another machine, for a network protected otherwise
     * (a service mesh's mTLS between sidecars). Without it, a token goes in plain text only to
     * this machine (localhost, loopback addresses, Unix sockets), and {@link #build()} throws
     * {@link PlaintextTokenException} for any other.
     */
    public Builder allowPlaintextToken() {
      this.allowPlaintextToken = true;
      return this;
    }

    /** Interceptors of every call (auth headers, tracing, metrics). */
    public Builder interceptors(ClientInterceptor... interceptors) {
      this.interceptors = List.copyOf(Arrays.asList(interceptors));
      return this;
    }

    /**
     * Changes the channel builder after the client's settings are applied: keepalive pings
     * every 30 s during calls, a 32 MiB inbound message limit, transparent retries only (the
     * client retries UNAVAILABLE itself, see {@link CallRetry}). For clients opened from an
     * address only.
     */
    public Builder configureChannel(Consumer<ManagedChannelBuilder<?>> customizer) {
      this.customizer = Objects.requireNonNull(customizer, "customizer");
      return this;
    }

    public TaskqClient build() {
      return new TaskqClient(this);
    }
  }

  /** The channel the client calls on (the given one, with the client's interceptors). */
  public Channel channel() {
    return channel;
  }

  /** Whether {@link #close()} was called. */
  boolean isClosed() {
    return closed.get();
  }

  /**
   * Sends the creates waiting to be batched now, and waits until they are answered (each
   * caller's future has its outcome by then).
   */
  public void flush() {
    if (creates != null) {
      await(creates.flush());
    }
  }

  /**
   * Sends the creates waiting to be batched and waits for their answers (up to 30 s), then
   * closes the channel if the client opened it. Calls still in progress are cancelled.
   */
  @Override
  public void close() {
    if (!closed.compareAndSet(false, true)) {
      return;
    }
    try {
      if (creates != null) {
        creates.close().get(CLOSE_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (ExecutionException | TimeoutException e) {
      // The callers of those creates hear of it through their own futures.
    } finally {
      retriesStopped.set(true);
      timer.shutdownNow();
      if (ownedChannel != null) {
        ownedChannel.shutdown();
        try {
          if (!ownedChannel.awaitTermination(5, TimeUnit.SECONDS)) {
            ownedChannel.shutdownNow();
          }
        } catch (InterruptedException e) {
          ownedChannel.shutdownNow();
          Thread.currentThread().interrupt();
        }
      }
    }
  }

  // Queues ---------------------------------------------------------------------------------

  /**
   * Creates a queue; its name may be an id. Unset fields take the server's defaults, which the
   * returned queue shows. Throws {@link TaskqException.QueueAlreadyExists} if the name is taken.
   */
  public Queue createQueue(Queue queue) {
    Queue named = queue.toBuilder().setName(Names.queue(queue.getName())).build();
    return call(QueueServiceGrpc.getCreateQueueMethod(),
        CreateQueueRequest.newBuilder().setQueue(named).build()).getQueue();
  }

  /** The queue with its effective settings. Throws {@link TaskqException.QueueNotFound}. */
  public Queue getQueue(String queue) {
    return call(QueueServiceGrpc.getGetQueueMethod(),
        GetQueueRequest.newBuilder().setName(Names.queue(queue)).build()).getQueue();
  }

  /** Every queue in name order, fetched a page at a time as the stream is consumed. */
  public Stream<Queue> listQueues() {
    return pages(token -> {
      ListQueuesResponse page = call(QueueServiceGrpc.getListQueuesMethod(),
          ListQueuesRequest.newBuilder().setPageToken(token).build());
      return new Page<>(page.getQueuesList(), page.getNextPageToken());
    });
  }

  /**
   * Changes the fields of the queue named by {@code paths} (for example
   * {@code "rate_limits.max_dispatches_per_second"}, {@code "retry_config"},
   * {@code "http_target"}, which a queue without a target removes); no paths means every
   * changeable field, the unset ones going back to their defaults.
   */
  public Queue updateQueue(Queue queue, String... paths) {
    Queue named = queue.toBuilder().setName(Names.queue(queue.getName())).build();
    UpdateQueueRequest request = UpdateQueueRequest.newBuilder()
        .setQueue(named)
        .setUpdateMask(FieldMask.newBuilder().addAllPaths(Arrays.asList(paths)))
        .build();
    return call(QueueServiceGrpc.getUpdateQueueMethod(), request).getQueue();
  }

  /** Deletes the queue and every task in it. */
  public void deleteQueue(String queue) {
    call(QueueServiceGrpc.getDeleteQueueMethod(),
        DeleteQueueRequest.newBuilder().setName(Names.queue(queue)).build());
  }

  /** Stops the queue handing out tasks; it still accepts new ones. */
  public Queue pauseQueue(String queue) {
    return call(QueueServiceGrpc.getPauseQueueMethod(),
        PauseQueueRequest.newBuilder().setName(Names.queue(queue)).build()).getQueue();
  }

  /** Lets a paused queue hand out tasks again. */
  public Queue resumeQueue(String queue) {
    return call(QueueServiceGrpc.getResumeQueueMethod(),
        ResumeQueueRequest.newBuilder().setName(Names.queue(queue)).build()).getQueue();
  }

  /**
   * Deletes every task created before the call; the response has {@code purged_count}. Not
   * retried on UNAVAILABLE: a second purge would also delete tasks created since the first,
   * whose answer may only have been lost.
   */
  public PurgeQueueResponse purgeQueue(String queue) {
    return call(QueueServiceGrpc.getPurgeQueueMethod(),
        PurgeQueueRequest.newBuilder().setName(Names.queue(queue)).build());
  }

  /** The queue's counts and rates, read in constant time. */
  public QueueStats getQueueStats(String queue) {
    return call(QueueServiceGrpc.getGetQueueStatsMethod(),
        GetQueueStatsRequest.newBuilder().setName(Names.queue(queue)).build()).getStats();
  }

  // Creating tasks -------------------------------------------------------------------------

  /**
   * Adds a task to a queue and returns it (without its payload). The task's name, if set, may
   * be an id; set it to de-duplicate ({@link TaskqException.TaskAlreadyExists}, or
   * {@link TaskqException.TaskTombstoned} for a recently finished one). Blocks until the task
   * is durable; batched with creates made at the same time by other threads.
   */
  public Task createTask(String queue, Task task) {
    return await(createTaskAsync(queue, task));
  }

  /** {@link #createTask(String, Task)} with every field of the request under your control. */
  public Task createTask(CreateTaskRequest request) {
    return await(createTaskAsync(request));
  }

  /**
   * Adds a task; the future completes once it is durable. Calls made close together share one
   * {@code BatchCreateTasks} per queue (see {@link BatchSettings}).
   */
  public CompletableFuture<Task> createTaskAsync(String queue, Task task) {
    return createTaskAsync(CreateTaskRequest.newBuilder()
        .setParent(Names.queue(queue))
        .setTask(task)
        .build());
  }

  /** {@link #createTaskAsync(String, Task)} with every field of the request under your control. */
  public CompletableFuture<Task> createTaskAsync(CreateTaskRequest request) {
    CreateTaskRequest complete = completeCreate(request);
    if (creates != null) {
      return creates.submit(complete.getParent(), complete);
    }
    return callAsync(TaskServiceGrpc.getCreateTaskMethod(), complete, Duration.ZERO)
        .thenApply(response -> response.getTask());
  }

  /**
   * Adds up to 1000 tasks to one queue in one durable commit, at once (no coalescing); one
   * result per task, in order. A failure of the whole call (an unknown queue) is thrown.
   */
  public List<ItemResult<Task>> createTasks(String queue, List<Task> tasks) {
    return await(createTasksAsync(queue, tasks));
  }

  /** {@link #createTasks} without blocking. */
  public CompletableFuture<List<ItemResult<Task>>> createTasksAsync(String queue, List<Task> tasks) {
    String parent = Names.queue(queue);
    List<CreateTaskRequest> requests = new ArrayList<>(tasks.size());
    for (Task task : tasks) {
      requests.add(completeCreate(CreateTaskRequest.newBuilder().setParent(parent).setTask(task).build()));
    }
    BatchCreateTasksRequest request = BatchCreateTasksRequest.newBuilder()
        .setParent(parent).addAllRequests(requests).build();
    return callAsync(TaskServiceGrpc.getBatchCreateTasksMethod(), request, Duration.ZERO)
        .thenApply(response -> createResults(response, false));
  }

  /** The batcher's call: one BatchCreateTasks for the creates of one queue. */
  private CompletableFuture<List<ItemResult<Task>>> sendCreates(
      String parent, List<CreateTaskRequest> items) {
    BatchCreateTasksRequest request = BatchCreateTasksRequest.newBuilder()
        .setParent(parent).addAllRequests(items).build();
    return callAsync(TaskServiceGrpc.getBatchCreateTasksMethod(), request, Duration.ZERO)
        .thenApply(response -> createResults(response, true));
  }

  /**
   * One result per item. For creates the client batched, an error names the fields as the
   * caller's own CreateTaskRequest would ({@code task.tag}, not {@code requests[3].task.tag}).
   */
  private static List<ItemResult<Task>> createResults(
      BatchCreateTasksResponse response, boolean coalesced) {
    List<ItemResult<Task>> results = new ArrayList<>(response.getResultsCount());
    for (int i = 0; i < response.getResultsCount(); i++) {
      BatchCreateTasksResult result = response.getResults(i);
      if (result.hasTask()) {
        results.add(ItemResult.ok(result.getTask()));
      } else {
        TaskqException error = TaskqException.fromStatus(result.getError());
        results.add(ItemResult.failed(
            coalesced ? error.withoutFieldPrefix("requests[" + i + "].") : error));
      }
    }
    return results;
  }

  /** A create with a full task name and a request_id. */
  private static CreateTaskRequest completeCreate(CreateTaskRequest request) {
    CreateTaskRequest.Builder builder = request.toBuilder();
    builder.setParent(Names.queue(request.getParent()));
    if (!request.getTask().getName().isEmpty()) {
      builder.getTaskBuilder().setName(
          Names.task(builder.getParent(), request.getTask().getName()));
    }
    if (request.getRequestId().isEmpty()) {
      builder.setRequestId(UUID.randomUUID().toString());
    }
    return builder.build();
  }

  // Reading tasks --------------------------------------------------------------------------

  /** The task, payload included. Throws {@link TaskqException.TaskNotFound}. */
  public Task getTask(String name) {
    return getTask(name, TaskView.TASK_VIEW_FULL);
  }

  /** The task in the given view ({@code TASK_VIEW_BASIC} leaves the payload out). */
  public Task getTask(String name, TaskView view) {
    return call(TaskServiceGrpc.getGetTaskMethod(), getTaskRequest(name, view)).getTask();
  }

  /** {@link #getTask(String)} without blocking. */
  public CompletableFuture<Task> getTaskAsync(String name) {
    return callAsync(TaskServiceGrpc.getGetTaskMethod(),
        getTaskRequest(name, TaskView.TASK_VIEW_FULL), Duration.ZERO)
        .thenApply(response -> response.getTask());
  }

  private static GetTaskRequest getTaskRequest(String name, TaskView view) {
    return GetTaskRequest.newBuilder().setName(Names.task(name)).setView(view).build();
  }

  /** Every task of the queue, in task id order, without payloads. */
  public Stream<Task> listTasks(String queue) {
    return listTasks(queue, "");
  }

  /**
   * The tasks of the queue matching {@code filter}, for example
   * {@code state = READY AND tag = "reports"}, in task id order, without payloads.
   */
  public Stream<Task> listTasks(String queue, String filter) {
    return listTasks(ListTasksRequest.newBuilder()
        .setParent(Names.queue(queue)).setFilter(filter).build());
  }

  /**
   * The tasks a ListTasks request selects, every page of them: pages are fetched as the
   * stream is consumed, following {@code next_page_token} to the end.
   */
  public Stream<Task> listTasks(ListTasksRequest request) {
    ListTasksRequest first = request.toBuilder().setParent(Names.queue(request.getParent())).build();
    return pages(token -> {
      ListTasksResponse page = call(TaskServiceGrpc.getListTasksMethod(),
          first.toBuilder().setPageToken(token).build());
      return new Page<>(page.getTasksList(), page.getNextPageToken());
    });
  }

  // Finishing tasks ------------------------------------------------------------------------

  /** Removes the task whatever its state. Throws {@link TaskqException.TaskNotFound}. */
  public void deleteTask(String name) {
    await(deleteTaskAsync(name));
  }

  /** {@link #deleteTask} without blocking. */
  public CompletableFuture<Void> deleteTaskAsync(String name) {
    return delete(DeleteTaskRequest.newBuilder().setName(Names.task(name)).build());
  }

  /**
   * Acknowledges a leased task: deletes it if {@code leased} still holds its lease (its
   * {@code lease_token}), else throws {@link TaskqException.LeaseLost}.
   */
  public void ack(Task leased) {
    await(ackAsync(leased));
  }

  /** {@link #ack} without blocking. */
  public CompletableFuture<Void> ackAsync(Task leased) {
    return delete(DeleteTaskRequest.newBuilder()
        .setName(Names.task(leased.getName()))
        .setLeaseToken(leaseToken(leased))
        .build());
  }

  private CompletableFuture<Void> delete(DeleteTaskRequest request) {
    return callAsync(TaskServiceGrpc.getDeleteTaskMethod(), request, Duration.ZERO)
        .thenApply(response -> null);
  }

  /**
   * Deletes or acknowledges (with a lease token) up to 1000 tasks of one queue in one durable
   * commit; one result per request, in order.
   */
  public List<ItemResult<Void>> deleteTasks(String queue, List<DeleteTaskRequest> requests) {
    return await(deleteTasksAsync(queue, requests));
  }

  /** {@link #deleteTasks} without blocking. */
  public CompletableFuture<List<ItemResult<Void>>> deleteTasksAsync(
      String queue, List<DeleteTaskRequest> requests) {
    BatchDeleteTasksRequest request = BatchDeleteTasksRequest.newBuilder()
        .setParent(Names.queue(queue)).addAllRequests(requests).build();
    return callAsync(TaskServiceGrpc.getBatchDeleteTasksMethod(), request, Duration.ZERO)
        .thenApply(response -> response.getResultsList().stream()
            .map(status -> status.getCode() == 0
                ? ItemResult.<Void>ok(null)
                : ItemResult.<Void>failed(TaskqException.fromStatus(status)))
            .toList());
  }

  // Leases ---------------------------------------------------------------------------------

  /**
   * Leases up to {@code options.maxTasks()} ready tasks of a pull queue, oldest first; each
   * carries its {@code lease_token}. Empty when none is ready (after the options' wait).
   * Throws {@link TaskqException.QueuePaused} or {@link TaskqException.WrongQueueType}. When
   * an attempt's answer is lost and the call retried, the tasks that attempt leased come back
   * (ready, the attempt counted) when their lease expires.
   */
  public List<Task> leaseTasks(String queue, LeaseOptions options) {
    return await(leaseTasksAsync(queue, options));
  }

  /** {@link #leaseTasks} without blocking. */
  public CompletableFuture<List<Task>> leaseTasksAsync(String queue, LeaseOptions options) {
    LeaseTasksRequest.Builder request = LeaseTasksRequest.newBuilder()
        .setParent(Names.queue(queue))
        .setLeaseDuration(ProtoTimes.duration(options.leaseDuration()))
        .setMaxTasks(options.maxTasks())
        .setOldestTag(options.oldestTag())
        .setResponseView(options.view());
    if (options.tag() != null) {
      request.setTag(options.tag());
    }
    if (!options.maxWait().isZero()) {
      request.setWait(ProtoTimes.duration(options.maxWait()));
    }
    // The server may hold the call for the whole wait: the deadline must outlast it.
    return callAsync(TaskServiceGrpc.getLeaseTasksMethod(), request.build(), options.maxWait())
        .thenApply(LeaseTasksResponse::getTasksList);
  }

  /**
   * Sets the lease of a leased task to end {@code leaseDuration} from now; zero releases it for
   * another worker at once (the attempt counts). Throws {@link TaskqException.LeaseLost}.
   */
  public Task modifyLease(Task leased, Duration leaseDuration) {
    return await(modifyLeaseAsync(leased, leaseDuration));
  }

  /** {@link #modifyLease(Task, Duration)} for a task known by name and lease token. */
  public Task modifyLease(String name, String leaseToken, Duration leaseDuration) {
    return await(modifyLeaseAsync(name, leaseToken, leaseDuration));
  }

  /** {@link #modifyLease(Task, Duration)} without blocking. */
  public CompletableFuture<Task> modifyLeaseAsync(Task leased, Duration leaseDuration) {
    return modifyLeaseAsync(leased.getName(), leaseToken(leased), leaseDuration);
  }

  /** {@link #modifyLease(String, String, Duration)} without blocking. */
  public CompletableFuture<Task> modifyLeaseAsync(
      String name, String leaseToken, Duration leaseDuration) {
    ModifyLeaseRequest request = ModifyLeaseRequest.newBuilder()
        .setName(Names.task(name))
        .setLeaseToken(leaseToken)
        .setLeaseDuration(ProtoTimes.duration(leaseDuration))
        .build();
    return callAsync(TaskServiceGrpc.getModifyLeaseMethod(), request, Duration.ZERO)
        .thenApply(ModifyLeaseResponse::getTask);
  }

  /** Releases a leased task for another worker at once: {@code modifyLease(leased, 0)}. */
  public Task releaseLease(Task leased) {
    return modifyLease(leased, Duration.ZERO);
  }

  /**
   * Makes a scheduled or failed task ready now. Throws {@link TaskqException.TaskLeased} for a
   * leased one.
   */
  public Task runTask(String name) {
    return call(TaskServiceGrpc.getRunTaskMethod(),
        RunTaskRequest.newBuilder().setName(Names.task(name)).build()).getTask();
  }

  private static String leaseToken(Task leased) {
    if (leased.getLeaseToken().isEmpty()) {
      throw new IllegalArgumentException(leased.getName() + " carries no lease token");
    }
    return leased.getLeaseToken();
  }

  // Calls ----------------------------------------------------------------------------------

  /** The deadline of a call made now, for all its attempts; null for none. */
  private Deadline deadline(Duration extra) {
    return timeout == null
        ? null
        : Deadline.after(timeout.plus(extra).toNanos(), TimeUnit.NANOSECONDS);
  }

  /** The waits between the attempts of a call; null when the call is not to be retried. */
  private RetryBackoff backoff(Object request, Deadline deadline) {
    if (!retry.isEnabled() || !CallRetry.mayResend(request)) {
      return null;
    }
    long now = System.nanoTime();
    Long deadlineNanos =
        deadline == null ? null : now + deadline.timeRemaining(TimeUnit.NANOSECONDS);
    return new RetryBackoff(retry, deadlineNanos, System::nanoTime, Math::random);
  }

  /**
   * Before a retry: a channel the client opened reconnects at once. gRPC waits 1 s, growing to
   * 2 minutes, before it reconnects to a server that went away, and fails calls at once
   * meanwhile; the retries' own jittered waits pace the reconnections instead. (An
   * {@code @ExperimentalApi} of grpc-java, unchanged since 2018; without it, calls are still
   * retried, only reconnection is slower.)
   */
  private void beforeRetry() {
    if (ownedChannel != null) {
      ownedChannel.resetConnectBackoff();
    }
  }

  private <Q, S> S call(MethodDescriptor<Q, S> method, Q request) {
    Deadline deadline = deadline(Duration.ZERO);
    CallOptions options = CallOptions.DEFAULT.withDeadline(deadline);
    RetryBackoff backoff = backoff(request, deadline);
    while (true) {
      TaskqException failure;
      try {
        // The same request on every attempt: a create keeps its request_id.
        return ClientCalls.blockingUnaryCall(channel, method, options, request);
      } catch (StatusRuntimeException error) {
        failure = TaskqException.from(error);
      }
      // The caller cancels a blocking call through its Context or by interrupting its thread
      // (gRPC then cancels the call, throws CANCELLED and interrupts the thread again).
      boolean cancelledByCaller =
          Context.current().isCancelled() || Thread.currentThread().isInterrupted();
      long waitNanos = backoff == null
          ? RetryBackoff.GIVE_UP
          : backoff.nextWaitNanos(failure, cancelledByCaller);
      if (waitNanos == RetryBackoff.GIVE_UP || retriesStopped.get()) {
        throw failure;
      }
      try {
        TimeUnit.NANOSECONDS.sleep(waitNanos);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw TaskqException.local(
            Status.Code.CANCELLED, "interrupted while waiting to retry", failure);
      }
      if (retriesStopped.get()) {
        throw failure;
      }
      beforeRetry();
    }
  }

  private <Q, S> CompletableFuture<S> callAsync(MethodDescriptor<Q, S> method, Q request,
      Duration extra) {
    Deadline deadline = deadline(extra);
    return new RetryingCall<>(channel, method, request, CallOptions.DEFAULT.withDeadline(deadline),
        backoff(request, deadline), this::beforeRetry, retriesStopped::get).start();
  }

  /** The result of a future, its failure thrown as a TaskqException. */
  static <T> T await(CompletableFuture<T> future) {
    try {
      return future.get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw TaskqException.local(Status.Code.CANCELLED, "interrupted while waiting", e);
    } catch (ExecutionException e) {
      throw TaskqException.from(e.getCause());
    }
  }

  private record Page<T>(List<T> items, String nextPageToken) {}

  /**
   * A lazy stream over every page: a page may be short, even empty, while more remain, so
   * only an empty next_page_token ends it.
   */
  private static <T> Stream<T> pages(Function<String, Page<T>> fetch) {
    Iterator<T> items = new Iterator<>() {
      private Iterator<T> page = List.<T>of().iterator();
      private String token = "";
      private boolean last;

      @Override
      public boolean hasNext() {
        while (!page.hasNext() && !last) {
          Page<T> next = fetch.apply(token);
          page = next.items().iterator();
          token = next.nextPageToken();
          last = token.isEmpty();
        }
        return page.hasNext();
      }

      @Override
      public T next() {
        if (!hasNext()) {
          throw new NoSuchElementException();
        }
        return page.next();
      }
    };
    return StreamSupport.stream(
        Spliterators.spliteratorUnknownSize(items, Spliterator.ORDERED | Spliterator.NONNULL),
        false);
  }
}
