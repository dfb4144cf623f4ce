// The web terminal (xterm.js ↔ ws/terminal/…) and the replay of a recorded session (asciicast v2).
(function () {
  "use strict";

  function bufferText(term) {
    const buffer = term.buffer.active;
    const lines = [];
    for (let i = 0; i < buffer.length; i++) {
      const line = buffer.getLine(i);
      if (line) lines.push(line.translateToString(true));
    }
    return lines.join("\n");
  }

  function setStatus(el, state, text) {
    if (!el) return;
    el.dataset.state = state;
    el.textContent = text;
    el.className = "badge " + ({ open: "text-bg-success", error: "text-bg-danger", closed: "text-bg-secondary" }[state] || "text-bg-secondary");
  }

  function liveTerminal(el) {
    const status = document.getElementById("terminal-status");
    const term = new window.Terminal({ cursorBlink: true, scrollback: 5000, fontSize: 14 });
    const fit = new window.FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open(el);
    fit.fit();

    const url = new URL(el.dataset.wsPath, window.location.href);
    url.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("pod", el.dataset.pod);
    if (el.dataset.container) url.searchParams.set("container", el.dataset.container);
    url.searchParams.set("cols", term.cols);
    url.searchParams.set("rows", term.rows);

    const ws = new WebSocket(url.toString());
    ws.binaryType = "arraybuffer";
    const send = (message) => { if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message)); };

    ws.onmessage = (event) => {
      if (typeof event.data !== "string") {
        term.write(new Uint8Array(event.data));
        return;
      }
      const message = JSON.parse(event.data);
      if (message.type === "ready") {
        el.dataset.session = message.session;
        setStatus(status, "open", "connected · " + message.container);
        send({ type: "resize", cols: term.cols, rows: term.rows });
        term.focus();
      } else if (message.type === "error") {
        setStatus(status, "error", message.message);
        term.write("\r\n\x1b[31m" + message.message + "\x1b[0m\r\n");
      } else if (message.type === "exit") {
        setStatus(status, "closed", "ended: " + message.reason);
      }
    };
    ws.onclose = (event) => {
      if (status && status.dataset.state !== "error") {
        setStatus(status, "closed", status.dataset.state === "closed" ? status.textContent : "closed (" + event.code + ")");
      }
    };
    term.onData((data) => send({ type: "input", data: data }));
    term.onResize((size) => send({ type: "resize", cols: size.cols, rows: size.rows }));
    let pending = null;
    window.addEventListener("resize", () => {
      clearTimeout(pending);
      pending = setTimeout(() => fit.fit(), 50);
    });
    window.addEventListener("pagehide", () => ws.close());
    window.opsTerminal = { term: term, ws: ws, text: () => bufferText(term) };
  }

  function replay(el) {
    const status = document.getElementById("replay-status");
    const playButton = document.getElementById("replay-play");
    const speedSelect = document.getElementById("replay-speed");
    const MAX_GAP = 2; // seconds: long pauses are shortened
    let header = null;
    let events = [];
    let term = null;
    let timer = null;

    function play() {
      clearTimeout(timer);
      term.reset();
      term.resize(header.width, header.height);
      setStatus(status, "playing", "playing");
      let index = 0;
      let previous = 0;
      const step = () => {
        const speed = parseFloat(speedSelect.value);
        while (index < events.length) {
          const [time, kind, data] = events[index];
          const gap = Math.min(time - previous, MAX_GAP);
          if (speed > 0 && gap > 0.001 && index > 0 && !step.due) {
            step.due = true;
            timer = setTimeout(step, (gap * 1000) / speed);
            return;
          }
          step.due = false;
          previous = time;
          index++;
          if (kind === "o") term.write(data);
          else if (kind === "r") {
            const [cols, rows] = data.split("x").map(Number);
            if (cols && rows) term.resize(cols, rows);
          }
        }
        term.write("", () => setStatus(status, "done", "finished"));
      };
      step.due = false;
      step();
    }

    fetch(el.dataset.castUrl, { credentials: "same-origin" })
      .then((response) => {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then((text) => {
        const lines = text.split("\n").filter((line) => line.trim());
        header = JSON.parse(lines[0]);
        events = lines.slice(1).map((line) => JSON.parse(line));
        term = new window.Terminal({ cols: header.width, rows: header.height, scrollback: 5000, disableStdin: true });
        term.open(el);
        window.opsReplay = { term: term, text: () => bufferText(term), events: events };
        setStatus(status, "ready", "ready");
        playButton.addEventListener("click", play);
        play();
      })
      .catch((error) => setStatus(status, "error", "cannot load the recording: " + error.message));
  }

  document.addEventListener("DOMContentLoaded", () => {
    const live = document.getElementById("terminal");
    if (live) liveTerminal(live);
    const recorded = document.getElementById("replay");
    if (recorded) replay(recorded);
  });
})();
