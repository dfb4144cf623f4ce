// The environment page, kept live by the server's Kubernetes watches over one WebSocket
// (clusters/consumers/environment.py): each message replaces one part of the page in place.
(function () {
  "use strict";
  const root = document.getElementById("environment");
  if (!root) return;
  const t = JSON.parse(document.getElementById("env-i18n").textContent);
  const canOperate = root.dataset.canOperate === "true";
  const canTerminal = root.dataset.canTerminal === "true";
  const liveBadge = document.getElementById("env-live");
  const streamError = document.getElementById("env-stream-error");
  const logOut = document.getElementById("log-output");
  const logStatus = document.getElementById("log-status");
  const logPod = document.getElementById("log-pod");
  let socket = null;
  let delay = 500;
  let following = false;
  let paused = false;
  let held = [];

  function fmt(text, values) {
    return text.replace(/\{(\w+)\}/g, (_, key) => String(values[key] ?? ""));
  }
  const el = window.opsPortal.el;
  function age(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    if (seconds < 120) return seconds + "s";
    if (seconds < 7200) return Math.floor(seconds / 60) + "m";
    if (seconds < 172800) return Math.floor(seconds / 3600) + "h";
    return Math.floor(seconds / 86400) + "d";
  }

  function renderPods(items) {
    const body = document.getElementById("pod-rows");
    body.replaceChildren();
    if (!items.length) {
      body.appendChild(el("tr", { class: "empty" }, [el("td", { colspan: "9", class: "text-muted", text: t.noPods })]));
    }
    items.forEach((pod) => {
      const images = el("td", { class: "small text-break" });
      if (pod.image_ids.length) pod.image_ids.forEach((i) => { images.appendChild(el("code", { text: i })); images.append(" "); });
      else images.textContent = "—";
      const action = el("td", { class: "text-end" });
      if (canTerminal) {
        const href = root.dataset.terminalUrl + "?pod=" + encodeURIComponent(pod.name);
        action.appendChild(el("a", { class: "btn btn-link btn-sm p-0 me-2 open-terminal", href: href, text: t.terminal }));
      }
      if (canOperate) {
        const button = el("button", {
          class: "btn btn-link btn-sm text-danger p-0 delete-pod",
          "hx-post": root.dataset.deleteUrl.replace("__POD__", encodeURIComponent(pod.name)),
          "hx-target": "#action-result",
          "hx-confirm": fmt(t.confirmDelete, { pod: pod.name }),
          text: t.delete,
        });
        action.appendChild(button);
      }
      const phase = el("td", { text: pod.phase });
      if (pod.state_reason) {
        phase.append(" ");
        phase.appendChild(el("span", {
          class: "badge text-bg-" + (pod.problem ? pod.problem.severity : "secondary") + " pod-state-reason",
          title: pod.state_message || "", text: pod.state_reason,
        }));
      }
      const last = el("td", { class: "small pod-last-termination" });
      const ended = pod.last_termination;
      if (ended) {
        last.textContent = fmt(t.exit, { reason: ended.reason, code: ended.exit_code ?? "—" });
        if (ended.finished_at) {
          last.append(" · ");
          last.appendChild(el("span", { class: "text-nowrap", text: localStamp(ended.finished_at) }));
        }
      } else last.textContent = "—";
      const row = el("tr", {
        "data-pod": pod.name, "data-phase": pod.phase, "data-ready": String(pod.ready), "data-restarts": String(pod.restarts),
      }, [
        el("td", {}, [el("code", { text: pod.name })]),
        phase,
        el("td", { text: pod.ready_count }),
        el("td", { class: "pod-restarts", text: String(pod.restarts) }),
        el("td", { text: pod.node || "—" }),
        el("td", { "data-age": pod.age_seconds ?? "", text: age(pod.age_seconds) }),
        images,
        last,
        action,
      ]);
      body.appendChild(row);
      if (pod.problem) body.appendChild(problemRow(pod));
    });
    if (window.htmx) htmx.process(body);
    // Keep the log pod chooser in step with the pods that exist.
    const chosen = logPod.value;
    logPod.replaceChildren(...items.map((p) => el("option", { text: p.name })));
    if (items.some((p) => p.name === chosen)) logPod.value = chosen;
    updateLinks();
  }

  // The flag under a pod in trouble: what Kubernetes says, and the next step (pod_health.py writes both).
  function problemRow(pod) {
    const p = pod.problem;
    const cell = el("td", { colspan: "9", class: "small" }, [el("strong", { text: p.reason })]);
    if (p.restarts) cell.append(" · " + fmt(p.restarts === 1 ? t.restartedOne : t.restartedMany, { n: p.restarts }));
    if (p.exit_code !== null && p.exit_code !== undefined) cell.append(" · " + fmt(t.lastExit, { code: p.exit_code }));
    if (p.message) { cell.append(" · "); cell.appendChild(el("span", { class: "pod-problem-message", text: p.message })); }
    cell.appendChild(el("div", { class: "pod-problem-hint", text: p.hint }));
    return el("tr", {
      class: "pod-problem table-" + p.severity, "data-problem-for": pod.name, "data-reason": p.reason,
    }, [cell]);
  }

  function renderDeployment(d) {
    const target = document.getElementById("deployment-summary");
    if (!d) { target.textContent = t.noDeployment; return; }
    target.textContent = fmt(t.ready, { ready: d.ready_replicas, replicas: d.replicas, state: (t.rolloutStates || {})[d.rollout.state] || d.rollout.state }) +
      (d.rollout.message && d.rollout.state !== "complete" ? " (" + d.rollout.message + ")" : "");
    target.dataset.rollout = d.rollout.state;
  }

  function metricText(list) {
    if (!list || !list.length) return "—";
    return list.map((m) => m.name + " " + (m.average_utilization !== null && m.average_utilization !== undefined
      ? m.average_utilization + "%" : (m.average_value || m.value || ""))).join(", ");
  }
  function setField(scope, name, text) {
    const node = scope.querySelector(`[data-field="${name}"]`);
    if (node) node.textContent = text;
  }
  function renderHpa(h) {
    const scope = document.getElementById("hpa");
    setField(scope, "range", h ? h.min_replicas + "–" + h.max_replicas : "—");
    setField(scope, "replicas", h ? h.current_replicas + " / " + h.desired_replicas : "—");
    let cpu = "—";
    if (h && h.cpu_target_utilization !== null && h.cpu_target_utilization !== undefined) {
      const current = h.cpu_current_utilization;
      cpu = (current === null || current === undefined ? "—" : current + "%") + " / " + fmt(t.cpuTarget, { target: h.cpu_target_utilization });
    }
    setField(scope, "cpu", cpu);
    const inactive = document.getElementById("hpa-inactive");
    const messages = (h && h.inactive_messages) || [];
    inactive.querySelector('[data-field="inactive"]').textContent = messages.join("; ");
    inactive.classList.toggle("d-none", !messages.length);
    setField(scope, "metrics", metricText(h && h.metrics));
    setField(scope, "current_metrics", metricText(h && h.current_metrics));
    const conditions = scope.querySelector('[data-field="conditions"]');
    conditions.replaceChildren();
    if (!h || !h.conditions.length) conditions.textContent = "—";
    else h.conditions.forEach((c) => conditions.appendChild(el("div", {}, [
      el("span", { class: "badge text-bg-" + (c.status === "True" ? "success" : "secondary"), text: c.type }),
      " " + c.reason + ": " + c.message,
    ])));
    const scale = document.getElementById("scale-replicas");
    if (scale && h) { scale.min = h.min_replicas; scale.max = h.max_replicas; }
  }
  function renderService(s) {
    const scope = document.getElementById("service");
    setField(scope, "type", s ? s.type : "—");
    setField(scope, "cluster_ip", (s && s.cluster_ip) || "—");
    setField(scope, "ingress", (s && s.ingress.join(", ")) || "—");
    setField(scope, "ports", s && s.ports.length ? s.ports.map((p) => p.port + "→" + p.target_port + "/" + p.protocol +
      (p.node_port ? " (" + t.nodePort + " " + p.node_port + ")" : "")).join(", ") : "—");
  }
  // "2026-01-02T01:02:03.5Z" → "2026-01-02 09:02:03" in the browser's time zone, as the page renders it.
  function localStamp(iso) {
    const d = new Date(iso);
    if (!iso || isNaN(d)) return iso || "";
    const two = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ` +
      `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
  }
  function renderWarnings(items) {
    const body = document.getElementById("warning-rows");
    body.replaceChildren();
    if (!items.length) body.appendChild(el("tr", {}, [el("td", { colspan: "5", class: "text-muted", text: t.noWarnings })]));
    items.forEach((w) => body.appendChild(el("tr", { "data-warning": w.reason, "data-warning-pod": w.pod }, [
      el("td", { class: "text-nowrap", text: localStamp(w.last_seen) }), el("td", {}, [el("code", { text: w.pod })]),
      el("td", { text: w.reason }), el("td", { class: "warning-count", text: "×" + w.count }), el("td", { text: w.message }),
    ])));
  }
  function renderEvents(items) {
    const body = document.getElementById("event-rows");
    body.replaceChildren();
    if (!items.length) body.appendChild(el("tr", {}, [el("td", { colspan: "5", class: "text-muted", text: t.noEvents })]));
    items.forEach((e) => body.appendChild(el("tr", {}, [
      el("td", { class: "text-nowrap", text: localStamp(e.last_seen) }), el("td", { text: e.type }), el("td", { text: e.reason }),
      el("td", { text: e.object }), el("td", { text: e.message + (e.count > 1 ? " (×" + e.count + ")" : "") }),
    ])));
  }

  // --- logs ---
  function appendLine(line) {
    if (paused) { held.push(line); return; }
    const stick = logOut.scrollTop + logOut.clientHeight >= logOut.scrollHeight - 4;
    logOut.appendChild(document.createTextNode(line + "\n"));
    if (stick) logOut.scrollTop = logOut.scrollHeight;
  }
  function setFollowing(on) {
    following = on;
    document.getElementById("log-pause").disabled = !on;
    document.getElementById("log-stop").disabled = !on;
  }
  function updateLinks() {
    const pod = logPod.value || "";
    const tail = document.getElementById("log-tail").value || "200";
    const previous = document.getElementById("log-previous").checked ? "&previous=1" : "";
    document.getElementById("log-download").href =
      root.dataset.logsUrl.replace("__POD__", encodeURIComponent(pod)) + "?tail=" + encodeURIComponent(tail) + previous;
    const search = root.dataset.logSearch;
    if (search) document.getElementById("log-search").href = search.replace("__POD__", encodeURIComponent(pod));
  }
  ["change", "input"].forEach((name) => document.getElementById("log-form").addEventListener(name, updateLinks));
  document.getElementById("log-follow").addEventListener("click", () => {
    logOut.textContent = "";
    held = [];
    paused = false;
    document.getElementById("log-pause").textContent = t.pause;
    const tail = parseInt(document.getElementById("log-tail").value || "200", 10);
    send({ type: "follow", pod: logPod.value, container: "", tail: isNaN(tail) ? 200 : tail,
      previous: document.getElementById("log-previous").checked });
    logStatus.textContent = fmt(t.following, { pod: logPod.value });
    setFollowing(true);
  });
  document.getElementById("log-pause").addEventListener("click", (event) => {
    paused = !paused;
    event.target.textContent = paused ? t.resume : t.pause;
    logStatus.textContent = paused ? t.paused : fmt(t.following, { pod: logPod.value });
    if (!paused) { const lines = held; held = []; lines.forEach(appendLine); }
  });
  document.getElementById("log-stop").addEventListener("click", () => { send({ type: "unfollow" }); setFollowing(false); logStatus.textContent = ""; });

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  const handlers = {
    pods: (m) => renderPods(m.items),
    deployment: (m) => renderDeployment(m.item),
    hpa: (m) => renderHpa(m.item),
    service: (m) => renderService(m.item),
    events: (m) => { renderEvents(m.items); renderWarnings(m.warnings || []); },
    error: (m) => { streamError.textContent = m.source + ": " + m.message; streamError.classList.remove("d-none"); },
    log: (m) => appendLine(m.line),
    "log-start": () => { streamError.classList.add("d-none"); },
    "log-error": (m) => { logStatus.textContent = m.message; logStatus.classList.add("text-danger"); logStatus.id = "log-status"; setFollowing(false); },
    "log-end": () => { logStatus.textContent = t.ended; setFollowing(false); },
  };

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + root.dataset.wsUrl);
    liveBadge.dataset.state = "connecting";
    liveBadge.textContent = t.connecting;
    socket.onopen = () => {
      delay = 500;
      liveBadge.dataset.state = "open";
      liveBadge.textContent = t.live;
    };
    socket.onmessage = (message) => {
      const data = JSON.parse(message.data);
      if (data.type !== "error" && data.type.indexOf("log") !== 0) streamError.classList.add("d-none");
      if (data.type === "log-error" || data.type === "log-start") logStatus.classList.remove("text-danger");
      const handle = handlers[data.type];
      if (handle) handle(data);
    };
    socket.onclose = () => {
      liveBadge.dataset.state = "closed";
      liveBadge.textContent = t.closed;
      setFollowing(false);
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }
  updateLinks();
  connect();
})();
