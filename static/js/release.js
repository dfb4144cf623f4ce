// The release page: live console lines and rollout progress.
(function () {
  const page = document.getElementById("release-page");
  const releaseId = Number(page.dataset.release);
  const consoleEl = document.getElementById("console");
  document.body.addEventListener("live-release-console", (e) => {
    if (e.detail.payload.release !== releaseId) return;
    const atBottom = consoleEl.scrollTop + consoleEl.clientHeight >= consoleEl.scrollHeight - 8;
    consoleEl.append(document.createTextNode(e.detail.payload.text));
    if (atBottom) consoleEl.scrollTop = consoleEl.scrollHeight;
  });
  document.body.addEventListener("live-release-rollout", (e) => {
    const p = e.detail.payload;
    if (p.release !== releaseId) return;
    const pct = p.desired ? Math.round(100 * p.ready / p.desired) : 0;
    document.getElementById("rollout-new").style.width = Math.min(pct, 100) + "%";
    const text = document.getElementById("rollout-text");
    text.textContent = text.dataset.template.replace(/\{(\w+)\}/g, (m, k) => (k in p ? p[k] : m)) +
      (p.message ? " · " + p.message : "");
  });
  consoleEl.scrollTop = consoleEl.scrollHeight;
})();
