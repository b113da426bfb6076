package dev.taskq.client;

import com.google.protobuf.Duration;
import com.google.protobuf.Timestamp;
import java.time.Instant;

/**
 * Conversions between {@code java.time} and the protobuf well-known types, for building
 * requests ({@code Task.setScheduleTime(ProtoTimes.timestamp(Instant.now().plusSeconds(60)))})
 * and reading responses.
 */
public final class ProtoTimes {
  private ProtoTimes() {}

  /** The protobuf Duration for a {@code java.time.Duration}. */
  public static Duration duration(java.time.Duration duration) {
    return Duration.newBuilder()
        .setSeconds(duration.getSeconds())
        .setNanos(duration.getNano())
        .build();
  }

  /** The {@code java.time.Duration} of a protobuf Duration. */
  public static java.time.Duration duration(Duration duration) {
    return java.time.Duration.ofSeconds(duration.getSeconds(), duration.getNanos());
  }

  /** The protobuf Timestamp of an instant. */
  public static Timestamp timestamp(Instant instant) {
    return Timestamp.newBuilder()
        .setSeconds(instant.getEpochSecond())
        .setNanos(instant.getNano())
        .build();
  }

  /** The instant of a protobuf Timestamp. */
  public static Instant instant(Timestamp timestamp) {
    return Instant.ofEpochSecond(timestamp.getSeconds(), timestamp.getNanos());
  }
}
