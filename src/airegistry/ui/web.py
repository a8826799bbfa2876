"""What every UI route shares: rendering a page, the login check, CSRF, query parameters.

Errors are exceptions that the app turns into pages (``LoginRequired`` into a redirect to
the login page, the others into an error page with their status), so a route reads as
the happy path and no stack trace ever reaches a browser.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from airegistry.ui.auth import NO_AUTH_WARNING, csrf_ok, csrf_token
from airegistry.ui.errors import BadRequest, NotFound

__all__ = ["BadRequest", "Forbidden", "LoginRequired", "NotFound"]

MAX_FORM_BYTES = 1 << 20
_VERSION_RE = re.compile(r"^\d{1,4}(\.\d{1,4}){0,2}$")


class LoginRequired(Exception):
    """No valid session: answered with a redirect to the login page."""


class Forbidden(Exception):
    """The request is refused (a POST without a valid CSRF token)."""


def state(request: Request) -> Any:
    return request.app.state


def require_user(request: Request) -> str:
    user = state(request).auth.user(request.session)
    if user is None:
        raise LoginRequired()
    return user


def page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    """Render a template with what the layout needs (user, CSRF token, warnings, flash)."""
    st = state(request)
    session = request.session
    context.update(
        request=request,
        user=st.auth.user(session),
        auth_open=st.auth.open,
        no_auth_warning=NO_AUTH_WARNING,
        csrf=csrf_token(session),
        flash=session.pop("flash", None),
    )
    return st.templates.TemplateResponse(request, template, context, status_code=status)


def flash(request: Request, message: str) -> None:
    request.session["flash"] = message[:500]


async def checked_form(request: Request) -> FormData:
    """The posted form, after the CSRF check (403 page without a valid token).

    Every UI form is ``application/x-www-form-urlencoded`` (no uploads), so the body is
    parsed with the standard library, up to ``MAX_FORM_BYTES``.
    """
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise BadRequest(f"The form is larger than {MAX_FORM_BYTES:,} bytes.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"The form cannot be read: {exc}") from None
    form = FormData(pairs)
    if not csrf_ok(request.session, form.get("csrf_token")):
        raise Forbidden("This form has expired or did not come from this site (missing or "
                        "wrong CSRF token). Go back, reload the page and try again.")
    return form


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def url(path: str, **params: Any) -> str:
    """``path`` with the non-empty ``params`` as a query string."""
    query = {k: v for k, v in params.items() if v not in (None, "")}
    return path + ("?" + urlencode(query) if query else "")


def name_path(prefix: str, name: str, suffix: str = "") -> str:
    return f"{prefix}/{quote(name, safe='')}{suffix}"


def int_param(request: Request, name: str, default: int | None = None, *, lo: int = 1,
              hi: int = 10**12) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise BadRequest(f"{name} must be a whole number between {lo} and {hi}, not {raw!r}")
    return int(raw)


def version_param(value: str | None) -> str | None:
    """``1`` means ``1.0.0``, as in the SDK; anything else that is not a version is a 400."""
    if value in (None, ""):
        return None
    if not _VERSION_RE.match(value):
        raise BadRequest(f"{value!r} is not a version (MAJOR.MINOR.PATCH, e.g. 1.0.0)")
    parts = [str(int(p)) for p in value.split(".")]
    return ".".join(parts + ["0"] * (3 - len(parts)))


def choice(request: Request, name: str, allowed: tuple[str, ...], default: str = "") -> str:
    value = request.query_params.get(name, default)
    if value and value not in allowed:
        raise BadRequest(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value


async def blocking(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run read-model work off the event loop (Starlette's thread pool)."""
    return await run_in_threadpool(fn, *args, **kwargs)


def when(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return dt.datetime.fromtimestamp(float(epoch), dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def iso(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return dt.datetime.fromtimestamp(float(epoch), dt.timezone.utc).isoformat(timespec="seconds")


def size(n: int | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def number(n: Any) -> str:
    if isinstance(n, bool) or not isinstance(n, int | float):
        return "" if n is None else str(n)
    return f"{n:,}" if isinstance(n, int) else f"{n:,.1f}"
