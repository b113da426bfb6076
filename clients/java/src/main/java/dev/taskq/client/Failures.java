package dev.taskq.client;

import com.google.rpc.Code;
import dev.taskq.v1.Task;
import dev.taskq.v1.TaskNack;
import java.nio.charset.StandardCharsets;

/** What the server is told when a handler throws. */
final class Failures {
  /** The longest error message the server keeps, bytes of UTF-8; longer ones are cut here. */
  static final int MAX_MESSAGE_BYTES = 4096;

  private Failures() {}

  /** {@code Type: message}, cut to what the server keeps. */
  static String describe(Throwable error) {
    String message = error.getMessage();
    String text = message == null || message.isEmpty()
        ? error.getClass().getSimpleName()
        : error.getClass().getSimpleName() + ": " + message;
    return truncate(text, MAX_MESSAGE_BYTES);
  }

  /**
   * The nack of a task whose handler threw {@code error}: code UNKNOWN (the server cannot know
   * what the failure means, only that the handler threw) and the exception's description,
   * with the delay of a {@link RetryAfter} or the permanence of a {@link PermanentFailure}.
   */
  static TaskNack nack(Task task, Throwable error) {
    TaskNack.Builder nack = TaskNack.newBuilder()
        .setName(task.getName())
        .setLeaseToken(task.getLeaseToken())
        .setError(com.google.rpc.Status.newBuilder()
            .setCode(Code.UNKNOWN_VALUE)
            .setMessage(describe(error)));
    if (error instanceof RetryAfter retry) {
      nack.setRetryDelay(ProtoTimes.duration(retry.delay()));
    } else if (error instanceof PermanentFailure) {
      nack.setPermanent(true);
    }
    return nack.build();
  }

  /** The longest prefix of {@code text} of at most {@code maxBytes} bytes of UTF-8. */
  static String truncate(String text, int maxBytes) {
    if (text.length() * 3 <= maxBytes
        || text.getBytes(StandardCharsets.UTF_8).length <= maxBytes) {
      return text;
    }
    int bytes = 0;
    int end = 0;
    while (end < text.length()) {
      int codePoint = text.codePointAt(end);
      int size = codePoint < 0x80 ? 1 : codePoint < 0x800 ? 2 : codePoint < 0x10000 ? 3 : 4;
      if (bytes + size > maxBytes) {
        break;
      }
      bytes += size;
      end += Character.charCount(codePoint);
    }
    return text.substring(0, end);
  }
}
