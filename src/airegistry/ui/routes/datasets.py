"""Dataset pages: the table, one dataset (versions, statistics, rows), download, delete."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from airegistry.ui import web
from airegistry.ui.preview import Cursor
from airegistry.ui.render import row_view
from airegistry.ui.routes.overview import STATUSES

TECHNIQUES = ("sft", "dpo", "rlaif", "rlvr")
ORDERS = ("created", "name")


def dataset_list(request: Request) -> Response:
    web.require_user(request)
    filters = {
        "name": request.query_params.get("name", "").strip()[:63],
        "technique": web.choice(request, "technique", TECHNIQUES),
        "status": web.choice(request, "status", STATUSES),
        "order": web.choice(request, "order", ORDERS) or "created",
    }
    number = web.int_param(request, "page", 1, hi=10**7)
    result = web.state(request).model.list_page("datasets", page=number, **filters)
    return web.page(request, "datasets.html", nav="datasets", result=result, filters=filters,
                    techniques=TECHNIQUES, statuses=STATUSES)


def dataset_detail(request: Request) -> Response:
    web.require_user(request)
    model = web.state(request).model
    name = request.path_params["name"]
    ds = model.dataset(name, web.version_param(request.query_params.get("version")))
    start = Cursor(web.int_param(request, "row", 1) or 1, web.int_param(request, "at", None, lo=0))
    rows, preview_error = None, None
    if ds.file_type:
        try:
            rows = model.preview(ds, start)
        except (web.BadRequest, web.NotFound) as exc:
            preview_error = str(exc)
    charts, sampled, complete = model.length_histograms(ds) if rows and rows.rows else ({}, 0, True)
    views = [(row, row_view(row.value, ds.format) if row.value is not None else None)
             for row in (rows.rows if rows else [])]
    return web.page(request, "dataset.html", nav="datasets", ds=ds, preview=rows, views=views,
                    preview_error=preview_error, charts=charts, sampled=sampled,
                    sample_complete=complete, start=start)


def download(request: Request) -> Response:
    web.require_user(request)
    model = web.state(request).model
    ds = model.dataset(request.path_params["name"], web.version_param(request.query_params.get("version")))
    size, chunks = model.download(ds)
    filename = f"{ds.name}-{ds.version}.{ds.file_type or 'bin'}"
    return StreamingResponse(chunks, media_type="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Content-Length": str(size),
    })


def confirm_delete(request: Request) -> Response:
    web.require_user(request)
    model = web.state(request).model
    ds = model.dataset(request.path_params["name"], web.version_param(request.query_params.get("version")))
    return web.page(request, "confirm_delete.html", nav="datasets", kind="datasets",
                    what="dataset", name=ds.name, version=ds.version, content_status=ds.status)


async def delete(request: Request) -> Response:
    web.require_user(request)
    form = await web.checked_form(request)
    name = request.path_params["name"]
    version = web.version_param(str(form.get("version") or "")) or ""
    if not version:
        raise web.BadRequest("say which version to delete")
    deleted = await web.blocking(web.state(request).model.delete_version, "datasets", name, version)
    web.flash(request, f"Deleted dataset {name} version {version}." if deleted
              else f"Dataset {name} version {version} was already gone.")
    if await web.blocking(web.state(request).model.exists, "datasets", name):
        return web.redirect(web.name_path("/ui/datasets", name))
    return web.redirect("/ui/datasets")


routes = [
    Route("/ui/datasets", dataset_list, methods=["GET"]),
    Route("/ui/datasets/{name}", dataset_detail, methods=["GET"]),
    Route("/ui/datasets/{name}/download", download, methods=["GET"]),
    Route("/ui/datasets/{name}/delete", confirm_delete, methods=["GET"]),
    Route("/ui/datasets/{name}/delete", delete, methods=["POST"]),
]
