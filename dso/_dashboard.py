"""The live dashboard: one self-contained HTML page, no outside assets.

The page carries the stats and health of the moment it was served, draws
them with its inline script, and then fetches ``stats`` and ``health``
again every few seconds. The script writes every value as text, never as
markup, so a provider or namespace name can never inject into the page.
"""

from __future__ import annotations

import json
from typing import Any


def render_dashboard(
    stats: dict[str, Any], health: dict[str, Any], refresh_every: float
) -> str:
    """Return the dashboard page for a stats and a health snapshot (as dicts)."""
    initial = json.dumps(
        {"stats": stats, "health": health, "refresh_ms": int(refresh_every * 1000)},
        default=str,
    )
    # No "<" at all inside the script element: neither "</script" nor
    # "<!--" can change how the HTML parser reads it. JSON keeps the meaning.
    return _PAGE.replace("__INITIAL__", initial.replace("<", "\\u003c"))


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dso operations</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin: 0 0 .3em; }
h2 { font-size: 1.1em; margin: 1.4em 0 .4em; }
table { border-collapse: collapse; }
th, td { padding: .25em .8em; border-bottom: 1px solid #ddd; text-align: right; }
td { white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
.badge { padding: .1em .6em; border-radius: .8em; color: #fff; }
.ok, .closed { background: #2a7d2e; }
.degraded, .half_open, .disabled { background: #b27b00; }
.failing, .open, .forced_open { background: #b3261e; }
#alerts li { color: #b3261e; }
#alerts li.muted { color: #777; }
.muted { color: #777; }
</style>
</head>
<body>
<h1>dso <span id="status" class="badge">…</span></h1>
<div class="muted">up <span id="uptime">-</span>,
updated <span id="updated">-</span></div>
<h2>Alerts</h2>
<ul id="alerts"></ul>
<h2>Cache, per namespace</h2>
<table id="namespaces">
<thead><tr><th>namespace</th><th>hit rate</th><th>recent hit rate</th>
<th>hits</th><th>misses</th><th>stale served</th><th>stale share</th></tr></thead>
<tbody></tbody></table>
<h2>Providers</h2>
<table id="providers">
<thead><tr><th>provider</th><th>status</th><th>breaker</th><th>success rate</th>
<th>recent failure rate</th><th>attempts</th><th>failures</th><th>skips</th>
<th>p50</th><th>p95</th><th>p99</th><th>quota used</th></tr></thead>
<tbody></tbody></table>
<h2>Savings and trouble</h2>
<table id="totals"><tbody></tbody></table>
<script id="initial" type="application/json">__INITIAL__</script>
<script>
"use strict";
const initial = JSON.parse(document.getElementById("initial").textContent);

function percent(value) {
  return value === null || value === undefined
    ? "-" : (100 * value).toFixed(1) + "%";
}
function seconds(value) {
  if (value === null || value === undefined) return "-";
  return value < 1 ? (1000 * value).toFixed(0) + " ms" : value.toFixed(2) + " s";
}
function counts(map) {
  const parts = Object.entries(map).map(([name, n]) => name + " " + n);
  return parts.length ? parts.join(", ") : "0";
}
function cell(row, field, text, badge) {
  const td = document.createElement("td");
  td.dataset.field = field;
  if (badge) {
    const span = document.createElement("span");
    span.className = "badge " + text;
    span.textContent = text;
    td.appendChild(span);
  } else {
    td.textContent = text;
  }
  row.appendChild(td);
}
function fill(tableId, key, entries, cells) {
  const body = document.querySelector("#" + tableId + " tbody");
  body.replaceChildren();
  for (const [name, item] of entries) {
    const row = document.createElement("tr");
    row.dataset[key] = name;
    cell(row, "name", name);
    for (const [field, text, badge] of cells(name, item)) {
      cell(row, field, text, badge);
    }
    body.appendChild(row);
  }
}
function draw(stats, health) {
  const status = document.getElementById("status");
  status.textContent = health.status;
  status.className = "badge " + health.status;
  document.getElementById("uptime").textContent = seconds(stats.uptime);
  document.getElementById("updated").textContent =
    new Date().toLocaleTimeString();

  const alerts = document.getElementById("alerts");
  alerts.replaceChildren();
  for (const alert of health.alerts) {
    const item = document.createElement("li");
    item.dataset.rule = alert.rule;
    item.textContent = alert.message;
    alerts.appendChild(item);
  }
  if (!health.alerts.length) {
    const item = document.createElement("li");
    item.className = "muted";
    item.textContent = "none";
    alerts.appendChild(item);
  }

  fill("namespaces", "namespace", Object.entries(stats.namespaces),
    (name, space) => [
      ["hit_rate", percent(space.hit_rate)],
      ["recent_hit_rate", percent(space.recent_hit_rate)],
      ["hits", String(space.hits)],
      ["misses", String(space.misses)],
      ["stale_served", String(space.stale_served)],
      ["stale_share", percent(space.stale_share)],
    ]);
  fill("providers", "provider", Object.entries(stats.providers),
    (name, provider) => {
      const verdict = health.providers[name];
      return [
        ["status", verdict ? verdict.status : "-", Boolean(verdict)],
        ["breaker", provider.breaker, true],
        ["success_rate", percent(
          provider.attempts ? provider.successes / provider.attempts : null)],
        ["recent_failure_rate", percent(provider.recent_failure_rate)],
        ["attempts", String(provider.attempts)],
        ["failures", counts(provider.failures)],
        ["skips", counts(provider.skips)],
        ["latency_p50", seconds(provider.latency_p50)],
        ["latency_p95", seconds(provider.latency_p95)],
        ["latency_p99", seconds(provider.latency_p99)],
        ["quota_used", percent(provider.quota_used)],
      ];
    });
  fill("totals", "total", [
    ["calls saved by joining", stats.dedup_joins],
    ["calls saved by batching", stats.batch_calls_saved],
    ["cache errors", stats.cache_errors],
    ["events dropped", stats.events_dropped],
    ["sink errors", stats.sink_errors],
  ], (name, value) => [["value", String(value)]]);
}
async function refresh() {
  try {
    const [stats, health] = await Promise.all([
      fetch("stats", {cache: "no-store"}).then((r) => r.json()),
      fetch("health", {cache: "no-store"}).then((r) => r.json()),
    ]);
    draw(stats, health);
  } catch (error) {
    document.getElementById("updated").textContent = "unreachable";
  }
}
draw(initial.stats, initial.health);
setInterval(refresh, initial.refresh_ms);
</script>
</body>
</html>
"""
