"""The web console under /console on the HTTP port (docs/console.md)."""
