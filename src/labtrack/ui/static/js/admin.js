/* Administration: users, groups, and who may access an experiment or a registered model. */
"use strict";

(function () {
  const { api, el, $, fail, toast, formDialog, confirmDialog, setContent } = LT;
  const pageName = document.body.dataset.page;
  if (!LT.page.auth) return;
  const ROLES = [["", "default"], ["admin", "admin"], ["creator", "creator"], ["reader", "reader"]];

  // --- users -------------------------------------------------------------------------------------
  async function usersPage() {
    const tbody = $("#users-table tbody");
    async function load() {
      try {
        const { users } = await api("mlflow/users/list");
        setContent(tbody, users.map((u) => {
          const role = el("select", { "aria-label": "Role of " + u.username }, ROLES.map(([v, t]) => el("option", { value: v, text: t })));
          role.value = u.role || "";
          role.addEventListener("change", () => change("labtrack/users/update-role", { username: u.username, role: role.value || null }, "Role changed"));
          const admin = el("input", { type: "checkbox", "aria-label": "Administrator" });
          admin.checked = u.is_admin;
          admin.addEventListener("change", () => change("mlflow/users/update-admin", { username: u.username, is_admin: admin.checked }, "Admin flag changed"));
          return el("tr", { dataset: { username: u.username } },
            el("td", {}, el("strong", { text: u.username })),
            el("td", {}, admin),
            el("td", {}, role),
            el("td", { text: u.source }),
            el("td", {}, (u.roles || []).map((r) => el("span", { class: "chip", text: r.name }))),
            el("td", { class: "actions" },
              u.source === "builtin" ? el("button", { class: "linkbtn", text: "Set password", onclick: () => password(u) }) : null, "  ",
              el("button", { class: "linkbtn danger", text: "Delete", onclick: () => remove(u) })));
        }));
      } catch (e) { fail(e); }
    }
    async function change(path, body, message) {
      try { await api(path, { method: "PATCH", body }); toast(message); } catch (e) { fail(e); load(); }
    }
    async function password(user) {
      const values = await formDialog(`New password for ${user.username}`, [{ name: "password", label: "Password (at least 12 characters)", type: "password", required: true }], "Set password");
      if (!values) return;
      change("mlflow/users/update-password", { username: user.username, password: values.password }, "Password set");
    }
    async function remove(user) {
      if (!(await confirmDialog("Delete user", `Delete ${user.username}, with their tokens and grants?`))) return;
      try { await api("mlflow/users/delete", { method: "DELETE", body: { username: user.username } }); toast("User deleted"); load(); } catch (e) { fail(e); }
    }
    $("#user-create").addEventListener("click", async () => {
      const values = await formDialog("New user", [
        { name: "username", label: "Username", required: true },
        { name: "password", label: "Password (at least 12 characters)", type: "password", required: true },
        { name: "admin", label: "Administrator", type: "checkbox" },
      ], "Create");
      if (!values) return;
      try {
        await api("mlflow/users/create", { body: { username: values.username.trim(), password: values.password } });
        if (values.admin) await api("mlflow/users/update-admin", { method: "PATCH", body: { username: values.username.trim(), is_admin: true } });
        toast("User created");
        load();
      } catch (e) { fail(e); }
    });
    load();
  }

  // --- groups ------------------------------------------------------------------------------------
  async function groupsPage() {
    const tbody = $("#groups-table tbody");
    async function load() {
      try {
        const { groups } = await api("labtrack/groups/list");
        if (!groups.length) { setContent(tbody, el("tr", {}, el("td", { colspan: 4, class: "empty", text: "No groups yet." }))); return; }
        setContent(tbody, groups.map((g) => el("tr", { dataset: { group: g.name } },
          el("td", {}, el("strong", { text: g.name })),
          el("td", { class: "val muted", text: g.description || "" }),
          el("td", {}, g.members.map((m) => el("span", { class: "chip" }, m,
            el("button", { title: "Remove " + m, text: "×", onclick: () => member("remove", g.name, m) })))),
          el("td", { class: "actions" },
            el("button", { class: "linkbtn", text: "Add member", onclick: async () => {
              const values = await formDialog(`Add a member to ${g.name}`, [{ name: "username", label: "Username", required: true }], "Add");
              if (values) member("add", g.name, values.username.trim());
            } }), "  ",
            el("button", { class: "linkbtn danger", text: "Delete", onclick: () => remove(g) })))));
      } catch (e) { fail(e); }
    }
    async function member(action, name, username) {
      try { await api("labtrack/groups/members/" + action, { body: { name, username } }); load(); } catch (e) { fail(e); }
    }
    async function remove(group) {
      if (!(await confirmDialog("Delete group", `Delete the group ${group.name} and its grants?`))) return;
      try { await api("labtrack/groups/delete", { method: "DELETE", body: { name: group.name } }); toast("Group deleted"); load(); } catch (e) { fail(e); }
    }
    $("#group-create").addEventListener("click", async () => {
      const values = await formDialog("New group", [
        { name: "name", label: "Name", required: true },
        { name: "description", label: "Description" },
      ], "Create");
      if (!values) return;
      try { await api("labtrack/groups/create", { body: { name: values.name.trim(), description: values.description || undefined } }); load(); } catch (e) { fail(e); }
    });
    load();
  }

  // --- permissions of a resource -----------------------------------------------------------------------
  function permissionsPage() {
    const type = $("#resource-type");
    const id = $("#resource-id");
    const initial = LT.params();
    if (initial.get("resource_type")) type.value = initial.get("resource_type");
    if (initial.get("resource_id")) id.value = initial.get("resource_id");

    async function load() {
      const resource = { resource_type: type.value, resource_id: id.value.trim() };
      if (!resource.resource_id) return;
      LT.setParams(resource);
      try {
        const data = await api("labtrack/permissions/who-can-access", { query: resource });
        label(resource);
        $("#access").classList.remove("hidden");
        const rows = data.grants.map((g) => {
          const own = g.role_name.startsWith("__user_") || g.role_name.startsWith("__group_");
          const direct = own && g.resource_pattern !== "*";
          return el("tr", {},
            el("td", { text: g.principal_type }),
            el("td", {}, el("strong", { text: g.principal })),
            el("td", {}, el("span", { class: "badge", text: g.permission })),
            el("td", { class: "small muted", text: own ? (g.resource_pattern === "*" ? "grant on all" : "direct grant") : "role " + g.role_name }),
            el("td", { class: "actions" }, direct ? el("button", { class: "linkbtn danger", text: "Revoke", onclick: () => revoke(resource, g) }) : ""));
        });
        setContent($("#grants"), rows.length
          ? el("table", { class: "data", id: "grants-table" }, el("thead", {}, el("tr", {}, ["", "Who", "Permission", "Through", ""].map((h) => el("th", { text: h })))), el("tbody", {}, rows))
          : el("div", { class: "empty small", text: "No grants name this resource." }));
        $("#access-defaults").textContent = `Everyone else: ${data.default_permission}. Administrators (${data.admins.join(", ") || "none"}) have full access.`;
      } catch (e) {
        $("#access").classList.add("hidden");
        fail(e);
      }
    }
    async function label(resource) {
      const node = $("#resource-label");
      node.textContent = "";
      if (resource.resource_type !== "experiment") return;
      try {
        const { experiment } = await api("mlflow/experiments/get", { query: { experiment_id: resource.resource_id } });
        node.textContent = experiment.name;
      } catch (e) { /* the id may not exist yet */ }
    }
    async function revoke(resource, grant) {
      if (!(await confirmDialog("Revoke access", `Revoke ${grant.permission} of ${grant.principal}?`, "Revoke"))) return;
      try {
        if (grant.principal_type === "group") await api("labtrack/groups/permissions/revoke", { body: { group: grant.principal, ...resource } });
        else await api("mlflow/users/permissions/revoke", { version: "3.0", body: { username: grant.principal, ...resource } });
        toast("Access revoked");
        load();
      } catch (e) { fail(e); }
    }
    $("#resource-form").addEventListener("submit", (event) => { event.preventDefault(); load(); });
    $("#grant-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const resource = { resource_type: type.value, resource_id: id.value.trim() };
      const who = $("#grant-name").value.trim();
      const permission = $("#grant-permission").value;
      try {
        if ($("#grant-kind").value === "group") await api("labtrack/groups/permissions/grant", { body: { group: who, permission, ...resource } });
        else await api("mlflow/users/permissions/grant", { version: "3.0", body: { username: who, permission, ...resource } });
        toast("Access granted");
        $("#grant-name").value = "";
        load();
      } catch (e) { fail(e); }
    });
    load();
  }

  if (pageName === "admin-users") usersPage();
  else if (pageName === "admin-groups") groupsPage();
  else if (pageName === "admin-permissions") permissionsPage();
})();
