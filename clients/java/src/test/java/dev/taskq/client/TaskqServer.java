package dev.taskq.client;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * A real taskq server for the tests: {@code taskq serve} on a free port of 127.0.0.1 with a
 * temporary data directory, stopped with SIGTERM.
 *
 * <p>The executable is {@code $TASKQ_BIN} (the Makefile's test-java target exports it), or else
 * the checkout's virtualenv ({@code ../../.venv/bin/taskq}, passed in by the pom).
 */
final class TaskqServer implements AutoCloseable {
  private static final Pattern LISTENING = Pattern.compile("taskq listening on (\\S+):(\\d+)");
  private static final long START_TIMEOUT_SECONDS = 30;

  private final Path home;
  private final Path log;
  private final Map<String, String> env;
  private Process process;
  private int port;

  private TaskqServer(Path home, Map<String, String> env) {
    this.home = home;
    this.log = home.resolve("server.log");
    this.env = env;
  }

  /** Starts a server on a free port. */
  static TaskqServer start() throws IOException, InterruptedException {
    return start(Map.of());
  }

  /** Starts a server on a free port with {@code env} in its environment (TASKQ_TLS_CERT_FILE, ...). */
  static TaskqServer start(Map<String, String> env) throws IOException, InterruptedException {
    TaskqServer server = new TaskqServer(Files.createTempDirectory("taskq-java-test"), env);
    server.launch(0);
    return server;
  }

  /** The executable the tests run. */
  static Path executable() {
    String configured = System.getenv("TASKQ_BIN");
    if (configured == null || configured.isEmpty()) {
      configured = System.getProperty("taskq.defaultBin", "../../.venv/bin/taskq");
    }
    Path bin = Path.of(configured).toAbsolutePath().normalize();
    if (!Files.isExecutable(bin)) {
      throw new IllegalStateException("no taskq server at " + bin
          + ": run `make install` at the root of the checkout, or set TASKQ_BIN");
    }
    return bin;
  }

  /** Starts the server again, on the same port and data directory, after {@link #stop()}. */
  void restart() throws IOException, InterruptedException {
    launch(port);
  }

  private void launch(int onPort) throws IOException, InterruptedException {
    ProcessBuilder builder = new ProcessBuilder(List.of(
        executable().toString(), "serve",
        "--listen", "127.0.0.1:" + onPort,
        "--data-dir", home.resolve("data").toString(),
        "--grace-period-seconds", "5"))
        .redirectError(ProcessBuilder.Redirect.appendTo(log.toFile()));
    builder.environment().putAll(env);
    process = builder.start();
    CompletableFuture<Integer> listening = new CompletableFuture<>();
    Thread reader = new Thread(() -> {
      try (BufferedReader out = new BufferedReader(
          new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
        String line;
        while ((line = out.readLine()) != null) {
          Matcher matcher = LISTENING.matcher(line);
          if (matcher.find()) {
            listening.complete(Integer.parseInt(matcher.group(2)));
          }
        }
      } catch (IOException ended) {
        // the process is gone
      }
      listening.completeExceptionally(new IllegalStateException("the server exited"));
    }, "taskq-server-stdout");
    reader.setDaemon(true);
    reader.start();
    try {
      port = listening.get(START_TIMEOUT_SECONDS, TimeUnit.SECONDS);
    } catch (Exception e) {
      process.destroyForcibly();
      throw new IllegalStateException("the taskq server did not start:\n" + logTail(), e);
    }
  }

  String address() {
    return "127.0.0.1:" + port;
  }

  int port() {
    return port;
  }

  /** Stops the server with SIGTERM and returns its exit code. */
  int stop() throws InterruptedException {
    process.destroy(); // SIGTERM
    if (!process.waitFor(30, TimeUnit.SECONDS)) {
      process.destroyForcibly().waitFor();
      throw new IllegalStateException("the server did not stop within 30 s of SIGTERM");
    }
    return process.exitValue();
  }

  String logTail() {
    try {
      List<String> lines = Files.readAllLines(log);
      return String.join("\n", lines.subList(Math.max(0, lines.size() - 30), lines.size()));
    } catch (IOException e) {
      return "(no server log)";
    }
  }

  @Override
  public void close() throws Exception {
    if (process != null && process.isAlive()) {
      int exit = stop();
      if (exit != 0) {
        System.err.println("taskq server exited with " + exit + ":\n" + logTail());
      }
    }
    try (Stream<Path> files = Files.walk(home)) {
      files.sorted(Comparator.reverseOrder()).forEach(path -> path.toFile().delete());
    }
  }
}
