"""The UI's read model over a real embedded home, the browse queries, rendering and auth."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from airegistry.ui import render
from airegistry.ui.preview import Cursor


@pytest.fixture
def model(registry_home: Path):
    from airegistry.session import Session
    from airegistry.ui.read_model import ReadModel

    return ReadModel(Session(backend="embedded", home=registry_home))


def _dataset(model, write_jsonl, name: str, rows: list, technique: str = "sft"):
    from airegistry.dataset import DataSet

    return DataSet.create(name, str(write_jsonl(f"{name}.jsonl", rows)), technique,
                          sagemaker_session=model.session)


def test_browse_latest_versions_filters_and_totals(model, write_jsonl) -> None:

    rows = [{"prompt": "p", "completion": "c"}]
    for name in ("alpha", "beta", "gamma-x"):
        _dataset(model, write_jsonl, name, rows)
    _dataset(model, write_jsonl, "alpha", rows)  # alpha 2.0.0
    _dataset(model, write_jsonl, "prefs", [{"prompt": "p", "chosen": "a", "rejected": "b"}], "dpo")
    browse, hub = model.browse, model.hub
    page = browse.page(hub, "DataSet", order="name", limit=2)
    assert [(r.name, r.version) for r in page.rows] == [("alpha", "2.0.0"), ("beta", "1.0.0")]
    assert page.total == 4
    assert browse.page(hub, "DataSet", order="name", offset=2, limit=2).rows[1].name == "prefs"
    past = browse.page(hub, "DataSet", offset=50)
    assert past.rows == [] and past.total == 4
    assert [r.name for r in browse.page(hub, "DataSet", name_contains="A-X").rows] == ["gamma-x"]
    dpo = browse.page(hub, "DataSet", keywords=["customization_technique:dpo"])
    assert [r.name for r in dpo.rows] == ["prefs"] and dpo.rows[0].stats["format"] == "preference"
    everything = browse.page(hub, "DataSet", latest_only=False)
    assert everything.total == 5
    assert browse.page(hub, "DataSet", name_contains="100%_").total == 0
    assert browse.counts(hub, "DataSet") == {"Available": (5, 4)}
    with pytest.raises(ValueError):
        browse.page(hub, "DataSet", order="size")


def test_dataset_view_preview_and_histograms(model, write_jsonl) -> None:
    rows = [{"prompt": "q" * i, "completion": "a" * (2 * i)} for i in range(1, 61)]
    _dataset(model, write_jsonl, "lengths", rows)
    ds = model.dataset("lengths")
    assert ds.format == "prompt_completion" and ds.stats["rows"] == 60 and ds.file_type == "jsonl"
    page = model.preview(ds, Cursor())
    assert len(page.rows) == 50 and page.next == Cursor(51, page.next.at)
    assert model.preview(ds, page.next).rows[-1].value == rows[-1]
    charts, sampled, complete = model.length_histograms(ds)
    assert set(charts) == set(ds.stats["stats"]) == {"prompt", "completion"}
    assert sampled == 60 and complete and charts["prompt"].total == 60
    size, chunks = model.download(ds)
    assert b"".join(chunks) == write_jsonl("again.jsonl", rows).read_bytes() and size > 0
    assert model.dataset_row("lengths", None, 3) == rows[2]


def test_missing_things_are_not_found_and_bad_input_is_bad_request(model) -> None:
    from airegistry.ui.errors import BadRequest, NotFound

    with pytest.raises(NotFound, match=r"no dataset '\.\./etc'"):
        model.dataset("../etc")
    with pytest.raises(NotFound):
        model.evaluator("nope")
    with pytest.raises(BadRequest):
        model.dataset("x", "not-a-version")


def test_text_length_keys_match_the_import_statistics(tmp_path: Path) -> None:
    from airegistry.formats import validate

    rows = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "look"}]},
                      {"role": "assistant", "content": "ok"}]},
    ]
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = validate(path, technique="sft")
    keys = {k for row in rows for k, _ in render.text_lengths(row)}
    assert keys == set(report.stats)


def test_failure_reasons_parse_into_lines_and_details(tmp_path: Path) -> None:
    from airegistry.formats import validate

    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "x"}\n\n{oops\n'
                    + '{"prompt": " ", "completion": "c"}\n')
    reason = validate(path, technique="sft").summary(max_chars=1024)
    assert render.failure_lines(reason) == [2, 4, 5]
    details = render.failure_details(reason)
    assert details[0].startswith("line 2 $.completion") and len(details) == 3
    assert render.failure_lines("Cannot read the dataset source s3://b/k") == []
    assert render.failure_details(None) == []


@pytest.mark.parametrize(("row", "layout"), [
    ({"prompt": "p", "completion": "c", "id": 7}, "blocks"),
    ({"input": "i", "output": "o"}, "blocks"),
    ({"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]},
     "conversation"),
    ({"system": [{"text": "s"}], "messages": [{"role": "user", "content": [{"text": "u"}, {"image": {}}]},
                                              {"role": "assistant", "content": [{"text": "a"}]}]},
     "conversation"),
    ({"prompt": "p", "chosen": "good", "rejected": "bad"}, "sides"),
    ({"messages": [{"role": "user", "content": [{"text": "q"}]},
                   {"role": "assistant", "candidates": [
                       {"content": [{"text": "x"}], "preferenceLabel": "preferred"},
                       {"content": [{"text": "y"}], "preferenceLabel": "non-preferred"}]}]}, "sides"),
    ({"prompt": "p", "samples": [{"completion": "c", "score": 1}]}, "json"),
    ({"query": "q"}, "json"),
    ([1, 2], "json"),
    ({"prompt": "p", "completion": "c"}, "blocks"),
])
def test_row_views_per_format(row, layout) -> None:
    view = render.row_view(row)
    assert view.layout == layout
    if layout == "sides":
        assert len(view.sides) == 2


def test_a_row_that_breaks_its_format_falls_back_to_json() -> None:
    assert render.row_view({"messages": "not a list"}, "chat").layout == "json"
    assert render.row_view({"prompt": 3}, "prompt_completion").layout == "json"


def test_sessions_follow_the_keys(tmp_path: Path) -> None:
    from airegistry.server.auth import AuthConfig
    from airegistry.ui.auth import UIAuth, csrf_ok, csrf_token, signing_key

    keys = AuthConfig(keys={"AKID1": "s" * 40})
    auth = UIAuth(keys=keys)
    session: dict = {"csrf": "planted-" + "x" * 40}
    assert not auth.login(session, "AKID1", "wrong") and auth.user(session) is None
    assert not auth.login(session, "NOPE", "s" * 40)
    assert auth.login(session, "AKID1", "s" * 40) and auth.user(session) == "AKID1"
    assert session["csrf"] != "planted-" + "x" * 40 and "s" * 40 not in json.dumps(session)
    assert csrf_ok(session, csrf_token(session)) and not csrf_ok(session, "x") and not csrf_ok({}, "")
    keys.keys = {"AKID1": "rotated" * 6}
    assert auth.user(session) is None  # a rotated secret ends the session
    token_auth = UIAuth(one_time_token="t" * 43)
    first: dict = {}
    assert token_auth.login_with_token(first, "t" * 43) and token_auth.user(first) == "local"
    assert not token_auth.login_with_token({}, "t" * 43)  # once only
    assert UIAuth().open and UIAuth().user({}) == "anonymous"
    key = signing_key(tmp_path)
    assert signing_key(tmp_path) == key and len(key) == 64
    assert os.stat(tmp_path / "ui-session.key").st_mode & 0o077 == 0


def test_histogram_bins_and_ticks() -> None:
    from airegistry.ui.charts import from_counts, histogram

    chart = histogram([0, 1, 2, 3, 50, 99], title="t", lo=0, integer=True)
    assert sum(b.count for b in chart.bars) == 6 and chart.total == 6
    assert len(chart.bars) == 20 and chart.bars[0].count == 4 and chart.bars[0].label == "0–4"
    assert [t.label for t in chart.y_ticks] == ["0", "2", "4"]
    rewards = from_counts([0, 5, 10], lo=0.0, step=1 / 3, title="r")
    assert [b.count for b in rewards.bars] == [0, 5, 10]
    assert rewards.bars[2].height > rewards.bars[1].height > rewards.bars[0].height == 0
    assert histogram([], title="empty").bars == []


def test_datasets_in_a_bucket_outside_the_registry_preview_through_s3_ranges(
        model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dataset registered by reference to someone else's S3 (here a moto server)."""
    import boto3
    from moto.server import ThreadedMotoServer

    from airegistry.dataset import DataSet

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://{host}:{port}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        rows = [{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(1, 80)]
        body = "".join(json.dumps(r) + "\n" for r in rows).encode()
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="team-data")
        s3.put_object(Bucket="team-data", Key="sft/train.jsonl", Body=body)
        DataSet.create("external", "s3://team-data/sft/train.jsonl", "sft",
                       sagemaker_session=model.session)
        ds = model.dataset("external")
        assert ds.status == "Available" and ds.method == "generated"
        first = model.preview(ds, Cursor())
        second = model.preview(ds, first.next)
        assert second.rows[0].value == rows[50] and second.next is None
        assert b"".join(model.download(ds)[1]) == body
    finally:
        server.stop()
