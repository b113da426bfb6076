package dev.taskq.example;

import com.google.protobuf.ByteString;
import dev.taskq.client.PullWorker;
import dev.taskq.client.TaskqClient;
import dev.taskq.client.TaskqException;
import dev.taskq.client.Worker;
import dev.taskq.v1.Queue;
import dev.taskq.v1.QueueType;
import dev.taskq.v1.Task;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/** Creates tasks in batches, handles them with a push worker, then runs a pull loop. */
public final class Example {
  public static void main(String[] args) throws Exception {
    String address = args.length > 0 ? args[0] : "127.0.0.1:50051"; // `make serve`
    try (TaskqClient client = TaskqClient.connect(address)) {
      createQueue(client, "java-emails", QueueType.QUEUE_TYPE_PUSH);
      createQueue(client, "java-reports", QueueType.QUEUE_TYPE_PULL);

      // Creates made within 2 ms of each other share one BatchCreateTasks call.
      List<CompletableFuture<Task>> creates = new ArrayList<>();
      for (int i = 0; i < 20; i++) {
        Task email = Task.newBuilder().setPayload(ByteString.copyFromUtf8("hello #" + i)).build();
        creates.add(client.createTaskAsync("java-emails", email));
      }
      CompletableFuture.allOf(creates.toArray(CompletableFuture[]::new)).join();

      // Push: the server streams tasks to the worker. Returning acks a task; throwing nacks
      // it (retried after the queue's backoff); the lease is extended while a handler runs.
      CountDownLatch sent = new CountDownLatch(20);
      try (Worker worker = Worker.builder(client, "java-emails", task -> {
        System.out.println("sending " + task.getPayload().toStringUtf8());
        sent.countDown();
      }).concurrency(4).build().start()) {
        sent.await(30, TimeUnit.SECONDS);
      } // close(): no new tasks, running handlers finish, answers sent, stream ended

      // Pull: lease → handle → delete, leasing only tasks tagged "q3".
      client.createTask("java-reports", Task.newBuilder()
          .setTag("q3")
          .setPayload(ByteString.copyFromUtf8("build the Q3 report"))
          .build());
      CountDownLatch built = new CountDownLatch(1);
      try (PullWorker reports = PullWorker.builder(client, "java-reports", task -> {
        System.out.println("working on: " + task.getPayload().toStringUtf8());
        built.countDown();
      }).tag("q3").leaseDuration(Duration.ofMinutes(1)).pollWait(Duration.ofSeconds(1))
          .build().start()) {
        built.await(30, TimeUnit.SECONDS);
      }
    }
  }

  private static void createQueue(TaskqClient client, String id, QueueType type) {
    try {
      client.createQueue(Queue.newBuilder().setName(id).setType(type).build());
    } catch (TaskqException.QueueAlreadyExists exists) {
      // created by an earlier run
    }
  }
}
