package dev.taskq.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.taskq.v1.HttpMethod;
import dev.taskq.v1.HttpRequest;
import dev.taskq.v1.HttpTarget;
import dev.taskq.v1.Queue;
import dev.taskq.v1.QueueType;
import dev.taskq.v1.Task;
import io.grpc.Status;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/** HTTP push fields (a queue's http_target, a task's http_request) sent and read back. */
@ExtendWith(SharedServer.class)
class HttpPushTest {
  private TaskqClient client;

  @BeforeEach
  void connect(TaskqServer server) {
    client = TaskqClient.connect(server.address());
  }

  @AfterEach
  void close() {
    client.close();
  }

  @Test
  void aQueueTargetAndATaskRequestRoundTrip() {
    String queue = client.createQueue(Queue.newBuilder()
        .setName(Fixtures.queueId("http"))
        .setType(QueueType.QUEUE_TYPE_PUSH)
        .setHttpTarget(HttpTarget.newBuilder()
            .setUri("https://worker.example.com/base")
            .setHttpMethod(HttpMethod.HTTP_METHOD_PATCH)
            .putHeaders("X-Env", "test"))
        .build()).getName();
    client.pauseQueue(queue); // no delivery attempts while the test reads the tasks

    HttpTarget target = client.getQueue(queue).getHttpTarget();
    assertEquals("https://worker.example.com/base", target.getUri());
    assertEquals(HttpMethod.HTTP_METHOD_PATCH, target.getHttpMethod());
    assertEquals(Map.of("X-Env", "test"), target.getHeadersMap());

    Task created = client.createTask(queue, Task.newBuilder()
        .setPayload(ByteString.copyFromUtf8("{\"n\":1}"))
        .setHttpRequest(HttpRequest.newBuilder()
            .setUrl("/path?x=1")
            .setHttpMethod(HttpMethod.HTTP_METHOD_PUT)
            .putHeaders("Content-Type", "application/json"))
        .build());
    Task task = client.getTask(created.getName());
    assertEquals("/path?x=1", task.getHttpRequest().getUrl());
    assertEquals(HttpMethod.HTTP_METHOD_PUT, task.getHttpRequest().getHttpMethod());
    assertEquals(Map.of("Content-Type", "application/json"), task.getHttpRequest().getHeadersMap());
    assertEquals("{\"n\":1}", task.getPayload().toStringUtf8());
    assertEquals(0, task.getResponseCount());
    assertEquals(0, task.getLastAttempt().getHttpStatus());

    // createTasks (one BatchCreateTasks) carries it too.
    List<ItemResult<Task>> results = client.createTasks(queue, List.of(
        Task.newBuilder().setHttpRequest(HttpRequest.newBuilder()
            .setUrl("https://other.example.com/hook")
            .setHttpMethod(HttpMethod.HTTP_METHOD_DELETE)).build(),
        Fixtures.payload("plain")));
    assertTrue(results.stream().allMatch(ItemResult::isOk), results.toString());
    Task absolute = client.getTask(results.get(0).value().getName());
    assertEquals("https://other.example.com/hook", absolute.getHttpRequest().getUrl());
    assertEquals(HttpMethod.HTTP_METHOD_DELETE, absolute.getHttpRequest().getHttpMethod());
    assertEquals("", client.getTask(results.get(1).value().getName()).getHttpRequest().getUrl());

    Queue updated = client.updateQueue(Queue.newBuilder()
        .setName(queue)
        .setHttpTarget(HttpTarget.newBuilder().setUri("https://worker.example.com/v2"))
        .build(), "http_target");
    assertEquals("https://worker.example.com/v2", updated.getHttpTarget().getUri());
    assertTrue(updated.getHttpTarget().getHeadersMap().isEmpty(), "the path replaces the target");
  }

  @Test
  void updateQueueSetsAndRemovesATarget() {
    String queue = Fixtures.pushQueue(client, "http-update").getName();
    client.pauseQueue(queue);
    Queue set = client.updateQueue(Queue.newBuilder()
        .setName(queue)
        .setHttpTarget(HttpTarget.newBuilder().setUri("https://worker.example.com/base"))
        .build(), "http_target");
    assertEquals("https://worker.example.com/base", set.getHttpTarget().getUri());

    Queue removed = client.updateQueue(Queue.newBuilder().setName(queue).build(), "http_target");
    assertFalse(removed.hasHttpTarget(), removed.toString());
    assertFalse(client.getQueue(queue).hasHttpTarget());

    // A task of a queue without a target cannot carry a request.
    TaskqException error = assertThrows(TaskqException.class, () -> client.createTask(queue,
        Task.newBuilder().setHttpRequest(HttpRequest.newBuilder().setUrl("/path")).build()));
    assertEquals(Status.Code.INVALID_ARGUMENT, error.code());
  }
}
