"""The console's login and queues page in a real browser against a real server."""

from __future__ import annotations

import os

from console.conftest import log_in, screenshot
from playwright.sync_api import expect
from support.auth_files import TokensFile
from support.certificates import ServerFiles

from harness import FakeClock, ServerHarness
from taskq.v1 import queue_pb2


def test_logged_in_viewer_sees_queue_depth_grow_as_tasks_are_created(console, page):
    console.create_queue("reports")
    console.create_queue("emails", queue_pb2.QUEUE_TYPE_PUSH, rate_limits=queue_pb2.RateLimits(max_dispatches_per_second=5))
    log_in(page, console.url, console.viewer_token)

    expect(page.get_by_text("Signed in as watcher")).to_be_visible()
    reports = page.locator('tr[data-queue="reports"]')
    expect(reports.locator('[data-field="ready"]')).to_have_text("0")
    expect(page.locator('tr[data-queue="emails"] [data-field="rate"]')).to_have_text("0.00/s of 5/s")
    for number in range(3):
        console.create_task("reports", f"report {number}".encode())
    # The page's script polls the counters: no reload.
    expect(reports.locator('[data-field="ready"]')).to_have_text("3")
    expect(reports.locator('[data-field="total"]')).to_have_text("3")
    if os.environ.get("TASKQ_SCREENSHOTS"):  # a picture with a chart
        console.sample_history()
        console.harness.clock.advance(60)
        console.create_task("reports", b"report 4")
        console.sample_history()
        page.reload()
    screenshot(page, "queues")
    page.set_viewport_size({"width": 390, "height": 800})
    screenshot(page, "queues-narrow")


def test_login_with_an_unknown_token_says_so(console, page):
    page.goto(console.url + "/queues")
    expect(page).to_have_url(console.url + "/login?next=/console/queues")
    screenshot(page, "login")
    page.get_by_label("Token").fill("not-a-token")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("not one of the tokens file's tokens")


def test_logout_ends_the_session(console, page):
    log_in(page, console.url, console.admin_token)
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.goto(console.url + "/queues")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()


def test_queues_page_filters_and_sorts_by_query_parameters(console, page):
    for queue_id in ("alpha", "beta", "gamma"):
        console.create_queue(queue_id)
    console.create_queue("push-one", queue_pb2.QUEUE_TYPE_PUSH)
    console.create_task("gamma")
    console.create_task("gamma")
    console.create_task("beta")
    log_in(page, console.url, console.admin_token)

    page.goto(console.url + "/queues?sort=total&order=desc&type=pull")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_have_attribute("data-queue", "gamma")
    expect(rows.nth(1)).to_have_attribute("data-queue", "beta")

    page.get_by_label("Name contains").fill("push")
    page.get_by_label("Type").select_option("")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.nth(0)).to_have_attribute("data-queue", "push-one")


def test_viewer_sees_only_the_queues_its_roles_cover(console, page):
    console.create_queue("team-a-jobs")
    console.create_queue("team-b-jobs")
    log_in(page, console.url, console.team_a_token)
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator('tr[data-queue="team-a-jobs"]')).to_be_visible()


def test_console_without_authentication_is_open_as_the_api_is(tmp_path, page):
    harness = ServerHarness(str(tmp_path / "data"), http_listen="127.0.0.1:0")
    try:
        harness.create_queue("open-queue")
        page.goto(f"http://127.0.0.1:{harness.server.http_port.port}/console")
        expect(page.get_by_text("Open console: the server checks no roles")).to_be_visible()
        expect(page.locator('tr[data-queue="open-queue"]')).to_be_visible()
    finally:
        harness.close()


def test_session_cookie_changed_by_hand_is_refused(console, page):
    log_in(page, console.url, console.admin_token)
    [cookie] = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert console.admin_token not in cookie["value"]
    hashed, expires, mac = cookie["value"].split(".")
    page.context.add_cookies([{**cookie, "value": f"{hashed}.{int(expires) + 3600}.{mac}"}])
    page.goto(console.url + "/queues")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()


def test_console_over_tls_sets_a_secure_session_cookie(tmp_path, browser):
    files = ServerFiles(tmp_path)
    tokens = TokensFile(tmp_path / "tokens.yaml")
    token = tokens.token("ops", "admin")
    harness = ServerHarness(str(tmp_path / "data"), clock=FakeClock(), http_listen="127.0.0.1:0",
                            auth_tokens_file=str(tokens.path), **files.settings())
    context = browser.new_context(ignore_https_errors=True)
    try:
        page = context.new_page()
        url = f"https://127.0.0.1:{harness.server.http_port.port}/console"
        log_in(page, url, token)
        expect(page.locator('tr[data-queue="default"]')).to_be_visible()
        [cookie] = context.cookies()
        assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    finally:
        context.close()
        harness.close()


def test_queues_page_says_when_queues_were_added_after_it_was_loaded(console, page):
    console.create_queue("first")
    log_in(page, console.url, console.viewer_token)
    expect(page.locator('tr[data-queue="first"]')).to_be_visible()
    console.create_queue("second")
    expect(page.get_by_text("1 queue was added: reload the page to see it.")).to_be_visible()
    page.reload()
    expect(page.locator('tr[data-queue="second"]')).to_be_visible()
    expect(page.get_by_text("reload the page")).to_have_count(0)


def test_login_and_opening_a_queue_work_with_the_keyboard_alone(console, page):
    console.create_queue("reports")
    page.goto(console.url + "/queues")
    # The token field has the focus when the page opens; Enter submits the form.
    expect(page.get_by_label("Token")).to_be_focused()
    page.keyboard.type(console.viewer_token)
    page.keyboard.press("Enter")
    expect(page.get_by_text("Signed in as watcher")).to_be_visible()
    link = page.get_by_role("link", name="reports", exact=True)
    for _ in range(40):
        page.keyboard.press("Tab")
        if link.evaluate("element => element === document.activeElement"):
            break
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="reports")).to_be_visible()


def test_a_form_posted_without_its_csrf_token_is_refused(console, page):
    console.create_queue("reports")
    log_in(page, console.url, console.admin_token)
    page.goto(console.url + "/queues/reports")
    page.locator('form[action$="/pause"] input[name="csrf"]').evaluate("input => input.value = 'forged'")
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("alert")).to_contain_text("CSRF_TOKEN_MISMATCH")
    assert console.get_queue("reports").state == queue_pb2.QUEUE_STATE_RUNNING


def test_queues_page_charts_each_queues_depth_of_the_last_hour(console, page):
    console.create_queue("reports")
    console.create_task("reports")
    console.sample_history()
    console.harness.clock.advance(60)
    console.create_task("reports")
    console.sample_history()
    log_in(page, console.url, console.viewer_token)
    chart = page.locator('tr[data-queue="reports"]').get_by_role("img")
    expect(chart).to_have_attribute("aria-label", "Depth over the last hour: 2 samples, highest 2, lowest 1")
