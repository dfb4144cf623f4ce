// The environment page's live tail "from the log pipeline" (clusters/consumers/pipeline.py): while it is
// on, one WebSocket receives the service's lines, which the server's single Celery chain per environment
// reads from Kafka. Lines are drawn as the search fragment draws them (_pipeline_line.html).
(function () {
  "use strict";
  const section = document.getElementById("pipeline");
  if (!section || section.dataset.enabled !== "true") return;
  const t = JSON.parse(document.getElementById("pipeline-i18n").textContent);
  const list = document.getElementById("pipeline-tail-lines");
  const status = document.getElementById("pipeline-tail-status");
  const startButton = document.getElementById("pipeline-tail-start");
  const stopButton = document.getElementById("pipeline-tail-stop");
  const MAX_LINES = 1000;
  let socket = null;
  let wanted = false;
  let delay = 500;

  const el = window.opsPortal.el;
  function levelClass(level) {
    if (level === "ERROR" || level === "FATAL") return "text-bg-danger";
    if (level === "WARN") return "text-bg-warning";
    if (level === "INFO") return "text-bg-info";
    return "text-bg-secondary";
  }
  function setStatus(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  function lineNode(line) {
    const item = el("li", {
      class: "pipeline-line list-group-item py-1 px-2 small", "data-level": line.level, "data-json": String(line.json),
    });
    item.appendChild(el("span", { class: "text-muted text-nowrap pipeline-time", title: t.kafkaTime + " " + line.kafka_time, text: line.time }));
    if (line.level_name) {
      item.append(" ");
      item.appendChild(el("span", { class: "badge pipeline-level " + levelClass(line.level), text: line.level_name }));
    }
    if (line.logger) { item.append(" "); item.appendChild(el("span", { class: "text-muted pipeline-logger", text: line.logger })); }
    item.append(" ");
    item.appendChild(el("span", { class: "pipeline-msg", text: line.msg }));
    (line.fields || []).forEach(([name, value]) => {
      item.appendChild(el("span", { class: "pipeline-field text-muted ms-1" }, [el("span", { class: "fw-semibold", text: name }), "=" + value]));
    });
    if (line.truncated) { item.append(" "); item.appendChild(el("span", { class: "badge text-bg-light", text: t.cut })); }
    if (line.json) {
      item.append(" ");
      item.appendChild(el("details", { class: "pipeline-raw d-inline" }, [
        el("summary", { class: "small", text: "JSON" }), el("pre", { class: "bg-light p-1 mb-0", text: line.raw }),
      ]));
    }
    return item;
  }

  function append(lines, skipped) {
    const stick = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
    if (skipped) list.appendChild(el("li", { class: "list-group-item small text-warning pipeline-skipped", text: t.skipped.replace("{n}", skipped) }));
    lines.forEach((line) => list.appendChild(lineNode(line)));
    while (list.children.length > MAX_LINES) list.removeChild(list.firstChild);
    if (stick) list.scrollTop = list.scrollHeight;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + section.dataset.wsUrl);
    setStatus("connecting", t.connecting);
    let started = false;
    let refused = false;
    socket.onmessage = (message) => {
      const data = JSON.parse(message.data);
      if (data.type === "pipeline-started") { started = true; delay = 500; setStatus("live", t.live); }
      else if (data.type === "pipeline-lines") { if (status.dataset.state !== "live") setStatus("live", t.live); append(data.lines, data.skipped); }
      else if (data.type === "pipeline-error") {
        // final: no pipeline, no Redis, or access lost; retrying cannot help. Other errors (Kafka away,
        // reported by the chain, which keeps trying; a tail that could not start) are retried.
        setStatus(started ? "error-live" : "error", data.message);
        if (data.final) refused = true;
      }
    };
    socket.onclose = () => {
      socket = null;
      if (!wanted || refused) { stop(refused); return; }
      setStatus("closed", t.closed);
      setTimeout(() => { if (wanted && !socket) connect(); }, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }
  function stop(keepStatus) {
    wanted = false;
    if (socket) socket.close();
    startButton.disabled = false;
    stopButton.disabled = true;
    if (!keepStatus) setStatus("off", t.stopped);
  }

  startButton.addEventListener("click", () => {
    if (wanted) return;
    wanted = true;
    startButton.disabled = true;
    stopButton.disabled = false;
    connect();
  });
  stopButton.addEventListener("click", () => stop(false));
})();
