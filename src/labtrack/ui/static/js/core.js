/* labtrack UI core: JSON API calls, DOM helpers, formatting, dialogs. No dependencies.
 *
 * Data always goes into the DOM as text (textContent), never as HTML, so run names, tags and
 * artifact contents cannot inject markup. Every state-changing call carries the page's CSRF
 * token in X-CSRF-Token. */
"use strict";

(function () {
  const page = JSON.parse(document.getElementById("lt-page").textContent);
  const prefix = page.prefix || "";

  // --- URLs --------------------------------------------------------------------------------
  function qs(params) {
    const out = new URLSearchParams();
    for (const [key, value] of Object.entries(params || {})) {
      if (value === undefined || value === null || value === "") continue;
      if (Array.isArray(value)) value.forEach((v) => out.append(key, v));
      else out.append(key, value);
    }
    const text = out.toString();
    return text ? "?" + text : "";
  }
  const url = (path, params) => prefix + path + qs(params);
  const links = {
    experiment: (id) => url("/experiments/" + encodeURIComponent(id)),
    run: (id, tab) => url("/runs/" + encodeURIComponent(id) + (tab ? "/" + tab : "")),
    model: (name) => url("/models/" + encodeURIComponent(name)),
    version: (name, v) => url("/models/" + encodeURIComponent(name) + "/versions/" + v),
    artifact: (runId, path) => url("/get-artifact", { run_id: runId, path }),
    compare: (ids) => url("/compare", { runs: ids.join(",") }),
  };

  // --- the JSON API ------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /* api("mlflow/runs/search", {body}) -> POST /ajax-api/2.0/mlflow/runs/search.
   * opts: method, body, query, version ("2.0" or "3.0"), signal. */
  async function api(path, opts = {}) {
    const method = opts.method || (opts.body !== undefined ? "POST" : "GET");
    const full = prefix + "/ajax-api/" + (opts.version || "2.0") + "/" + path + qs(opts.query);
    // X-Requested-With: a 401 then comes without a Basic challenge (no browser password dialog).
    const headers = { Accept: "application/json", "X-Requested-With": "labtrack-ui" };
    let body;
    if (method !== "GET" && method !== "HEAD") {
      headers["Content-Type"] = "application/json";
      headers["X-CSRF-Token"] = page.csrf || "";
      body = JSON.stringify(opts.body || {});
    }
    const response = await fetch(full, {
      method, headers, body, credentials: "same-origin", signal: opts.signal,
    });
    return handle(response);
  }

  /* The JSON of an API response (also of a fetch started early, see prefetch.js). */
  async function handle(response) {
    if (response.status === 401 && page.auth) {
      const next = location.pathname.slice(prefix.length) + location.search;
      location.assign(url("/signin", { next }));
      throw new ApiError(401, "UNAUTHENTICATED", "Signed out");
    }
    const text = await response.text();
    let data = {};
    try { data = text ? JSON.parse(text) : {}; } catch (e) { data = { message: text.slice(0, 300) }; }
    if (!response.ok) {
      throw new ApiError(response.status, data.error_code || "", data.message || response.statusText);
    }
    return data;
  }

  // --- DOM ---------------------------------------------------------------------------------------
  /* el("a", {href, class, text, onclick, dataset}, child, ...): children are nodes or text. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "style" && typeof value === "object") Object.assign(node.style, value);
      else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else if (value === true) node.setAttribute(key, "");
      else node.setAttribute(key, value);
    }
    append(node, children);
    return node;
  }
  /* append(node, child, ...): nodes, text, arrays of them; null and false are skipped. */
  function append(node, ...children) {
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));
  function clear(node) { node.replaceChildren(); return node; }
  function setContent(node, ...children) { clear(node); return append(node, children); }

  // --- formatting --------------------------------------------------------------------------------
  const pad = (n) => String(n).padStart(2, "0");
  function time(ms) {
    if (ms === undefined || ms === null || ms === "" || Number(ms) <= 0) return "";
    const d = new Date(Number(ms));
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  function ago(ms) {
    if (!ms) return "";
    const s = (Date.now() - Number(ms)) / 1000;
    if (s < 60) return "just now";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    if (s < 86400 * 30) return Math.floor(s / 86400) + " d ago";
    return time(ms).slice(0, 10);
  }
  function duration(ms) {
    if (ms === undefined || ms === null || ms < 0 || Number.isNaN(ms)) return "";
    if (ms < 1000) return ms + " ms";
    const s = ms / 1000;
    if (s < 60) return s.toFixed(1) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
    if (s < 86400) return Math.floor(s / 3600) + " h " + Math.round((s % 3600) / 60) + " min";
    return Math.floor(s / 86400) + " d " + Math.round((s % 86400) / 3600) + " h";
  }
  function num(value) {
    if (value === undefined || value === null || value === "") return "";
    if (typeof value === "string") {
      if (value === "NaN" || value === "Infinity" || value === "-Infinity") return value;
      value = Number(value);
    }
    if (!Number.isFinite(value)) return String(value);
    if (Number.isInteger(value) && Math.abs(value) < 1e15) return String(value);
    const abs = Math.abs(value);
    if (abs !== 0 && (abs < 1e-4 || abs >= 1e9)) return value.toExponential(4);
    return String(Number(value.toPrecision(6)));
  }
  function bytes(n) {
    if (n === undefined || n === null || n === "") return "";
    n = Number(n);
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + " " + units[i];
  }
  function statusBadge(status) { return el("span", { class: "badge " + (status || ""), text: status || "" }); }

  // --- feedback ------------------------------------------------------------------------------------
  function toast(message, kind) {
    const box = document.getElementById("toasts");
    const node = el("div", { class: "toast " + (kind || ""), role: kind === "error" ? "alert" : "status", text: message });
    box.append(node);
    setTimeout(() => node.remove(), kind === "error" ? 7000 : 3500);
  }
  function fail(error) {
    if (error && error.status === 401) return;
    console.error(error);
    toast(error && error.message ? error.message : String(error), "error");
  }

  /* A modal form. fields: [{name, label, type ("text"|"password"|"textarea"|"select"|"checkbox"),
   * value, options, placeholder, required}]. Resolves to {name: value} or null when cancelled. */
  function formDialog(title, fields, okLabel, opts = {}) {
    return new Promise((resolve) => {
      const inputs = {};
      const form = el("form", { method: "dialog" }, el("h2", { text: title }),
        opts.message ? el("p", { class: "muted", text: opts.message }) : null);
      for (const f of fields) {
        let input;
        if (f.type === "textarea") input = el("textarea", { rows: 4, name: f.name });
        else if (f.type === "select") input = el("select", { name: f.name }, (f.options || []).map((o) =>
          el("option", { value: Array.isArray(o) ? o[0] : o, text: Array.isArray(o) ? o[1] : o })));
        else if (f.type === "checkbox") input = el("input", { type: "checkbox", name: f.name });
        else input = el("input", { type: f.type || "text", name: f.name, placeholder: f.placeholder || "", autocomplete: "off" });
        if (f.type === "checkbox") input.checked = !!f.value;
        else if (f.value !== undefined && f.value !== null) input.value = f.value;
        if (f.required) input.required = true;
        inputs[f.name] = input;
        form.append(f.type === "checkbox"
          ? el("label", { class: "check field" }, input, f.label)
          : el("label", { class: "field" }, el("span", { text: f.label }), input));
      }
      const cancel = el("button", { type: "button", class: "btn", text: "Cancel" });
      const ok = el("button", { type: "submit", class: "btn " + (opts.danger ? "danger" : "primary"), text: okLabel || "OK", value: "ok" });
      form.append(el("div", { class: "buttons" }, cancel, ok));
      const dialog = el("dialog", {}, form);
      document.body.append(dialog);
      let result = null;
      cancel.addEventListener("click", () => dialog.close());
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        result = {};
        for (const [name, input] of Object.entries(inputs)) {
          result[name] = input.type === "checkbox" ? input.checked : input.value;
        }
        dialog.close();
      });
      dialog.addEventListener("close", () => { dialog.remove(); resolve(result); });
      dialog.showModal();
      const first = Object.values(inputs)[0];
      if (first) first.focus();
    });
  }
  async function confirmDialog(title, message, okLabel) {
    const result = await formDialog(title, [], okLabel || "Delete", { message, danger: true });
    return result !== null;
  }

  function copyButton(getText, label) {
    const button = el("button", { type: "button", class: "btn small", text: label || "Copy" });
    button.addEventListener("click", async () => {
      const text = typeof getText === "function" ? getText() : getText;
      try {
        await navigator.clipboard.writeText(text);
      } catch (e) {  // http:// pages (no secure context): fall back to a selection copy
        const area = el("textarea", { style: { position: "fixed", opacity: "0" } });
        area.value = text;
        document.body.append(area);
        area.select();
        document.execCommand("copy");
        area.remove();
      }
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = label || "Copy"; }, 1500);
    });
    return button;
  }

  // --- misc ------------------------------------------------------------------------------------------
  function debounce(fn, ms) {
    let timer;
    return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
  }
  const store = {
    get(key, fallback) {
      try { const v = localStorage.getItem(key); return v === null ? fallback : JSON.parse(v); } catch (e) { return fallback; }
    },
    set(key, value) { try { localStorage.setItem(key, JSON.stringify(value)); } catch (e) { /* full or disabled */ } },
  };
  const params = () => new URLSearchParams(location.search);
  function setParams(values) {
    const p = params();
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined || v === null || v === "" || v === false) p.delete(k); else p.set(k, v);
    }
    const text = p.toString();
    history.replaceState(null, "", location.pathname + (text ? "?" + text : ""));
  }
  /* A SQL-ish string literal for filters: single quotes, escaped by doubling. */
  const quote = (value) => "'" + String(value).replace(/'/g, "''") + "'";
  /* A key in a filter or order_by: bare when it is a plain identifier, else in backticks. */
  const ident = (key) => (/^[A-Za-z_][A-Za-z0-9_.]*$/.test(key) ? key : "`" + key.replace(/`/g, "``") + "`");
  const tagsOf = (list) => Object.fromEntries((list || []).map((t) => [t.key, t.value]));

  /* A key/value table with optional editing (run, model and version tags). */
  function keyValueEditor(container, { items, onSet, onDelete, hide, emptyText }) {
    const render = () => {
      const shown = items.filter((t) => !(hide && hide(t.key)));
      const rows = shown.map((t) => el("tr", {},
        el("td", { class: "key", text: t.key }),
        el("td", { class: "val", text: t.value }),
        el("td", { class: "actions" },
          onSet ? el("button", { class: "linkbtn small", text: "edit", onclick: () => edit(t) }) : null,
          onDelete ? [" ", el("button", { class: "linkbtn small danger", text: "delete", onclick: () => remove(t) })] : null)));
      const table = shown.length
        ? el("table", { class: "data" }, el("tbody", {}, rows))
        : el("div", { class: "empty small", text: emptyText || "No tags." });
      setContent(container, table, onSet ? el("div", { class: "row", style: { marginTop: "6px" } },
        el("button", { class: "btn small", text: "Add tag", onclick: () => edit(null) })) : null);
    };
    const edit = async (tag) => {
      const values = await formDialog(tag ? "Edit tag" : "Add tag", [
        { name: "key", label: "Key", value: tag ? tag.key : "", required: true },
        { name: "value", label: "Value", type: "textarea", value: tag ? tag.value : "" },
      ], "Save");
      if (!values) return;
      try {
        await onSet(values.key, values.value);
        items = items.filter((t) => t.key !== values.key).concat([{ key: values.key, value: values.value }]);
        items.sort((a, b) => a.key.localeCompare(b.key));
        render();
      } catch (e) { fail(e); }
    };
    const remove = async (tag) => {
      if (!(await confirmDialog("Delete tag", `Delete the tag "${tag.key}"?`))) return;
      try {
        await onDelete(tag.key);
        items = items.filter((t) => t.key !== tag.key);
        render();
      } catch (e) { fail(e); }
    };
    items = [...(items || [])].sort((a, b) => a.key.localeCompare(b.key));
    render();
    return { rerender: render };
  }

  /* Paging with opaque page tokens: remembers the tokens of earlier pages for "Previous". */
  class Pager {
    constructor(container, onPage) {
      this.container = container;
      this.onPage = onPage;
      this.reset();
    }
    reset() { this.tokens = [null]; this.index = 0; this.next = null; }
    get token() { return this.tokens[this.index]; }
    render(count, pageSize) {
      const first = this.index * pageSize;
      const prev = el("button", { class: "btn small", text: "‹ Previous", disabled: this.index === 0 });
      const next = el("button", { class: "btn small", text: "Next ›", disabled: !this.next });
      prev.addEventListener("click", () => { this.index -= 1; this.onPage(); });
      next.addEventListener("click", () => {
        this.tokens[this.index + 1] = this.next;
        this.index += 1;
        this.onPage();
      });
      setContent(this.container, count ? `Rows ${first + 1}–${first + count}` : "No rows", prev, next);
    }
  }

  window.LT = {
    page, prefix, url, qs, links, api, handle, ApiError, el, append, $, $$, clear, setContent,
    fmt: { time, ago, duration, num, bytes }, statusBadge, toast, fail, formDialog, confirmDialog,
    copyButton, debounce, store, params, setParams, quote, ident, tagsOf, keyValueEditor, Pager,
  };
})();
