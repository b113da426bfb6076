"""taskq queue semantics: tasks, queues, leases, retries. No gRPC and no RocksDB in here."""
