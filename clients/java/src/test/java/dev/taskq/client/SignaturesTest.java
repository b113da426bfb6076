package dev.taskq.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Duration;
import java.time.Instant;
import java.util.HexFormat;
import java.util.Locale;
import java.util.stream.Stream;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Signatures.verify against signatures computed here, with javax.crypto, from the formula. */
class SignaturesTest {
  private static final long T = 1767225600L;
  private static final String SECRET = "whsec-test";
  private static final String METHOD = "PUT";
  private static final String TARGET = "/base/path%2Fx?x=1&y=a%20b";
  private static final String QUEUE = "emails";
  private static final String TASK = "task-1";
  private static final String BODY = "{\"to\":\"ada@example.com\"}";
  private static final String GOOD = sign(SECRET, T, METHOD, TARGET, QUEUE, TASK, BODY);
  private static final String OTHER = sign("old-secret", T, METHOD, TARGET, QUEUE, TASK, BODY);
  private static final Instant NOW = Instant.ofEpochSecond(T + 42);

  /** HMAC-SHA256(secret, t \n METHOD \n target \n queue \n task \n hex(SHA-256(body))), hex. */
  static String sign(String secret, long t, String method, String target, String queue,
      String task, String body) {
    try {
      byte[] bodyHash = MessageDigest.getInstance("SHA-256")
          .digest(body.getBytes(StandardCharsets.UTF_8));
      String message = t + "\n" + method + "\n" + target + "\n" + queue + "\n" + task + "\n"
          + HexFormat.of().formatHex(bodyHash);
      Mac mac = Mac.getInstance("HmacSHA256");
      mac.init(new SecretKeySpec(secret.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
      return HexFormat.of().formatHex(mac.doFinal(message.getBytes(StandardCharsets.UTF_8)));
    } catch (Exception e) {
      throw new AssertionError(e);
    }
  }

  /** One verify call: the correct request with some of its parts changed. */
  record Case(String header, String secret, String method, String target, String queue,
      String task, byte[] body, Instant now, Duration tolerance) {
    static Case correct() {
      return new Case("t=" + T + ",v1=" + GOOD, SECRET, METHOD, TARGET, QUEUE, TASK,
          BODY.getBytes(StandardCharsets.UTF_8), NOW, Signatures.DEFAULT_TOLERANCE);
    }

    Case header(String header) {
      return new Case(header, secret, method, target, queue, task, body, now, tolerance);
    }

    Case secret(String secret) {
      return new Case(header, secret, method, target, queue, task, body, now, tolerance);
    }

    Case method(String method) {
      return new Case(header, secret, method, target, queue, task, body, now, tolerance);
    }

    Case target(String target) {
      return new Case(header, secret, method, target, queue, task, body, now, tolerance);
    }

    Case queue(String queue) {
      return new Case(header, secret, method, target, queue, task, body, now, tolerance);
    }

    Case task(String task) {
      return new Case(header, secret, method, target, queue, task, body, now, tolerance);
    }

    Case body(byte[] body) {
      return new Case(header, secret, method, target, queue, task, body, now, tolerance);
    }

    Case at(long secondsAfterT, Duration tolerance) {
      return new Case(header, secret, method, target, queue, task, body,
          Instant.ofEpochSecond(T + secondsAfterT), tolerance);
    }

    boolean verify() {
      return Signatures.verify(header, secret, method, target, queue, task, body, now, tolerance);
    }
  }

  static Stream<Arguments> cases() {
    Case c = Case.correct();
    Duration d = Signatures.DEFAULT_TOLERANCE;
    return Stream.of(
        Arguments.of("correct", c, true),
        Arguments.of("the method in lower case", c.method("put"), true),
        Arguments.of("spaces around entries", c.header(" t=" + T + " , v1=" + GOOD + " "), true),
        Arguments.of("v1 before t", c.header("v1=" + GOOD + ",t=" + T), true),
        Arguments.of("an unknown version is ignored", c.header("t=" + T + ",v0=zz,v1=" + GOOD), true),
        Arguments.of("rotation: the second v1 matches",
            c.header("t=" + T + ",v1=" + OTHER + ",v1=" + GOOD), true),
        Arguments.of("rotation: the first v1 matches",
            c.header("t=" + T + ",v1=" + GOOD + ",v1=" + OTHER), true),
        Arguments.of("rotation: only other secrets",
            c.header("t=" + T + ",v1=" + OTHER + ",v1=" + OTHER), false),
        Arguments.of("wrong secret", c.secret("whsec-tesT"), false),
        Arguments.of("empty secret", c.secret(""), false),
        Arguments.of("null secret", c.secret(null), false),
        Arguments.of("tampered body",
            c.body("{\"to\":\"eve@example.com\"}".getBytes(StandardCharsets.UTF_8)), false),
        Arguments.of("no body", c.body(null), false),
        Arguments.of("tampered target path", c.target("/base/path/x?x=1&y=a%20b"), false),
        Arguments.of("tampered target query", c.target("/base/path%2Fx?x=2&y=a%20b"), false),
        Arguments.of("target without its query", c.target("/base/path%2Fx"), false),
        Arguments.of("tampered method", c.method("POST"), false),
        Arguments.of("tampered queue", c.queue("emails2"), false),
        Arguments.of("tampered task", c.task("task-2"), false),
        Arguments.of("null task", c.task(null), false),
        Arguments.of("tampered t", c.header("t=" + (T + 1) + ",v1=" + GOOD), false),
        Arguments.of("signature in upper case hex",
            c.header("t=" + T + ",v1=" + GOOD.toUpperCase(Locale.ROOT)), false),
        Arguments.of("truncated signature", c.header("t=" + T + ",v1=" + GOOD.substring(1)), false),
        Arguments.of("300 s old: within the default tolerance", c.at(300, d), true),
        Arguments.of("301 s old", c.at(301, d), false),
        Arguments.of("301 s in the future", c.at(-301, d), false),
        Arguments.of("an hour old", c.at(3600, d), false),
        Arguments.of("within a custom tolerance", c.at(3600, Duration.ofHours(2)), true),
        Arguments.of("outside a custom tolerance", c.at(11, Duration.ofSeconds(10)), false),
        Arguments.of("null header", c.header(null), false),
        Arguments.of("empty header", c.header(""), false),
        Arguments.of("blank header", c.header("  "), false),
        Arguments.of("no t", c.header("v1=" + GOOD), false),
        Arguments.of("empty t", c.header("t=,v1=" + GOOD), false),
        Arguments.of("t not a number", c.header("t=soon,v1=" + GOOD), false),
        Arguments.of("negative t", c.header("t=-" + T + ",v1=" + GOOD), false),
        Arguments.of("two t", c.header("t=" + T + ",t=" + T + ",v1=" + GOOD), false),
        Arguments.of("huge t", c.header("t=99999999999999999999999,v1=" + GOOD), false),
        Arguments.of("t past Instant's range", c.header("t=999999999999999999,v1=" + GOOD), false),
        Arguments.of("no v1", c.header("t=" + T), false),
        Arguments.of("only another version", c.header("t=" + T + ",v0=" + GOOD), false),
        Arguments.of("garbage", c.header("garbage"), false),
        Arguments.of("a garbage entry", c.header("t=" + T + ",v1=" + GOOD + ",garbage"), false),
        Arguments.of("semicolons", c.header("t=" + T + ";v1=" + GOOD), false));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("cases")
  void verify(String name, Case request, boolean valid) {
    assertEquals(valid, request.verify(), name);
  }

  @Test
  void theFormulaMatchesAVectorComputedWithPython() {
    // Pins this test's sign(), so that it cannot drift together with the code under test.
    assertEquals("ccc92a16a8320a57212d17018478ff955b1ce98e7886549c039c62a839f545d4", GOOD);
    // A secret is used as its UTF-8 bytes; no body hashes the empty string.
    assertTrue(Signatures.verify(
        "t=1767225600,v1=7d5efbdb46753481e88222b4af26e9a1baa25115a6cbf76944dc7ec452529522",
        "kéy", "POST", "/", "q", "t", null, Instant.ofEpochSecond(T), Duration.ofSeconds(1)));
  }

  @Test
  void theShortFormChecksAgainstTheCurrentTime() {
    long now = Instant.now().getEpochSecond();
    String fresh = "t=" + now + ",v1=" + sign(SECRET, now, "POST", "/", "q", "t", "");
    assertTrue(Signatures.verify(fresh, SECRET, "POST", "/", "q", "t", new byte[0]));
    assertFalse(Signatures.verify("t=" + T + ",v1=" + GOOD, SECRET, METHOD, TARGET, QUEUE, TASK,
        BODY.getBytes(StandardCharsets.UTF_8)), "a signature of 2026-01-01 is stale now");
  }
}
