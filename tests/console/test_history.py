"""The console charts' history: a bounded ring per queue, sampled from the counters."""

from __future__ import annotations

from harness import FakeClock, ServerHarness
from taskq.api.engine_ref import EngineRef
from taskq.console.history import SAMPLES, History, sparkline
from taskq.v1 import queue_service_pb2


def test_history_keeps_the_last_hour_of_each_queue_and_forgets_deleted_queues(tmp_path):
    harness = ServerHarness(str(tmp_path / "data"), clock=FakeClock())
    try:
        history = History(EngineRef(harness.engine))
        harness.create_queue("kept")
        harness.create_queue("deleted")
        for _ in range(SAMPLES + 5):
            harness.create_task("kept")
            harness.run(history.run_once())
            harness.clock.advance(60)
        samples = history.of("kept")
        assert len(samples) == SAMPLES
        assert [sample.depth for sample in samples[:2]] == [6, 7]
        assert samples[-1].depth == SAMPLES + 5

        harness.queues.DeleteQueue(queue_service_pb2.DeleteQueueRequest(name="queues/deleted"))
        harness.run(history.run_once())
        assert history.of("deleted") == []
    finally:
        harness.close()


def test_sparkline_scales_values_into_the_box():
    assert sparkline([]) == ""
    assert sparkline([0, 10], width=100, height=50) == "0.0,49.0 100.0,1.0"
