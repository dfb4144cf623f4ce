// The DORA charts (templates/dora/_figures.html): the page or fragment carries the columns as JSON
// (opsportal.dora.chart_data); they are drawn with uPlot whenever such content appears, on the project
// overview each time its fragment is swapped in (a new period or environment).
(function () {
  "use strict";
  if (typeof uPlot === "undefined") return;
  const HEIGHT = 160;
  const COLORS = { deployments: "#198754", failed: "#dc3545", lead_time: "#0d6efd", restore: "#fd7e14" };

  function hours(v) {
    if (v === null || v === undefined) return "—";
    return v < 1 ? Math.round(v * 60) + " min" : (Math.round(v * 10) / 10) + " h";
  }

  // Deployments and failures side by side in each day, each half of the day's width.
  function bars(align) {
    return uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.4, 24], align: align }) : undefined;
  }

  function seriesFor(kind, labels) {
    if (kind === "daily") {
      return [
        { label: labels.deployments, stroke: COLORS.deployments, fill: COLORS.deployments + "88",
          paths: bars(1), points: { show: false } },
        { label: labels.failed, stroke: COLORS.failed, fill: COLORS.failed + "88",
          paths: bars(-1), points: { show: false } },
      ];
    }
    // One point per deployment or failure: no line between them.
    return [{
      label: labels[kind],
      stroke: COLORS[kind],
      paths: () => null,
      points: { show: true, size: 7, fill: COLORS[kind] },
      value: (u, v) => hours(v),
    }];
  }

  function draw(chart, data) {
    const kind = chart.dataset.chart;
    const columns = data[kind];
    const plotNode = chart.querySelector(".dora-plot");
    const message = chart.querySelector(".dora-message");
    if (!columns || !columns[0].length) {
      chart.dataset.state = "empty";
      if (message) message.textContent = data.labels.no_data;
      return;
    }
    const plot = new uPlot({
      width: Math.max(200, plotNode.clientWidth),
      height: HEIGHT,
      scales: {
        x: { time: true, range: () => [data.start, data.end] },
        y: { range: (u, min, max) => [0, max > 0 ? max * 1.15 : 1] },
      },
      series: [{}, ...seriesFor(kind, data.labels)],
      axes: [{}, { size: 70, values: (u, splits) => splits.map((v) => (kind === "daily" ? v : hours(v))) }],
    }, columns, plotNode);
    chart.dataset.state = "drawn";
    chart.dataset.points = String(columns[0].length);
    chart.doraPlot = plot;
  }

  function drawIn(root) {
    const holders = root.matches && root.matches(".dora-charts")
      ? [root] : Array.from(root.querySelectorAll ? root.querySelectorAll(".dora-charts") : []);
    holders.forEach((holder) => {
      const source = document.getElementById(holder.dataset.chartJson);
      if (!source) return;
      const data = JSON.parse(source.textContent);
      holder.querySelectorAll(".dora-chart").forEach((chart) => {
        if (chart.dataset.state === "pending") draw(chart, data);
      });
    });
  }

  if (typeof htmx !== "undefined") htmx.onLoad(drawIn); // the document now, and each swapped-in fragment
  else drawIn(document);

  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => document.querySelectorAll(".dora-chart").forEach((chart) => {
      const node = chart.querySelector(".dora-plot");
      if (chart.doraPlot && document.body.contains(node)) {
        chart.doraPlot.setSize({ width: Math.max(200, node.clientWidth), height: HEIGHT });
      }
    }), 200);
  });
})();
