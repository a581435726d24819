// The web view's one script: a running run's page follows the run's server-sent events and
// recolours what changed; the page is whole without it.
"use strict";
(function () {
  const url = document.body.dataset.live;
  if (!url || !window.EventSource) return;
  const source = new EventSource(url);
  const recolour = (element, status) => {
    for (const name of Array.from(element.classList)) {
      if (name.startsWith("s-")) element.classList.remove(name);
    }
    element.classList.add("s-" + status);
  };
  const select = (attribute, name) =>
    document.querySelectorAll("[" + attribute + '="' + CSS.escape(name) + '"]');
  source.addEventListener("tasks", (event) => {
    const update = JSON.parse(event.data);
    for (const task of update.tasks) {
      for (const element of select("data-task", task.name)) recolour(element, task.status);
      for (const cell of select("data-status-of", task.name)) {
        const badge = document.createElement("span");
        badge.className = "badge s-" + task.status;
        badge.textContent = task.status;
        cell.replaceChildren(badge);
      }
    }
    for (const family of update.families) {
      for (const element of select("data-family", family.name)) recolour(element, family.status);
    }
  });
  // The run ended: the page as it now stands (timeline, errors, durations).
  source.addEventListener("end", () => {
    source.close();
    window.location.reload();
  });
})();
