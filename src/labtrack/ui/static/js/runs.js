/* An experiment's runs table: server-side filter, sort and paging; key completion; a column
 * chooser remembered per experiment; child runs under their parent; selection to compare. */
"use strict";

(function () {
  const { api, el, $, $$, fmt, links, fail, toast, confirmDialog, ident, setContent } = LT;
  const expId = LT.page.experiment_id;
  const COLUMNS_KEY = "labtrack:columns:" + expId;
  const PARENT_TAG = "mlflow.parentRunId";
  const DEFAULT_KEYS = 8;

  const ATTRIBUTES = [
    { id: "created", label: "Created", order: "attributes.start_time", value: (r) => fmt.time(r.info.start_time) },
    { id: "duration", label: "Duration", value: (r) => (r.info.end_time ? fmt.duration(r.info.end_time - r.info.start_time) : "") },
    { id: "status", label: "Status", order: "attributes.status", render: (r) => LT.statusBadge(r.info.status) },
    { id: "user", label: "User", order: "attributes.user_id", value: (r) => r.info.user_id },
    { id: "source", label: "Source", value: (r) => (r._t["mlflow.source.name"] || "").split("/").pop() },
  ];
  const GROUPS = [
    { id: "metrics", label: "Metrics", prefix: "metrics" },
    { id: "params", label: "Parameters", prefix: "params" },
    { id: "tags", label: "Tags", prefix: "tags" },
  ];
  const FILTER_ENTITIES = {
    metrics: "metrics", metric: "metrics", params: "params", param: "params", parameters: "params",
    tags: "tags", tag: "tags", attributes: "attributes", attribute: "attributes", attr: "attributes",
    run: "attributes", datasets: "datasets", dataset: "datasets",
  };
  const ATTRIBUTE_KEYS = ["run_id", "run_name", "status", "user_id", "start_time", "end_time", "artifact_uri"];
  const DATASET_KEYS = ["name", "digest", "context"];

  const table = $("#runs-table");
  const filterInput = $("#run-filter");
  const suggestBox = $("#run-suggest");
  const errorBox = $("#run-error");
  const viewSelect = $("#run-view");
  const nestedBox = $("#run-nested");
  const sizeSelect = $("#run-page-size");

  const url = LT.params();
  const state = {
    filter: url.get("filter") || "",
    order: url.get("order") || "",
    view: url.get("view") || "ACTIVE_ONLY",
    nested: url.get("flat") !== "1",
    size: Number(url.get("size")) || 100,
  };
  filterInput.value = state.filter;
  viewSelect.value = state.view;
  nestedBox.checked = state.nested;
  sizeSelect.value = String(state.size);

  let runs = [];
  let children = new Map();
  const expanded = new Set();
  const selected = new Map();
  let keys = { metrics: [], params: [], tags: [] };
  let chosen = LT.store.get(COLUMNS_KEY, null);
  let firstRender = true;
  let loading = 0;
  const pager = new LT.Pager($("#runs-pager"), load);

  // --- data --------------------------------------------------------------------------------------
  function index(run) {
    const data = run.data || {};
    run._m = Object.fromEntries((data.metrics || []).map((m) => [m.key, m.value]));
    run._p = Object.fromEntries((data.params || []).map((p) => [p.key, p.value]));
    run._t = Object.fromEntries((data.tags || []).map((t) => [t.key, t.value]));
    return run;
  }

  function orderBy() {
    if (!state.order) return [];
    return [state.order];
  }

  async function load() {
    const ticket = ++loading;
    const userFilter = state.filter.trim();
    const nested = state.nested && !userFilter;
    LT.setParams({
      filter: userFilter, order: state.order, view: state.view === "ACTIVE_ONLY" ? "" : state.view,
      flat: state.nested ? "" : "1", size: state.size === 100 ? "" : state.size,
    });
    errorBox.classList.add("hidden");
    let data;
    try {
      data = await api("mlflow/runs/search", {
        body: {
          experiment_ids: [expId],
          filter: nested ? `tags.${PARENT_TAG} IS NULL` : userFilter,
          order_by: orderBy(),
          run_view_type: state.view,
          max_results: state.size,
          page_token: pager.token || undefined,
        },
      });
    } catch (e) {
      if (ticket !== loading) return;
      runs = [];
      render();
      errorBox.textContent = e.message;
      errorBox.classList.remove("hidden");
      return;
    }
    if (ticket !== loading) return;
    runs = (data.runs || []).map(index);
    pager.next = data.next_page_token || null;
    children = new Map();
    render();
    pager.render(runs.length, state.size);
    if (firstRender) {
      firstRender = false;
      performance.mark("labtrack:runs-rendered");
    }
    if (nested && runs.length) loadChildren(ticket);
  }

  async function loadChildren(ticket) {
    try {
      const data = await api("labtrack/ui/child-runs", {
        body: { experiment_id: expId, parent_run_ids: runs.map((r) => r.info.run_id), run_view_type: state.view },
      });
      if (ticket !== loading) return;
      for (const run of (data.runs || []).map(index)) {
        const parent = run._t[PARENT_TAG];
        if (!children.has(parent)) children.set(parent, []);
        children.get(parent).push(run);
      }
      if (children.size) render();
    } catch (e) { fail(e); }
  }

  async function loadKeys() {
    try {
      const data = await api("labtrack/ui/experiment-keys", { query: { experiment_id: expId } });
      keys = { metrics: data.metrics || [], params: data.params || [], tags: data.tags || [] };
    } catch (e) { fail(e); }
  }

  async function loadExperiment() {
    try {
      const { experiment } = await api("mlflow/experiments/get", { query: { experiment_id: expId } });
      document.title = experiment.name + " · labtrack";
      $("#exp-name").textContent = experiment.name;
      const meta = $("#exp-meta");
      LT.append(meta, [
        el("span", {}, "Artifacts ", el("span", { class: "mono", text: experiment.artifact_location })),
        el("span", { text: "Created " + fmt.time(experiment.creation_time) }),
        experiment.lifecycle_stage === "deleted" ? el("span", { class: "badge deleted", text: "deleted" }) : null,
      ]);
    } catch (e) { fail(e); }
  }

  // --- columns -----------------------------------------------------------------------------------
  function visible() {
    if (chosen) return chosen;
    const seen = { metrics: new Set(), params: new Set() };
    for (const run of runs) {
      Object.keys(run._m).forEach((k) => seen.metrics.add(k));
      Object.keys(run._p).forEach((k) => seen.params.add(k));
    }
    return {
      attributes: ATTRIBUTES.map((a) => a.id),
      metrics: [...seen.metrics].sort().slice(0, DEFAULT_KEYS),
      params: [...seen.params].sort().slice(0, DEFAULT_KEYS),
      tags: [],
    };
  }

  function columns() {
    const v = visible();
    const attrs = ATTRIBUTES.filter((a) => (v.attributes || []).includes(a.id));
    const cols = attrs.map((a) => ({ group: "attributes", ...a }));
    for (const group of GROUPS) {
      for (const key of v[group.id] || []) {
        const field = group.id === "metrics" ? "_m" : group.id === "params" ? "_p" : "_t";
        cols.push({
          group: group.id, id: group.id + ":" + key, label: key, key,
          order: `${group.prefix}.${ident(key)}`,
          numeric: group.id === "metrics",
          value: (r) => (group.id === "metrics" ? fmt.num(r[field][key]) : r[field][key]),
        });
      }
    }
    return cols;
  }

  // --- rendering ---------------------------------------------------------------------------------
  function sortState(col) {
    if (!col.order || !state.order) return null;
    const [field, dir] = splitOrder(state.order);
    return field === col.order ? dir : null;
  }
  function splitOrder(order) {
    const m = /^(.*?)\s+(ASC|DESC)$/i.exec(order.trim());
    return m ? [m[1], m[2].toUpperCase()] : [order.trim(), "ASC"];
  }

  function header(cols) {
    const groupRow = el("tr", { class: "groups" }, el("th", { class: "sel" }), el("th", { class: "name" }));
    let last = null;
    for (const col of cols) {
      if (col.group !== last) {
        const span = cols.filter((c) => c.group === col.group).length;
        const label = col.group === "attributes" ? "" : GROUPS.find((g) => g.id === col.group).label;
        groupRow.append(el("th", { colspan: span, text: label }));
        last = col.group;
      }
    }
    const all = el("input", { type: "checkbox", "aria-label": "Select all runs on this page" });
    const pageRuns = allRows().map((r) => r.info.run_id);
    all.checked = pageRuns.length > 0 && pageRuns.every((id) => selected.has(id));
    all.addEventListener("change", () => {
      for (const run of allRows()) {
        if (all.checked) selected.set(run.info.run_id, run); else selected.delete(run.info.run_id);
      }
      render();
    });
    const nameCol = { label: "Run name", order: "attributes.run_name" };
    const keyRow = el("tr", { class: "keys" }, el("th", { class: "sel" }, all), headCell(nameCol, "name"));
    last = null;
    for (const col of cols) {
      const th = headCell(col, (col.numeric ? "num " : "") + (col.group !== last ? "group-start" : ""));
      th.title = col.key ? `${col.group}: ${col.key}` : col.label;
      keyRow.append(th);
      last = col.group;
    }
    return el("thead", {}, groupRow, keyRow);
  }

  function headCell(col, cls) {
    const dir = sortState(col);
    const th = el("th", { class: (cls || "") + (col.order ? " sortable" : "") + (dir ? " sorted" : "") },
      col.label, dir ? el("span", { class: "arrow", text: dir === "ASC" ? "▲" : "▼" }) : null);
    if (col.order) {
      th.addEventListener("click", () => {
        const current = sortState(col);
        const numeric = col.numeric || col.order === "attributes.start_time";
        let dir2 = current ? (current === "ASC" ? "DESC" : "ASC") : (numeric ? "DESC" : "ASC");
        state.order = `${col.order} ${dir2}`;
        pager.reset();
        load();
      });
    }
    return th;
  }

  function allRows() {
    const rows = [];
    for (const run of runs) {
      rows.push(run);
      if (expanded.has(run.info.run_id)) rows.push(...(children.get(run.info.run_id) || []));
    }
    return rows;
  }

  function row(run, cols, { child, kids }) {
    const id = run.info.run_id;
    const box = el("input", { type: "checkbox", "aria-label": "Select run" });
    box.checked = selected.has(id);
    box.addEventListener("change", () => {
      if (box.checked) selected.set(id, run); else selected.delete(id);
      tr.classList.toggle("selected", box.checked);
      updateSelection();
    });
    let toggle = null;
    if (kids) {
      const open = expanded.has(id);
      toggle = el("button", { class: "toggle", text: open ? "▾" : "▸", title: open ? "Hide child runs" : "Show child runs", "aria-expanded": String(open) });
      toggle.addEventListener("click", () => {
        if (expanded.has(id)) expanded.delete(id); else expanded.add(id);
        render();
      });
    } else if (!child && state.nested && !state.filter.trim()) {
      toggle = el("span", { class: "toggle" });
    }
    const parent = run._t[PARENT_TAG];
    const nameCell = el("td", { class: "name" }, toggle,
      el("a", { href: links.run(id), text: run.info.run_name || id, title: id }),
      kids ? el("span", { class: "count-pill", text: String(kids) }) : null,
      !child && parent ? el("a", { class: "small faint", href: links.run(parent), text: " ↳ child", title: "Parent run " + parent, style: { marginLeft: "6px" } }) : null);
    const cells = [el("td", { class: "sel" }, box), nameCell];
    let last = null;
    for (const col of cols) {
      const cls = (col.numeric ? "num " : "") + (col.group !== last ? "group-start" : "");
      last = col.group;
      if (col.render) { cells.push(el("td", { class: cls }, col.render(run))); continue; }
      const value = col.value(run);
      cells.push(el("td", { class: cls, text: value === undefined ? "" : value, title: value && String(value).length > 30 ? String(value) : null }));
    }
    const tr = el("tr", { class: (child ? "child " : "") + (selected.has(id) ? "selected" : ""), dataset: { runId: id } }, cells);
    return tr;
  }

  function render() {
    const cols = columns();
    const body = el("tbody");
    if (!runs.length) {
      body.append(el("tr", {}, el("td", { colspan: cols.length + 2, class: "empty", text: loading ? "No runs match." : "Loading…" })));
    }
    for (const run of runs) {
      const kids = children.get(run.info.run_id) || [];
      body.append(row(run, cols, { child: false, kids: kids.length }));
      if (expanded.has(run.info.run_id)) kids.forEach((k) => body.append(row(k, cols, { child: true })));
    }
    table.replaceChildren(header(cols), body);
    updateSelection();
  }

  function updateSelection() {
    const n = selected.size;
    $("#selection-info").textContent = n ? `${n} selected` : "";
    $("#compare-button").disabled = n < 2;
    $("#delete-runs").disabled = n < 1;
    $("#restore-runs").disabled = n < 1;
    $("#delete-runs").classList.toggle("hidden", state.view === "DELETED_ONLY");
    $("#restore-runs").classList.toggle("hidden", state.view === "ACTIVE_ONLY");
  }

  // --- the column chooser --------------------------------------------------------------------------
  let popover = null;
  function openChooser(anchor) {
    if (popover) { popover.remove(); popover = null; return; }
    const current = visible();
    const picked = {
      attributes: new Set(current.attributes || []),
      metrics: new Set(current.metrics), params: new Set(current.params), tags: new Set(current.tags),
    };
    const known = { metrics: new Set(keys.metrics), params: new Set(keys.params), tags: new Set(keys.tags) };
    for (const run of runs) {
      Object.keys(run._m).forEach((k) => known.metrics.add(k));
      Object.keys(run._p).forEach((k) => known.params.add(k));
      Object.keys(run._t).forEach((k) => known.tags.add(k));
    }
    const search = el("input", { type: "search", placeholder: "Find a column", style: { width: "100%" } });
    const list = el("div", { class: "list" });
    const save = () => {
      chosen = {
        attributes: ATTRIBUTES.map((a) => a.id).filter((id) => picked.attributes.has(id)),
        metrics: [...picked.metrics].sort(), params: [...picked.params].sort(), tags: [...picked.tags].sort(),
      };
      LT.store.set(COLUMNS_KEY, chosen);
      render();
    };
    const draw = () => {
      const q = search.value.trim().toLowerCase();
      const sections = [["attributes", "Attributes", ATTRIBUTES.map((a) => [a.id, a.label])]];
      for (const g of GROUPS) sections.push([g.id, g.label, [...known[g.id]].sort().map((k) => [k, k])]);
      setContent(list, sections.map(([group, label, items]) => {
        const shown = items.filter(([, text]) => !q || text.toLowerCase().includes(q));
        if (!shown.length) return null;
        const setAll = (on) => { shown.forEach(([id]) => (on ? picked[group].add(id) : picked[group].delete(id))); save(); draw(); };
        return [
          el("div", { class: "group-title" }, `${label} (${shown.length})`,
            el("button", { class: "linkbtn small", text: "all", onclick: () => setAll(true) }),
            el("button", { class: "linkbtn small", text: "none", onclick: () => setAll(false) })),
          shown.slice(0, 500).map(([id, text]) => {
            const box = el("input", { type: "checkbox", dataset: { group, key: id } });
            box.checked = picked[group].has(id);
            box.addEventListener("change", () => { if (box.checked) picked[group].add(id); else picked[group].delete(id); save(); });
            return el("label", {}, box, text);
          }),
        ];
      }));
    };
    search.addEventListener("input", draw);
    const reset = el("button", { class: "linkbtn small", text: "Reset to default", onclick: () => {
      chosen = null; LT.store.set(COLUMNS_KEY, null); localStorage.removeItem(COLUMNS_KEY); render(); popover.remove(); popover = null;
    } });
    popover = el("div", { class: "popover", id: "columns-popover" }, search, list, el("div", { class: "row", style: { marginTop: "8px" } }, reset,
      keys.sampled ? el("span", { class: "small faint", text: "keys of the most recent runs" }) : null));
    const rect = anchor.getBoundingClientRect();
    popover.style.top = rect.bottom + window.scrollY + 4 + "px";
    popover.style.left = Math.max(8, rect.left + window.scrollX) + "px";
    document.body.append(popover);
    draw();
    search.focus();
  }
  document.addEventListener("click", (event) => {
    if (popover && !popover.contains(event.target) && event.target !== $("#columns-button")) {
      popover.remove();
      popover = null;
    }
  });

  // --- filter completion ---------------------------------------------------------------------------
  let suggestions = [];
  let active = -1;
  const TOKEN = /(?:^|[\s(,])((?:[A-Za-z]+)\.(?:`[^`]*|"[^"]*|[\w.\-]*)|[A-Za-z_][\w]*)$/;

  function candidates(entity, partial) {
    const group = FILTER_ENTITIES[entity.toLowerCase()];
    if (!group) return [];
    let pool;
    if (group === "attributes") pool = ATTRIBUTE_KEYS;
    else if (group === "datasets") pool = DATASET_KEYS;
    else {
      const set = new Set(keys[group]);
      for (const run of runs) Object.keys(group === "metrics" ? run._m : group === "params" ? run._p : run._t).forEach((k) => set.add(k));
      pool = [...set].sort();
    }
    const p = partial.replace(/^[`"]/, "").toLowerCase();
    const starts = pool.filter((k) => k.toLowerCase().startsWith(p));
    const contains = pool.filter((k) => !k.toLowerCase().startsWith(p) && k.toLowerCase().includes(p));
    return starts.concat(contains).slice(0, 60).map((k) => ({ text: `${entity}.${ident(k)}`, kind: group }));
  }

  function suggest() {
    const caret = filterInput.selectionStart;
    const before = filterInput.value.slice(0, caret);
    const match = TOKEN.exec(before);
    suggestions = [];
    if (match) {
      const token = match[1];
      const dot = token.indexOf(".");
      if (dot > 0) suggestions = candidates(token.slice(0, dot), token.slice(dot + 1));
      else {
        const word = token.toLowerCase();
        suggestions = ["metrics.", "params.", "tags.", "attributes.", "datasets."]
          .filter((e) => e.startsWith(word) && e !== word).map((e) => ({ text: e, kind: "entity" }));
      }
      suggestions.forEach((s) => { s.start = caret - token.length; s.end = caret; });
    }
    active = suggestions.length ? 0 : -1;
    drawSuggestions();
  }

  function drawSuggestions() {
    if (!suggestions.length) { suggestBox.classList.add("hidden"); return; }
    setContent(suggestBox, suggestions.map((s, i) => {
      const item = el("div", { class: i === active ? "active" : "", role: "option" }, s.text, el("span", { class: "kind", text: s.kind }));
      item.addEventListener("mousedown", (event) => { event.preventDefault(); accept(i); });
      return item;
    }));
    suggestBox.classList.remove("hidden");
    const current = suggestBox.children[active];
    if (current) current.scrollIntoView({ block: "nearest" });
  }

  function accept(i) {
    const s = suggestions[i];
    if (!s) return;
    const value = filterInput.value;
    const insert = s.kind === "entity" ? s.text : s.text + " ";
    filterInput.value = value.slice(0, s.start) + insert + value.slice(s.end);
    const caret = s.start + insert.length;
    filterInput.setSelectionRange(caret, caret);
    suggestions = [];
    drawSuggestions();
    if (s.kind === "entity") suggest();
  }

  function search() {
    state.filter = filterInput.value;
    suggestions = [];
    drawSuggestions();
    pager.reset();
    load();
  }

  filterInput.addEventListener("input", suggest);
  filterInput.addEventListener("blur", () => setTimeout(() => { suggestions = []; drawSuggestions(); }, 100));
  filterInput.addEventListener("keydown", (event) => {
    const open = suggestions.length > 0;
    if (event.key === "ArrowDown" && open) { active = (active + 1) % suggestions.length; drawSuggestions(); event.preventDefault(); }
    else if (event.key === "ArrowUp" && open) { active = (active - 1 + suggestions.length) % suggestions.length; drawSuggestions(); event.preventDefault(); }
    else if ((event.key === "Tab" || event.key === "Enter") && open && active >= 0) { accept(active); event.preventDefault(); }
    else if (event.key === "Enter") { search(); event.preventDefault(); }
    else if (event.key === "Escape") { suggestions = []; drawSuggestions(); }
  });

  // --- actions ---------------------------------------------------------------------------------------
  $("#run-search").addEventListener("click", search);
  $("#run-clear").addEventListener("click", () => { filterInput.value = ""; state.order = ""; search(); });
  viewSelect.addEventListener("change", () => { state.view = viewSelect.value; selected.clear(); pager.reset(); load(); });
  nestedBox.addEventListener("change", () => { state.nested = nestedBox.checked; pager.reset(); load(); });
  sizeSelect.addEventListener("change", () => { state.size = Number(sizeSelect.value); pager.reset(); load(); });
  $("#columns-button").addEventListener("click", (event) => openChooser(event.currentTarget));
  $("#compare-button").addEventListener("click", () => location.assign(links.compare([...selected.keys()])));
  async function lifecycle(action) {
    const ids = [...selected.keys()];
    const verb = action === "delete" ? "Delete" : "Restore";
    if (action === "delete" && !(await confirmDialog("Delete runs", `Delete ${ids.length} run(s)? They can be restored from the deleted runs.`))) return;
    try {
      await Promise.all(ids.map((id) => api("mlflow/runs/" + action, { body: { run_id: id } })));
      toast(`${verb}d ${ids.length} run(s)`);
      selected.clear();
      load();
    } catch (e) { fail(e); }
  }
  $("#delete-runs").addEventListener("click", () => lifecycle("delete"));
  $("#restore-runs").addEventListener("click", () => lifecycle("restore"));

  render();
  load();
  loadKeys();
  loadExperiment();
})();
