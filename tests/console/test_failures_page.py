"""The console's failures page: failed tasks and dead letters grouped by error, re-run."""

from __future__ import annotations

from console.conftest import log_in, screenshot
from playwright.sync_api import expect

from taskq.v1 import queue_pb2

ONE_ATTEMPT = queue_pb2.RetryConfig(max_attempts=1)


def test_dead_letter_is_rerun_into_the_queue_it_came_from(console, page):
    console.create_queue("dead")
    console.create_queue("reports", dead_letter_queue="queues/dead", retry_config=ONE_ATTEMPT)
    console.create_task("reports", b"build Q3", tag="q3", attributes={"owner": "finance"})
    console.fail_leased("reports")
    assert console.stats("dead").ready_count == 1
    log_in(page, console.url, console.admin_token)

    page.get_by_role("link", name="Failures").click()
    group = page.locator("section.group")
    expect(group).to_have_count(1)
    expect(group.get_by_role("heading")).to_contain_text("DEADLINE_EXCEEDED: lease expired")
    expect(group.locator("tbody tr")).to_contain_text(["dead letter"])
    screenshot(page, "failures")
    group.get_by_role("checkbox").check()
    group.get_by_role("button", name="Re-run selected").click()
    expect(page.get_by_text("Re-run 1 task?")).to_be_visible()
    page.get_by_role("button", name="Re-run").click()

    expect(page.get_by_role("status")).to_have_text("1 task re-run.")
    expect(page.get_by_text("Nothing has failed.")).to_be_visible()
    [task] = console.lease("reports")
    assert task.payload == b"build Q3" and task.tag == "q3"
    assert dict(task.attributes) == {"owner": "finance"}
    assert console.stats("dead").tasks_count == 0


def test_failed_tasks_are_grouped_by_error_and_a_whole_group_is_rerun(console, page):
    console.create_queue("jobs", retry_config=ONE_ATTEMPT)
    console.create_queue("other", retry_config=ONE_ATTEMPT)
    console.create_task("jobs", b"1")
    console.create_task("jobs", b"2")
    console.create_task("other", b"3")
    console.fail_leased("jobs")
    console.fail_leased("other")
    log_in(page, console.url, console.admin_token)
    page.goto(console.url + "/failures")

    group = page.locator("section.group")
    expect(group).to_have_count(1)
    expect(group.locator(".count")).to_have_text("3")
    group.get_by_role("button", name="Re-run all 3 with this error").click()
    page.get_by_role("button", name="Re-run").click()
    expect(page.get_by_role("status")).to_have_text("3 tasks re-run.")
    assert console.stats("jobs").ready_count == 2
    assert console.stats("other").ready_count == 1


def test_viewer_sees_failures_but_its_rerun_is_refused(console, page):
    console.create_queue("jobs", retry_config=ONE_ATTEMPT)
    console.create_task("jobs", b"1")
    console.fail_leased("jobs")
    log_in(page, console.url, console.viewer_token)
    page.goto(console.url + "/failures")
    page.locator("section.group").get_by_role("checkbox").check()
    page.get_by_role("button", name="Re-run selected").click()
    page.get_by_role("button", name="Re-run").click()
    expect(page.get_by_role("status")).to_have_text("0 tasks re-run; 1 refused or gone.")
    assert console.stats("jobs").failed_count == 1


def test_every_failure_is_rerun_at_once_and_a_dead_letter_queue_is_purged(console, page):
    console.create_queue("dead")
    console.create_queue("jobs", retry_config=ONE_ATTEMPT)
    console.create_queue("mails", dead_letter_queue="queues/dead", retry_config=ONE_ATTEMPT)
    console.create_task("jobs", b"1")
    console.create_task("mails", b"2")
    console.create_task("mails", b"3")
    console.fail_leased("jobs")
    console.fail_leased("mails")
    log_in(page, console.url, console.admin_token)
    page.goto(console.url + "/failures")

    page.get_by_role("button", name="Re-run every task listed here (3)").click()
    page.get_by_role("button", name="Re-run").click()
    expect(page.get_by_role("status")).to_have_text("3 tasks re-run.")
    assert console.stats("jobs").ready_count == 1 and console.stats("mails").ready_count == 2

    console.fail_leased("mails")
    page.goto(console.url + "/failures")
    page.get_by_role("button", name="Purge the dead-letter queue dead").click()
    page.get_by_role("button", name="Purge").click()
    expect(page.get_by_role("status")).to_have_text("The queue is purged.")
    assert console.stats("dead").tasks_count == 0
