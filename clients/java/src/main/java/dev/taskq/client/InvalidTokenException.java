package dev.taskq.client;

/**
 * A bearer token that cannot be used: empty, not one word of visible ASCII characters, or a
 * token file that cannot be read. The message says which.
 */
public final class InvalidTokenException extends IllegalArgumentException {
  private static final long serialVersionUID = 1L;

  InvalidTokenException(String message) {
    super(message);
  }
}
