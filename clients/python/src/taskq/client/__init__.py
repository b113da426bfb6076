"""The taskq Python client."""
