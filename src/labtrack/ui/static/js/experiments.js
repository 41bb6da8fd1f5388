/* Experiments list: search, sort, paging, create, rename, delete, restore. */
"use strict";

(function () {
  const { api, el, $, $$, fmt, links, fail, toast, formDialog, confirmDialog, quote, Pager, setContent } = LT;
  const PAGE_SIZE = 100;
  const tbody = $("#experiments-table tbody");
  const search = $("#exp-search");
  const view = $("#exp-view");
  let sort = { field: "last_update_time", asc: false };
  const pager = new LT.Pager($("#exp-pager"), load);

  const initial = LT.params();
  search.value = initial.get("q") || "";
  view.value = initial.get("view") || "ACTIVE_ONLY";

  async function load() {
    const q = search.value.trim();
    LT.setParams({ q, view: view.value === "ACTIVE_ONLY" ? "" : view.value });
    try {
      const data = await api("mlflow/experiments/search", {
        body: {
          max_results: PAGE_SIZE,
          page_token: pager.token || undefined,
          view_type: view.value,
          filter: q ? `name ILIKE ${quote("%" + q + "%")}` : undefined,
          order_by: [`${sort.field} ${sort.asc ? "ASC" : "DESC"}`],
        },
      });
      pager.next = data.next_page_token || null;
      render(data.experiments || []);
      pager.render((data.experiments || []).length, PAGE_SIZE);
    } catch (e) { fail(e); }
    $$("#experiments-table th.sortable").forEach((th) => {
      th.classList.toggle("sorted", th.dataset.sort === sort.field);
      th.dataset.arrow = th.dataset.sort === sort.field ? (sort.asc ? "▲" : "▼") : "";
    });
  }

  function render(experiments) {
    if (!experiments.length) {
      setContent(tbody, el("tr", {}, el("td", { colspan: 6, class: "empty", text: "No experiments match." })));
      return;
    }
    setContent(tbody, experiments.map((exp) => {
      const deleted = exp.lifecycle_stage === "deleted";
      const tags = (exp.tags || []).filter((t) => !t.key.startsWith("mlflow."));
      return el("tr", { dataset: { id: exp.experiment_id } },
        el("td", {}, el("a", { href: links.experiment(exp.experiment_id), text: exp.name }),
          deleted ? [" ", el("span", { class: "badge deleted", text: "deleted" })] : null),
        el("td", { class: "num mono", text: exp.experiment_id }),
        el("td", { class: "nowrap", text: fmt.time(exp.creation_time) }),
        el("td", { class: "nowrap", text: fmt.ago(exp.last_update_time), title: fmt.time(exp.last_update_time) }),
        el("td", {}, tags.slice(0, 4).map((t) => el("span", { class: "chip", text: `${t.key}: ${t.value}` }))),
        el("td", { class: "actions" },
          deleted
            ? el("button", { class: "linkbtn", text: "Restore", onclick: () => restore(exp) })
            : [el("button", { class: "linkbtn", text: "Rename", onclick: () => rename(exp) }), "  ",
              el("button", { class: "linkbtn danger", text: "Delete", onclick: () => remove(exp) })]));
    }));
  }

  async function create() {
    const values = await formDialog("New experiment", [
      { name: "name", label: "Name", required: true },
      { name: "artifact_location", label: "Artifact location (optional)", placeholder: "default: the server's artifact store" },
    ], "Create");
    if (!values) return;
    try {
      const body = { name: values.name.trim() };
      if (values.artifact_location.trim()) body.artifact_location = values.artifact_location.trim();
      const data = await api("mlflow/experiments/create", { body });
      location.assign(links.experiment(data.experiment_id));
    } catch (e) { fail(e); }
  }
  async function rename(exp) {
    const values = await formDialog("Rename experiment", [{ name: "name", label: "New name", value: exp.name, required: true }], "Rename");
    if (!values || values.name.trim() === exp.name) return;
    try {
      await api("mlflow/experiments/update", { body: { experiment_id: exp.experiment_id, new_name: values.name.trim() } });
      toast("Experiment renamed");
      load();
    } catch (e) { fail(e); }
  }
  async function remove(exp) {
    if (!(await confirmDialog("Delete experiment", `Delete "${exp.name}" and its runs? It can be restored from the deleted experiments.`))) return;
    try {
      await api("mlflow/experiments/delete", { body: { experiment_id: exp.experiment_id } });
      toast("Experiment deleted");
      load();
    } catch (e) { fail(e); }
  }
  async function restore(exp) {
    try {
      await api("mlflow/experiments/restore", { body: { experiment_id: exp.experiment_id } });
      toast("Experiment restored");
      load();
    } catch (e) { fail(e); }
  }

  $$("#experiments-table th.sortable").forEach((th) => th.addEventListener("click", () => {
    sort = th.dataset.sort === sort.field ? { field: sort.field, asc: !sort.asc } : { field: th.dataset.sort, asc: th.dataset.sort === "name" };
    pager.reset();
    load();
  }));
  search.addEventListener("input", LT.debounce(() => { pager.reset(); load(); }, 250));
  view.addEventListener("change", () => { pager.reset(); load(); });
  $("#new-experiment").addEventListener("click", create);
  load();
})();
