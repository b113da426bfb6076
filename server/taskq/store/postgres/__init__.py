"""The PostgreSQL engine: many stateless taskq servers on one database (see docs/postgres.md)."""
