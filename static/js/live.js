// Live events: one WebSocket per page, subscribed to the streams the page declares with
// data-live-stream / data-live-seq. Each event is re-dispatched on <body> as a DOM event named
// "live-<type>" (HTMX listens with hx-trigger="live-<type> from:body"). On reconnect the page
// re-subscribes with the last sequence number it saw, and the server replays what it missed.
(function () {
  "use strict";
  const url = document.body.dataset.liveUrl;
  if (!url) return;
  const seen = new Map();
  document.querySelectorAll("[data-live-stream]").forEach((el) => {
    seen.set(el.dataset.liveStream, parseInt(el.dataset.liveSeq || "0", 10));
  });
  const status = document.getElementById("live-status");
  let socket = null;
  let delay = 500;

  function setState(state) {
    if (status) status.dataset.state = state;
    document.body.dataset.liveState = state;
  }

  function render(event) {
    document.querySelectorAll(`[data-live-render="${event.name}"]`).forEach((el) => {
      const template = el.dataset.templateOk || "";
      el.textContent = template.replace(/\{(\w+)\}/g, (_, key) => String(event.payload[key] ?? ""));
    });
  }

  function subscribe(stream) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "subscribe", stream: stream, last_seq: seen.get(stream) || 0 }));
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + url);
    setState("connecting");
    socket.onopen = () => {
      delay = 500;
      setState("open");
      seen.forEach((_, stream) => subscribe(stream));
    };
    socket.onmessage = (message) => {
      const data = JSON.parse(message.data);
      if (data.type === "event") {
        seen.set(data.stream, data.seq);
        render(data);
        document.body.dispatchEvent(new CustomEvent("live-" + data.name, { detail: data }));
      } else if (data.type === "reset") {
        seen.set(data.stream, data.seq);
        document.body.dispatchEvent(new CustomEvent("live-reset", { detail: data }));
      } else if (data.type === "error") {
        console.warn("live events:", data.error, data.stream || "");
      }
    };
    socket.onclose = (event) => {
      setState("closed");
      if (event.code === 4401) return; // signed out: nothing to reconnect to
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }

  window.opsLive = {
    watch(stream, seq) {
      if (!seen.has(stream)) seen.set(stream, seq || 0);
      subscribe(stream);
    },
    lastSeq: (stream) => seen.get(stream),
    reconnect() { if (socket) socket.close(); },
  };
  connect();
})();
