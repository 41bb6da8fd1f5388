/* A run: overview (details, notes, datasets, tags, params, metrics), metric charts, artifacts. */
"use strict";

(function () {
  const { api, el, $, $$, fmt, links, fail, toast, formDialog, setContent, tagsOf } = LT;
  const runId = LT.page.run_id;
  const NOTE_TAG = "mlflow.note.content";
  const PARENT_TAG = "mlflow.parentRunId";
  let run = null;
  // prefetch.js started the run's request (and a chart page's series) before Plotly loaded.
  const early = window.LT_EARLY || {};
  const focusKey = LT.page.tab === "metrics" ? LT.params().get("key") : null;
  const prefetched = focusKey
    ? LT.charts.history([runId], focusKey, null, early.key === focusKey ? early.history : null).catch(() => null)
    : null;
  let tags = {};
  const started = {};

  // --- tabs --------------------------------------------------------------------------------------
  function show(tab, push) {
    for (const name of ["overview", "metrics", "artifacts"]) {
      $("#tab-" + name).classList.toggle("hidden", name !== tab);
    }
    $$("#run-tabs a").forEach((a) => a.classList.toggle("active", a.dataset.tab === tab));
    if (push) history.pushState({ tab }, "", links.run(runId, tab === "overview" ? "" : tab));
    if (!run) return;
    if (tab === "metrics" && !started.metrics) { started.metrics = true; initCharts(); }
    if (tab === "artifacts" && !started.artifacts) {
      started.artifacts = true;
      new LT.artifacts.Browser($("#artifact-tree"), $("#artifact-preview"), runId).init(LT.params().get("path"));
    }
  }
  $$("#run-tabs a").forEach((a) => a.addEventListener("click", (event) => {
    event.preventDefault();
    show(a.dataset.tab, true);
  }));
  window.addEventListener("popstate", () => {
    const tab = location.pathname.split("/").pop();
    show(["metrics", "artifacts"].includes(tab) ? tab : "overview", false);
  });

  // --- loading -----------------------------------------------------------------------------------
  async function load() {
    try {
      ({ run } = early.run
        ? await LT.handle(await early.run)
        : await api("mlflow/runs/get", { query: { run_id: runId } }));
    } catch (e) {
      setContent($("#tab-overview"), el("div", { class: "error-box", text: e.message }));
      $("#tab-overview").classList.remove("hidden");
      return;
    }
    tags = tagsOf(run.data.tags);
    renderHeader();
    renderOverview();
    show(LT.page.tab, false);
    loadExperiment();
    loadVersions();
  }

  async function loadExperiment() {
    try {
      const { experiment } = await api("mlflow/experiments/get", { query: { experiment_id: run.info.experiment_id } });
      LT.append($("#run-crumbs"), el("a", { href: links.experiment(experiment.experiment_id), text: experiment.name }), el("span", { class: "sep", text: "/" }));
      const cell = $("#detail-experiment");
      if (cell) setContent(cell, el("a", { href: links.experiment(experiment.experiment_id), text: experiment.name }));
    } catch (e) { /* the run is still readable */ }
  }

  async function loadVersions() {
    try {
      const data = await api("mlflow/model-versions/search", { query: { filter: `run_id = ${LT.quote(runId)}`, max_results: 50 } });
      const versions = data.model_versions || [];
      if (!versions.length) return;
      addDetail("Registered as", versions.map((v) => [el("a", { href: links.version(v.name, v.version), text: `${v.name} v${v.version}` }), " "]));
    } catch (e) { /* no registry access */ }
  }

  // --- header and overview -------------------------------------------------------------------------
  function renderHeader() {
    const info = run.info;
    document.title = (info.run_name || runId) + " · labtrack";
    $("#run-name").textContent = info.run_name || runId;
    setContent($("#run-status"), LT.statusBadge(info.status),
      info.lifecycle_stage === "deleted" ? [" ", el("span", { class: "badge deleted", text: "deleted" })] : null);
    setContent($("#run-meta"),
      el("span", {}, el("span", { class: "mono", text: runId }), " ", LT.copyButton(runId, "Copy id")),
      el("span", { text: "Started " + fmt.time(info.start_time) }),
      info.end_time ? el("span", { text: "Duration " + fmt.duration(info.end_time - info.start_time) }) : null,
      info.user_id ? el("span", { text: "by " + info.user_id }) : null);
    $("#metric-count").textContent = String((run.data.metrics || []).length);
  }

  let detailsBody;
  function addDetail(label, value) {
    detailsBody.append(el("tr", {}, el("td", { text: label }), el("td", {}, value)));
  }

  function renderOverview() {
    const info = run.info;
    detailsBody = $("#run-details tbody");
    LT.clear(detailsBody);
    addDetail("Run ID", el("span", { class: "mono", text: runId }));
    addDetail("Experiment", el("span", { id: "detail-experiment" }, el("a", { href: links.experiment(info.experiment_id), text: info.experiment_id })));
    addDetail("Status", LT.statusBadge(info.status));
    addDetail("Started", fmt.time(info.start_time));
    if (info.end_time) {
      addDetail("Ended", fmt.time(info.end_time));
      addDetail("Duration", fmt.duration(info.end_time - info.start_time));
    }
    if (info.user_id) addDetail("User", info.user_id);
    const source = tags["mlflow.source.name"];
    if (source) addDetail("Source", el("span", { class: "mono", text: source + (tags["mlflow.source.type"] ? ` (${tags["mlflow.source.type"]})` : "") }));
    if (tags["mlflow.source.git.commit"]) addDetail("Git commit", el("span", { class: "mono", text: tags["mlflow.source.git.commit"] }));
    if (tags[PARENT_TAG]) addDetail("Parent run", el("a", { href: links.run(tags[PARENT_TAG]), class: "mono", text: tags[PARENT_TAG], id: "parent-link" }));
    const childFilter = `tags.${PARENT_TAG} = ${LT.quote(runId)}`;
    addDetail("Child runs", el("a", { href: LT.url("/experiments/" + info.experiment_id, { filter: childFilter }), text: "Show child runs" }));
    addDetail("Artifact URI", el("span", { class: "mono", text: info.artifact_uri }));
    const outputs = (run.outputs && run.outputs.model_outputs) || [];
    if (outputs.length) addDetail("Logged models", outputs.map((m) => el("div", { class: "mono", text: m.model_id })));

    renderNote();
    renderDatasets();
    renderTags();
    renderParams();
    renderMetrics();
  }

  function renderNote() {
    const text = tags[NOTE_TAG] || "";
    const view = $("#note-view");
    if (text) { view.textContent = text; view.classList.remove("muted"); }
    else { view.textContent = "No notes yet."; view.classList.add("muted"); }
  }
  $("#note-edit").addEventListener("click", () => {
    $("#note-text").value = tags[NOTE_TAG] || "";
    $("#note-editor").classList.remove("hidden");
    $("#note-view").classList.add("hidden");
    $("#note-text").focus();
  });
  const closeNote = () => { $("#note-editor").classList.add("hidden"); $("#note-view").classList.remove("hidden"); };
  $("#note-cancel").addEventListener("click", closeNote);
  $("#note-save").addEventListener("click", async () => {
    const value = $("#note-text").value;
    try {
      if (value.trim()) await api("mlflow/runs/set-tag", { body: { run_id: runId, key: NOTE_TAG, value } });
      else if (tags[NOTE_TAG] !== undefined) await api("mlflow/runs/delete-tag", { body: { run_id: runId, key: NOTE_TAG } });
      if (value.trim()) tags[NOTE_TAG] = value; else delete tags[NOTE_TAG];
      renderNote();
      closeNote();
      toast("Notes saved");
    } catch (e) { fail(e); }
  });

  function renderDatasets() {
    const inputs = (run.inputs && run.inputs.dataset_inputs) || [];
    const box = $("#run-datasets");
    if (!inputs.length) { setContent(box, el("div", { class: "empty small", text: "No datasets logged." })); return; }
    setContent(box, el("table", { class: "data" },
      el("thead", {}, el("tr", {}, ["Name", "Digest", "Context", "Source"].map((h) => el("th", { text: h })))),
      el("tbody", {}, inputs.map((input) => {
        const d = input.dataset;
        const context = tagsOf(input.tags)["mlflow.data.context"] || "";
        let source = d.source;
        try { const parsed = JSON.parse(d.source); source = parsed.uri || parsed.url || parsed.path || d.source; } catch (e) { /* plain text */ }
        const details = [];
        if (d.schema) details.push(el("details", {}, el("summary", { class: "small", text: "schema" }), el("pre", { class: "small mono", text: d.schema })));
        if (d.profile) details.push(el("details", {}, el("summary", { class: "small", text: "profile" }), el("pre", { class: "small mono", text: d.profile })));
        return el("tr", {}, el("td", {}, d.name, details), el("td", { class: "mono", text: d.digest }),
          el("td", {}, context ? el("span", { class: "chip", text: context }) : ""),
          el("td", { class: "val small" }, el("span", { class: "muted", text: d.source_type + ": " }), source));
      }))));
  }

  function renderTags() {
    const items = Object.entries(tags).filter(([k]) => k !== NOTE_TAG).map(([key, value]) => ({ key, value }));
    const showSystem = $("#show-system-tags");
    const editor = LT.keyValueEditor($("#run-tags"), {
      items,
      hide: (key) => !showSystem.checked && key.startsWith("mlflow."),
      emptyText: "No tags.",
      onSet: async (key, value) => { await api("mlflow/runs/set-tag", { body: { run_id: runId, key, value } }); tags[key] = value; },
      onDelete: async (key) => { await api("mlflow/runs/delete-tag", { body: { run_id: runId, key } }); delete tags[key]; },
    });
    showSystem.onchange = () => editor.rerender();
  }

  function renderParams() {
    const params = [...(run.data.params || [])].sort((a, b) => a.key.localeCompare(b.key));
    $("#param-count").textContent = String(params.length);
    const draw = () => {
      const q = $("#param-search").value.trim().toLowerCase();
      const shown = params.filter((p) => !q || p.key.toLowerCase().includes(q) || p.value.toLowerCase().includes(q));
      setContent($("#run-params"), shown.length
        ? el("table", { class: "data", id: "params-table" }, el("tbody", {}, shown.map((p) => el("tr", {}, el("td", { class: "key", text: p.key }), el("td", { class: "val", text: p.value })))))
        : el("div", { class: "empty small", text: params.length ? "No match." : "No parameters." }));
    };
    $("#param-search").addEventListener("input", draw);
    draw();
  }

  function renderMetrics() {
    const metrics = [...(run.data.metrics || [])].sort((a, b) => a.key.localeCompare(b.key));
    const draw = () => {
      const q = $("#metric-search").value.trim().toLowerCase();
      const shown = metrics.filter((m) => !q || m.key.toLowerCase().includes(q));
      setContent($("#run-metrics"), shown.length
        ? el("table", { class: "data", id: "metrics-table" },
          el("thead", {}, el("tr", {}, el("th", { text: "Metric" }), el("th", { class: "num", text: "Latest" }), el("th", { class: "num", text: "Step" }))),
          el("tbody", {}, shown.map((m) => el("tr", {},
            el("td", { class: "key" }, el("a", { href: LT.url(`/runs/${encodeURIComponent(runId)}/metrics`, { key: m.key }), text: m.key })),
            el("td", { class: "num", text: fmt.num(m.value), title: String(m.value) }),
            el("td", { class: "num", text: m.step })))))
        : el("div", { class: "empty small", text: metrics.length ? "No match." : "No metrics." }));
    };
    $("#metric-search").addEventListener("input", draw);
    draw();
  }

  $("#run-rename").addEventListener("click", async () => {
    const values = await formDialog("Rename run", [{ name: "name", label: "Run name", value: run.info.run_name, required: true }], "Rename");
    if (!values || !values.name.trim()) return;
    try {
      await api("mlflow/runs/update", { body: { run_id: runId, run_name: values.name.trim() } });
      run.info.run_name = values.name.trim();
      tags["mlflow.runName"] = run.info.run_name;
      renderHeader();
      toast("Run renamed");
    } catch (e) { fail(e); }
  });

  // --- charts --------------------------------------------------------------------------------------
  function initCharts() {
    const keys = (run.data.metrics || []).map((m) => m.key).sort();
    const focus = LT.params().get("key");
    const grid = $("#charts");
    const controlBar = $("#chart-controls");
    const charts = [];
    let options = { xMode: "step", logY: false, smoothing: 0 };
    let firstDrawn = false;

    const search = el("input", { type: "search", placeholder: "Filter metrics", id: "chart-filter", value: focus || "", style: { width: "220px" } });
    controlBar.append(search, el("span", { class: "sep" }));
    options = LT.charts.controls(controlBar, (change) => {
      Object.assign(options, change);
      charts.forEach((c) => c.chart && c.chart.set(change));
    }, options);

    if (!keys.length) { setContent(grid, el("div", { class: "empty", text: "This run has no metrics." })); return; }

    const observer = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        const item = charts.find((c) => c.node === entry.target);
        observer.unobserve(entry.target);
        if (item && !item.chart) start(item);
      }
    }, { rootMargin: "200px" });

    function start(item) {
      LT.clear(item.node);
      item.chart = new LT.charts.LineChart(item.node, item.key, [{ id: runId, name: run.info.run_name || runId }], options);
      item.chart.load(item.key === focusKey ? prefetched : null).then(() => {
        if (!firstDrawn) { firstDrawn = true; performance.mark("labtrack:chart-drawn"); }
      }).catch((e) => setContent(item.node, el("div", { class: "error-box", text: e.message })));
    }

    function layout() {
      const q = search.value.trim().toLowerCase();
      const exact = keys.includes(search.value.trim());
      const large = exact || keys.length === 1;
      LT.clear(grid);
      grid.style.gridTemplateColumns = large ? "1fr" : "";
      for (const item of charts) {
        const visible = exact ? item.key === search.value.trim() : !q || item.key.toLowerCase().includes(q);
        item.card.classList.toggle("hidden", !visible);
        item.node.classList.toggle("large", large && visible);
        grid.append(item.card);
        if (item.chart && visible) Plotly.Plots.resize(item.node);
      }
    }

    for (const key of keys) {
      const node = el("div", { class: "chart chart-placeholder", text: "…" });
      const card = el("div", { class: "chart-card", dataset: { key } },
        el("div", { class: "chart-title" }, key, el("div", { class: "spacer" }),
          el("a", { class: "small", href: LT.url(`/runs/${encodeURIComponent(runId)}/metrics`, { key }), text: "expand" })),
        node);
      charts.push({ key, node, card, chart: null });
    }
    layout();
    charts.forEach((item) => observer.observe(item.node));
    search.addEventListener("input", LT.debounce(() => {
      LT.setParams({ key: keys.includes(search.value.trim()) ? search.value.trim() : "" });
      layout();
    }, 150));
  }

  load();
})();
