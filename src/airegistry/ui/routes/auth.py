"""Logging in and out: access key id + secret, or the one-time link of ``airegistry ui``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airegistry.ui import web


def _safe_next(target: str | None) -> str:
    """Only same-site UI paths: never an open redirect (``//evil``, ``https://...``)."""
    if not target or not target.startswith("/ui") or target.startswith("//") or "\\" in target:
        return "/ui/"
    return target


def login_page(request: Request) -> Response:
    st = web.state(request)
    nxt = _safe_next(request.query_params.get("next"))
    token = request.query_params.get("token")
    if token is not None:
        if st.auth.login_with_token(request.session, token):
            return web.redirect(nxt)
        return web.page(request, "login.html", status=401, next=nxt, error=(
            "This sign-in link was already used or is not valid. Restart `airegistry ui` "
            "for a new link" + (", or sign in with an access key." if st.auth.accepts_keys else ".")))
    if st.auth.user(request.session) is not None:
        return web.redirect(nxt)
    return web.page(request, "login.html", next=nxt, error=None)


async def login(request: Request) -> Response:
    form = await web.checked_form(request)
    st = web.state(request)
    nxt = _safe_next(str(form.get("next") or ""))
    key_id = str(form.get("access_key_id") or "").strip()
    secret = str(form.get("secret_access_key") or "")
    if st.auth.accepts_keys and await web.blocking(st.auth.login, request.session, key_id, secret):
        return web.redirect(nxt)
    return web.page(request, "login.html", status=401, next=nxt, key_id=key_id,
                    error="The access key id or the secret is not right.")


async def logout(request: Request) -> Response:
    await web.checked_form(request)
    request.session.clear()
    return web.redirect("/ui/login")


routes = [
    Route("/ui/login", login_page, methods=["GET"]),
    Route("/ui/login", login, methods=["POST"]),
    Route("/ui/logout", logout, methods=["POST"]),
]
