package dev.taskq.example;

import dev.taskq.client.TaskqClient;
import dev.taskq.client.TaskqException;
import dev.taskq.v1.Task;

/**
 * The Java part of the cross-language check (tests/crosslang/check.sh): acknowledges a task
 * leased by another language, with that lease's token, and checks the task is gone.
 *
 * <pre>mvn -q test-compile exec:java -Dexec.mainClass=dev.taskq.example.CrossLanguage \
 *     -Dexec.args="ADDRESS TASK_NAME LEASE_TOKEN"</pre>
 */
public final class CrossLanguage {
  public static void main(String[] args) {
    if (args.length != 3) {
      System.err.println("usage: CrossLanguage ADDRESS TASK_NAME LEASE_TOKEN");
      System.exit(2);
    }
    String address = args[0];
    String name = args[1];
    String token = args[2];
    try (TaskqClient client = TaskqClient.connect(address)) {
      // The lease token makes the delete an acknowledgement of that lease.
      client.ack(Task.newBuilder().setName(name).setLeaseToken(token).build());
      try {
        client.getTask(name);
        System.err.println("the acknowledged task " + name + " still exists");
        System.exit(1);
      } catch (TaskqException.TaskNotFound expected) {
        System.out.println("acknowledged " + name);
      }
    }
  }

  private CrossLanguage() {}
}
