"""Who calls and what it may do: bearer tokens (tokens file), JWTs and client certificates name
the caller (authenticator.py); roles per queue pattern (roles.py) are checked for every method
of every surface (policy.py) where its request is decoded (gate.py, and the App Engine bridge).
docs/security.md is the guide."""
