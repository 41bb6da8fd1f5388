/* Compare runs: overlaid metric histories, parameter and metric tables, scatter and parallel
 * coordinates of params against metrics. Runs come from ?runs=id1,id2,... */
"use strict";

(function () {
  const { api, el, $, fmt, links, fail, setContent, formDialog } = LT;
  const MAX_RUNS = 100;
  const DEFAULT_CHARTS = 4;
  const ids = [...new Set((LT.params().get("runs") || "").split(",").map((s) => s.trim()).filter(Boolean))].slice(0, MAX_RUNS);
  let runs = [];

  async function load() {
    if (ids.length < 1) {
      setContent($("#compare-runs"), el("div", { class: "empty", text: "Select runs in an experiment's runs table and press Compare." }));
      return;
    }
    const results = await Promise.all(ids.map((id) => api("mlflow/runs/get", { query: { run_id: id } }).then((d) => d.run).catch((e) => ({ error: e, id }))));
    const missing = results.filter((r) => r.error);
    runs = results.filter((r) => !r.error).map((run, i) => {
      run._m = Object.fromEntries((run.data.metrics || []).map((m) => [m.key, m.value]));
      run._p = Object.fromEntries((run.data.params || []).map((p) => [p.key, p.value]));
      run._t = Object.fromEntries((run.data.tags || []).map((t) => [t.key, t.value]));
      run.color = LT.charts.color(i);
      run.name = run.info.run_name || run.info.run_id.slice(0, 8);
      return run;
    });
    $("#compare-count").textContent = String(runs.length);
    if (missing.length) LT.toast(`${missing.length} run(s) could not be loaded: ${missing[0].error.message}`, "error");
    const experiments = [...new Set(runs.map((r) => r.info.experiment_id))];
    const names = {};
    await Promise.all(experiments.map((id) => api("mlflow/experiments/get", { query: { experiment_id: id } })
      .then((d) => { names[id] = d.experiment.name; }).catch(() => { names[id] = id; })));
    if (experiments.length === 1) {
      LT.append($("#compare-crumbs"), el("a", { href: links.experiment(experiments[0]), text: names[experiments[0]] }), el("span", { class: "sep", text: "/" }));
    }
    renderRuns(names);
    renderCharts();
    renderParams();
    renderMetrics();
    renderScatter();
    renderParcoords();
    renderTags();
  }

  const runHead = (run) => el("th", {}, el("span", { class: "swatch", style: { background: run.color } }),
    el("a", { href: links.run(run.info.run_id), text: run.name }));

  function renderRuns(names) {
    setContent($("#compare-runs"), el("div", { class: "table-scroll" }, el("table", { class: "data", id: "compare-runs-table" },
      el("thead", {}, el("tr", {}, ["Run", "Experiment", "Status", "Started", "Duration", "User"].map((h) => el("th", { text: h })))),
      el("tbody", {}, runs.map((run) => el("tr", {},
        el("td", {}, el("span", { class: "swatch", style: { background: run.color } }), el("a", { href: links.run(run.info.run_id), text: run.name })),
        el("td", {}, el("a", { href: links.experiment(run.info.experiment_id), text: names[run.info.experiment_id] })),
        el("td", {}, LT.statusBadge(run.info.status)),
        el("td", { class: "nowrap", text: fmt.time(run.info.start_time) }),
        el("td", { text: run.info.end_time ? fmt.duration(run.info.end_time - run.info.start_time) : "" }),
        el("td", { text: run.info.user_id })))))));
  }

  function allKeys(field) {
    const set = new Set();
    runs.forEach((r) => Object.keys(r[field]).forEach((k) => set.add(k)));
    return [...set].sort();
  }

  // --- metric charts ------------------------------------------------------------------------------
  function renderCharts() {
    const keys = allKeys("_m");
    const grid = $("#compare-charts");
    const bar = $("#compare-chart-controls");
    if (!keys.length) { setContent(grid, el("div", { class: "empty", text: "These runs have no metrics." })); return; }
    let chosen = (LT.params().get("metrics") || "").split(",").filter((k) => keys.includes(k));
    if (!chosen.length) chosen = keys.slice(0, DEFAULT_CHARTS);
    const charts = new Map();
    let options = { xMode: "step", logY: false, smoothing: 0 };
    const pick = el("button", { class: "btn", id: "pick-metrics", text: "Metrics…" });
    bar.append(pick, el("span", { class: "sep" }));
    options = LT.charts.controls(bar, (change) => {
      Object.assign(options, change);
      charts.forEach((c) => c.set(change));
    }, options);
    const draw = () => {
      LT.clear(grid);
      charts.clear();
      LT.setParams({ metrics: chosen.join(",") });
      for (const key of chosen) {
        const node = el("div", { class: "chart" });
        grid.append(el("div", { class: "chart-card", dataset: { key } }, el("div", { class: "chart-title", text: key }), node));
        const chart = new LT.charts.LineChart(node, key, runs.filter((r) => key in r._m).map((r) => ({ id: r.info.run_id, name: r.name, color: r.color })), options);
        charts.set(key, chart);
        chart.load().catch((e) => setContent(node, el("div", { class: "error-box", text: e.message })));
      }
    };
    pick.addEventListener("click", async () => {
      const fields = keys.map((k) => ({ name: k, label: k, type: "checkbox", value: chosen.includes(k) }));
      const values = await formDialog("Metrics to chart", fields, "Show");
      if (!values) return;
      chosen = keys.filter((k) => values[k]);
      draw();
    });
    draw();
  }

  // --- tables -------------------------------------------------------------------------------------------
  function valueTable(container, id, keys, field, format, emptyText) {
    if (!keys.length) { setContent(container, el("div", { class: "empty small", text: emptyText })); return; }
    setContent(container, el("div", { class: "table-scroll", style: { maxHeight: "420px" } }, el("table", { class: "data", id },
      el("thead", {}, el("tr", {}, el("th", { text: "" }), runs.map(runHead))),
      el("tbody", {}, keys.map((k) => el("tr", {}, el("td", { class: "key", text: k }),
        runs.map((r) => el("td", { class: field === "_m" ? "num" : "val", text: format(r[field][k]) }))))))));
  }

  function renderParams() {
    const keys = allKeys("_p");
    const draw = () => {
      const diffOnly = $("#diff-only").checked;
      const shown = diffOnly ? keys.filter((k) => new Set(runs.map((r) => r._p[k])).size > 1) : keys;
      valueTable($("#compare-params"), "compare-params-table", shown, "_p", (v) => (v === undefined ? "–" : v),
        keys.length ? "All parameters are equal." : "No parameters.");
    };
    $("#diff-only").addEventListener("change", draw);
    draw();
  }

  function renderMetrics() {
    valueTable($("#compare-metrics"), "compare-metrics-table", allKeys("_m"), "_m", (v) => (v === undefined ? "–" : fmt.num(v)), "No metrics.");
  }

  function renderTags() {
    const keys = allKeys("_t").filter((k) => !k.startsWith("mlflow.") || k === "mlflow.note.content");
    valueTable($("#compare-tags"), "compare-tags-table", keys, "_t", (v) => (v === undefined ? "–" : v), "No tags.");
  }

  // --- scatter and parallel coordinates -------------------------------------------------------------------
  function axisOptions() {
    return allKeys("_p").map((k) => ["params\u0000" + k, "param: " + k]).concat(allKeys("_m").map((k) => ["metrics\u0000" + k, "metric: " + k]));
  }
  function valueOf(run, choice) {
    const [group, key] = choice.split("\u0000");
    const raw = group === "params" ? run._p[key] : run._m[key];
    if (raw === undefined) return null;
    const n = Number(raw);
    return Number.isFinite(n) && String(raw).trim() !== "" ? n : String(raw);
  }

  function renderScatter() {
    const options = axisOptions();
    const x = $("#scatter-x");
    const y = $("#scatter-y");
    if (!options.length) return;
    for (const select of [x, y]) setContent(select, options.map(([value, label]) => el("option", { value, text: label })));
    const params = allKeys("_p");
    const metrics = allKeys("_m");
    if (params.length) x.value = "params\u0000" + params[0];
    if (metrics.length) y.value = "metrics\u0000" + metrics[0];
    const draw = () => {
      const points = runs.map((r) => ({ x: valueOf(r, x.value), y: valueOf(r, y.value), name: r.name, color: r.color }))
        .filter((p) => p.x !== null && p.y !== null);
      LT.charts.scatter($("#scatter"), points, x.value.split("\u0000")[1], y.value.split("\u0000")[1]);
    };
    x.addEventListener("change", draw);
    y.addEventListener("change", draw);
    draw();
  }

  function renderParcoords() {
    const params = allKeys("_p");
    const metrics = allKeys("_m");
    if (!params.length && !metrics.length) return;
    const varying = params.filter((k) => new Set(runs.map((r) => r._p[k])).size > 1);
    let dims = (varying.length ? varying : params).slice(0, 6).map((k) => "params\u0000" + k)
      .concat(metrics.slice(0, 2).map((k) => "metrics\u0000" + k));
    const draw = () => {
      if (!dims.length) { LT.clear($("#parcoords")); return; }
      const colorDim = dims.filter((d) => d.startsWith("metrics")).pop();
      LT.charts.parcoords($("#parcoords"),
        dims.map((d) => ({ label: d.split("\u0000")[1], values: runs.map((r) => valueOf(r, d)) })),
        colorDim ? runs.map((r) => valueOf(r, colorDim)) : null);
    };
    $("#parcoords-dims").addEventListener("click", async () => {
      const fields = axisOptions().map(([value, label]) => ({ name: value, label, type: "checkbox", value: dims.includes(value) }));
      const values = await formDialog("Axes", fields, "Show");
      if (!values) return;
      dims = axisOptions().map(([value]) => value).filter((v) => values[v]);
      draw();
    });
    draw();
  }

  load().catch(fail);
})();
