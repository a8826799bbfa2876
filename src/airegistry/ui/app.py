"""The web UI as one ASGI app: routes under ``/ui/``, templates, static files, security.

Mounted by the server for paths under ``/ui/`` (``ServerServices.mounts`` in ``server/compose.py``) and
served alone by ``airegistry ui``. Pages are rendered on the server with Jinja2
(autoescaping on for every template) and need no JavaScript; one small static script
refreshes the progress of a running evaluation or training job. Every response carries a
Content-Security-Policy that allows no inline script and no third-party origin, so
even markup that slipped through escaping could not run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from airegistry.session import Session
from airegistry.ui import web
from airegistry.ui.auth import NO_AUTH_WARNING, SESSION_COOKIE, SESSION_SECONDS, UIAuth, signing_key
from airegistry.ui.evaluations import EvaluationRunner
from airegistry.ui.read_model import ReadModel
from airegistry.ui.routes import auth as auth_routes
from airegistry.ui.routes import datasets, evaluators, jobs, overview
from airegistry.ui.state import RecordStore

log = logging.getLogger("airegistry.ui")

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class SecurityHeaders:
    """Adds the CSP and friends to every response; pages are never cached."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        static = scope.get("path", "").startswith("/ui/static/")

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += _HEADERS
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


class CatchAll:
    """An unexpected error becomes the error page (inside the session, with the headers)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracked(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            log.error("UI request %s %s failed", scope.get("method"), scope.get("path"),
                      exc_info=exc)
            if started:
                raise
            request = Request(scope, receive)
            response = web.page(request, "error.html", status=500, title="Server error",
                                message="Something went wrong on the server; the error was logged.")
            await response(scope, receive, send)


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("airegistry.ui", "templates"),
        autoescape=True,  # every template, whatever its extension
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=web.when, iso=web.iso, size=web.size, number=web.number)
    env.globals.update(url=web.url, name_path=web.name_path)
    return Jinja2Templates(env=env)


async def _login_required(request: Request, exc: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = "/ui/"
    return web.redirect(web.url("/ui/login", next=target))


def _error_page(status: int, title: str):
    async def handler(request: Request, exc: Exception) -> Response:
        message = str(exc) if not isinstance(exc, HTTPException) else (
            "There is no page at this address." if exc.status_code == 404 else str(exc.detail))
        return web.page(request, "error.html", status=status, title=title, message=message)

    return handler


async def _http_error(request: Request, exc: HTTPException) -> Response:
    titles = {404: "Not found", 405: "Not allowed", 400: "Bad request"}
    handler = _error_page(exc.status_code, titles.get(exc.status_code, "Error"))
    return await handler(request, exc)


async def _root(request: Request) -> Response:
    return RedirectResponse("/ui/", status_code=307)


def create_ui_app(session: Session, auth: UIAuth, *, standalone: bool = False) -> Any:
    """The UI over an embedded session's home.

    ``standalone`` also answers ``/`` with a redirect to ``/ui/`` (``airegistry ui``;
    under the server, ``/`` belongs to S3).
    """
    model = ReadModel(session)
    home_path = Path(model.home.path)
    store = RecordStore(home_path / "ui")
    if auth.open:
        log.warning("airegistry ui: %s", NO_AUTH_WARNING)
    routes: list[Any] = [Route("/ui", _root)]
    if standalone:
        routes.append(Route("/", _root))
    routes += (auth_routes.routes + overview.routes + datasets.routes + evaluators.routes
               + jobs.routes)
    routes.append(Mount("/ui/static", app=StaticFiles(packages=[("airegistry.ui", "static")]),
                        name="static"))
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(SessionMiddleware, secret_key=signing_key(home_path),
                       session_cookie=SESSION_COOKIE, max_age=SESSION_SECONDS, path="/ui",
                       same_site="strict", https_only=False),
            Middleware(CatchAll),
        ],
        exception_handlers={
            web.LoginRequired: _login_required,
            web.Forbidden: _error_page(403, "Access denied"),
            web.NotFound: _error_page(404, "Not found"),
            web.BadRequest: _error_page(400, "Bad request"),
            HTTPException: _http_error,
        },
    )
    app.state.model = model
    app.state.auth = auth
    app.state.store = store
    app.state.runner = EvaluationRunner(model, store)
    app.state.templates = _templates()
    return app


def create_server_ui(home: Path, keys: Any) -> Any:
    """The UI the server mounts: login with the server's keys, or open under ``--no-auth``."""
    return create_ui_app(Session(backend="embedded", home=home), UIAuth(keys=keys))
