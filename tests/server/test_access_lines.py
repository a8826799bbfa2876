"""The access log's direct line path: same bytes as a record, and only when nothing else
would look at the record (formatter, filters, levels, propagation, other handlers)."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator

import pytest

from airegistry.cli.server import _log_config
from airegistry.server import logging as access
from airegistry.server.asgi import RequestContext

LOGGERS = ("airegistry.server.access", "airegistry", "uvicorn", "uvicorn.error")


@pytest.fixture
def clean_loggers() -> Iterator[None]:
    """Put the loggers a configuration touches back as they were."""
    saved = {name: (list(lg.handlers), lg.level, lg.propagate, list(lg.filters), lg.disabled)
             for name in LOGGERS for lg in [logging.getLogger(name)]}
    yield
    for name, (handlers, level, propagate, filters, disabled) in saved.items():
        lg = logging.getLogger(name)
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate
        lg.filters[:] = filters
        lg.disabled = disabled


class _Finished(RequestContext):
    """A request whose duration is fixed, so that two lines about it are comparable."""

    duration_ms = 1.25  # type: ignore[assignment]


def _ctx(path: str = "/bucket/<b>\u00e9") -> RequestContext:
    return _Finished(method="GET", path=path, raw_path=path, raw_query="", headers={},
                          header_pairs=[], query=[], service="s3", operation="GetObject",
                          status=200, bytes_in=0, bytes_out=12, access_key="AKIDEXAMPLE")


def _only(handler: logging.Handler, *, propagate: bool = False) -> None:
    lg = logging.getLogger(access.ACCESS_LOGGER)
    lg.handlers[:] = [handler]
    lg.filters[:] = []
    lg.propagate = propagate
    lg.setLevel(logging.INFO)


def test_the_server_configuration_writes_lines_directly(clean_loggers: None) -> None:
    logging.config.dictConfig(_log_config("info"))
    handler = logging.getLogger(access.ACCESS_LOGGER).handlers[0]
    assert isinstance(handler, access.AccessLineHandler)
    assert access._direct_handler() is handler
    handler.setStream(stream := io.StringIO())
    ctx = _ctx()
    access.log_access(ctx)
    line = stream.getvalue()
    assert line == access.format_access_line(ctx) + "\n"
    assert json.loads(line)["path"] == "/bucket/<b>\u00e9"


def test_a_direct_line_is_what_a_plain_stream_handler_writes(clean_loggers: None) -> None:
    ctx = _ctx()
    _only(logging.StreamHandler(plain := io.StringIO()))
    access.log_access(ctx)
    _only(access.AccessLineHandler(direct := io.StringIO()))
    access.log_access(ctx)
    assert direct.getvalue() == plain.getvalue() != ""


@pytest.mark.parametrize("how", ["warning level", "logger disabled"])
def test_a_silenced_logger_writes_nothing(how: str, clean_loggers: None) -> None:
    _only(access.AccessLineHandler(out := io.StringIO()))
    lg = logging.getLogger(access.ACCESS_LOGGER)
    if how == "warning level":
        lg.setLevel(logging.WARNING)
    else:
        lg.disabled = True
    access.log_access(_ctx())
    assert out.getvalue() == ""


@pytest.mark.parametrize("setup", ["logger filter", "handler filter", "handler level",
                                   "formatter", "propagation", "second handler"])
def test_whatever_would_look_at_a_record_gets_one(setup: str, clean_loggers: None) -> None:
    handler = access.AccessLineHandler(out := io.StringIO())
    _only(handler, propagate=setup == "propagation")
    lg = logging.getLogger(access.ACCESS_LOGGER)
    seen: list[logging.LogRecord] = []

    def keep(record: logging.LogRecord) -> bool:
        seen.append(record)
        return False  # drop it: a direct write would not have asked

    if setup == "logger filter":
        lg.addFilter(keep)
    elif setup == "handler filter":
        handler.addFilter(keep)
    elif setup == "handler level":
        handler.setLevel(logging.ERROR)
    elif setup == "formatter":
        handler.setFormatter(logging.Formatter("ACCESS %(message)s"))
    elif setup == "second handler":
        lg.addHandler(logging.StreamHandler(other := io.StringIO()))
    parent = logging.getLogger("airegistry.server")
    caught: list[logging.LogRecord] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            caught.append(record)

    catcher = Catch()
    parent.addHandler(catcher)
    try:
        assert access._direct_handler() is None
        ctx = _ctx()
        access.log_access(ctx)
    finally:
        parent.removeHandler(catcher)
    line = access.format_access_line(ctx)
    if setup in ("logger filter", "handler filter"):
        assert [r.getMessage() for r in seen] == [line]
        assert out.getvalue() == ""
    elif setup == "handler level":
        assert out.getvalue() == ""
    elif setup == "formatter":
        assert out.getvalue() == f"ACCESS {line}\n"
    elif setup == "propagation":
        assert out.getvalue() == line + "\n"
        assert [r.getMessage() for r in caught] == [line]
    else:
        assert out.getvalue() == other.getvalue() == line + "\n"


def test_a_failed_write_is_reported_like_a_record(clean_loggers: None,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("disk full")

    handler = access.AccessLineHandler(Broken())
    _only(handler)
    reported: list[logging.LogRecord] = []
    monkeypatch.setattr(handler, "handleError", reported.append)
    ctx = _ctx()
    access.log_access(ctx)  # the request is not failed by its log line
    assert [r.getMessage() for r in reported] == [access.format_access_line(ctx)]
