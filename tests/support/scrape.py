"""One GET /metrics of a test server, parsed (tests/metrics)."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    """One GET /metrics: its samples by (name, labels)."""

    def __init__(self, server) -> None:
        assert server.server is not None and server.server.http_port is not None
        url = f"http://127.0.0.1:{server.server.http_port.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            self.content_type = response.headers["Content-Type"]
            self.text = response.read().decode()
        self.samples: dict[tuple[str, frozenset], float] = {}
        for family in text_string_to_metric_families(self.text):
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float | None:
        """The sample with exactly these labels, or None."""
        return self.samples.get((name, frozenset(labels.items())))

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}

    def labelled(self, **labels: str) -> list[str]:
        """The names of the samples carrying these labels (among others)."""
        wanted = set(labels.items())
        return sorted({name for name, sample_labels in self.samples if wanted <= sample_labels})
