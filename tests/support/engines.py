"""Server settings per storage engine, shared by every fixture that starts a server.

It lives here rather than in tests/conftest.py because several directories have a conftest.py,
and `from conftest import ...` finds whichever of them was imported first."""

from __future__ import annotations


def engine_settings(request, engine: str) -> dict:
    """Server settings for `engine`: PostgreSQL gets a fresh database."""
    if engine == "postgres":
        return {"database": request.getfixturevalue("postgres_cluster").new_database()}
    return {}
