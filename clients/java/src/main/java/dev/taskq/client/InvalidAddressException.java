package dev.taskq.client;

/**
 * A server address that is none of the accepted forms (see {@link ServerAddress}); the message
 * says what is wrong and lists the forms.
 */
public final class InvalidAddressException extends IllegalArgumentException {
  private static final long serialVersionUID = 1L;

  private final String address;
  private final String reason;

  InvalidAddressException(String address, String reason) {
    super("invalid server address " + ServerAddress.quote(address) + ": " + reason
        + " (use " + ServerAddress.FORMS + ")");
    this.address = address;
    this.reason = reason;
  }

  /** The address as given. */
  public String address() {
    return address;
  }

  /** What is wrong with it. */
  public String reason() {
    return reason;
  }
}
