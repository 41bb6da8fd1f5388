/* A run's artifact browser: a lazily expanded tree and previews.
 *
 * Previews never load a large file whole: text, CSV and JSON are read with a Range request for
 * their first bytes only (the artifact routes answer 206); images and HTML are shown only below
 * a size limit. HTML is shown in a sandboxed iframe without scripts, under the page's content
 * security policy, so an artifact can neither run code here nor fetch anything from outside. */
"use strict";

(function () {
  const { api, el, fmt, links, setContent, fail } = LT;
  const TEXT_LIMIT = 256 * 1024;
  const HTML_LIMIT = 5 * 1024 * 1024;
  const IMAGE_LIMIT = 25 * 1024 * 1024;
  const TABLE_ROWS = 200;
  const IMAGE = new Set(["png", "jpg", "jpeg", "gif", "webp", "bmp", "svg", "ico", "avif"]);
  const TEXT = new Set([
    "txt", "log", "err", "out", "json", "jsonl", "yaml", "yml", "md", "rst", "py", "r", "sql", "sh",
    "cfg", "conf", "ini", "toml", "properties", "env", "lock", "mlmodel", "mlproject", "ipynb", "xml",
    "js", "ts", "java", "scala", "c", "h", "cpp", "go", "rs", "tex", "pbtxt", "requirements",
  ]);
  const TEXT_NAMES = new Set(["mlmodel", "mlproject", "license", "readme", "dockerfile", "makefile", "requirements.txt", "conda.yaml"]);

  function kind(path) {
    const name = path.split("/").pop().toLowerCase();
    const ext = name.includes(".") ? name.split(".").pop() : "";
    if (IMAGE.has(ext)) return "image";
    if (ext === "csv" || ext === "tsv") return "table";
    if (ext === "html" || ext === "htm") return "html";
    if (ext === "json") return "json";
    if (TEXT.has(ext) || TEXT_NAMES.has(name)) return "text";
    return "other";
  }

  /* The first `limit` bytes of an artifact, read with a Range request and cut off there. */
  async function head(href, limit) {
    const response = await fetch(href, { headers: { Range: `bytes=0-${limit - 1}` }, credentials: "same-origin" });
    if (!response.ok) {
      let message = response.statusText;
      try { message = (await response.json()).message || message; } catch (e) { /* not JSON */ }
      throw new Error(message);
    }
    const reader = response.body.getReader();
    const chunks = [];
    let total = 0;
    while (total < limit) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      total += value.length;
    }
    if (total >= limit) reader.cancel().catch(() => {});
    const buffer = new Uint8Array(Math.min(total, limit));
    let offset = 0;
    for (const chunk of chunks) {
      const part = chunk.subarray(0, Math.min(chunk.length, buffer.length - offset));
      buffer.set(part, offset);
      offset += part.length;
      if (offset >= buffer.length) break;
    }
    return new TextDecoder("utf-8", { fatal: false }).decode(buffer);
  }

  function parseDelimited(text, delimiter, truncated) {
    const rows = [];
    let row = [];
    let field = "";
    let quoted = false;
    for (let i = 0; i < text.length && rows.length <= TABLE_ROWS; i++) {
      const c = text[i];
      if (quoted) {
        if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
        else if (c === '"') quoted = false;
        else field += c;
      } else if (c === '"' && field === "") quoted = true;
      else if (c === delimiter) { row.push(field); field = ""; }
      else if (c === "\n" || c === "\r") {
        if (c === "\r" && text[i + 1] === "\n") i++;
        row.push(field); rows.push(row); row = []; field = "";
      } else field += c;
    }
    if (!truncated && (field !== "" || row.length)) { row.push(field); rows.push(row); }
    return rows;
  }

  class Browser {
    constructor(treeNode, previewNode, runId) {
      this.tree = treeNode;
      this.preview = previewNode;
      this.runId = runId;
      this.active = null;
    }

    async list(path) {
      const data = await api("mlflow/artifacts/list", { query: { run_id: this.runId, path: path || undefined } });
      const files = data.files || [];
      files.sort((a, b) => (b.is_dir - a.is_dir) || a.path.localeCompare(b.path));
      return files;
    }

    async init(selectPath) {
      try {
        const files = await this.list("");
        if (!files.length) {
          setContent(this.tree, el("div", { class: "empty small", text: "This run has no artifacts." }));
          return;
        }
        const ul = el("ul");
        setContent(this.tree, ul);
        this.fill(ul, files);
        const first = selectPath || (files.find((f) => !f.is_dir) || {}).path;
        if (first) {
          const node = this.tree.querySelector(`[data-path="${CSS.escape(first)}"]`);
          if (node) node.click();
        }
      } catch (e) {
        setContent(this.tree, el("div", { class: "error-box", text: e.message }));
      }
    }

    fill(ul, files) {
      for (const file of files) {
        const name = file.path.split("/").pop();
        const node = el("div", { class: "node", dataset: { path: file.path }, title: file.path },
          el("span", { class: "icon", text: file.is_dir ? "▸" : "·" }),
          el("span", { text: name }),
          file.is_dir ? null : el("span", { class: "size", text: fmt.bytes(file.file_size) }));
        const li = el("li", {}, node);
        if (file.is_dir) {
          let sub = null;
          node.addEventListener("click", async () => {
            if (sub) {
              sub.classList.toggle("hidden");
              node.querySelector(".icon").textContent = sub.classList.contains("hidden") ? "▸" : "▾";
              return;
            }
            sub = el("ul");
            li.append(sub);
            node.querySelector(".icon").textContent = "▾";
            try {
              const children = await this.list(file.path);
              if (!children.length) sub.append(el("li", { class: "faint small", text: "(empty)" }));
              this.fill(sub, children);
            } catch (e) { fail(e); }
          });
        } else {
          node.addEventListener("click", () => {
            if (this.active) this.active.classList.remove("active");
            node.classList.add("active");
            this.active = node;
            this.show(file);
          });
        }
        ul.append(li);
      }
    }

    async show(file) {
      const href = links.artifact(this.runId, file.path);
      const size = Number(file.file_size || 0);
      const name = file.path.split("/").pop();
      const body = el("div", { class: "preview-body" }, el("div", { class: "faint small", text: "Loading…" }));
      setContent(this.preview,
        el("div", { class: "head" },
          el("span", { class: "path", text: file.path }),
          el("span", { class: "faint small", text: fmt.bytes(size) }),
          el("div", { class: "spacer" }),
          el("a", { class: "btn small", href, download: name, text: "Download" })),
        body);
      const k = kind(file.path);
      try {
        if (size === 0) { setContent(body, el("div", { class: "empty", text: "(empty file)" })); return; }
        if (k === "image") {
          if (size > IMAGE_LIMIT) return this.tooLarge(body, size);
          setContent(body, el("img", { src: href, alt: name }));
          return;
        }
        if (k === "html") {
          if (size > HTML_LIMIT) return this.tooLarge(body, size);
          const html = await head(href, HTML_LIMIT);
          const frame = el("iframe", { sandbox: "", title: name, referrerpolicy: "no-referrer" });
          frame.srcdoc = html;
          setContent(body, el("div", { class: "small faint", text: "Shown without scripts." }), frame);
          return;
        }
        if (k === "other") {
          const button = el("button", { class: "btn small", text: "Show the beginning as text" });
          button.addEventListener("click", () => this.text(body, href, size, "text"));
          setContent(body, el("div", { class: "empty" }, el("p", { text: "No preview for this type of file." }), button));
          return;
        }
        await this.text(body, href, size, k, file.path);
      } catch (e) {
        setContent(body, el("div", { class: "error-box", text: e.message }));
      }
    }

    tooLarge(body, size) {
      setContent(body, el("div", { class: "empty", text: `This file is too large to preview (${fmt.bytes(size)}). Download it instead.` }));
    }

    async text(body, href, size, k, path) {
      const truncated = size > TEXT_LIMIT;
      let text = await head(href, TEXT_LIMIT);
      const note = truncated ? el("div", { class: "small muted", style: { marginBottom: "6px" }, text: `Showing the first ${fmt.bytes(TEXT_LIMIT)} of ${fmt.bytes(size)}.` }) : null;
      if (k === "table") {
        const delimiter = path.toLowerCase().endsWith(".tsv") ? "\t" : ",";
        const rows = parseDelimited(text, delimiter, truncated);
        if (rows.length) {
          const [header, ...data] = rows;
          const shown = data.slice(0, TABLE_ROWS);
          setContent(body,
            el("div", { class: "small muted", style: { marginBottom: "6px" }, text: `First ${shown.length} rows${data.length > TABLE_ROWS || truncated ? "" : " (all)"} · ${header.length} columns` }),
            el("div", { class: "table-scroll", style: { maxHeight: "calc(100vh - 320px)" } },
              el("table", { class: "data", id: "csv-preview" },
                el("thead", {}, el("tr", {}, header.map((h) => el("th", { text: h })))),
                el("tbody", {}, shown.map((r) => el("tr", {}, r.map((c) => el("td", { class: /^-?[\d.eE+-]+$/.test(c) ? "num" : "", text: c }))))))));
          return;
        }
      }
      if (k === "json" && !truncated) {
        try { text = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* show as is */ }
      }
      setContent(body, note, el("pre", { text }));
    }
  }

  LT.artifacts = { Browser, kind, head };
})();
