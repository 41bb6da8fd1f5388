/* The run page's first requests, started while the browser still loads and compiles Plotly.js
 * (4.8 MB, deferred): the run, and on a chart page (/runs/<id>/metrics?key=...) its series.
 * run.js picks the responses up from window.LT_EARLY instead of asking again. */
"use strict";

(function () {
  const page = JSON.parse(document.getElementById("lt-page").textContent);
  const base = (page.prefix || "") + "/ajax-api/2.0/mlflow/";
  const get = (path, query) => fetch(base + path + "?" + new URLSearchParams(query), {
    headers: { Accept: "application/json", "X-Requested-With": "labtrack-ui" },
    credentials: "same-origin",
  });
  const early = { run: get("runs/get", { run_id: page.run_id }) };
  const key = page.tab === "metrics" ? new URLSearchParams(location.search).get("key") : null;
  if (key) {
    early.key = key;
    early.history = get("metrics/get-history-bulk-interval", { run_ids: page.run_id, metric_key: key, max_results: 1000 });
  }
  // A failed early request is simply retried by run.js through the normal path.
  for (const name of ["run", "history"]) if (early[name]) early[name].catch(() => {});
  window.LT_EARLY = early;
})();
