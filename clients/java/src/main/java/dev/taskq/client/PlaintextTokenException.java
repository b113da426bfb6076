package dev.taskq.client;

/**
 * A client that would send its token in plain text to another machine: whoever can see the
 * traffic could copy it and call as its holder. Connect with TLS, or allow it explicitly
 * ({@link TaskqClient.Builder#allowPlaintextToken}) when the network itself is protected.
 */
public final class PlaintextTokenException extends IllegalArgumentException {
  private static final long serialVersionUID = 1L;

  PlaintextTokenException(String message) {
    super(message);
  }
}
