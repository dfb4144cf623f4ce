// The monitoring panels of the environment page (templates/clusters/environment/_monitoring.html).
// The page renders placeholders only; each panel's series come from the metrics API and are drawn with
// uPlot. A range ending now is followed live (every 15 s, not while the tab is hidden); dragging over a
// chart zooms to a fixed range, which is not refreshed. Charts are reused: a refresh only swaps data.
(function () {
  "use strict";
  const root = document.getElementById("monitoring");
  if (!root || root.dataset.enabled !== "true" || typeof uPlot === "undefined") return;
  const t = JSON.parse(document.getElementById("monitoring-i18n").textContent);
  const apiUrl = root.dataset.metricsUrl;
  const status = document.getElementById("monitoring-status");
  const markerList = document.getElementById("monitoring-markers");
  const rangeButtons = Array.from(document.querySelectorAll("#monitoring-range [data-range]"));
  const REFRESH_MS = 15000;
  const HEIGHT = 180;
  const COLORS = ["#0d6efd", "#dc3545", "#198754", "#fd7e14", "#6f42c1", "#20c997", "#6c757d", "#d63384"];
  // Not in COLORS: a marker never looks like a series.
  const MARKER_COLORS = { release: "#0aa2c0", promotion: "#146c43", rollback: "#b02a37" };

  const panels = Array.from(root.querySelectorAll(".monitoring-panel")).map((node) => ({
    node: node,
    id: node.dataset.panel,
    unit: node.dataset.unit,
    chart: node.querySelector(".monitoring-chart"),
    message: node.querySelector(".monitoring-message"),
    plot: null,
    names: "",
    markers: [],
    span: [0, 1],
    busy: false,
  }));
  let range = { seconds: 3600, start: null, end: null }; // start/end set: a fixed (zoomed) range
  let timer = null;

  // --- units -------------------------------------------------------------------------------------
  function num(v) {
    const a = Math.abs(v);
    if (a >= 100) return v.toFixed(0);
    if (a >= 10) return v.toFixed(1);
    if (a === 0) return "0";
    return String(Number(v.toPrecision(3)));
  }
  function format(unit, v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "—";
    switch (unit) {
      case "reqps":
        return num(v) + " req/s";
      case "percentunit":
        return num(v * 100) + " %";
      case "s":
        return Math.abs(v) < 1 ? num(v * 1000) + " ms" : num(v) + " s";
      case "cores":
        return num(v) + " " + t.cores;
      case "bytes": {
        const units = [["GiB", 1024 ** 3], ["MiB", 1024 ** 2], ["KiB", 1024]];
        for (const [name, size] of units) if (Math.abs(v) >= size) return num(v / size) + " " + name;
        return num(v) + " B";
      }
      default:
        return num(v);
    }
  }

  // --- markers -----------------------------------------------------------------------------------
  // Releases and rollbacks as labelled vertical lines, drawn on the chart's canvas after the series.
  function markerPlugin(panel) {
    return {
      hooks: {
        draw: [
          (u) => {
            if (!panel.markers.length) return;
            const ctx = u.ctx;
            const { left, top, width, height } = u.bbox;
            const ratio = window.devicePixelRatio || 1;
            ctx.save();
            ctx.font = 10 * ratio + "px sans-serif";
            ctx.lineWidth = ratio;
            ctx.setLineDash([4 * ratio, 3 * ratio]);
            panel.markers.forEach((marker, index) => {
              const x = Math.round(u.valToPos(marker.at, "x", true));
              if (x < left || x > left + width) return;
              const color = MARKER_COLORS[marker.kind] || "#6c757d";
              ctx.strokeStyle = color;
              ctx.fillStyle = color;
              ctx.beginPath();
              ctx.moveTo(x, top);
              ctx.lineTo(x, top + height);
              ctx.stroke();
              ctx.fillText(marker.label, x + 3 * ratio, top + (11 + (index % 3) * 11) * ratio);
            });
            ctx.restore();
          },
        ],
      },
    };
  }

  function showMarkers(markers) {
    markerList.replaceChildren();
    if (!markers.length) return;
    markerList.append(t.markers + ": ");
    markers.forEach((marker, index) => {
      if (index) markerList.append(" · ");
      const link = document.createElement("a");
      link.href = marker.url;
      link.className = "monitoring-marker marker-" + marker.kind;
      link.textContent = new Date(marker.at * 1000).toLocaleString() + " " + marker.label;
      markerList.appendChild(link);
    });
  }

  // --- drawing -----------------------------------------------------------------------------------
  // uPlot wants one x array and one y array per line: the API's [ts, value] pairs on a shared grid.
  function columns(answer) {
    const times = new Set();
    answer.series.forEach((s) => s.values.forEach(([ts]) => times.add(ts)));
    const xs = Array.from(times).sort((a, b) => a - b);
    const index = new Map(xs.map((ts, i) => [ts, i]));
    const ys = answer.series.map((s) => {
      const column = new Array(xs.length).fill(null);
      s.values.forEach(([ts, v]) => { column[index.get(ts)] = v; });
      return column;
    });
    return [xs, ...ys];
  }

  function options(panel, names) {
    return {
      width: Math.max(200, panel.chart.clientWidth),
      height: HEIGHT,
      plugins: [markerPlugin(panel)],
      // The asked range, not the data's: a series that starts late is drawn where it starts.
      // …and y from zero, so a small wobble does not look like a cliff.
      scales: {
        x: { time: true, range: () => panel.span },
        y: { range: (u, min, max) => [Math.min(0, min), max > 0 ? max * 1.1 : 1] },
      },
      cursor: { drag: { x: true, y: false } },
      legend: { live: true },
      series: [
        {},
        ...names.map((name, i) => ({
          label: name,
          stroke: COLORS[i % COLORS.length],
          width: 2, // uPlot shows the points themselves only where they are few (a lone sample)
          value: (u, v) => format(panel.unit, v),
        })),
      ],
      axes: [{}, { size: 72, values: (u, splits) => splits.map((v) => format(panel.unit, v)) }],
      hooks: {
        setSelect: [
          (u) => {
            if (u.select.width < 5) return;
            const start = u.posToVal(u.select.left, "x");
            const end = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
            setRange({ seconds: end - start, start: start, end: end });
          },
        ],
      },
    };
  }

  function draw(panel, answer) {
    panel.markers = answer.markers;
    panel.span = [answer.start, answer.end];
    const hasData = answer.series.some((s) => s.values.some(([, v]) => v !== null));
    if (!hasData) {
      if (panel.plot) { panel.plot.destroy(); panel.plot = null; panel.names = ""; }
      panel.message.textContent = t.noData;
      panel.message.classList.remove("text-danger");
      panel.node.dataset.state = "empty";
      panel.node.dataset.series = "0";
      return;
    }
    const data = columns(answer);
    const names = answer.series.map((s) => s.name);
    const key = names.join("\u0000");
    if (panel.plot && panel.names === key) {
      panel.plot.setData(data);
    } else {
      if (panel.plot) panel.plot.destroy();
      panel.plot = new uPlot(options(panel, names), data, panel.chart);
      panel.names = key;
    }
    panel.message.textContent = "";
    panel.node.dataset.state = "drawn";
    panel.node.dataset.series = String(names.length);
  }

  function fail(panel, text) {
    if (panel.plot) { panel.plot.destroy(); panel.plot = null; panel.names = ""; }
    panel.message.textContent = t.failed.replace("{error}", text);
    panel.message.classList.add("text-danger");
    panel.node.dataset.state = "error";
  }

  // --- loading -----------------------------------------------------------------------------------
  function window_() {
    if (range.start !== null) return { start: range.start, end: range.end };
    const end = Date.now() / 1000;
    return { start: end - range.seconds, end: end };
  }

  async function load(panel, span) {
    if (panel.busy) return null;
    panel.busy = true;
    const params = new URLSearchParams({
      panel: panel.id,
      start: span.start.toFixed(3),
      end: span.end.toFixed(3),
    });
    try {
      const response = await fetch(apiUrl + "?" + params, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      let body = null;
      try { body = await response.json(); } catch (e) { body = null; }
      if (!response.ok) {
        fail(panel, (body && body.detail) || response.status + " " + response.statusText);
        return null;
      }
      draw(panel, body);
      return body;
    } catch (e) {
      fail(panel, String(e.message || e));
      return null;
    } finally {
      panel.busy = false;
    }
  }

  async function refresh() {
    const span = window_();
    const answers = await Promise.all(panels.map((panel) => load(panel, span)));
    const first = answers.find((a) => a);
    if (first) showMarkers(first.markers);
  }

  function live() {
    return range.start === null;
  }

  function describe() {
    if (!live()) status.textContent = t.fixed;
    else status.textContent = document.hidden ? t.paused : t.live;
    root.dataset.live = String(live() && !document.hidden);
  }

  function schedule() {
    clearInterval(timer);
    timer = null;
    if (live()) timer = setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
    describe();
  }

  function setRange(next) {
    range = next;
    rangeButtons.forEach((b) => {
      const on = live() && Number(b.dataset.range) === range.seconds;
      b.classList.toggle("active", on);
      b.setAttribute("aria-pressed", String(on));
    });
    schedule();
    refresh();
  }

  rangeButtons.forEach((button) =>
    button.addEventListener("click", () =>
      setRange({ seconds: Number(button.dataset.range), start: null, end: null })));

  document.addEventListener("visibilitychange", () => {
    describe();
    if (!document.hidden && live()) refresh(); // catch up at once after the pause
  });

  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => panels.forEach((p) => {
      if (p.plot) p.plot.setSize({ width: Math.max(200, p.chart.clientWidth), height: HEIGHT });
    }), 200);
  });

  panels.forEach((panel) => { panel.message.textContent = t.loading; });
  schedule();
  refresh();
})();
