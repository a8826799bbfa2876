"""The overview page: counts per kind and status, recent versions, failed imports."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airegistry.ui import web

STATUSES = ("Available", "Importing", "ImportFailed", "Deleting", "DeleteFailed")


def overview(request: Request) -> Response:
    web.require_user(request)
    data = web.state(request).model.overview()
    return web.page(request, "overview.html", nav="overview", data=data, statuses=STATUSES)


routes = [Route("/ui/", overview, methods=["GET"])]
