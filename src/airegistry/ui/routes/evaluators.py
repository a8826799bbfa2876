"""Evaluator pages: the table, one evaluator (code or prompt, try it, evaluate), runs."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from airegistry.ui import web
from airegistry.ui.charts import from_counts
from airegistry.ui.evaluations import BINS
from airegistry.ui.evaluations import KIND as RUNS
from airegistry.ui.render import pretty, row_view
from airegistry.ui.routes.overview import STATUSES

TYPES = ("RewardFunction", "RewardPrompt")
TRIES = "tries"
MAX_FIELD = 200_000


def evaluator_list(request: Request) -> Response:
    web.require_user(request)
    filters = {
        "name": request.query_params.get("name", "").strip()[:63],
        "type": web.choice(request, "type", TYPES),
        "status": web.choice(request, "status", STATUSES),
        "order": web.choice(request, "order", ("created", "name")) or "created",
    }
    number = web.int_param(request, "page", 1, hi=10**7)
    result = web.state(request).model.list_page("evaluators", page=number, **filters)
    return web.page(request, "evaluators.html", nav="evaluators", result=result, filters=filters,
                    types=TYPES, statuses=STATUSES)


def _split_event(row: dict[str, Any]) -> dict[str, str]:
    """A row as the try-it form's fields: text prompt/response, everything else as JSON."""
    event = dict(row)
    if "response" not in event and isinstance(event.get("completion"), str):
        event["response"] = event["completion"]
    fields = {"prompt": "", "response": ""}
    for key in ("prompt", "response"):
        if isinstance(event.get(key), str):
            fields[key] = event.pop(key)
    fields["extra"] = pretty(event) if event else ""
    return fields


def _highlight(code: str) -> Any:
    from markupsafe import Markup
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    # Pygments escapes the code; its output is class-styled markup (no inline styles).
    return Markup(highlight(code, PythonLexer(), HtmlFormatter(cssclass="code", linenos="table")))


def _template_pieces(template: str, placeholders: list[str]) -> list[tuple[str, str]]:
    """The prompt as (kind, text) pieces so the page can mark ``{placeholders}``."""
    import re

    if not placeholders:
        return [("text", template)]
    pattern = re.compile("(" + "|".join(re.escape("{" + p + "}") for p in placeholders) + ")")
    return [("field" if i % 2 else "text", piece)
            for i, piece in enumerate(pattern.split(template)) if piece]


def evaluator_detail(request: Request) -> Response:
    web.require_user(request)
    st = web.state(request)
    q = request.query_params
    ev = st.model.evaluator(request.path_params["name"], web.version_param(q.get("version")))
    fields = {"prompt": "", "response": "", "extra": ""}
    row_error = None
    picked = {"dataset": q.get("dataset", "").strip(), "dataset_version": q.get("dataset_version", ""),
              "row": q.get("row", "")}
    if picked["dataset"]:
        try:
            row = st.model.dataset_row(picked["dataset"], web.version_param(picked["dataset_version"]),
                                       web.int_param(request, "row", 1) or 1)
            fields = _split_event(row)
        except (web.BadRequest, web.NotFound) as exc:
            row_error = str(exc)
    tried = st.store.get(TRIES, q.get("try", "")) if q.get("try") else None
    if tried and tried.get("evaluator") == ev.name:
        fields = tried["fields"]
        picked.update(tried.get("picked") or {})
    else:
        tried = None
    runs = [r for r in st.store.recent(RUNS, 50) if r.get("evaluator") == ev.name][:10]
    return web.page(
        request, "evaluator.html", nav="evaluators", ev=ev, fields=fields, row_error=row_error,
        picked=picked, tried=tried, runs=runs, dataset_names=st.model.dataset_names(),
        code_html=_highlight(ev.code) if ev.code else None,
        template_pieces=_template_pieces(ev.template, ev.placeholders) if ev.template else None,
        pretty=pretty,
    )


def _event_from_form(form: Any) -> tuple[dict[str, str], dict[str, Any]]:
    fields = {k: str(form.get(k) or "")[:MAX_FIELD] for k in ("prompt", "response", "extra")}
    event: dict[str, Any] = {}
    if fields["extra"].strip():
        try:
            extra = json.loads(fields["extra"])
        except ValueError as exc:
            raise web.BadRequest(f"The extra fields are not valid JSON: {exc}") from None
        if not isinstance(extra, dict):
            raise web.BadRequest("The extra fields must be a JSON object, e.g. {\"answer\": \"42\"}")
        event.update(extra)
    for key in ("prompt", "response"):
        if fields[key]:
            event[key] = fields[key]
    return fields, event


async def try_it(request: Request) -> Response:
    web.require_user(request)
    form = await web.checked_form(request)
    st = web.state(request)
    name = request.path_params["name"]
    version = web.version_param(str(form.get("version") or ""))
    fields, event = _event_from_form(form)
    result = await web.blocking(st.model.try_evaluator, name, version, event)
    try_id = st.store.new_id()
    picked = {k: str(form.get(k) or "")[:100] for k in ("dataset", "row")}
    record = {"id": try_id, "evaluator": name, "version": version, "fields": fields, "picked": picked,
              "reward": result.reward, "details": result.details, "error": result.error,
              "error_type": result.error_type, "latency_ms": result.latency_ms, "at": time.time()}
    await web.blocking(st.store.put, TRIES, try_id, record)
    await web.blocking(st.store.prune, TRIES)
    target = web.url(web.name_path("/ui/evaluators", name), version=version, **{"try": try_id})
    return web.redirect(target + "#try")


async def evaluate(request: Request) -> Response:
    web.require_user(request)
    form = await web.checked_form(request)
    st = web.state(request)
    name = request.path_params["name"]
    version = web.version_param(str(form.get("version") or ""))
    dataset = str(form.get("dataset") or "").strip()
    if not dataset:
        raise web.BadRequest("Pick a dataset to evaluate on.")
    raw_limit = str(form.get("limit") or "").strip()
    if raw_limit and (not raw_limit.isdigit() or int(raw_limit) < 1):
        raise web.BadRequest(f"The row limit must be a positive whole number, not {raw_limit!r}")
    run_id = await web.blocking(
        st.runner.start, name, version, dataset,
        web.version_param(str(form.get("dataset_version") or "")), int(raw_limit) if raw_limit else None)
    return web.redirect(f"/ui/evaluations/{run_id}")


def _run_or_404(request: Request) -> dict[str, Any]:
    run = web.state(request).runner.get(request.path_params["run_id"])
    if run is None:
        raise web.NotFound("There is no evaluation run with this id (runs are kept per registry "
                           "home; the newest 200 are kept).")
    return run


def evaluation(request: Request) -> Response:
    web.require_user(request)
    run = _run_or_404(request)
    reward_chart = None
    if run.get("bins"):
        reward_chart = from_counts(run["bins"], lo=0.0, step=1 / BINS, title="reward", x_label="reward")
    lowest = [(item, row_view(item["row"]) if item.get("row") is not None else None)
              for item in run.get("lowest") or []]
    return web.page(request, "evaluation.html", nav="evaluators", run=run, reward_chart=reward_chart,
                    lowest=lowest, pretty=pretty, running=run["state"] in ("queued", "running"))


def progress(request: Request) -> Response:
    web.require_user(request)
    run = _run_or_404(request)
    return JSONResponse({k: run.get(k) for k in ("state", "done", "total", "error")})


def confirm_delete(request: Request) -> Response:
    web.require_user(request)
    model = web.state(request).model
    ev = model.evaluator(request.path_params["name"], web.version_param(request.query_params.get("version")))
    return web.page(request, "confirm_delete.html", nav="evaluators", kind="evaluators",
                    what="evaluator", name=ev.name, version=ev.version, content_status=ev.status)


async def delete(request: Request) -> Response:
    web.require_user(request)
    form = await web.checked_form(request)
    name = request.path_params["name"]
    version = web.version_param(str(form.get("version") or "")) or ""
    if not version:
        raise web.BadRequest("say which version to delete")
    deleted = await web.blocking(web.state(request).model.delete_version, "evaluators", name, version)
    web.flash(request, f"Deleted evaluator {name} version {version}." if deleted
              else f"Evaluator {name} version {version} was already gone.")
    if await web.blocking(web.state(request).model.exists, "evaluators", name):
        return web.redirect(web.name_path("/ui/evaluators", name))
    return web.redirect("/ui/evaluators")


routes = [
    Route("/ui/evaluators", evaluator_list, methods=["GET"]),
    Route("/ui/evaluators/{name}", evaluator_detail, methods=["GET"]),
    Route("/ui/evaluators/{name}/try", try_it, methods=["POST"]),
    Route("/ui/evaluators/{name}/evaluate", evaluate, methods=["POST"]),
    Route("/ui/evaluators/{name}/delete", confirm_delete, methods=["GET"]),
    Route("/ui/evaluators/{name}/delete", delete, methods=["POST"]),
    Route("/ui/evaluations/{run_id}", evaluation, methods=["GET"]),
    Route("/ui/evaluations/{run_id}/progress.json", progress, methods=["GET"]),
]
