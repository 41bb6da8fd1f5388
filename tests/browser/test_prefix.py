"""Everything works under ``--static-prefix``: links, scripts, API calls, cookies, redirects."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from .conftest import seed, start_ui_server

PREFIX = "/mlflow"


@pytest.fixture(scope="module")
def prefixed():
    server = start_ui_server(static_prefix=PREFIX)
    try:
        seed(server)
        yield server
    finally:
        server.http.close()
        server.srv.stop()


def test_whole_journey_under_a_prefix(prefixed, new_page):
    page = new_page(prefixed.srv)
    page.go("/")
    assert urlsplit(page.url).path == PREFIX + "/signin"
    page.sign_in(path="/")
    assert urlsplit(page.url).path == PREFIX + "/"
    cookie = next(c for c in page.context.cookies() if c["name"] == "labtrack_session")
    assert cookie["path"] == PREFIX
    page.click("#experiments-table a:text-is('churn-model')")
    page.wait_for_selector("#runs-table tbody td.name a")
    best = prefixed.ids["best"]
    page.fill("#run-filter", f"attributes.run_name = '{best['name']}'")
    page.click("#run-search")
    page.wait_for_function("() => document.querySelectorAll('#runs-table tbody tr').length === 1")
    page.click(f"#runs-table a:text-is('{best['name']}')")
    page.wait_for_selector("#params-table")
    page.click("#run-tabs a[data-tab=metrics]")
    page.wait_for_selector(".chart-card[data-key=acc] .main-svg")
    page.shot("prefix-run-metrics")
    page.go(f"/runs/{prefixed.ids['artifact_run']}/artifacts")
    page.click("#artifact-tree .node[data-path=MLmodel]")
    page.wait_for_selector("#artifact-preview pre:has-text('loader_module')")
    page.go("/models/churn")
    page.click("#aliases-table a[data-alias=champion]")
    page.click("#source-run")
    page.wait_for_selector("#params-table")
    page.go("/account")
    page.wait_for_selector("#env-snippet")
    assert f"MLFLOW_TRACKING_URI={prefixed.url}" in page.inner_text("#env-snippet")
    page.click("#signout")
    page.wait_for_selector("#signin-submit")
    assert urlsplit(page.url).path == PREFIX + "/signin"
    paths = {urlsplit(u).path for u in page.requests if u.startswith("http")}
    outside_prefix = sorted(p for p in paths if not p.startswith(PREFIX + "/") and p != PREFIX)
    assert not outside_prefix, outside_prefix
