from taskq.v1 import task_pb2


def test_created_task_can_be_leased_and_acknowledged(server):
    server.create_queue("work")
    created = server.create_task("work", b"hello")
    [leased] = server.lease("work")
    assert leased.name == created.name
    assert leased.payload == b"hello"
    assert leased.state == task_pb2.TASK_STATE_LEASED
    server.ack(leased)
    assert server.stats("work").tasks_count == 0
