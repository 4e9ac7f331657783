"""The status page: one self-contained HTML page at ``/`` and its data at ``/api/v1/status``.

The page (inline CSS and JS, no build step, nothing fetched from elsewhere, one column on
a phone) carries no data. It asks for the API token (``DATA_DIR/api_token``), keeps it in
the tab's ``sessionStorage``, and fetches ``GET /api/v1/status`` and the schedule actions
(``POST /api/v1/schedules/{id}/pause|resume|trigger``, ``api_schedules.py``) with
``Authorization: Bearer``; a refused token clears it and shows the form again. It
refreshes every ``REFRESH_SECONDS`` and right after an action.

``/api/v1/status`` needs the token (the ``auth`` dependencies the API app guards
``/api/v1/*`` with) and answers::

    {"generated_at", "timezone", "state",
     "jobs": {"total", "by_status", "by_stage", "running": [...], "failures": [...]},
     "schedules": {"items": [...], "total", "shown"},
     "sections": {"<name>": {...}, ...}}

The generic part comes from the scheduler: jobs by lifecycle status, by the ``stage``
field a job record may carry (the pipeline's), the running ones, the last failed ones
with their error on one line; the schedules with their next fire in their own zone. What
only a package built on the scheduler knows (the pipeline's quota and published videos)
comes from ``scheduler.status_sections``: a name to a function of no arguments returning
a JSON-able dict, registered by an extension's ``install``. A section that raises is
shown as ``{"error": "<one line>"}`` and logged; the others still answer. Everything
answered goes through ``redaction.redact`` first.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from .models import JobStatus, ScheduledJob
from .redaction import redact, scrub_text

if TYPE_CHECKING:
    from .scheduler import Scheduler

__all__ = [
    "ERROR_CHARS",
    "PAGE",
    "RECENT_FAILURES",
    "REFRESH_SECONDS",
    "SCHEDULES_SHOWN",
    "StatusAnswer",
    "StatusSection",
    "jobs_overview",
    "one_line",
    "status_of",
    "status_router",
]

logger = logging.getLogger(__name__)

StatusSection = Callable[[], dict[str, Any]]
"""A section of the status page's data: called on the loop at each request, cheap, no I/O wait."""

RECENT_FAILURES = 10
SCHEDULES_SHOWN = 100
ERROR_CHARS = 300
REFRESH_SECONDS = 10

_SCHEDULE_FIELDS = (
    "schedule_id", "name", "description", "schedule_type", "cron_expression", "interval_seconds", "run_at",
    "timezone", "target_command", "status", "paused", "paused_reason", "next_run_time", "last_fire_time",
    "running_instances", "waiting_instances", "failures_in_a_row", "fires",
)


def one_line(text: Any, limit: int = ERROR_CHARS) -> str | None:
    """``text``'s first non-blank line, secrets scrubbed, at most ``limit`` characters (None: no text)."""
    if text is None:
        return None
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    if not lines:
        return None
    line = scrub_text(lines[0])
    more = len(lines) > 1
    if len(line) > limit:
        line, more = line[: limit - 1].rstrip(), True
    return line + " …" if more else line


def _iso(when: datetime | None, zone: tzinfo | None) -> str | None:
    return None if when is None else when.astimezone(zone or timezone.utc).isoformat()


def jobs_overview(
    jobs: Iterable[ScheduledJob], *, zone: tzinfo | None = None, failures: int = RECENT_FAILURES
) -> dict[str, Any]:
    """Jobs by status and by ``stage``, the running ones, and the last ``failures`` failed ones (pure).

    Instants are given in ``zone`` (default UTC), as the daemon's day files read them.
    """
    by_status = {status.value: 0 for status in JobStatus}
    by_stage: dict[str, int] = {}
    running: list[dict[str, Any]] = []
    failed: list[ScheduledJob] = []
    total = 0
    for job in jobs:
        total += 1
        by_status[job.status.value] += 1
        stage = (job.model_extra or {}).get("stage")
        if isinstance(stage, str):
            by_stage[stage] = by_stage.get(stage, 0) + 1
        if job.status is JobStatus.RUNNING:
            running.append({
                "job_id": job.job_id, "kind": job.kind, "account_id": job.account_id,
                "stage": stage if isinstance(stage, str) else None, "started_at": _iso(job.started_at, zone),
            })
        elif job.status is JobStatus.FAILED:
            failed.append(job)
    failed.sort(key=lambda job: (job.completed_at or job.updated_at, job.job_id), reverse=True)
    running.sort(key=lambda row: (row["started_at"] or "", row["job_id"]))
    last_failed = []
    for job in failed[:failures]:
        stage = (job.model_extra or {}).get("stage")
        last_failed.append({
            "job_id": job.job_id, "kind": job.kind, "account_id": job.account_id,
            "stage": stage if isinstance(stage, str) else None,
            "failed_at": _iso(job.completed_at or job.updated_at, zone),
            "retry_count": job.retry_count, "max_retries": job.max_retries,
            "error": one_line(job.error) or "(no error recorded)",
        })
    return {
        "total": total,
        "by_status": by_status,
        "by_stage": dict(sorted(by_stage.items())),
        "running": running,
        "failures": last_failed,
        "failed_total": len(failed),
    }


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class JobsShown(_Open):
    total: int
    by_status: dict[str, int] = Field(description="jobs in each lifecycle status")
    by_stage: dict[str, int] = Field(description="jobs by the ``stage`` field of their record, where they have one")
    running: list[dict[str, Any]]
    failures: list[dict[str, Any]] = Field(description="the last failed jobs, newest first, each error on one line")
    failed_total: int


class SchedulesShown(_Open):
    items: list[dict[str, Any]] = Field(description="by name; ``next_run_time`` in the schedule's own zone")
    total: int
    shown: int


class StatusAnswer(_Open):
    """What ``GET /api/v1/status`` answers (the status page's data)."""

    generated_at: str = Field(description="now, ISO-8601 in the daemon's zone")
    timezone: str
    state: str
    refresh_seconds: int
    jobs: JobsShown
    schedules: SchedulesShown
    sections: dict[str, dict[str, Any]] = Field(
        description="what extensions add (the pipeline: ``quota``, ``published``); a broken one is ``{\"error\"}``"
    )


def _schedule_row(described: Mapping[str, Any]) -> dict[str, Any]:
    row = {name: described.get(name) for name in _SCHEDULE_FIELDS}
    last = row.get("last_fire_time")
    if last and row.get("timezone"):  # stored in UTC; shown, like the next fire, in the schedule's zone
        try:
            row["last_fire_time"] = datetime.fromisoformat(str(last)).astimezone(ZoneInfo(row["timezone"])).isoformat()
        except (ValueError, KeyError):
            pass
    return row


def _sections(scheduler: Scheduler) -> dict[str, Any]:
    providers: Mapping[str, StatusSection] = getattr(scheduler, "status_sections", None) or {}
    answer: dict[str, Any] = {}
    for name, provide in sorted(providers.items()):
        try:
            answer[name] = provide()
        except Exception as exc:  # one broken section must not take the page down
            logger.exception("a status section failed", extra={"section": name})
            answer[name] = {"error": one_line(f"{type(exc).__name__}: {exc}")}
    return answer


def status_of(scheduler: Scheduler, *, schedules: int = SCHEDULES_SHOWN) -> dict[str, Any]:
    """The status page's data (see the module docstring), redacted."""
    service = scheduler.schedules
    found, total = service.list(limit=schedules)
    answer = {
        "generated_at": scheduler.clock().astimezone(scheduler.zone).isoformat(),
        "timezone": getattr(scheduler.zone, "key", str(scheduler.zone)),
        "state": scheduler.state.value,
        "refresh_seconds": REFRESH_SECONDS,
        "jobs": jobs_overview(scheduler.jobs_snapshot(), zone=scheduler.zone),
        "schedules": {"items": [_schedule_row(service.describe(s)) for s in found], "total": total,
                      "shown": len(found)},
        "sections": _sections(scheduler),
    }
    return redact(answer)


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def status_router(scheduler: Scheduler, auth: list[Any]) -> APIRouter:
    """``GET /`` (the page, no token: it holds no data) and ``GET /api/v1/status`` (guarded by ``auth``)."""
    router = APIRouter(tags=["status"])
    page_headers = {
        # only the page's own inline style and script run; it talks to this origin only
        "Content-Security-Policy": (
            f"default-src 'none'; style-src {_csp_hash(_CSS)}; script-src {_csp_hash(_JS)}; "
            "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        ),
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
    }

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def status_page() -> HTMLResponse:
        return HTMLResponse(PAGE, headers=page_headers)

    @router.get("/api/v1/status", dependencies=auth, response_model=None,
                responses={200: {"model": StatusAnswer, "description": "the status page's data"}})
    async def status() -> JSONResponse:
        return JSONResponse(status_of(scheduler), headers={"Cache-Control": "no-store"})

    return router


_CSS = """
:root { color-scheme: light dark; --fg: #1b1f24; --muted: #5b6470; --bg: #f4f5f7; --card: #fff;
  --line: #d9dde3; --accent: #0b63ce; --bad: #b42318; --ok: #18794e; --warn: #a15c00; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e8eb; --muted: #9aa3ad; --bg: #14171a; --card: #1d2125;
  --line: #30363d; --accent: #58a6ff; --bad: #ff7b72; --ok: #3fb950; --warn: #d29922; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  background: var(--bg); }
header { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1rem; padding: .75rem 1rem;
  background: var(--card); border-bottom: 1px solid var(--line); }
header h1 { font-size: 1.1rem; margin: 0; flex: 1; white-space: nowrap; }
#updated { color: var(--muted); font-size: .85rem; }
main { max-width: 1100px; margin: 0 auto; padding: 1rem; }
#grid { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 1rem; }
#grid > .wide { grid-column: 1 / -1; }
section, form { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .75rem 1rem; }
form { max-width: 28rem; margin: 2rem auto; }
h2 { font-size: 1rem; margin: 0 0 .5rem; }
label { display: block; font-weight: 600; margin: .5rem 0 .25rem; }
input[type=password] { width: 100%; padding: .6rem; font: inherit; border: 1px solid var(--line); border-radius: 6px;
  background: var(--bg); color: var(--fg); }
button { font: inherit; padding: .45rem .9rem; border-radius: 6px; border: 1px solid var(--accent);
  background: var(--accent); color: #fff; cursor: pointer; min-height: 2.25rem; }
button.secondary { background: transparent; color: var(--accent); }
button:disabled { opacity: .5; cursor: wait; }
form button { margin-top: .75rem; width: 100%; }
.hint, .muted { color: var(--muted); font-size: .85rem; }
.error { color: var(--bad); font-weight: 600; }
.notice { margin: 0 0 1rem; padding: .5rem .75rem; border-radius: 6px; border: 1px solid var(--line);
  background: var(--card); }
.notice.bad { border-color: var(--bad); color: var(--bad); }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .85em; }
table { width: 100%; border-collapse: collapse; }
td, th { text-align: left; padding: .2rem .4rem; border-bottom: 1px solid var(--line); }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.figures { display: flex; gap: 1.5rem; flex-wrap: wrap; }
.figure b { display: block; font-size: 1.8rem; line-height: 1.1; font-variant-numeric: tabular-nums; }
.bar { height: .5rem; background: var(--line); border-radius: 4px; margin: .6rem 0 .3rem; overflow: hidden; }
.bar > div { height: 100%; background: var(--ok); }
.bar.full > div { background: var(--warn); }
ul.rows { list-style: none; margin: 0; padding: 0; }
ul.rows > li { padding: .5rem 0; border-bottom: 1px solid var(--line); overflow-wrap: anywhere; }
ul.rows > li:last-child { border-bottom: 0; }
.err { color: var(--bad); }
.schedule { display: flex; flex-wrap: wrap; gap: .25rem 1rem; align-items: center; }
.schedule .what { flex: 1 1 16rem; min-width: 0; }
.schedule .actions { display: flex; gap: .5rem; }
.badge { display: inline-block; padding: 0 .45rem; border-radius: 999px; font-size: .8rem; border: 1px solid;
  margin-left: .35rem; vertical-align: 1px; }
.badge.active { color: var(--ok); } .badge.paused { color: var(--warn); } .badge.completed { color: var(--muted); }
a { color: var(--accent); }
@media (max-width: 600px) {
  main { padding: .5rem; }
  header { padding: .5rem .75rem; }
  #updated { order: 3; flex-basis: 100%; }
  #grid { grid-template-columns: minmax(0, 1fr); gap: .6rem; }
  .schedule .actions { width: 100%; }
  .schedule .actions button { flex: 1; }
  form { margin: 1rem auto; }
}
"""

_JS = r"""
"use strict";
const KEY = "video-scheduler.api-token";
const REFRESH_MS = 10000;
let timer = null;
const $ = (id) => document.getElementById(id);

class Refused extends Error {}

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fill(id, ...children) { $(id).replaceChildren(...children.flat().filter((c) => c)); }

async function call(method, path) {
  const token = sessionStorage.getItem(KEY);
  if (!token) throw new Refused("no token");
  const response = await fetch(path, {
    method, cache: "no-store", credentials: "omit",
    headers: { "Authorization": "Bearer " + token, "Accept": "application/json" },
  });
  if (response.status === 401) throw new Refused("refused");
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) throw new Error((body && body.message) || ("HTTP " + response.status));
  return body;
}

function showLogin(message) {
  clearTimeout(timer);
  timer = null;
  sessionStorage.removeItem(KEY);
  for (const id of ["quota-body", "jobs-body", "failures-body", "schedules-body", "published-body", "extra"]) fill(id);
  $("status").hidden = true;
  $("logout").hidden = true;
  $("updated").textContent = "";
  $("login").hidden = false;
  const error = $("login-error");
  error.textContent = message || "";
  error.hidden = !message;
  $("token").value = "";
  $("token").focus();
}

function notice(message, bad) {
  const box = $("notice");
  box.textContent = message || "";
  box.className = "notice" + (bad ? " bad" : "");
  box.hidden = !message;
}

function schedule(ms) {
  clearTimeout(timer);
  timer = setTimeout(refresh, ms);
}

async function refresh() {
  try {
    const data = await call("GET", "/api/v1/status");
    render(data);
    $("login").hidden = true;
    $("token").value = "";
    $("status").hidden = false;
    $("logout").hidden = false;
    $("updated").textContent = "updated " + clock(data.generated_at);
    if ($("notice").classList.contains("bad")) notice("");
    schedule(REFRESH_MS);
  } catch (error) {
    if (error instanceof Refused) {
      showLogin("The daemon refused this token. Copy it again from DATA_DIR/api_token.");
    } else {
      notice("Cannot reach the daemon: " + error.message + " (trying again)", true);
      schedule(REFRESH_MS);
    }
  }
}

function wall(iso) {  // "2026-11-24T08:00:00+07:00" -> "2026-11-24 08:00 +07:00", as the zone reads it
  if (!iso) return "";
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d)(?::\d\d(?:\.\d+)?)?(Z|[+-]\d\d:\d\d)?$/.exec(iso);
  return m ? m[1] + " " + m[2] + (m[3] ? " " + (m[3] === "Z" ? "UTC" : m[3]) : "") : iso;
}

function clock(iso) {  // "…T10:50:20.123+07:00" -> "10:50:20 +07:00"
  const m = /T(\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)?$/.exec(iso || "");
  return m ? m[1] + (m[2] ? " " + (m[2] === "Z" ? "UTC" : m[2]) : "") : new Date().toLocaleTimeString();
}

function ago(iso, now) {
  const seconds = Math.round((Date.parse(iso) - now) / 1000);
  if (!isFinite(seconds)) return "";
  const abs = Math.abs(seconds);
  const text = abs < 60 ? abs + " s" : abs < 3600 ? Math.round(abs / 60) + " min"
    : abs < 172800 ? Math.floor(abs / 3600) + " h " + Math.round((abs % 3600) / 60) + " min"
    : Math.round(abs / 86400) + " days";
  return seconds >= 0 ? "in " + text : text + " ago";
}

function sectionError(data) {
  return data && data.error ? el("p", { class: "err", text: "unavailable: " + data.error }) : null;
}

function renderQuota(q) {
  if (!q) return [el("p", { class: "muted", text: "No quota here (no pipeline installed)." })];
  if (q.error) return [sectionError(q)];
  const share = q.quota > 0 ? Math.min(100, Math.round(100 * q.used / q.quota)) : 100;
  return [
    el("div", { class: "figures" },
      el("div", { class: "figure", id: "quota-used" }, el("b", { text: q.used + " / " + q.quota }), "used"),
      el("div", { class: "figure", id: "quota-remaining" }, el("b", { text: String(q.remaining) }), "remaining")),
    el("div", { class: "bar" + (q.quota_reached ? " full" : "") }, el("div", { "data-share": share })),
    el("p", { class: "muted", text: (q.quota_reached ? "Quota reached. " : "") + "Vietnam day " + q.day
      + (q.timezone ? " (" + q.timezone + ")" : "") }),
  ];
}

function table(rows, head) {
  return el("table", {}, el("thead", {}, el("tr", {}, head.map((h, i) => el("th", { class: i ? "n" : null, text: h })))),
    el("tbody", {}, rows.map(([name, n]) => el("tr", {}, el("td", { text: name }), el("td", { class: "n", text: String(n) })))));
}

function renderJobs(jobs) {
  const statuses = Object.entries(jobs.by_status).filter(([, n]) => n > 0);
  const stages = Object.entries(jobs.by_stage);
  const parts = [el("p", { class: "muted", text: jobs.total + " jobs in all" })];
  parts.push(statuses.length ? table(statuses, ["status", "jobs"]) : el("p", { class: "muted", text: "No jobs." }));
  if (stages.length) parts.push(el("h3", { class: "hint", text: "By pipeline stage" }), table(stages, ["stage", "jobs"]));
  if (jobs.running.length) {
    parts.push(el("h3", { class: "hint", text: "Running now" }), el("ul", { class: "rows" }, jobs.running.map((j) =>
      el("li", {}, el("span", { class: "mono", text: j.job_id }), " " + j.kind + (j.stage ? " · " + j.stage : "")
        + (j.started_at ? " · since " + wall(j.started_at) : "")))));
  }
  return parts;
}

function renderFailures(jobs) {
  if (!jobs.failures.length) return [el("p", { class: "muted", text: "No failed jobs." })];
  const more = jobs.failed_total > jobs.failures.length
    ? el("p", { class: "muted", text: "The last " + jobs.failures.length + " of " + jobs.failed_total + " failed jobs." }) : null;
  return [more, el("ul", { class: "rows", id: "failure-list" }, jobs.failures.map((j) =>
    el("li", {},
      el("div", {}, el("span", { class: "mono", text: j.job_id }), " " + j.kind + (j.stage ? " · stage " + j.stage : "")
        + (j.account_id ? " · " + j.account_id : "")),
      el("div", { class: "err mono", text: j.error }),
      el("div", { class: "muted", text: "failed " + wall(j.failed_at) + " after " + j.retry_count + " of "
        + j.max_retries + " retries" }))))];
}

function timing(s) {
  if (s.schedule_type === "cron") return "cron " + s.cron_expression;
  if (s.schedule_type === "interval") return "every " + s.interval_seconds + " s";
  if (s.run_at) return "once at " + wall(s.run_at);
  return s.schedule_type;
}

async function act(s, action, button) {
  for (const b of button.parentNode.querySelectorAll("button")) b.disabled = true;
  try {
    const body = await call("POST", "/api/v1/schedules/" + encodeURIComponent(s.schedule_id) + "/" + action);
    const done = { pause: "Paused", resume: "Resumed", trigger: "Triggered" }[action];
    notice(done + " “" + s.name + "”" + (action === "trigger" && body ? ": execution " + body.execution_id : "") + ".");
  } catch (error) {
    if (error instanceof Refused) { showLogin("The daemon refused this token. Copy it again from DATA_DIR/api_token."); return; }
    notice("Could not " + action + " “" + s.name + "”: " + error.message, true);
  }
  await refresh();
}

function renderSchedules(page, now) {
  if (!page.items.length) return [el("p", { class: "muted", text: "No schedules." })];
  const rows = page.items.map((s) => {
    const next = s.next_run_time
      ? ["Next fire ", el("b", { class: "next-fire", text: wall(s.next_run_time) }), " " + s.timezone + ", " + ago(s.next_run_time, now)]
      : [s.paused ? "Paused" + (s.paused_reason ? ": " + s.paused_reason : "") : "No fire to come"];
    const pause = s.paused
      ? el("button", { type: "button", class: "secondary", onclick: (e) => act(s, "resume", e.currentTarget), text: "Resume" })
      : el("button", { type: "button", class: "secondary", onclick: (e) => act(s, "pause", e.currentTarget), text: "Pause" });
    return el("li", { class: "schedule", "data-schedule-id": s.schedule_id },
      el("div", { class: "what" },
        el("div", {}, el("b", { text: s.name }), el("span", { class: "badge " + s.status, text: s.status })),
        el("div", { class: "muted" }, timing(s) + " · " + s.target_command
          + (s.running_instances ? " · " + s.running_instances + " running" : "")),
        el("div", { class: "when" }, next),
        s.last_fire_time ? el("div", { class: "muted", text: "Last fire " + wall(s.last_fire_time) }) : null,
        s.failures_in_a_row ? el("div", { class: "err", text: s.failures_in_a_row + " failures in a row" }) : null),
      el("div", { class: "actions" }, pause,
        el("button", { type: "button", onclick: (e) => act(s, "trigger", e.currentTarget), text: "Trigger" })));
  });
  const more = page.total > page.shown ? el("p", { class: "muted", text: page.shown + " of " + page.total + " schedules shown." }) : null;
  return [more, el("ul", { class: "rows", id: "schedule-list" }, rows)];
}

function link(url, text) {
  return /^https?:\/\//i.test(url || "") ? el("a", { href: url, rel: "noopener noreferrer", target: "_blank", text })
    : el("span", { text });
}

function renderPublished(p) {
  if (!p) return [el("p", { class: "muted", text: "No published videos here (no pipeline installed)." })];
  if (p.error) return [sectionError(p)];
  if (!p.videos.length) return [el("p", { class: "muted", text: "Nothing published yet." })];
  return [el("ul", { class: "rows", id: "published-list" }, p.videos.map((v) =>
    el("li", {}, el("div", {}, link(v.url, v.title || v.job_id)),
      el("div", { class: "muted" }, wall(v.published_at) + (v.account_id ? " · " + v.account_id : "")),
      v.url && !/^https?:/i.test(v.url) ? el("div", { class: "muted mono", text: v.url }) : null)))];
}

function render(data) {
  const now = Date.parse(data.generated_at) || Date.now();
  const sections = data.sections || {};
  fill("quota-body", renderQuota(sections.quota));
  for (const bar of document.querySelectorAll("[data-share]")) bar.style.width = bar.dataset.share + "%";
  fill("jobs-body", renderJobs(data.jobs));
  fill("failures-body", renderFailures(data.jobs));
  fill("schedules-body", renderSchedules(data.schedules, now));
  fill("published-body", renderPublished(sections.published));
  const extra = Object.entries(sections).filter(([name]) => name !== "quota" && name !== "published");
  fill("extra", extra.map(([name, value]) => el("section", { class: "wide" }, el("h2", { text: name }),
    sectionError(value) || el("pre", { class: "mono", text: JSON.stringify(value, null, 2) }))));
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("token").value.trim();
  if (!token) return;
  sessionStorage.setItem(KEY, token);
  $("login-error").hidden = true;
  refresh();
});
$("logout").addEventListener("click", () => showLogin(""));
document.addEventListener("visibilitychange", () => {
  if (!document.hidden && sessionStorage.getItem(KEY) && !$("status").hidden) refresh();
});
if (sessionStorage.getItem(KEY)) refresh(); else showLogin("");
"""

PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex">
<link rel="icon" href="data:,">
<title>video-scheduler status</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>video-scheduler status</h1>
<span id="updated" aria-live="polite"></span>
<button id="logout" type="button" class="secondary" hidden>Log out</button>
</header>
<main>
<form id="login" autocomplete="off">
<h2>Sign in</h2>
<p id="login-error" class="error" role="alert" hidden></p>
<label for="token">API token</label>
<input id="token" name="token" type="password" required spellcheck="false" autocomplete="off">
<p class="hint">The token is in the file <code>DATA_DIR/api_token</code> on the daemon's machine
(e.g. <code>cat data/api_token</code>). This tab keeps it until it is closed (sessionStorage)
and sends it as <code>Authorization: Bearer</code>.</p>
<button type="submit">Show status</button>
</form>
<div id="status" hidden>
<p id="notice" class="notice" role="status" hidden></p>
<div id="grid">
<section id="quota"><h2>Today's quota</h2><div id="quota-body"></div></section>
<section id="jobs"><h2>Jobs</h2><div id="jobs-body"></div></section>
<section id="schedules" class="wide"><h2>Schedules</h2><div id="schedules-body"></div></section>
<section id="failures"><h2>Last failures</h2><div id="failures-body"></div></section>
<section id="published"><h2>Last published videos</h2><div id="published-body"></div></section>
<div id="extra" class="wide"></div>
</div>
</div>
</main>
<script>{_JS}</script>
</body>
</html>
"""
