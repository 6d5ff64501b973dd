/* Analytics tab: charts over time drawn with uPlot (static/vendor/uplot), the queue chart live over Socket.IO.
   Uses app.js's helpers ($, h, api, socket) when the tab is first shown. Times are the browser's local time. */
"use strict";

const Analytics = (() => {
  const RANGES = {
    "24h": { days: 1, bucket: "hour" }, "7d": { days: 7, bucket: "hour" },
    "14d": { days: 14, bucket: "day" }, "30d": { days: 30, bucket: "day" }, "90d": { days: 90, bucket: "day" },
  };
  const zoneName = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const charts = new Map();                  // element id -> uPlot
  const HEIGHT = 220;
  let wired = false, reloadTimer = null, queue = null, loading = null;

  function palette() {
    const css = getComputedStyle(document.documentElement);
    const v = name => css.getPropertyValue(name).trim();
    return { text: v("--text") || "#e6e8eb", muted: v("--muted") || "#8b939e", grid: v("--line") || "#2d333d",
             accent: v("--accent") || "#3d8bfd", ok: v("--ok") || "#3fb950", bad: v("--bad") || "#f85149",
             warn: v("--warn") || "#d29922", extra: ["#a371f7", "#39c5cf", "#db61a2", "#e3b341", "#8b949e"] };
  }

  const fmtNum = (v, digits = 1) => v == null ? "–" : Number.isInteger(v) ? String(v) : v.toFixed(digits);

  const COUNT_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];
  const fromZero = { range: (u, lo, hi) => [0, Math.max(hi || 0, 0) * 1.1 || 1] };

  function axes(c, yLabel, bucket, counts = false) {
    const daily = bucket === "day";
    const x = { stroke: c.muted, grid: { stroke: c.grid, width: 1 }, ticks: { stroke: c.grid } };
    if (daily) x.values = (u, ticks) => ticks.map(t => new Date(t * 1000).toLocaleDateString([], { month: "short", day: "numeric" }));
    return [x, { stroke: c.muted, grid: { stroke: c.grid, width: 1 }, ticks: { stroke: c.grid }, label: yLabel,
                 labelSize: 20, size: 56, values: (u, ticks) => ticks.map(v => String(+v.toPrecision(3))),
                 ...(counts ? { incrs: COUNT_STEPS } : {}) }];
  }

  function widthOf(box) { return Math.max(320, box.clientWidth || box.parentElement.clientWidth || 600); }

  /* One chart in #id: destroyed and drawn again with new data; an empty period says so over the axes. */
  function draw(id, opts, data, emptyText) {
    const box = $(`#${id}`);
    charts.get(id)?.destroy();
    box.replaceChildren();
    const u = new uPlot({ width: widthOf(box), height: HEIGHT, legend: { live: true }, ...opts }, data, box);
    charts.set(id, u);
    if (emptyText) box.append(h("p", { class: "chart-empty muted" }, emptyText));
    return u;
  }

  const xRange = (since, until) => ({ time: true, range: () => [since, until] });

  /* Bars stacked from cumulative sums, drawn tallest first; the legend shows each series' own value. */
  function stacked(raw, labels, colors, unit = "") {
    const sums = [];
    raw.forEach((values, i) => sums.push(values.map((v, j) => v + (i ? sums[i - 1][j] : 0))));
    const order = raw.map((_, i) => raw.length - 1 - i);
    const bars = uPlot.paths.bars({ size: [0.7, 60] });
    return {
      data: order.map(i => sums[i].map((v, j) => raw[i][j] ? v : null)),
      series: order.map(i => ({ label: labels[i], fill: colors[i % colors.length], stroke: colors[i % colors.length],
                                paths: bars, points: { show: false },
                                value: (u, v, si, di) => di == null ? "–" : `${fmtNum(raw[i][di], 2)}${unit}` })),
    };
  }

  function drawSeries(s) {
    const c = palette();
    const half = s.bucket_seconds / 2;        // whole bars at both ends
    const x = { x: xRange(s.t[0] - half, s.t[s.t.length - 1] + half), y: fromZero };
    const none = s.totals.completed + s.totals.failed === 0;
    const title = s.bucket === "day" ? "day" : "hour";

    const jobs = stacked([s.jobs.completed, s.jobs.failed], ["completed", "failed"], [c.ok, c.bad]);
    draw("an-jobs", { scales: x, axes: axes(c, `jobs per ${title}`, s.bucket, true),
                      series: [{}, ...jobs.series] }, [s.t, ...jobs.data],
         none ? "No jobs finished in this period yet" : null);

    const media = stacked([s.media_hours], ["media hours"], [c.accent], " h");
    draw("an-media", { scales: x, axes: axes(c, `hours per ${title}`, s.bucket), series: [{}, ...media.series] },
         [s.t, ...media.data], s.totals.completed ? null : "No media captioned in this period yet");

    const stages = [["transcribing", c.accent], ["rendering", c.warn], ["whole_job", c.ok]];
    const rtfPoints = stages.some(([k]) => s.realtime_factor[k].some(v => v != null));
    draw("an-rtf", {
      scales: x, axes: axes(c, "× realtime", s.bucket),
      series: [{}, ...stages.map(([k, color]) => ({ label: k.replace("_", " "), stroke: color, width: 2, spanGaps: true,
                                                    points: { show: true, size: 6, fill: color },
                                                    value: (u, v) => v == null ? "–" : `${fmtNum(v)}×` }))],
    }, [s.t, ...stages.map(([k]) => s.realtime_factor[k])], rtfPoints ? null : "No completed jobs to time yet");

    const reasons = s.failures_by_reason.reasons;
    const fails = stacked(reasons.map(r => s.failures_by_reason.series[r.reason]), reasons.map(r => r.title),
                          [c.bad, c.warn, ...c.extra]);
    draw("an-failures", { scales: x, axes: axes(c, `failures per ${title}`, s.bucket, true),
                          series: [{}, ...(fails.series.length ? fails.series : [{ label: "failures", show: false }])] },
         [s.t, ...(fails.data.length ? fails.data : [s.t.map(() => 0)])],
         reasons.length ? null : "No failures in this period");

    bars($("#chart-rtf"), Object.entries(s.totals.realtime_factor).map(([stage, v]) => ({ stage, v })),
         r => r.stage.replace("_", " "), r => r.v, "×");
    bars($("#chart-failures"), reasons, r => r.title, r => r.count, "");
    const t = s.totals;
    const mediaText = t.media_hours < 1 ? `${fmtNum(t.media_seconds / 60)} min` : `${fmtNum(t.media_hours)} h`;
    $("#an-totals").textContent = `${t.completed} completed · ${t.failed} failed · ${mediaText} of media`;
  }

  function drawQueue(q, since, until) {
    const c = palette();
    queue = q;
    const keys = [["waiting", "waiting jobs", c.warn], ["running", "running jobs", c.accent],
                  ["workers", "workers online", c.ok], ["busy_workers", "busy workers", c.extra[0]]];
    draw("an-queue", {
      scales: { x: { time: true, range: () => [since, Math.max(until, q.t.length ? q.t[q.t.length - 1] : until)] },
                y: { range: (u, lo, hi) => [0, Math.max(4, hi || 0)] } },
      axes: axes(c, "count", "hour", true),
      series: [{}, ...keys.map(([, label, color]) => ({ label, stroke: color, width: 2,
                                                        paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } }))],
    }, [q.t, ...keys.map(([k]) => q[k])],
    q.t.length ? null : `No samples yet: the dashboard takes one every ${q.sample_seconds} s`);
  }

  function onSample(point) {
    const u = charts.get("an-queue");
    if (!u || !queue) return;
    for (const k of ["t", "waiting", "running", "workers", "busy_workers"]) queue[k].push(point[k]);
    $("#an-queue .chart-empty")?.remove();
    u.setData([queue.t, queue.waiting, queue.running, queue.workers, queue.busy_workers]);
  }

  function wire() {
    if (wired) return;
    wired = true;
    $("#an-range").addEventListener("change", () => load());
    $("#an-zone").textContent = `Times in ${zoneName}`;
    socket.on("analytics_sample", onSample);
    socket.on("job_update", job => {     // a job finished: the job charts follow a few seconds later
      if (!["completed", "failed"].includes(job.status) || !$("#tab-analytics").classList.contains("active")) return;
      clearTimeout(reloadTimer);
      reloadTimer = setTimeout(load, 3000);
    });
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => charts.forEach((u, id) => u.setSize({ width: widthOf($(`#${id}`)), height: HEIGHT })), 150);
    });
  }

  async function load() {
    wire();
    const r = RANGES[$("#an-range").value] || RANGES["14d"];
    const query = new URLSearchParams({ days: r.days, bucket: r.bucket, tz: zoneName });
    const mine = loading = Symbol("load");
    try {
      const [s, q] = await Promise.all([api(`/api/analytics/series?${query}`),
                                        api(`/api/analytics/queue?hours=${r.days * 24}`)]);
      if (mine !== loading) return;               // a newer period was chosen meanwhile
      $("#an-error").hidden = true;
      drawSeries(s);
      drawQueue(q, s.since, s.until);
      $("#tab-analytics").dataset.drawn = String(Date.now());
    } catch (e) {
      $("#an-error").hidden = false;
      $("#an-error").textContent = `Analytics unavailable: ${e.message}`;
    }
  }

  /* Horizontal bars for a period's totals (categories, not time). */
  function bars(el, rows, label, value, unit) {
    const max = Math.max(1e-9, ...rows.map(value));
    el.replaceChildren(...(rows.length ? rows.map(r => {
      const fill = h("div", { class: "fill" });
      fill.style.width = `${(value(r) / max) * 100}%`;
      return h("div", { class: "bar-row" }, h("span", { class: "label" }, label(r)), h("div", { class: "bar" }, fill),
        h("span", { class: "value" }, `${value(r).toFixed(value(r) < 10 && unit ? 2 : 0)}${unit}`));
    }) : [h("p", { class: "muted" }, "No data yet")]));
  }

  return { load, charts };   // charts: for tests and the console
})();
