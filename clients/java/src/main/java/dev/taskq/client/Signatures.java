package dev.taskq.client;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * Verifies the {@code X-Taskq-Signature} header of HTTP push requests (version v1).
 *
 * <p>A queue with an {@code HttpTarget} delivers each task as an HTTP request; when the server
 * has signing secrets, the request carries {@code X-Taskq-Signature: t=<unix
 * seconds>,v1=<hex>[,v1=<hex>...]}, one {@code v1} per secret the server signs with (several
 * while secrets are rotated). Each is the hex HMAC-SHA256, keyed with the secret, of
 *
 * <pre>{@code
 * t \n METHOD \n target \n queue id \n task id \n hex(SHA-256(body))
 * }</pre>
 *
 * <p>where the target is the request target as sent (the path, and {@code ?} and the query if
 * any, percent-encoding untouched), and the queue and task ids are the values of the
 * {@code X-AppEngine-QueueName} and {@code X-AppEngine-TaskName} headers. With the Servlet
 * API:
 *
 * <pre>{@code
 * String target = request.getQueryString() == null
 *     ? request.getRequestURI() : request.getRequestURI() + "?" + request.getQueryString();
 * boolean valid = Signatures.verify(request.getHeader(Signatures.HEADER), secret,
 *     request.getMethod(), target, request.getHeader(Signatures.QUEUE_NAME_HEADER),
 *     request.getHeader(Signatures.TASK_NAME_HEADER), body);
 * }</pre>
 */
public final class Signatures {
  /** The header carrying the signature. */
  public static final String HEADER = "X-Taskq-Signature";
  /** The header carrying the queue's id. */
  public static final String QUEUE_NAME_HEADER = "X-AppEngine-QueueName";
  /** The header carrying the task's id. */
  public static final String TASK_NAME_HEADER = "X-AppEngine-TaskName";
  /** How far the signature's time may be from the receiver's clock, either way, by default. */
  public static final Duration DEFAULT_TOLERANCE = Duration.ofMinutes(5);

  private static final HexFormat HEX = HexFormat.of();

  private Signatures() {}

  /**
   * {@link #verify(String, String, String, String, String, String, byte[], Instant, Duration)}
   * at the current time with the {@link #DEFAULT_TOLERANCE}.
   */
  public static boolean verify(String header, String secret, String method, String target,
      String queue, String task, byte[] body) {
    return verify(header, secret, method, target, queue, task, body, Instant.now(),
        DEFAULT_TOLERANCE);
  }

  /**
   * Whether a request's signature header is valid: its {@code t} is within {@code tolerance}
   * of {@code now}, either way, and one of its {@code v1} signatures is the one {@code secret}
   * (used as its UTF-8 bytes) gives for this request, compared in constant time. A missing
   * ({@code null}) or malformed header, or a {@code null} argument, is not valid; nothing is
   * thrown for one.
   *
   * @param header the {@code X-Taskq-Signature} header's value
   * @param method the request's method
   * @param target the request target as sent: the path, and {@code ?} and the query if any
   * @param queue the {@code X-AppEngine-QueueName} header's value
   * @param task the {@code X-AppEngine-TaskName} header's value
   * @param body the raw body; {@code null} or empty when there is none
   */
  public static boolean verify(String header, String secret, String method, String target,
      String queue, String task, byte[] body, Instant now, Duration tolerance) {
    if (header == null || secret == null || secret.isEmpty() || method == null || target == null
        || queue == null || task == null || now == null || tolerance == null) {
      return false;
    }
    String timestamp = null;
    List<String> signatures = new ArrayList<>();
    for (String raw : header.split(",", -1)) {
      String entry = raw.strip();
      if (entry.isEmpty()) {
        continue;
      }
      int equals = entry.indexOf('=');
      if (equals < 0) {
        return false;
      }
      String key = entry.substring(0, equals);
      String value = entry.substring(equals + 1);
      if (key.equals("t")) {
        if (timestamp != null || !value.matches("[0-9]{1,12}")) {
          return false;
        }
        timestamp = value;
      } else if (key.equals("v1")) {
        signatures.add(value);
      }
    }
    if (timestamp == null || signatures.isEmpty()) {
      return false;
    }
    Duration skew = Duration.between(Instant.ofEpochSecond(Long.parseLong(timestamp)), now).abs();
    if (skew.compareTo(tolerance) > 0) {
      return false;
    }
    String message = String.join("\n", timestamp, method.toUpperCase(Locale.ROOT), target, queue,
        task, HEX.formatHex(sha256(body == null ? new byte[0] : body)));
    byte[] expected = HEX.formatHex(hmacSha256(secret, message)).getBytes(StandardCharsets.UTF_8);
    boolean valid = false;
    for (String signature : signatures) {
      // MessageDigest.isEqual takes the same time whatever the contents.
      valid |= MessageDigest.isEqual(expected, signature.getBytes(StandardCharsets.UTF_8));
    }
    return valid;
  }

  private static byte[] sha256(byte[] data) {
    try {
      return MessageDigest.getInstance("SHA-256").digest(data);
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("every Java platform has SHA-256", e);
    }
  }

  private static byte[] hmacSha256(String secret, String message) {
    try {
      Mac mac = Mac.getInstance("HmacSHA256");
      mac.init(new SecretKeySpec(secret.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
      return mac.doFinal(message.getBytes(StandardCharsets.UTF_8));
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("every Java platform has HmacSHA256", e);
    }
  }
}
