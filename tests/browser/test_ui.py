"""The web UI in a real browser, page by page, against a server with authentication on."""

from __future__ import annotations

import re

import httpx

from .conftest import ADMIN, USER


def _rows(page) -> list[str]:
    return page.eval_on_selector_all(
        "#runs-table tbody tr td.name a:first-of-type", "els => els.map(e => e.textContent)"
    )


def test_sign_in_wrong_password_then_sign_out(ui, new_page):
    page = new_page(ui.srv)
    page.go("/experiments")
    assert "/signin?next=/experiments" in page.url
    page.shot("signin")
    page.fill("#username", ADMIN[0])
    page.fill("#password", "not-the-password")
    page.click("#signin-submit")
    assert "Invalid username or password" in page.inner_text("#signin-error")
    page.fill("#username", ADMIN[0])
    page.fill("#password", ADMIN[1])
    page.click("#signin-submit")
    page.wait_for_selector("#experiments-table tbody tr a")
    assert page.url.endswith("/experiments")
    names = page.eval_on_selector_all(
        "#experiments-table tbody a", "e => e.map(x => x.textContent)"
    )
    assert {"churn-model", "fraud-detection", "Default"} <= set(names)
    page.shot("experiments")
    cookie = next(c for c in page.context.cookies() if c["name"] == "labtrack_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    page.click("#signout")
    page.wait_for_selector("#signin-submit")
    page.go("/experiments")
    assert "/signin" in page.url
    # The old session cookie is dead on the server, not only forgotten by this browser.
    r = httpx.get(
        ui.url + "/ajax-api/2.0/mlflow/experiments/search",
        cookies={"labtrack_session": cookie["value"]},
    )
    assert r.status_code == 401


def test_experiments_create_rename_delete_restore(ui, new_page):
    page = new_page(ui.srv)
    page.sign_in(path="/experiments")
    page.click("#new-experiment")
    page.fill("dialog input[name=name]", "ui-created")
    page.click("dialog button[value=ok]")
    page.wait_for_selector("#runs-table")
    assert re.search(r"/experiments/\d+$", page.url)
    page.go("/experiments")
    row = page.locator("#experiments-table tr", has_text="ui-created")
    row.get_by_text("Rename").click()
    page.fill("dialog input[name=name]", "ui-renamed")
    page.click("dialog button[value=ok]")
    page.wait_for_selector("#experiments-table a:text-is('ui-renamed')")
    page.locator("#experiments-table tr", has_text="ui-renamed").get_by_text("Delete").click()
    page.click("dialog button[value=ok]")
    page.wait_for_selector("#experiments-table a:text-is('ui-renamed')", state="detached")
    page.select_option("#exp-view", "DELETED_ONLY")
    page.locator("#experiments-table tr", has_text="ui-renamed").get_by_text("Restore").click()
    page.select_option("#exp-view", "ACTIVE_ONLY")
    page.wait_for_selector("#experiments-table a:text-is('ui-renamed')")


def test_runs_table_filter_sort_columns_nested(ui, new_page):
    page = new_page(ui.srv)
    exp = ui.ids["experiment_id"]
    page.sign_in(path=f"/experiments/{exp}")
    page.wait_for_selector("#runs-table tbody td.name a")
    # Top-level runs only; the parent shows its three children when expanded.
    assert "sweep-child-0" not in _rows(page)
    parent_row = page.locator("#runs-table tbody tr", has_text="sweep-parent")
    assert parent_row.locator(".count-pill").inner_text() == "3"
    parent_row.locator("button.toggle").click()
    page.wait_for_selector("#runs-table tr.child >> text=sweep-child-1")
    page.shot("runs-table")

    # Key completion: "metrics.a" offers metrics.acc.
    page.click("#run-filter")
    page.type("#run-filter", "metrics.a")
    page.wait_for_selector("#run-suggest div:has-text('metrics.acc')")
    page.shot("runs-filter-completion")
    page.keyboard.press("Enter")  # accept the suggestion
    assert page.input_value("#run-filter") == "metrics.acc "
    page.type("#run-filter", "> 0.95 AND (params.model = 'xgb' OR params.model = 'rf')")
    page.keyboard.press("Escape")
    page.click("#run-search")
    expected = sorted(
        r["name"] for r in ui.ids["runs"] if r["acc"] > 0.95 and r["model"] in ("xgb", "rf")
    )
    page.wait_for_function(
        f"() => document.querySelectorAll('#runs-table tbody tr').length === {len(expected)}"
    )
    assert sorted(_rows(page)) == expected
    assert "filter=metrics.acc" in page.url

    # Sort by the metric, descending then ascending.
    page.click("#runs-table th:text-is('acc')")
    page.wait_for_selector("#runs-table th.sorted:has-text('acc')")
    page.wait_for_function(
        "n => document.querySelector('#runs-table tbody td.name a').textContent === n",
        arg=max(expected),
    )
    assert _rows(page) == sorted(expected, reverse=True)
    page.click("#runs-table th:text-is('acc')")
    page.wait_for_function(
        "n => document.querySelector('#runs-table tbody td.name a').textContent === n",
        arg=min(expected),
    )
    page.shot("runs-filtered-sorted")

    # A bad filter says what is wrong.
    page.fill("#run-filter", "metrics.acc >> 1")
    page.click("#run-search")
    page.wait_for_selector("#run-error:not(.hidden)")
    assert page.inner_text("#run-error")

    # The column chooser's choice is remembered for this experiment.
    page.fill("#run-filter", "")
    page.click("#run-search")
    page.click("#columns-button")
    page.click("#columns-popover input[data-group=tags][data-key=team]")
    page.click("#columns-popover input[data-group=params][data-key=depth]")
    page.shot("runs-columns")
    page.reload()
    page.wait_for_selector("#runs-table tbody td.name a")
    headers = page.eval_on_selector_all(
        "#runs-table thead tr.keys th", "e => e.map(x => x.textContent)"
    )
    assert "team" in headers and "depth" not in headers


def test_run_page_chart_notes_tags(ui, new_page):
    page = new_page(ui.srv)
    exp = ui.ids["experiment_id"]
    best = ui.ids["best"]
    page.sign_in(path=f"/experiments/{exp}")
    page.click(f"#runs-table a:text-is('{best['name']}')")
    page.wait_for_selector("#params-table")
    assert page.inner_text("#run-name") == best["name"]
    assert "model" in page.inner_text("#params-table")
    datasets = page.inner_text("#run-datasets")
    assert "churn-2026-03" in datasets and "training" in datasets
    assert "/data/churn/2026-03.parquet" in datasets
    page.click("#note-edit")
    page.fill("#note-text", "Best trial so far.\nShip it.")
    page.click("#note-save")
    page.wait_for_selector("#note-view:has-text('Ship it.')")
    page.click("#run-tags >> text=Add tag")
    page.fill("dialog input[name=key]", "reviewed")
    page.fill("dialog textarea[name=value]", "yes")
    page.click("dialog button[value=ok]")
    page.wait_for_selector("#run-tags td:text-is('reviewed')")
    page.shot("run-overview")
    run = ui.call("GET", "runs/get", run_id=best["id"])["run"]
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["mlflow.note.content"] == "Best trial so far.\nShip it."
    assert tags["reviewed"] == "yes"

    page.click("#run-tabs a[data-tab=metrics]")
    page.wait_for_selector(".chart-card[data-key=acc] .main-svg")
    assert page.url.endswith("/metrics")
    points = page.eval_on_selector(
        ".chart-card[data-key=acc] .chart", "n => n.data[n.data.length - 1].x.length"
    )
    assert points == 10
    # Zooming in on the step axis asks the server for that window at full resolution.
    with page.expect_request(lambda r: "start_step=2" in r.url and "end_step=5" in r.url):
        page.evaluate(
            "() => Plotly.relayout(document.querySelector('.chart-card[data-key=acc] .chart'),"
            " {'xaxis.range[0]': 2, 'xaxis.range[1]': 5})"
        )
    page.select_option("#chart-x", "relative")
    page.check("#chart-log")
    page.fill("#chart-smoothing", "0.6")
    page.dispatch_event("#chart-smoothing", "input")
    page.wait_for_function(
        "() => document.querySelector('.chart-card[data-key=acc] .chart').data.length === 2"
    )
    page.shot("run-metrics")
    page.go(f"/runs/{best['id']}/metrics?key=loss")
    page.wait_for_selector(".chart-card[data-key=loss] .chart.large .main-svg")
    page.shot("run-metric-focus")


def test_artifact_previews(ui, new_page):
    page = new_page(ui.srv)
    ranges = []
    page.on(
        "request",
        lambda r: ranges.append(r.headers.get("range")) if "get-artifact" in r.url else None,
    )
    run_id = ui.ids["artifact_run"]
    page.sign_in(path=f"/runs/{run_id}/artifacts")
    page.wait_for_selector("#artifact-tree .node")
    page.click("#artifact-tree .node[data-path=data]")
    page.click("#artifact-tree .node[data-path='data/predictions.csv']")
    page.wait_for_selector("#csv-preview td:text-is('0.91')")
    assert page.eval_on_selector_all("#csv-preview tbody tr", "e => e.length") == 3
    page.shot("artifacts-csv")
    page.click("#artifact-tree .node[data-path='data/features.tsv']")
    page.wait_for_selector("#csv-preview td:text-is('income')")
    page.click("#artifact-tree .node[data-path=MLmodel]")
    page.wait_for_selector("#artifact-preview pre:has-text('loader_module')")
    page.click("#artifact-tree .node[data-path='metrics.json']")
    page.wait_for_selector("#artifact-preview pre:has-text('\"accuracy\": 0.93')")
    page.click("#artifact-tree .node[data-path='config.yaml']")
    page.wait_for_selector("#artifact-preview pre:has-text('learning_rate')")
    page.click("#artifact-tree .node[data-path=plots]")
    page.click("#artifact-tree .node[data-path='plots/roc.png']")
    page.wait_for_function(
        "() => { const i = document.querySelector('#artifact-preview img');"
        " return i && i.complete && i.naturalWidth === 40; }"
    )
    page.shot("artifacts-image")
    page.click("#artifact-tree .node[data-path='report.html']")
    frame = page.wait_for_selector("#artifact-preview iframe")
    assert frame.get_attribute("sandbox") == ""
    assert page.frame_locator("#artifact-preview iframe").locator("#report").inner_text() == (
        "Model report"
    )
    page.shot("artifacts-html")
    # A large log is read with a Range request for its beginning only.
    page.click("#artifact-tree .node[data-path=logs]")
    page.click("#artifact-tree .node[data-path='logs/train.log']")
    page.wait_for_selector("#artifact-preview pre:has-text('step 0 loss')")
    assert "Showing the first 256 KB" in page.inner_text("#artifact-preview")
    text = page.inner_text("#artifact-preview pre")
    assert "step 39999" not in text and len(text) <= 256 * 1024
    assert all(r and r.startswith("bytes=0-") for r in ranges if r is not None)
    assert sum(1 for r in ranges if r) >= 5
    page.shot("artifacts-text")


def test_compare_two_runs(ui, new_page):
    page = new_page(ui.srv)
    exp = ui.ids["experiment_id"]
    a, b = ui.ids["runs"][1], ui.ids["runs"][2]
    page.sign_in(path=f"/experiments/{exp}")
    for run in (a, b):
        page.check(f"#runs-table tr[data-run-id='{run['id']}'] td.sel input")
    assert page.inner_text("#selection-info") == "2 selected"
    page.click("#compare-button")
    page.wait_for_selector("#compare-runs-table")
    assert page.inner_text("#compare-count") == "2"
    page.wait_for_selector(".chart-card[data-key=acc] .main-svg")
    traces = page.eval_on_selector(".chart-card[data-key=acc] .chart", "n => n.data.length")
    assert traces == 2
    params = page.inner_text("#compare-params-table")
    assert "rf" in params and "lr" in params  # trial-01 and trial-02 differ in their model
    page.wait_for_selector("#scatter .main-svg")
    page.wait_for_selector("#parcoords .main-svg")
    page.shot("compare")


def test_model_alias_leads_to_the_run(ui, new_page):
    page = new_page(ui.srv)
    page.sign_in(path="/models")
    page.wait_for_selector("#models-table a:text-is('churn')")
    assert "@champion" in page.inner_text("#models-table")
    page.shot("models")
    page.click("#models-table a:text-is('churn')")
    page.wait_for_selector("#versions-table")
    page.wait_for_selector("#history-table td")
    assert "Predicts churn." in page.inner_text("#desc-view")
    assert "alias" in page.inner_text("#history-table")
    page.shot("model")
    page.click("#aliases-table a[data-alias=champion]")
    page.wait_for_selector("#source-run")
    assert page.url.endswith("/models/churn/versions/2")
    page.shot("model-version")
    page.click("#source-run")
    page.wait_for_selector("#params-table")
    assert f"/runs/{ui.ids['best']['id']}" in page.url
    assert page.inner_text("#run-name") == ui.ids["best"]["name"]
    page.wait_for_selector("#run-details a:text-is('churn v2')")


def test_tokens_create_use_revoke(ui, new_page):
    page = new_page(ui.srv)
    page.sign_in(path="/account")
    page.wait_for_selector("#account-details td:text-is('Username')")
    page.fill("#token-name", "dask-cluster")
    page.click("#token-create")
    page.wait_for_selector("#token-created:not(.hidden)")
    token = page.inner_text("#token-value")
    assert token.startswith("lt_")
    snippet = page.inner_text("#env-snippet")
    assert f"MLFLOW_TRACKING_TOKEN={token}" in snippet
    assert f"MLFLOW_TRACKING_URI={ui.url}" in snippet
    page.wait_for_selector("#tokens-table td:text-is('dask-cluster')")
    page.shot("account-tokens")
    assert token not in page.url
    bearer = {"Authorization": f"Bearer {token}"}
    search = ui.url + "/api/2.0/mlflow/experiments/search?max_results=1"
    assert httpx.get(search, headers=bearer).status_code == 200
    page.locator("#tokens-table tr", has_text="dask-cluster").get_by_text("Revoke").click()
    page.click("dialog button[value=ok]")
    page.wait_for_selector("#tokens-table tr:has-text('dask-cluster') >> text=revoked")
    assert httpx.get(search, headers=bearer).status_code == 401


def test_admin_pages_for_admins_only(ui, new_page):
    admin = new_page(ui.srv)
    admin.sign_in(path="/admin/users")
    admin.wait_for_selector(f"#users-table tr[data-username={USER[0]}]")
    admin.shot("admin-users")
    admin.go("/admin/groups")
    admin.click("#group-create")
    admin.fill("dialog input[name=name]", "risk-team")
    admin.click("dialog button[value=ok]")
    admin.wait_for_selector("#groups-table tr[data-group=risk-team]")
    admin.locator("#groups-table tr[data-group=risk-team]").get_by_text("Add member").click()
    admin.fill("dialog input[name=username]", USER[0])
    admin.click("dialog button[value=ok]")
    admin.wait_for_selector(f"#groups-table tr[data-group=risk-team] .chip:has-text('{USER[0]}')")
    admin.shot("admin-groups")
    exp = ui.ids["experiment_id"]
    admin.go(f"/admin/permissions?resource_type=experiment&resource_id={exp}")
    admin.wait_for_selector("#access:not(.hidden)")
    admin.select_option("#grant-kind", "group")
    admin.fill("#grant-name", "risk-team")
    admin.select_option("#grant-permission", "EDIT")
    admin.click("#grant-form button[type=submit]")
    admin.wait_for_selector("#grants-table strong:text-is('risk-team')")
    admin.shot("admin-permissions")

    bob = new_page(ui.srv)
    bob.sign_in(USER, path="/experiments")
    assert bob.locator(".topbar nav a", has_text="Admin").count() == 0
    for path in ("/admin/users", "/admin/groups"):
        response = bob.go(path)
        assert response.status == 403
        assert "Access denied" in bob.inner_text("h1")
    bob.shot("admin-refused")


def test_csrf_is_required_for_session_writes(ui, new_page):
    page = new_page(ui.srv)
    page.sign_in(path="/experiments")
    status = page.evaluate(
        """async () => (await fetch(LT.prefix + '/ajax-api/2.0/mlflow/experiments/create', {
            method: 'POST', headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({name: 'csrf-probe'})})).status"""
    )
    assert status == 403
    status = page.evaluate(
        """async () => (await fetch(LT.prefix + '/ajax-api/2.0/mlflow/experiments/create', {
            method: 'POST',
            headers: {'Content-Type': 'application/json', 'X-CSRF-Token': LT.page.csrf},
            body: JSON.stringify({name: 'csrf-probe'})})).status"""
    )
    assert status == 200
