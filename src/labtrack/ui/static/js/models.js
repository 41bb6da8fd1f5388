/* The model registry: the models list, a model (versions, aliases, tags, description, change
 * history) and a model version (stage, tags, description, its source run). */
"use strict";

(function () {
  const { api, el, $, fmt, links, fail, toast, formDialog, confirmDialog, quote, setContent } = LT;
  const pageName = document.body.dataset.page;
  const PAGE_SIZE = 100;
  const HISTORY_PAGE = 50;

  // --- the list ------------------------------------------------------------------------------------
  function modelsPage() {
    const tbody = $("#models-table tbody");
    const search = $("#model-search");
    search.value = LT.params().get("q") || "";
    const pager = new LT.Pager($("#models-pager"), load);
    async function load() {
      const q = search.value.trim();
      LT.setParams({ q });
      try {
        const data = await api("mlflow/registered-models/search", {
          query: {
            max_results: PAGE_SIZE, page_token: pager.token || undefined,
            filter: q ? `name ILIKE ${quote("%" + q + "%")}` : undefined, order_by: "name ASC",
          },
        });
        const models = data.registered_models || [];
        pager.next = data.next_page_token || null;
        pager.render(models.length, PAGE_SIZE);
        if (!models.length) {
          setContent(tbody, el("tr", {}, el("td", { colspan: 5, class: "empty", text: q ? "No models match." : "No registered models yet." })));
          return;
        }
        setContent(tbody, models.map((m) => {
          const latest = (m.latest_versions || []).reduce((a, v) => (!a || Number(v.version) > Number(a.version) ? v : a), null);
          return el("tr", {},
            el("td", {}, el("a", { href: links.model(m.name), text: m.name })),
            el("td", {}, latest ? el("a", { href: links.version(m.name, latest.version), text: "Version " + latest.version }) : ""),
            el("td", {}, (m.aliases || []).map((a) => el("span", { class: "chip alias", text: `@${a.alias} → v${a.version}` }))),
            el("td", { class: "nowrap", text: fmt.time(m.last_updated_timestamp) }),
            el("td", { class: "val muted", text: (m.description || "").slice(0, 140) }));
        }));
      } catch (e) { fail(e); }
    }
    search.addEventListener("input", LT.debounce(() => { pager.reset(); load(); }, 250));
    $("#new-model").addEventListener("click", async () => {
      const values = await formDialog("New registered model", [
        { name: "name", label: "Name", required: true },
        { name: "description", label: "Description", type: "textarea" },
      ], "Create");
      if (!values) return;
      try {
        await api("mlflow/registered-models/create", { body: { name: values.name.trim(), description: values.description || undefined } });
        location.assign(links.model(values.name.trim()));
      } catch (e) { fail(e); }
    });
    load();
  }

  // --- shared: description editor and history ---------------------------------------------------------
  function descriptionEditor(text, save) {
    const view = $("#desc-view");
    const show = () => {
      view.textContent = text || "No description.";
      view.classList.toggle("muted", !text);
    };
    const close = () => { $("#desc-editor").classList.add("hidden"); view.classList.remove("hidden"); };
    $("#desc-edit").addEventListener("click", () => {
      $("#desc-text").value = text || "";
      $("#desc-editor").classList.remove("hidden");
      view.classList.add("hidden");
      $("#desc-text").focus();
    });
    $("#desc-cancel").addEventListener("click", close);
    $("#desc-save").addEventListener("click", async () => {
      try {
        await save($("#desc-text").value);
        text = $("#desc-text").value;
        show();
        close();
        toast("Description saved");
      } catch (e) { fail(e); }
    });
    show();
  }

  const KIND_LABELS = {
    alias: "alias", stage: "stage", model_tag: "model tag", version_tag: "version tag",
    description: "description", model: "model", version: "version",
  };

  function history(name, version) {
    const box = $("#model-history");
    let token = null;
    const tbody = el("tbody");
    const more = el("button", { class: "btn small hidden", text: "Load more" });
    setContent(box, el("div", { class: "table-scroll", style: { maxHeight: "420px" } }, el("table", { class: "data", id: "history-table" },
      el("thead", {}, el("tr", {}, ["When", "Who", "What", "Version", "Change"].map((h) => el("th", { text: h })))), tbody)),
    el("div", { class: "row", style: { marginTop: "6px" } }, more));
    const value = (v) => (v === undefined || v === null ? el("span", { class: "faint", text: "—" }) : el("span", { class: "mono", text: v }));
    async function page() {
      try {
        const data = await api("labtrack/registered-models/history", {
          query: { name, version, newest_first: "true", max_results: HISTORY_PAGE, page_token: token || undefined },
        });
        const events = data.events || [];
        if (!events.length && !token) tbody.append(el("tr", {}, el("td", { colspan: 5, class: "empty", text: "No changes recorded." })));
        for (const e of events) {
          tbody.append(el("tr", {},
            el("td", { class: "nowrap", text: fmt.time(e.timestamp) }),
            el("td", { text: e.user_id || "" }),
            el("td", {}, KIND_LABELS[e.kind] || e.kind, e.key ? [" ", el("span", { class: "mono", text: e.key })] : null),
            el("td", {}, e.version ? el("a", { href: links.version(name, e.version), text: "v" + e.version }) : ""),
            el("td", {}, value(e.old_value), " → ", value(e.new_value))));
        }
        token = data.next_page_token || null;
        more.classList.toggle("hidden", !token);
      } catch (e) {
        setContent(box, el("div", { class: "muted small", text: "History is not available: " + e.message }));
      }
    }
    more.addEventListener("click", page);
    page();
  }

  // --- a model ---------------------------------------------------------------------------------------
  async function modelPage() {
    const name = LT.page.name;
    let model;
    try {
      ({ registered_model: model } = await api("mlflow/registered-models/get", { query: { name } }));
    } catch (e) {
      setContent($("main"), el("div", { class: "error-box", text: e.message }));
      return;
    }
    setContent($("#model-meta"),
      el("span", { text: "Created " + fmt.time(model.creation_timestamp) }),
      el("span", { text: "Updated " + fmt.time(model.last_updated_timestamp) }),
      model.user_id ? el("span", { text: "by " + model.user_id }) : null);
    descriptionEditor(model.description, (description) =>
      api("mlflow/registered-models/update", { method: "PATCH", body: { name, description } }));
    LT.keyValueEditor($("#model-tags"), {
      items: model.tags || [],
      onSet: (key, value) => api("mlflow/registered-models/set-tag", { body: { name, key, value } }),
      onDelete: (key) => api("mlflow/registered-models/delete-tag", { method: "DELETE", body: { name, key } }),
    });
    let aliases = model.aliases || [];
    const drawAliases = () => {
      const box = $("#model-aliases");
      if (!aliases.length) { setContent(box, el("div", { class: "empty small", text: "No aliases." })); return; }
      setContent(box, el("table", { class: "data", id: "aliases-table" }, el("tbody", {}, aliases.map((a) => el("tr", {},
        el("td", {}, el("span", { class: "chip alias", text: "@" + a.alias })),
        el("td", {}, el("a", { href: links.version(name, a.version), text: "Version " + a.version, dataset: { alias: a.alias } })),
        el("td", { class: "actions" }, el("button", { class: "linkbtn small danger", text: "remove", onclick: async () => {
          if (!(await confirmDialog("Remove alias", `Remove the alias @${a.alias}?`, "Remove"))) return;
          try {
            await api("mlflow/registered-models/alias", { method: "DELETE", body: { name, alias: a.alias } });
            aliases = aliases.filter((x) => x.alias !== a.alias);
            drawAliases();
          } catch (e) { fail(e); }
        } })))))));
    };
    drawAliases();

    const versions = await loadVersions(name);
    $("#alias-add").addEventListener("click", async () => {
      const values = await formDialog("Set alias", [
        { name: "alias", label: "Alias", placeholder: "e.g. champion", required: true },
        { name: "version", label: "Version", type: "select", options: versions.map((v) => [v.version, "Version " + v.version]) },
      ], "Set");
      if (!values) return;
      try {
        await api("mlflow/registered-models/alias", { body: { name, alias: values.alias.trim(), version: values.version } });
        aliases = aliases.filter((a) => a.alias !== values.alias.trim()).concat([{ alias: values.alias.trim(), version: values.version }]);
        drawAliases();
      } catch (e) { fail(e); }
    });
    history(name);
  }

  async function loadVersions(name) {
    const box = $("#model-versions");
    const all = [];
    let token = null;
    try {
      do {
        const data = await api("mlflow/model-versions/search", {
          query: { filter: `name = ${quote(name)}`, order_by: "version_number DESC", max_results: 200, page_token: token || undefined },
        });
        all.push(...(data.model_versions || []));
        token = data.next_page_token || null;
      } while (token && all.length < 1000);
    } catch (e) { fail(e); }
    if (!all.length) { setContent(box, el("div", { class: "empty small", text: "No versions yet." })); return all; }
    setContent(box, el("div", { class: "table-scroll", style: { maxHeight: "480px" } }, el("table", { class: "data", id: "versions-table" },
      el("thead", {}, el("tr", {}, ["Version", "Stage", "Aliases", "Created", "Source run", "Description"].map((h) => el("th", { text: h })))),
      el("tbody", {}, all.map((v) => el("tr", {},
        el("td", {}, el("a", { href: links.version(name, v.version), text: "Version " + v.version })),
        el("td", {}, v.current_stage && v.current_stage !== "None" ? el("span", { class: "badge " + v.current_stage, text: v.current_stage }) : el("span", { class: "faint", text: "—" })),
        el("td", {}, (v.aliases || []).map((a) => el("span", { class: "chip alias", text: "@" + a }))),
        el("td", { class: "nowrap", text: fmt.time(v.creation_timestamp) }),
        el("td", {}, v.run_id ? el("a", { class: "mono", href: links.run(v.run_id), text: v.run_id.slice(0, 12) }) : ""),
        el("td", { class: "val muted", text: (v.description || "").slice(0, 100) })))))));
    return all;
  }

  // --- a version ---------------------------------------------------------------------------------------
  async function versionPage() {
    const { name, version } = LT.page;
    let mv;
    try {
      ({ model_version: mv } = await api("mlflow/model-versions/get", { query: { name, version } }));
    } catch (e) {
      setContent($("main"), el("div", { class: "error-box", text: e.message }));
      return;
    }
    const stage = mv.current_stage || "None";
    setContent($("#mv-stage"), stage !== "None" ? el("span", { class: "badge " + stage, text: stage }) : null);
    setContent($("#mv-meta"), el("span", { text: "Created " + fmt.time(mv.creation_timestamp) }), mv.user_id ? el("span", { text: "by " + mv.user_id }) : null);
    const body = $("#mv-details tbody");
    const row = (label, value) => body.append(el("tr", {}, el("td", { text: label }), el("td", {}, value)));
    row("Model", el("a", { href: links.model(name), text: name }));
    row("Version", String(mv.version));
    row("Stage", stage);
    row("Aliases", (mv.aliases || []).length ? mv.aliases.map((a) => el("span", { class: "chip alias", text: "@" + a })) : el("span", { class: "faint", text: "—" }));
    row("Source run", mv.run_id ? el("a", { href: links.run(mv.run_id), class: "mono", id: "source-run", text: mv.run_id }) : el("span", { class: "faint", text: "—" }));
    row("Source", el("span", { class: "mono", text: mv.source || "" }));
    row("Status", LT.statusBadge(mv.status));
    row("Created", fmt.time(mv.creation_timestamp));
    row("Updated", fmt.time(mv.last_updated_timestamp));
    descriptionEditor(mv.description, (description) =>
      api("mlflow/model-versions/update", { method: "PATCH", body: { name, version, description } }));
    LT.keyValueEditor($("#mv-tags"), {
      items: mv.tags || [],
      onSet: (key, value) => api("mlflow/model-versions/set-tag", { body: { name, version, key, value } }),
      onDelete: (key) => api("mlflow/model-versions/delete-tag", { method: "DELETE", body: { name, version, key } }),
    });
    $("#mv-stage-select").value = stage;
    $("#mv-stage-save").addEventListener("click", async () => {
      try {
        await api("mlflow/model-versions/transition-stage", {
          body: { name, version, stage: $("#mv-stage-select").value, archive_existing_versions: $("#mv-archive").checked },
        });
        toast("Stage changed");
        setTimeout(() => location.reload(), 400);
      } catch (e) { fail(e); }
    });
    history(name, version);
  }

  if (pageName === "models") modelsPage();
  else if (pageName === "model") modelPage();
  else if (pageName === "model-version") versionPage();
})();
