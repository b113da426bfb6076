"""Prometheus metrics, served at GET /metrics on the HTTP port (docs/metrics.md).

    exporter.py   Metrics: the registry, `watch(engine)`, the scrape (render) and its handler
    tasks.py      per-queue task counters and latency histograms, from the engine's events
    queues.py     per-queue depth, oldest ready age and limits, read at scrape time
    rpc.py        the gRPC interceptor: calls by method and code, durations, calls under way
    storage.py    commit groups and fsyncs (RocksDB), transactions (PostgreSQL), database size
    histogram.py  the fixed-bucket histogram they share, and their buckets

Counting costs a dict lookup and an increment or two per event; prometheus_client's objects
are made only at scrape time.
"""
