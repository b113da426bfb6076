// Live numbers for a console page: polls the JSON endpoint named by the element with
// data-live-url at most once a second (not at all while the page is hidden) and replaces the
// text of each [data-queue] row's [data-field] cells. Pages work without it.
"use strict";

(function () {
  const status = document.querySelector("[data-live-url]");
  if (!status || !window.fetch) {
    return;
  }
  const url = status.getAttribute("data-live-url");
  const intervalMs = 1000;
  let timer = null;

  // On the queues page: a line that says when queues were added after the page was loaded.
  const added = document.querySelector("[data-live-added]");

  function show(queues) {
    if (added) {
      const shown = new Set(Array.from(document.querySelectorAll("[data-queue]"), (row) => row.getAttribute("data-queue")));
      const count = Object.keys(queues).filter((id) => !shown.has(id)).length;
      const text = count ? count + (count === 1 ? " queue was" : " queues were") + " added: reload the page to see " + (count === 1 ? "it." : "them.") : "";
      if (added.textContent !== text) {
        added.textContent = text;
      }
    }
    for (const row of document.querySelectorAll("[data-queue]")) {
      const numbers = queues[row.getAttribute("data-queue")];
      if (!numbers) {
        row.classList.add("gone");
        continue;
      }
      for (const cell of row.querySelectorAll("[data-field]")) {
        const field = cell.getAttribute("data-field");
        const text = String(numbers[field]);
        const target = cell.querySelector(".state") || cell;
        if (target.textContent !== text) {
          target.textContent = text;
          if (target.classList.contains("state")) {
            target.className = "state state-" + text;
          }
        }
      }
    }
  }

  async function poll() {
    timer = null;
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.status === 401) {
        status.textContent = "Your session has ended: reload the page to log in again.";
        return;
      }
      if (response.ok) {
        show((await response.json()).queues);
        status.setAttribute("data-updated", new Date().toISOString());
      }
    } catch (error) {
      // The server is away for a moment (a restart): keep trying at the same pace.
    }
    schedule();
  }

  function schedule() {
    if (timer === null && !document.hidden) {
      timer = setTimeout(poll, intervalMs);
    }
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden && timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
    schedule();
  });
  schedule();
})();
