package dev.taskq.client;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * {@code tests/support/flaky_proxy.py} in front of a server: a TCP proxy that loses the answers
 * to the first calls on purpose, after the server has done the work (see that file).
 */
final class FlakyProxy implements AutoCloseable {
  private static final String LISTENING = "flaky_proxy listening on ";
  private static final long START_TIMEOUT_SECONDS = 30;

  private final Process process;
  private final BlockingQueue<String> lines = new LinkedBlockingQueue<>();
  private final String address;

  private FlakyProxy(String target, int drops) throws IOException, InterruptedException {
    Path root = Path.of(System.getProperty("taskq.root", "../..")).toAbsolutePath().normalize();
    // Any Python 3.11+ runs it (standard library only); the checkout's virtualenv has one.
    Path venvPython = root.resolve(".venv/bin/python");
    String python = Files.isExecutable(venvPython) ? venvPython.toString() : "python3";
    Path script = root.resolve("tests/support/flaky_proxy.py");
    process = new ProcessBuilder(List.of(python, script.toString(),
        "--target", target, "--drop-responses", String.valueOf(drops)))
        .redirectError(ProcessBuilder.Redirect.INHERIT)
        .start();
    Thread reader = new Thread(() -> {
      try (BufferedReader out = new BufferedReader(
          new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
        String line;
        while ((line = out.readLine()) != null) {
          lines.add(line.strip());
        }
      } catch (IOException ended) {
        // the process is gone
      }
    }, "flaky-proxy-stdout");
    reader.setDaemon(true);
    reader.start();
    String first = lines.poll(START_TIMEOUT_SECONDS, TimeUnit.SECONDS);
    if (first == null || !first.startsWith(LISTENING)) {
      process.destroyForcibly();
      throw new IllegalStateException(
          "the flaky proxy printed " + first + " instead of its address");
    }
    address = first.substring(LISTENING.length());
  }

  /**
   * Starts a proxy to {@code target} (host:port) that loses the answers to the first
   * {@code drops} calls.
   */
  static FlakyProxy start(String target, int drops) throws IOException, InterruptedException {
    return new FlakyProxy(target, drops);
  }

  /** host:port to connect to instead of the server's. */
  String address() {
    return address;
  }

  /** The next line the proxy prints ("dropped response on stream N" per lost answer), or null. */
  String nextLine(long timeoutSeconds) throws InterruptedException {
    return lines.poll(timeoutSeconds, TimeUnit.SECONDS);
  }

  /** Stops the proxy (the end of its input) and waits for it to exit. */
  @Override
  public void close() throws Exception {
    process.getOutputStream().close();
    if (!process.waitFor(10, TimeUnit.SECONDS)) {
      process.destroyForcibly().waitFor();
    }
  }
}
