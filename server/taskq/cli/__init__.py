"""The `taskq` command."""
