package dev.taskq.client;

import static dev.taskq.client.Fixtures.eventually;
import static dev.taskq.client.Fixtures.payload;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.taskq.v1.Task;
import io.grpc.Status;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The client against a real taskq server that requires TLS with client certificates (mTLS),
 * set up through TASKQ_TLS_CERT_FILE, TASKQ_TLS_KEY_FILE and TASKQ_TLS_CLIENT_CA_FILE. Its
 * certificate is for localhost, 127.0.0.1 and taskq.internal.
 */
class TlsTest {
  private static final Duration WAIT = Duration.ofSeconds(15);

  @TempDir
  static Path dir;

  private static TestCertificates certificates;
  private static TaskqServer server;
  private static TlsSettings mtls;

  @BeforeAll
  static void startServer() throws Exception {
    certificates = TestCertificates.write(dir, "localhost", "127.0.0.1", "taskq.internal");
    server = TaskqServer.start(Map.of(
        "TASKQ_TLS_CERT_FILE", certificates.serverCert.toString(),
        "TASKQ_TLS_KEY_FILE", certificates.serverKey.toString(),
        "TASKQ_TLS_CLIENT_CA_FILE", certificates.ca.toString()));
    mtls = TlsSettings.DEFAULT.withCaFile(certificates.ca)
        .withClientCertificate(certificates.clientCert, certificates.clientKey);
  }

  @AfterAll
  static void stopServer() throws Exception {
    if (server != null) {
      server.close();
    }
  }

  /** A call fails with UNAVAILABLE (a refused handshake), its message matching {@code why}. */
  private static void refused(TaskqClient.Builder builder, String why) {
    try (TaskqClient client = builder.retry(CallRetry.DISABLED).timeout(Duration.ofSeconds(10)).build()) {
      TaskqException error = assertThrows(TaskqException.class, () -> client.getQueue("anything"));
      assertEquals(Status.Code.UNAVAILABLE, error.code(), error.getMessage());
      assertTrue(Pattern.compile(why, Pattern.DOTALL).matcher(describe(error)).find(),
          "the error says " + why + ": " + describe(error));
    }
  }

  /** The error's message and its causes'. */
  private static String describe(Throwable error) {
    StringBuilder text = new StringBuilder();
    for (Throwable cause = error; cause != null; cause = cause.getCause()) {
      text.append(cause).append('\n');
    }
    return text.toString();
  }

  @Test
  void unaryCallsOverMtls() {
    try (TaskqClient client = TaskqClient.builder(server.address()).tls(mtls).build()) {
      String queue = Fixtures.pullQueue(client, "tls-pull").getName();
      client.createTask(queue, payload("hello"));
      List<Task> leased = client.leaseTasks(queue, LeaseOptions.of(Duration.ofMinutes(1), 1));
      assertEquals("hello", leased.get(0).getPayload().toStringUtf8());
      client.ack(leased.get(0));
      assertEquals(0, client.getQueueStats(queue).getTasksCount());
    }
  }

  @Test
  void thePushWorkerStreamsOverMtlsToAnHttpsAddress() throws Exception {
    try (TaskqClient client = TaskqClient.builder("https://localhost:" + server.port()).tls(mtls).build()) {
      String queue = Fixtures.pushQueue(client, "tls-push").getName();
      for (int i = 0; i < 5; i++) {
        client.createTask(queue, payload("t" + i));
      }
      CountDownLatch handled = new CountDownLatch(5);
      try (Worker worker = Worker.builder(client, queue, task -> handled.countDown())
          .concurrency(2).build().start()) {
        assertTrue(handled.await(WAIT.toSeconds(), TimeUnit.SECONDS), "5 tasks handled");
        eventually(WAIT, "the acks to empty the queue", () -> client.getQueueStats(queue).getTasksCount() == 0);
      }
    }
  }

  @Test
  void aDnsAddressWithTheCaFile() {
    try (TaskqClient client = TaskqClient.builder("dns:///localhost:" + server.port()).tls(mtls).build()) {
      assertThrows(TaskqException.QueueNotFound.class, () -> client.getQueue("missing"));
    }
  }

  @Test
  void aClientWithoutACertificateIsRefused() {
    refused(TaskqClient.builder(server.address()).tls(TlsSettings.DEFAULT.withCaFile(certificates.ca)), "");
  }

  @Test
  void aPlainTextClientIsRefused() {
    refused(TaskqClient.builder(server.address()), "");
  }

  @Test
  void httpsWithoutACaFileTrustsOnlyTheJdksCas() {
    refused(TaskqClient.builder("https://127.0.0.1:" + server.port()), "(?i)certification path|unable to find valid");
  }

  @Test
  void theServerNameIsCheckedInsteadOfTheAddressesHost() {
    try (TaskqClient client = TaskqClient.builder(server.address())
        .tls(mtls.withServerName("taskq.internal")).build()) {
      assertThrows(TaskqException.QueueNotFound.class, () -> client.getQueue("missing"));
    }
    refused(TaskqClient.builder(server.address()).tls(mtls.withServerName("elsewhere.example")),
        "elsewhere\\.example");
  }

  @Test
  void unusableFilesAreNamedWhenTheClientIsBuilt() throws Exception {
    Path missing = dir.resolve("missing.pem");
    Path empty = Files.writeString(dir.resolve("empty.pem"), "nothing here\n");
    Map<TlsSettings, String> cases = Map.of(
        TlsSettings.DEFAULT.withCaFile(missing), "cannot read caFile " + missing + ": no such file or directory",
        TlsSettings.DEFAULT.withCaFile(certificates.clientKey),
        "caFile " + certificates.clientKey + " holds no PEM certificate",
        TlsSettings.DEFAULT.withClientCertificate(certificates.clientCert, empty),
        "keyFile " + empty + " holds no PEM private key");
    cases.forEach((settings, message) -> {
      InvalidTlsSettingsException error = assertThrows(InvalidTlsSettingsException.class,
          () -> TaskqClient.builder("127.0.0.1:50051").tls(settings).build());
      assertTrue(error.getMessage().contains(message), error.getMessage());
    });
  }
}
