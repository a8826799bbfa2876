"""Training-job pages: the table, one job (progress, curves, lineage, logs, stop), its model."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from airegistry.ui import web

JOB_STATUSES = ("InProgress", "Completed", "Failed", "Stopping", "Stopped")
MAX_TOKEN = 4096


def job_list(request: Request) -> Response:
    web.require_user(request)
    filters = {
        "name": request.query_params.get("name", "").strip()[:63],
        "status": web.choice(request, "status", JOB_STATUSES),
    }
    token = request.query_params.get("token", "")[:MAX_TOKEN]
    number = web.int_param(request, "page", 1, hi=10**7) if token else 1
    result = web.state(request).model.jobs_page(token=token, page=number, **filters)
    return web.page(request, "jobs.html", nav="jobs", result=result, filters=filters,
                    statuses=JOB_STATUSES)


def job_detail(request: Request) -> Response:
    web.require_user(request)
    job = web.state(request).model.job(request.path_params["name"])
    return web.page(request, "job.html", nav="jobs", job=job)


def progress(request: Request) -> Response:
    web.require_user(request)
    return JSONResponse(web.state(request).model.job_progress(request.path_params["name"]))


async def stop(request: Request) -> Response:
    web.require_user(request)
    await web.checked_form(request)
    name = request.path_params["name"]
    status = await web.blocking(web.state(request).model.stop_job, name)
    web.flash(request, f"Asked training job {name} to stop; it is {status}. The run keeps its "
                       "last weights and ends Stopped.")
    return web.redirect(web.name_path("/ui/jobs", name))


def model_detail(request: Request) -> Response:
    web.require_user(request)
    model = web.state(request).model.model(request.path_params["name"],
                                           web.version_param(request.query_params.get("version")))
    return web.page(request, "model.html", nav="jobs", model=model)


routes = [
    Route("/ui/jobs", job_list, methods=["GET"]),
    Route("/ui/jobs/{name}", job_detail, methods=["GET"]),
    Route("/ui/jobs/{name}/progress.json", progress, methods=["GET"]),
    Route("/ui/jobs/{name}/stop", stop, methods=["POST"]),
    Route("/ui/models/{name}", model_detail, methods=["GET"]),
]
