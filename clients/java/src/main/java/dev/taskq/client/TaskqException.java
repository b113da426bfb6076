package dev.taskq.client;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.BadRequest;
import com.google.rpc.ErrorInfo;
import com.google.rpc.PreconditionFailure;
import com.google.rpc.RetryInfo;
import io.grpc.Status;
import io.grpc.StatusException;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import java.io.Serializable;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.function.Function;

/**
 * A failed call to the taskq server.
 *
 * <p>Every error carries its canonical gRPC {@link #code()} and, when the server sent a
 * {@code google.rpc.Status}, the stable {@link #reason()} of its {@code ErrorInfo} (domain
 * {@value #DOMAIN}), the {@code ErrorInfo} {@link #metadata()}, the {@link #fieldViolations()}
 * of a {@code BadRequest} and the {@link #preconditionViolations()} of a
 * {@code PreconditionFailure}. The reasons callers commonly handle have their own subclasses,
 * so both styles work:
 *
 * <pre>{@code
 * try { client.ack(task); }
 * catch (TaskqException.LeaseLost e) { ... }            // exactly this reason
 * catch (TaskqException e) { if (e.code() == Status.Code.UNAVAILABLE) ... }
 * }</pre>
 */
public class TaskqException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  /** The {@code ErrorInfo.domain} of errors produced by the taskq server. */
  public static final String DOMAIN = "taskq.dev";

  /** One invalid request field, from a {@code google.rpc.BadRequest} detail. */
  public record FieldViolation(String field, String description) implements Serializable {}

  /** One violated precondition, from a {@code google.rpc.PreconditionFailure} detail. */
  public record PreconditionViolation(String type, String subject, String description)
      implements Serializable {}

  private final Status.Code code;
  private final String description;
  private final String reason;
  private final String domain;
  private final Map<String, String> metadata;
  private final List<FieldViolation> fieldViolations;
  private final List<PreconditionViolation> preconditionViolations;
  private final Duration retryDelay;
  private final com.google.rpc.Status status;

  /** What an error is made of; every subclass is built from one. */
  record Details(
      Status.Code code,
      String description,
      String reason,
      String domain,
      Map<String, String> metadata,
      List<FieldViolation> fieldViolations,
      List<PreconditionViolation> preconditionViolations,
      Duration retryDelay,
      com.google.rpc.Status status,
      Throwable cause) {}

  TaskqException(Details details) {
    super(label(details.code(), details.reason()) + ": " + details.description(), details.cause());
    this.code = details.code();
    this.description = details.description();
    this.reason = details.reason();
    this.domain = details.domain();
    this.metadata = Map.copyOf(details.metadata());
    this.fieldViolations = List.copyOf(details.fieldViolations());
    this.preconditionViolations = List.copyOf(details.preconditionViolations());
    this.retryDelay = details.retryDelay();
    this.status = details.status();
  }

  /** The canonical gRPC status code. */
  public Status.Code code() {
    return code;
  }

  /** The server's message alone (without the code and reason of {@link #getMessage()}). */
  public String description() {
    return description;
  }

  /**
   * The stable UPPER_SNAKE {@code ErrorInfo.reason}, for example {@code QUEUE_NOT_FOUND}; empty
   * when the error carries none (transport failures, client-side deadlines).
   */
  public String reason() {
    return reason;
  }

  /** The {@code ErrorInfo.domain}: {@value #DOMAIN} for the taskq server's own errors. */
  public String domain() {
    return domain;
  }

  /** The {@code ErrorInfo.metadata}, for example {@code {queue=queues/q}}. */
  public Map<String, String> metadata() {
    return metadata;
  }

  /** The invalid fields of an INVALID_ARGUMENT error. */
  public List<FieldViolation> fieldViolations() {
    return fieldViolations;
  }

  /** The violated preconditions of a FAILED_PRECONDITION error. */
  public List<PreconditionViolation> preconditionViolations() {
    return preconditionViolations;
  }

  /** How long the server asks the caller to wait before trying again, if it said. */
  public Optional<Duration> retryDelay() {
    return Optional.ofNullable(retryDelay);
  }

  /** The whole {@code google.rpc.Status}, when the server sent one. */
  public Optional<com.google.rpc.Status> status() {
    return Optional.ofNullable(status);
  }

  // One class per reason callers commonly handle ------------------------------------------

  /** NOT_FOUND, QUEUE_NOT_FOUND: the queue does not exist. */
  public static class QueueNotFound extends TaskqException {
    private static final long serialVersionUID = 1L;

    QueueNotFound(Details details) {
      super(details);
    }
  }

  /** NOT_FOUND, TASK_NOT_FOUND: the task does not exist (finished, deleted or never created). */
  public static class TaskNotFound extends TaskqException {
    private static final long serialVersionUID = 1L;

    TaskNotFound(Details details) {
      super(details);
    }
  }

  /** ALREADY_EXISTS, QUEUE_ALREADY_EXISTS: a queue of that name exists. */
  public static class QueueAlreadyExists extends TaskqException {
    private static final long serialVersionUID = 1L;

    QueueAlreadyExists(Details details) {
      super(details);
    }
  }

  /** ALREADY_EXISTS, TASK_ALREADY_EXISTS: a task of that name exists. */
  public static class TaskAlreadyExists extends TaskqException {
    private static final long serialVersionUID = 1L;

    TaskAlreadyExists(Details details) {
      super(details);
    }
  }

  /**
   * ALREADY_EXISTS, TASK_TOMBSTONED: a task of that name finished within the queue's
   * {@code tombstone_ttl}, so the name is still reserved.
   */
  public static class TaskTombstoned extends TaskqException {
    private static final long serialVersionUID = 1L;

    TaskTombstoned(Details details) {
      super(details);
    }
  }

  /**
   * FAILED_PRECONDITION, LEASE_LOST: the lease token no longer names the task's current lease
   * (it expired, was released, the task was leased again, or the task is gone).
   */
  public static class LeaseLost extends TaskqException {
    private static final long serialVersionUID = 1L;

    LeaseLost(Details details) {
      super(details);
    }
  }

  /** FAILED_PRECONDITION, QUEUE_PAUSED: the queue is paused and hands out no tasks. */
  public static class QueuePaused extends TaskqException {
    private static final long serialVersionUID = 1L;

    QueuePaused(Details details) {
      super(details);
    }
  }

  /**
   * FAILED_PRECONDITION, WRONG_QUEUE_TYPE: the call is for the other queue type (LeaseTasks on
   * a push queue, StreamTasks on a pull queue).
   */
  public static class WrongQueueType extends TaskqException {
    private static final long serialVersionUID = 1L;

    WrongQueueType(Details details) {
      super(details);
    }
  }

  /** FAILED_PRECONDITION, TASK_LEASED: the task is leased, so it cannot be re-run now. */
  public static class TaskLeased extends TaskqException {
    private static final long serialVersionUID = 1L;

    TaskLeased(Details details) {
      super(details);
    }
  }

  /** A reason's class, and the code it comes with. */
  private record Kind(Status.Code code, Function<Details, TaskqException> make) {}

  private static final Map<String, Kind> KINDS = Map.of(
      "QUEUE_NOT_FOUND", new Kind(Status.Code.NOT_FOUND, QueueNotFound::new),
      "TASK_NOT_FOUND", new Kind(Status.Code.NOT_FOUND, TaskNotFound::new),
      "QUEUE_ALREADY_EXISTS", new Kind(Status.Code.ALREADY_EXISTS, QueueAlreadyExists::new),
      "TASK_ALREADY_EXISTS", new Kind(Status.Code.ALREADY_EXISTS, TaskAlreadyExists::new),
      "TASK_TOMBSTONED", new Kind(Status.Code.ALREADY_EXISTS, TaskTombstoned::new),
      "LEASE_LOST", new Kind(Status.Code.FAILED_PRECONDITION, LeaseLost::new),
      "QUEUE_PAUSED", new Kind(Status.Code.FAILED_PRECONDITION, QueuePaused::new),
      "WRONG_QUEUE_TYPE", new Kind(Status.Code.FAILED_PRECONDITION, WrongQueueType::new),
      "TASK_LEASED", new Kind(Status.Code.FAILED_PRECONDITION, TaskLeased::new));

  // Conversions ----------------------------------------------------------------------------

  /**
   * The TaskqException for any failure of a call: a gRPC {@code StatusRuntimeException} or
   * {@code StatusException} (its {@code google.rpc.Status} read from the trailers), a
   * TaskqException (returned as is), or one wrapped in a {@code CompletionException} or
   * {@code ExecutionException}. Anything else becomes an UNKNOWN error with it as the cause.
   */
  public static TaskqException from(Throwable error) {
    Throwable t = error;
    while ((t instanceof CompletionException || t instanceof ExecutionException)
        && t.getCause() != null) {
      t = t.getCause();
    }
    if (t instanceof TaskqException taskq) {
      return taskq;
    }
    if (t instanceof CancellationException) {
      return create(plain(Status.Code.CANCELLED, "the call was cancelled", t));
    }
    Status grpcStatus;
    if (t instanceof StatusRuntimeException e) {
      grpcStatus = e.getStatus();
    } else if (t instanceof StatusException e) {
      grpcStatus = e.getStatus();
    } else {
      return create(plain(Status.Code.UNKNOWN, String.valueOf(t), t));
    }
    String description = grpcStatus.getDescription() != null
        ? grpcStatus.getDescription() : grpcStatus.getCode().name();
    com.google.rpc.Status rich;
    try {
      rich = StatusProto.fromThrowable(t);
    } catch (IllegalArgumentException contradicting) {
      // The trailer disagrees with the call's code (a proxy rewrote one): trust the call.
      rich = null;
    }
    if (rich == null) {
      return create(plain(grpcStatus.getCode(), description, t));
    }
    return create(parse(grpcStatus.getCode(), description, rich, t));
  }

  /**
   * The error a {@code google.rpc.Status} describes, for example one item of a batch result.
   */
  public static TaskqException fromStatus(com.google.rpc.Status status) {
    Status.Code code = Status.fromCodeValue(status.getCode()).getCode();
    return create(parse(code, status.getMessage(), status, null));
  }

  /** An error that the client itself detected (no server status involved). */
  static TaskqException local(Status.Code code, String description, Throwable cause) {
    return create(plain(code, description, cause));
  }

  /**
   * The same error as seen by a caller who made a single request of a batch the client made
   * for it: the server names the item's fields {@code requests[3].task.tag}, the caller's
   * request calls it {@code task.tag}.
   */
  TaskqException withoutFieldPrefix(String prefix) {
    List<FieldViolation> fields = fieldViolations.stream()
        .map(v -> new FieldViolation(
            v.field().startsWith(prefix) ? v.field().substring(prefix.length()) : v.field(),
            v.description()))
        .toList();
    return create(new Details(code, description.replace(prefix, ""), reason, domain, metadata,
        fields, preconditionViolations, retryDelay, status, getCause()));
  }

  /** The most specific class for the details' code and reason. */
  static TaskqException create(Details details) {
    // Reasons mean something only within their domain (another service's reason of the same
    // spelling must not become, say, a LeaseLost), and select a class only when the code
    // agrees with them.
    Kind kind = DOMAIN.equals(details.domain()) ? KINDS.get(details.reason()) : null;
    if (kind != null && kind.code() == details.code()) {
      return kind.make().apply(details);
    }
    return new TaskqException(details);
  }

  private static Details plain(Status.Code code, String description, Throwable cause) {
    return new Details(
        code, description, "", "", Map.of(), List.of(), List.of(), null, null, cause);
  }

  private static Details parse(
      Status.Code code, String description, com.google.rpc.Status status, Throwable cause) {
    String reason = "";
    String domain = "";
    Map<String, String> metadata = Map.of();
    List<FieldViolation> fields = new ArrayList<>();
    List<PreconditionViolation> preconditions = new ArrayList<>();
    Duration retryDelay = null;
    for (Any detail : status.getDetailsList()) {
      try {
        if (detail.is(ErrorInfo.class)) {
          ErrorInfo info = detail.unpack(ErrorInfo.class);
          reason = info.getReason();
          domain = info.getDomain();
          metadata = info.getMetadataMap();
        } else if (detail.is(BadRequest.class)) {
          for (BadRequest.FieldViolation v : detail.unpack(BadRequest.class).getFieldViolationsList()) {
            fields.add(new FieldViolation(v.getField(), v.getDescription()));
          }
        } else if (detail.is(PreconditionFailure.class)) {
          for (PreconditionFailure.Violation v :
              detail.unpack(PreconditionFailure.class).getViolationsList()) {
            preconditions.add(
                new PreconditionViolation(v.getType(), v.getSubject(), v.getDescription()));
          }
        } else if (detail.is(RetryInfo.class)) {
          retryDelay = ProtoTimes.duration(detail.unpack(RetryInfo.class).getRetryDelay());
        }
      } catch (InvalidProtocolBufferException malformed) {
        // A detail that does not parse is ignored; the code and message still stand.
      }
    }
    return new Details(code, description, reason, domain, metadata, fields, preconditions,
        retryDelay, status, cause);
  }

  private static String label(Status.Code code, String reason) {
    return reason.isEmpty() ? code.name() : code.name() + " " + reason;
  }
}
