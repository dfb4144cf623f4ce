// The log pipeline page: the rollout's progress lines and build console as they arrive (the summary is
// re-fetched by HTMX on each status change).
(function () {
  const page = document.getElementById("log-pipeline-page");
  if (!page) return;
  function current() {
    const summary = document.getElementById("rollout-summary");
    return summary ? Number(summary.dataset.rollout) : null;
  }
  document.body.addEventListener("live-logproxy-rollout-progress", (e) => {
    const p = e.detail.payload;
    const list = document.getElementById("rollout-progress");
    if (!list || p.rollout !== current()) return;
    const item = document.createElement("li");
    item.textContent = p.message;
    list.append(item);
  });
  document.body.addEventListener("live-logproxy-rollout-console", (e) => {
    const p = e.detail.payload;
    const consoleEl = document.getElementById("rollout-console");
    if (!consoleEl || p.rollout !== current()) return;
    consoleEl.append(document.createTextNode(p.text));
    consoleEl.scrollTop = consoleEl.scrollHeight;
  });
})();
