package dev.taskq.client;

/**
 * TLS settings that cannot be used: a file that cannot be read or holds no PEM certificate or
 * key, a certificate without its key. The message names the setting and the file.
 */
public final class InvalidTlsSettingsException extends IllegalArgumentException {
  private static final long serialVersionUID = 1L;

  InvalidTlsSettingsException(String message) {
    super(message);
  }

  InvalidTlsSettingsException(String message, Throwable cause) {
    super(message, cause);
  }
}
