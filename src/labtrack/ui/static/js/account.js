/* The account page: who you are, personal access tokens, a password change, and the
 * environment variables that connect a notebook or a Dask worker to this server. */
"use strict";

(function () {
  const { api, el, $, fmt, fail, toast, confirmDialog, setContent } = LT;
  const trackingUri = location.origin + LT.prefix;
  let newToken = null;

  function snippets() {
    const token = newToken || "lt_...   # create a token below";
    const auth = LT.page.auth;
    const env = [`export MLFLOW_TRACKING_URI=${trackingUri}`];
    if (auth) env.push(`export MLFLOW_TRACKING_TOKEN=${token}`);
    $("#env-snippet").textContent = env.join("\n");
    const py = [
      "# In the notebook, with the variables above set where the kernel starts",
      "# (not in a cell: cells get shared, credentials must not be in them).",
      "import mlflow",
      "from labtrack.dask import DaskTracking  # pip install 'labtrack[dask]'",
      "",
      'mlflow.set_experiment("my-experiment")',
      'with mlflow.start_run(run_name="sweep"):',
      "    with DaskTracking(client) as tracking:  # every worker gets the tracking settings",
      "        futures = tracking.map(train, [0.01, 0.1, 1.0])",
    ];
    $("#py-snippet").textContent = py.join("\n");
  }
  for (const pre of [$("#env-snippet"), $("#py-snippet")]) {
    pre.parentNode.append(LT.copyButton(() => pre.textContent));
  }
  snippets();
  if (!LT.page.auth) return;

  async function loadUser() {
    try {
      const data = await api("mlflow/users/current");
      const body = $("#account-details tbody");
      const row = (k, v) => body.append(el("tr", {}, el("td", { text: k }), el("td", {}, v)));
      row("Username", el("strong", { text: data.user.username }));
      row("Role", data.user.is_admin ? "admin" : data.role || "");
      row("Signs in through", data.source === "builtin" ? "labtrack password" : data.source);
      if ((data.groups || []).length) row("Groups", data.groups.map((g) => el("span", { class: "chip", text: g })));
      if (data.source === "builtin") $("#password-panel").classList.remove("hidden");
      LT.page.username = data.user.username;
    } catch (e) { fail(e); }
  }

  async function loadTokens() {
    try {
      const data = await api("labtrack/tokens/list");
      const tokens = (data.tokens || []).sort((a, b) => b.created_at - a.created_at);
      const box = $("#tokens");
      if (!tokens.length) { setContent(box, el("div", { class: "empty small", text: "No tokens yet." })); return; }
      const now = Date.now();
      setContent(box, el("table", { class: "data", id: "tokens-table" },
        el("thead", {}, el("tr", {}, ["Name", "Token", "Created", "Expires", "Status", ""].map((h) => el("th", { text: h })))),
        el("tbody", {}, tokens.map((t) => {
          const state = t.revoked_at ? "revoked" : t.expires_at && t.expires_at < now ? "expired" : "active";
          return el("tr", { dataset: { tokenId: t.token_id } },
            el("td", { text: t.name }),
            el("td", { class: "mono", text: t.hint }),
            el("td", { class: "nowrap", text: fmt.time(t.created_at) }),
            el("td", { class: "nowrap", text: t.expires_at ? fmt.time(t.expires_at) : "never" }),
            el("td", {}, el("span", { class: "badge " + (state === "active" ? "FINISHED" : "deleted"), text: state })),
            el("td", { class: "actions" }, state === "active"
              ? el("button", { class: "linkbtn danger", text: "Revoke", onclick: () => revoke(t) }) : ""));
        }))));
    } catch (e) { fail(e); }
  }

  async function revoke(token) {
    if (!(await confirmDialog("Revoke token", `Revoke "${token.name}" (${token.hint})? Clients using it stop working at once.`, "Revoke"))) return;
    try {
      await api("labtrack/tokens/revoke", { body: { token_id: token.token_id } });
      toast("Token revoked");
      loadTokens();
    } catch (e) { fail(e); }
  }

  $("#token-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { name: $("#token-name").value.trim() };
    const days = $("#token-expiry").value;
    if (days) body.expires_in_days = Number(days);
    try {
      const data = await api("labtrack/tokens/create", { body });
      newToken = data.token;
      $("#token-value").textContent = newToken;
      $("#token-created").classList.remove("hidden");
      $("#token-name").value = "";
      snippets();
      loadTokens();
    } catch (e) { fail(e); }
  });
  $("#token-copy").addEventListener("click", () => navigator.clipboard && navigator.clipboard.writeText(newToken || "").catch(() => {}));

  $("#password-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("mlflow/users/update-password", {
        method: "PATCH",
        body: { username: LT.page.username, current_password: $("#pw-current").value, password: $("#pw-new").value },
      });
      toast("Password changed: sign in again with the new one.");
      setTimeout(() => location.assign(LT.url("/signin")), 1200);
    } catch (e) { fail(e); }
  });

  loadUser();
  loadTokens();
})();
