"""The two ways a UI request fails before any page is drawn (the web layer maps them to pages)."""

from __future__ import annotations


class NotFound(Exception):
    """What the page asks for does not exist (answered with a 404 page)."""


class BadRequest(Exception):
    """The request itself is wrong: a bad version string, a bad row position (400 page)."""


__all__ = ["BadRequest", "NotFound"]
