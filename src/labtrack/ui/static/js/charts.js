/* Charts on Plotly.js (served by labtrack from the installed plotly package).
 *
 * Metric histories always come downsampled by the server (get-history-bulk-interval, at most
 * MAX_POINTS steps per run), so a series of millions of points costs the browser the same as a
 * short one. Zooming in on the step axis fetches that window again at full resolution. */
"use strict";

(function () {
  const { api, el, fmt } = LT;
  const MAX_POINTS = 1000;
  const PALETTE = [
    "#1f5fbf", "#d9480f", "#2b8a3e", "#ae3ec9", "#e67700", "#0c8599", "#c2255c", "#5c940d",
    "#364fc7", "#862e9c", "#a61e4d", "#087f5b", "#5f3dc4", "#b35900", "#1864ab", "#495057",
  ];
  const FONT = { family: getComputedStyle(document.body).fontFamily, size: 11.5, color: "#3b4656" };
  const CONFIG = {
    displaylogo: false,
    responsive: true,
    modeBarButtonsToRemove: ["lasso2d", "select2d", "autoScale2d", "toggleSpikelines"],
  };
  const color = (i) => PALETTE[i % PALETTE.length];

  function value(v) {
    if (typeof v === "number") return Number.isFinite(v) ? v : null;
    const n = Number(v);
    return Number.isFinite(n) ? n : null;
  }

  /* {run_id: [{step, timestamp, value}]} for one metric of several runs (at most 100).
   * `early`: the promise of a fetch of exactly this request started by prefetch.js. */
  async function history(runIds, key, range, early) {
    const query = { run_ids: runIds, metric_key: key, max_results: MAX_POINTS };
    if (range) { query.start_step = range[0]; query.end_step = range[1]; }
    const data = early
      ? await LT.handle(await early)
      : await api("mlflow/metrics/get-history-bulk-interval", { query });
    const out = Object.fromEntries(runIds.map((id) => [id, []]));
    for (const m of data.metrics || []) {
      (out[m.run_id] || (out[m.run_id] = [])).push({ step: Number(m.step), timestamp: Number(m.timestamp), value: value(m.value) });
    }
    for (const id of Object.keys(out)) out[id].sort((a, b) => a.step - b.step || a.timestamp - b.timestamp);
    return out;
  }

  /* Exponential moving average with bias correction (the usual training-curve smoothing). */
  function smooth(values, weight) {
    if (!weight) return values;
    let last = 0;
    let count = 0;
    return values.map((v) => {
      if (v === null) return null;
      count += 1;
      last = last * weight + (1 - weight) * v;
      return last / (1 - Math.pow(weight, count));
    });
  }

  function relativeUnit(points) {
    const span = points.length ? (points[points.length - 1].timestamp - points[0].timestamp) / 1000 : 0;
    if (span > 2 * 3600) return [3600, "hours"];
    if (span > 2 * 60) return [60, "minutes"];
    return [1, "seconds"];
  }

  function baseLayout(opts) {
    return {
      font: FONT,
      margin: { l: 54, r: 14, t: 10, b: 40 },
      paper_bgcolor: "#fff",
      plot_bgcolor: "#fff",
      hovermode: "closest",
      hoverlabel: { font: { family: FONT.family, size: 12 } },
      showlegend: !!opts.legend,
      legend: { orientation: "h", y: -0.2, font: { size: 11 } },
      uirevision: opts.uirevision || "keep",
      xaxis: { gridcolor: "#eef0f3", zeroline: false, automargin: true, title: { text: opts.xTitle || "", font: { size: 11 } } },
      yaxis: { gridcolor: "#eef0f3", zeroline: false, automargin: true, type: opts.logY ? "log" : "linear", exponentformat: "e" },
    };
  }

  /* A line chart of one metric for one or more runs.
   * runs: [{id, name, color}]; options: {xMode: "step"|"time"|"relative", logY, smoothing}. */
  class LineChart {
    constructor(node, key, runs, options) {
      this.node = node;
      this.key = key;
      this.runs = runs;
      this.options = Object.assign({ xMode: "step", logY: false, smoothing: 0 }, options || {});
      this.full = null;
      this.data = null;
      this.zoomed = false;
      this.listening = false;
    }

    /* `pending`: a history() promise started earlier (the page knew the key before load). */
    async load(pending) {
      this.full = (pending && (await pending)) || (await history(this.runs.map((r) => r.id), this.key));
      this.data = this.full;
      return this.draw();
    }

    set(options) {
      const modeChanged = options.xMode && options.xMode !== this.options.xMode;
      Object.assign(this.options, options);
      if (modeChanged) { this.data = this.full; this.zoomed = false; }
      if (this.data) this.draw(modeChanged);
    }

    traces() {
      const { xMode, smoothing } = this.options;
      const traces = [];
      this.runs.forEach((run, i) => {
        const points = (this.data && this.data[run.id]) || [];
        if (!points.length) return;
        let xs;
        let unit = [1, "seconds"];
        if (xMode === "time") xs = points.map((p) => new Date(p.timestamp));
        else if (xMode === "relative") {
          unit = relativeUnit(points);
          const t0 = points[0].timestamp;
          xs = points.map((p) => (p.timestamp - t0) / 1000 / unit[0]);
        } else xs = points.map((p) => p.step);
        const ys = points.map((p) => p.value);
        const c = run.color || color(i);
        const hover = `<b>${escapeText(run.name)}</b><br>%{y:.6g}<br>step %{customdata}<extra></extra>`;
        const steps = points.map((p) => p.step);
        if (smoothing > 0) {
          traces.push({ x: xs, y: ys, type: "scatter", mode: "lines", line: { color: c, width: 1 }, opacity: 0.25, hoverinfo: "skip", showlegend: false, name: run.name });
        }
        traces.push({
          x: xs, y: smooth(ys, smoothing), customdata: steps, type: "scatter",
          mode: points.length < 60 ? "lines+markers" : "lines", marker: { size: 4 },
          line: { color: c, width: 1.6 }, name: run.name, hovertemplate: hover, connectgaps: false,
        });
        this.unit = unit;
      });
      return traces;
    }

    async draw(resetAxes) {
      const { xMode, logY } = this.options;
      const xTitle = xMode === "time" ? "" : xMode === "relative" ? `relative time (${(this.unit || [1, "seconds"])[1]})` : "step";
      const traces = this.traces();
      const layout = baseLayout({ logY, xTitle, legend: this.runs.length > 1, uirevision: resetAxes ? String(Math.random()) : this.key + xMode });
      if (xMode === "time") layout.xaxis.type = "date";
      if (!traces.length) {
        LT.setContent(this.node, el("div", { class: "chart-placeholder", style: { height: "100%" }, text: "No values" }));
        return;
      }
      await Plotly.react(this.node, traces, layout, CONFIG);
      if (!this.listening) {
        this.listening = true;
        this.node.on("plotly_relayout", (event) => this.onRelayout(event));
      }
    }

    async onRelayout(event) {
      if (this.options.xMode !== "step") return;
      if (event["xaxis.autorange"]) {
        if (this.zoomed) { this.zoomed = false; this.data = this.full; this.draw(); }
        return;
      }
      const lo = event["xaxis.range[0]"];
      const hi = event["xaxis.range[1]"];
      if (lo === undefined || hi === undefined) return;
      // Only worth a request when the window holds fewer points than the full resolution.
      const range = [Math.max(0, Math.floor(lo)), Math.ceil(hi)];
      try {
        const detail = await history(this.runs.map((r) => r.id), this.key, range);
        this.data = detail;
        this.zoomed = true;
        await this.draw();
        Plotly.relayout(this.node, { "xaxis.range": [lo, hi] });
      } catch (e) { LT.fail(e); }
    }
  }

  function escapeText(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  /* Controls shared by a set of line charts: x axis, log scale, smoothing. */
  function controls(container, onChange, initial) {
    const state = Object.assign({ xMode: "step", logY: false, smoothing: 0 }, initial || {});
    const x = el("select", { "aria-label": "X axis", id: "chart-x" },
      el("option", { value: "step", text: "X: step" }),
      el("option", { value: "time", text: "X: wall time" }),
      el("option", { value: "relative", text: "X: relative time" }));
    x.value = state.xMode;
    const log = el("input", { type: "checkbox", id: "chart-log" });
    log.checked = state.logY;
    const slider = el("input", { type: "range", min: "0", max: "0.99", step: "0.01", value: String(state.smoothing), id: "chart-smoothing" });
    const shown = el("span", { class: "small muted mono", text: Number(state.smoothing).toFixed(2) });
    x.addEventListener("change", () => { state.xMode = x.value; onChange({ xMode: x.value }); });
    log.addEventListener("change", () => { state.logY = log.checked; onChange({ logY: log.checked }); });
    slider.addEventListener("input", LT.debounce(() => {
      state.smoothing = Number(slider.value);
      shown.textContent = state.smoothing.toFixed(2);
      onChange({ smoothing: state.smoothing });
    }, 60));
    LT.append(container, [x, el("label", { class: "check" }, log, "Log scale"),
      el("span", { class: "slider" }, "Smoothing", slider, shown)]);
    return state;
  }

  function scatter(node, points, xLabel, yLabel) {
    const layout = baseLayout({ xTitle: xLabel });
    layout.yaxis.title = { text: yLabel, font: { size: 11 } };
    layout.margin.l = 64;
    const categorical = points.some((p) => typeof p.x === "string");
    if (categorical) layout.xaxis.type = "category";
    return Plotly.react(node, [{
      x: points.map((p) => p.x), y: points.map((p) => p.y), text: points.map((p) => p.name),
      type: "scatter", mode: "markers",
      marker: { size: 10, color: points.map((p) => p.color), line: { width: 1, color: "#fff" } },
      hovertemplate: "<b>%{text}</b><br>" + escapeText(xLabel) + ": %{x}<br>" + escapeText(yLabel) + ": %{y:.6g}<extra></extra>",
    }], layout, CONFIG);
  }

  /* dims: [{label, values}] with numbers or strings; strings become categorical axes. */
  function parcoords(node, dims, colorValues) {
    const dimensions = dims.map((d) => {
      const numeric = d.values.every((v) => v === null || v === undefined || Number.isFinite(Number(v)));
      if (numeric) return { label: d.label, values: d.values.map((v) => (v === null || v === undefined ? NaN : Number(v))) };
      const cats = [...new Set(d.values.map((v) => String(v)))].sort();
      return { label: d.label, values: d.values.map((v) => cats.indexOf(String(v))), tickvals: cats.map((_, i) => i), ticktext: cats };
    });
    const layout = { font: FONT, margin: { l: 60, r: 60, t: 40, b: 20 }, paper_bgcolor: "#fff" };
    const line = colorValues
      ? { color: colorValues.map((v) => (v === null ? NaN : Number(v))), colorscale: "Viridis", showscale: true }
      : { color: "#1f5fbf" };
    return Plotly.react(node, [{ type: "parcoords", dimensions, line, labelfont: { size: 11 }, tickfont: { size: 10 } }], layout, CONFIG);
  }

  LT.charts = { history, smooth, LineChart, controls, scatter, parcoords, color, PALETTE, MAX_POINTS, fmt };
})();
