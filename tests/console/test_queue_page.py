"""The console's queue and task pages in a real browser against a real server."""

from __future__ import annotations

from console.conftest import log_in, screenshot
from playwright.sync_api import expect

from taskq.v1 import queue_pb2


def test_admin_pauses_and_resumes_a_queue_after_confirming(console, page):
    console.create_queue("reports")
    log_in(page, console.url, console.admin_token)
    page.goto(console.url + "/queues/reports")

    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("heading", name="Are you sure?")).to_be_visible()
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("status")).to_have_text("The queue is paused.")
    expect(page.locator('[data-field="state"]')).to_have_text("paused")
    assert console.get_queue("reports").state == queue_pb2.QUEUE_STATE_PAUSED

    page.get_by_role("button", name="Resume").click()
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_role("status")).to_have_text("The queue is running.")
    assert console.get_queue("reports").state == queue_pb2.QUEUE_STATE_RUNNING


def test_cancelled_purge_leaves_the_tasks(console, page):
    console.create_queue("reports")
    console.create_task("reports", b"keep me")
    log_in(page, console.url, console.admin_token)
    page.goto(console.url + "/queues/reports")
    page.get_by_role("button", name="Purge").click()
    expect(page.get_by_text("cannot be undone")).to_be_visible()
    page.get_by_role("link", name="Cancel").click()
    expect(page.locator('[data-field="total"]')).to_have_text("1")


def test_viewer_is_refused_pausing_and_the_page_says_why(console, page):
    console.create_queue("reports")
    log_in(page, console.url, console.viewer_token)
    page.goto(console.url + "/queues/reports")
    expect(page.get_by_text("need the admin role on this queue, which watcher does not have")).to_be_visible()

    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("alert")).to_contain_text("watcher may not call PauseQueue: that needs the admin role on queues/reports")
    screenshot(page, "refused")
    assert console.get_queue("reports").state == queue_pb2.QUEUE_STATE_RUNNING


def test_task_list_filters_by_state_and_tag(console, page):
    console.create_queue("reports")
    console.create_task("reports", b"a", tag="q3", task_id="q3-report")
    console.create_task("reports", b"b", tag="q4", task_id="q4-report")
    console.lease("reports", tag="q4")
    log_in(page, console.url, console.admin_token)
    page.goto(console.url + "/queues/reports")
    tasks = page.locator("tr[data-task]")
    expect(tasks).to_have_count(2)

    page.get_by_label("Tag").fill("q3")
    page.get_by_role("button", name="Show").click()
    expect(tasks).to_have_count(1)
    expect(tasks.first).to_have_attribute("data-task", "q3-report")

    page.get_by_label("Tag").fill("")
    page.locator("#task-state").select_option("leased")
    page.get_by_role("button", name="Show").click()
    expect(tasks).to_have_count(1)
    expect(tasks.first).to_have_attribute("data-task", "q4-report")


def test_task_list_pages_with_page_tokens(console, page):
    console.create_queue("reports")
    for number in range(55):
        console.create_task("reports", task_id=f"t{number:03d}")
    log_in(page, console.url, console.admin_token)
    page.goto(console.url + "/queues/reports")
    tasks = page.locator("tr[data-task]")
    expect(tasks).to_have_count(50)
    page.get_by_role("link", name="Next page").click()
    expect(tasks).to_have_count(5)
    expect(tasks.first).to_have_attribute("data-task", "t050")
    expect(page.get_by_role("link", name="Next page")).to_have_count(0)


def test_open_task_shows_payload_as_json_text_and_hex_with_attributes(console, page):
    console.create_queue("reports")
    console.create_task("reports", b'{"quarter": 3, "year": 2026}', task_id="q3", attributes={"owner": "finance"})
    log_in(page, console.url, console.viewer_token)
    page.goto(console.url + "/queues/reports")
    page.get_by_role("link", name="q3").click()

    expect(page.get_by_role("heading", name="Task q3")).to_be_visible()
    expect(page.locator("#task-state")).to_have_text("ready")
    expect(page.locator(".facts")).to_contain_text(["finance"])
    expect(page.locator("pre.payload")).to_contain_text('"quarter": 3,')
    screenshot(page, "task")
    page.get_by_role("link", name="Hex").click()
    expect(page.locator("pre.payload")).to_contain_text("7b 22 71 75")
    page.get_by_role("link", name="Text").click()
    expect(page.locator("pre.payload")).to_have_text('{"quarter": 3, "year": 2026}')


def test_admin_runs_a_scheduled_task_now_and_deletes_it(console, page):
    console.create_queue("reports")
    tomorrow = console.harness.clock.now_us() // 1_000_000 + 86400
    console.create_task("reports", b"later", task_id="later", schedule_time={"seconds": tomorrow})
    log_in(page, console.url, console.admin_token)
    page.goto(console.url + "/queues/reports/tasks/later")
    expect(page.locator("#task-state")).to_have_text("scheduled")

    page.get_by_role("button", name="Run now").click()
    expect(page.get_by_role("status")).to_have_text("The task is due now.")
    expect(page.locator("#task-state")).to_have_text("ready")

    page.get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status")).to_have_text("The task is deleted.")
    expect(page.locator("tr[data-task]")).to_have_count(0)


def test_settings_refused_by_the_api_show_its_message_beside_the_field(console, page):
    console.create_queue("emails", queue_pb2.QUEUE_TYPE_PUSH)
    log_in(page, console.url, console.admin_token)
    page.goto(console.url + "/queues/emails")

    page.get_by_label("Rate limit (tasks per second)").fill("-3")
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#rate_limits-max_dispatches_per_second-error")).to_contain_text("must be greater than 0")
    expect(page.get_by_label("Rate limit (tasks per second)")).to_have_value("-3")
    screenshot(page, "settings-refused")

    page.get_by_label("Rate limit (tasks per second)").fill("20")
    page.get_by_label("Most attempts").fill("7")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_have_text("The settings are saved.")
    queue = console.get_queue("emails")
    assert queue.rate_limits.max_dispatches_per_second == 20
    assert queue.retry_config.max_attempts == 7


def test_viewer_sees_settings_but_cannot_edit_them(console, page):
    console.create_queue("reports")
    log_in(page, console.url, console.viewer_token)
    page.goto(console.url + "/queues/reports")
    expect(page.get_by_label("Most attempts")).to_be_disabled()
    expect(page.get_by_role("button", name="Save settings")).to_have_count(0)


def test_queue_page_charts_depth_and_throughput_of_the_last_hour(console, page):
    console.create_queue("reports")
    for number in range(3):
        console.create_task("reports", f"report {number}".encode(), tag=f"q{number + 1}")
    log_in(page, console.url, console.admin_token)
    page.goto(console.url + "/queues/reports")
    expect(page.get_by_text("the charts appear after the first sample")).to_be_visible()

    console.sample_history()
    console.harness.clock.advance(60)
    console.create_task("reports", b"report 3", tag="q4")
    console.create_task("reports", b"report 4", tag="q4")
    [leased] = console.lease("reports", tag="q1")
    console.ack(leased)
    console.lease("reports", tag="q2")
    console.sample_history()

    page.reload()
    expect(page.locator('[data-chart="depth"]')).to_have_text("now 4 · highest 4 · lowest 3")
    expect(page.locator('[data-chart="throughput"]')).to_have_text("now 1 · highest 1 · lowest 0")
    expect(page.get_by_role("img", name="Depth: 2 samples, now 4, highest 4, lowest 3")).to_be_visible()
    screenshot(page, "queue")


def test_queue_page_shows_a_backlog_drain_without_a_reload(console, page):
    console.create_queue("reports")
    for number in range(5):
        console.create_task("reports", f"report {number}".encode())
    log_in(page, console.url, console.viewer_token)
    page.goto(console.url + "/queues/reports")
    expect(page.locator('[data-field="ready"]')).to_have_text("5")

    for task in console.lease("reports"):
        console.ack(task)

    expect(page.locator('[data-field="ready"]')).to_have_text("0")
    expect(page.locator('[data-field="total"]')).to_have_text("0")
