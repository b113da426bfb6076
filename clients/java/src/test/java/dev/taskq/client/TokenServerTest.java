package dev.taskq.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The token through a real taskq server configured with a tokens file (auth_tokens_file,
 * TASKQ_AUTH_TOKENS_FILE: the SHA-256 of each token with its roles). A server without
 * authentication answers a call without a token: the test is then skipped, TokenTest's stand-in
 * standing in for it.
 */
class TokenServerTest {
  private static final String TOKEN = "taskq_java-test-token-0123456789abcdefghijklmnopq";

  @TempDir
  Path dir;

  @Test
  void aCallWithTheTokenWorksTheWorkersStreamTooAndAWrongTokenIsUnauthenticated() throws Exception {
    String digest = HexFormat.of().formatHex(
        MessageDigest.getInstance("SHA-256").digest(TOKEN.getBytes(StandardCharsets.US_ASCII)));
    Path tokens = Files.writeString(dir.resolve("tokens.yaml"),
        "tokens:\n  - name: java-test\n    sha256: " + digest + "\n    roles: [admin]\n");
    try (TaskqServer server = TaskqServer.start(Map.of("TASKQ_AUTH_TOKENS_FILE", tokens.toString()))) {
      try (TaskqClient anonymous = TaskqClient.builder(server.address()).retry(CallRetry.DISABLED).build()) {
        TaskqException answer = assertThrows(TaskqException.class, () -> anonymous.getQueue("anything"));
        Assumptions.assumeTrue(answer.code() == Status.Code.UNAUTHENTICATED,
            "this server does not check tokens (a call without one got " + answer.getMessage() + ")");
      }
      try (TaskqClient client = TaskqClient.builder(server.address()).token(TOKEN).build();
          TaskqClient wrong = TaskqClient.builder(server.address()).token("taskq_wrong").build()) {
        String queue = Fixtures.pushQueue(client, "auth").getName();
        client.createTask(queue, Fixtures.payload("hello"));
        CountDownLatch handled = new CountDownLatch(1);
        try (Worker worker = Worker.builder(client, queue, task -> handled.countDown()).build().start()) {
          assertTrue(handled.await(10, TimeUnit.SECONDS), "the worker with the token received the task");
        }
        assertEquals(Status.Code.UNAUTHENTICATED,
            assertThrows(TaskqException.class, () -> wrong.getQueue(queue)).code());
        try (Worker worker = Worker.builder(wrong, queue, task -> { }).build().start()) {
          ExecutionException stopped = assertThrows(ExecutionException.class,
              () -> worker.termination().get(10, TimeUnit.SECONDS));
          assertEquals(Status.Code.UNAUTHENTICATED, TaskqException.from(stopped.getCause()).code());
        }
      }
    }
  }
}
