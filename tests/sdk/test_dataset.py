"""The DataSet API of the seed on the embedded registry, including its failure modes."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from airegistry.air_constants import HubContentStatus
from airegistry.air_hub import AIRHub
from airegistry.dataset import DataSet
from airegistry.dataset_utils import DataSetMethod
from airegistry.train.common import CustomizationTechnique

SFT_ROWS = [{"prompt": f"question {i}", "completion": f"answer {i}"} for i in range(20)]
DPO_ROWS = [{"prompt": "q", "chosen": "good", "rejected": "bad"}]


def test_create_get_list_versions_delete(backend, write_jsonl) -> None:
    path = write_jsonl("train.jsonl", SFT_ROWS)
    ds = DataSet.create(
        name="my-training-dataset",
        source=str(path),
        customization_technique=CustomizationTechnique.SFT,
        description="Training dataset",
        wait=True,
        tags=[{"Key": "Project", "Value": "Chatbot"}, ("DataSource", "CustomerSupport")],
    )
    assert ds.status == HubContentStatus.AVAILABLE
    assert ds.status == "Available"
    assert ds.version == "1.0.0"
    assert ds.method is DataSetMethod.UPLOADED
    assert ds.customization_technique is CustomizationTechnique.SFT
    assert ds.source.startswith("s3://airegistry-") and ds.source.endswith("/train.jsonl")
    assert ds.stats["rows"] == 20 and ds.stats["format"] == "prompt_completion"
    assert ds.created_time.tzinfo is not None

    got = DataSet.get("my-training-dataset")
    assert (got.arn, got.source, got.method) == (ds.arn, ds.source, ds.method)

    page = DataSet.list(max_results=50)
    assert [item["name"] for item in page["items"]] == ["my-training-dataset"]
    item = page["items"][0]
    assert item["status"] is HubContentStatus.AVAILABLE
    assert item["source"] == ds.source
    assert item["customization_technique"] is CustomizationTechnique.SFT

    v2 = ds.create_version(str(path))
    assert v2.version == "2.0.0"
    versions = ds.get_versions()
    assert [v["Version"] for v in versions] == ["2.0.0", "1.0.0"]
    assert set(versions[0]) == {"Name", "Version", "Arn", "Status", "CreationTime", "LastModifiedTime"}

    tags_keywords = AIRHub.describe_hub_content("DataSet", "my-training-dataset", "1.0.0")["HubContentSearchKeywords"]
    assert "project:chatbot" in tags_keywords and "method:uploaded" in tags_keywords

    assert ds.delete(version="1") is True
    assert ds.delete(version="1") is False
    assert DataSet.get("my-training-dataset").version == "2.0.0"
    assert DataSet.delete_by_name("my-training-dataset") is True
    with pytest.raises(ClientError) as exc:
        DataSet.get("my-training-dataset")
    assert exc.value.response["Error"]["Code"] == "ResourceNotFound"


def test_reading_data_back(backend, write_jsonl, tmp_path: Path) -> None:
    path = write_jsonl("train.jsonl", SFT_ROWS)
    ds = DataSet.create("readback", str(path), CustomizationTechnique.SFT)
    with ds.open() as stream:
        assert stream.read() == path.read_bytes()
    target = ds.download(tmp_path / "out")
    (tmp_path / "out").mkdir(exist_ok=True) if not target.parent.exists() else None
    assert target.read_bytes() == path.read_bytes()
    frame = ds.to_pandas()
    assert list(frame.columns) == ["prompt", "completion"] and len(frame) == 20


def test_s3_source_by_reference(backend, write_jsonl) -> None:
    from airegistry.session import default_session

    backend.put_file("my-bucket", "data/eval.jsonl", write_jsonl("eval.jsonl", SFT_ROWS))
    ds = DataSet.create("eval-dataset", "s3://my-bucket/data/eval.jsonl", CustomizationTechnique.SFT)
    assert ds.method is DataSetMethod.GENERATED
    assert ds.source == "s3://my-bucket/data/eval.jsonl"
    assert ds.status is HubContentStatus.AVAILABLE
    ds.delete()
    # Objects registered by reference are never deleted by the registry.
    assert default_session().objects.exists("my-bucket", "data/eval.jsonl")


def test_s3_source_with_bad_rows_ends_import_failed(backend, write_jsonl) -> None:
    rows = [json.dumps(r) for r in SFT_ROWS[:3]] + ['{"prompt": "", "completion": "x"}', "not json"]
    backend.put_file("my-bucket", "bad.jsonl", write_jsonl("bad.jsonl", rows, raw=True))
    with pytest.raises(ValueError, match="line 4"):
        DataSet.create("bad-remote", "s3://my-bucket/bad.jsonl", CustomizationTechnique.SFT)
    failed = DataSet.get("bad-remote")
    assert failed.status is HubContentStatus.IMPORT_FAILED
    assert "4" in failed.failure_reason and "5" in failed.failure_reason
    assert len(failed.failure_reason) <= 1024
    assert failed.delete() is True


def test_wait_false_then_wait(backend, write_jsonl) -> None:
    ds = DataSet.create("later", str(write_jsonl("t.jsonl", SFT_ROWS)), "sft", wait=False)
    assert ds.status in (HubContentStatus.IMPORTING, HubContentStatus.AVAILABLE)
    ds.wait(poll=0.1, timeout=30)
    assert ds.status is HubContentStatus.AVAILABLE
    assert ds.refresh() is ds


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("missing.jsonl", "not found"),
        ("data.txt", "extension"),
    ],
)
def test_invalid_sources_raise_value_error(backend, tmp_path: Path, source: str, match: str) -> None:
    if source.endswith(".txt"):
        (tmp_path / source).write_text("hello")
    with pytest.raises(ValueError, match=match):
        DataSet.create("bad-source", str(tmp_path / source), "sft")
    assert DataSet.list()["items"] == []


def test_empty_file_and_size_limit(registry_home: Path, tmp_path: Path, monkeypatch, write_jsonl) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        DataSet.create("empty", str(empty), "sft")
    monkeypatch.setenv("AIREGISTRY_MAX_DATASET_BYTES", "100")
    with pytest.raises(ValueError, match="limit"):
        DataSet.create("too-big", str(write_jsonl("big.jsonl", SFT_ROWS)), "sft")
    assert DataSet.list()["items"] == []


def test_invalid_rows_name_lines_and_store_nothing(backend, write_jsonl) -> None:
    rows = [json.dumps(r) for r in SFT_ROWS[:2]] + ['{"prompt": "x"}', json.dumps(SFT_ROWS[0])]
    with pytest.raises(ValueError, match="line 3"):
        DataSet.create("broken", str(write_jsonl("broken.jsonl", rows, raw=True)), "sft")
    from airegistry.home import Home

    store = Home(backend.home, start_jobs=False).objects
    listed = [o.key for b in store.list_buckets() for o in store.list_objects(b.name).contents]
    assert listed == []


def test_dpo_rows_registered_as_sft_are_rejected(backend, write_jsonl) -> None:
    with pytest.raises(ValueError) as exc:
        DataSet.create("dpo-as-sft", str(write_jsonl("dpo.jsonl", DPO_ROWS)), CustomizationTechnique.SFT)
    assert "line 1" in str(exc.value)
    ok = DataSet.create("dpo", str(write_jsonl("dpo.jsonl", DPO_ROWS)), CustomizationTechnique.DPO)
    assert ok.stats["format"] == "preference"


@pytest.mark.parametrize("name", ["../escape", "a/b", "-leading", "x" * 64, "has space", ""])
def test_bad_names(registry_home: Path, write_jsonl, name: str) -> None:
    with pytest.raises(ValueError, match="Invalid dataset name"):
        DataSet.create(name, str(write_jsonl("t.jsonl", SFT_ROWS)), "sft")


def test_unknown_technique(registry_home: Path, write_jsonl) -> None:
    with pytest.raises(ValueError, match="Unknown customization technique"):
        DataSet.create("t", str(write_jsonl("t.jsonl", SFT_ROWS)), "ppo")


def test_unknown_version_and_document_too_large(backend, write_jsonl) -> None:
    DataSet.create("known", str(write_jsonl("t.jsonl", SFT_ROWS)), "sft")
    with pytest.raises(ClientError) as exc:
        DataSet.get("known", version="7.0.0")
    assert exc.value.response["Error"]["Code"] == "ResourceNotFound"
    with pytest.raises(ClientError) as exc:
        AIRHub.import_hub_content(
            "DataSet", "huge", "2.0.0",
            {"DatasetS3Bucket": "b", "DatasetS3Prefix": "k.jsonl", "Padding": "x" * 327_680},
            "1.0.0",
        )
    assert exc.value.response["Error"]["Code"] == "ValidationException"


def test_sixteen_threads_create_distinct_versions(backend, write_jsonl) -> None:
    path = write_jsonl("t.jsonl", SFT_ROWS)
    DataSet.list()  # open the home once before the race
    errors: list[BaseException] = []
    versions: list[str] = []
    lock = threading.Lock()

    def create() -> None:
        try:
            ds = DataSet.create("raced", str(path), "sft", wait=False)
            with lock:
                versions.append(ds.version)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(versions, key=lambda v: int(v.split(".")[0])) == [f"{i}.0.0" for i in range(1, 17)]


def test_split_jsonl(backend, write_jsonl) -> None:
    ds = DataSet.create("whole", str(write_jsonl("all.jsonl", SFT_ROWS)), "sft")
    train, evaluation = ds.split(0.75, seed=3)
    assert train.name == "whole-train" and evaluation.name == "whole-eval"
    assert train.stats["rows"] + evaluation.stats["rows"] == 20
    again_train, _ = ds.split(0.75, seed=3, train_name="again-train", eval_name="again-eval")
    assert again_train.open().read() == train.open().read()


def test_split_csv_keeps_header(backend, tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("prompt,completion\n" + "".join(f"q{i},a{i}\n" for i in range(30)))
    ds = DataSet.create("csvdata", str(path), "sft")
    train, evaluation = ds.split(0.5, seed=1)
    assert train.open().read().startswith(b"prompt,completion\n")
    assert evaluation.open().read().startswith(b"prompt,completion\n")
    assert train.stats["rows"] + evaluation.stats["rows"] == 30


def test_get_all_iterates_entities(backend, write_jsonl) -> None:
    path = write_jsonl("t.jsonl", SFT_ROWS)
    for name in ("one", "two", "three"):
        DataSet.create(name, str(path), "sft")
    names = sorted(d.name for d in DataSet.get_all())
    assert names == ["one", "three", "two"]
    assert len(list(DataSet.get_all(max_results=2))) == 2


def test_corrupted_object_is_detected_not_served(registry_home: Path, write_jsonl) -> None:
    from airegistry.session import default_session
    from airegistry.storage.blobs.errors import CorruptObjectError

    ds = DataSet.create("fragile", str(write_jsonl("t.jsonl", SFT_ROWS)), "sft")
    store = default_session().home.objects
    bucket, key = ds.source[5:].split("/", 1)
    data_files = [p for p in store.root.rglob("*") if p.is_file() and p.read_bytes().find(b"question 5") >= 0]
    assert data_files, "could not find the stored object on disk"
    blob = data_files[0]
    raw = bytearray(blob.read_bytes())
    at = raw.find(b"question 5")
    raw[at] = ord("Q")
    blob.write_bytes(bytes(raw))
    with pytest.raises(CorruptObjectError), ds.open() as stream:
        stream.read()
    # A new version importing the same (corrupt) object by reference fails its import.
    with pytest.raises(ValueError, match=r"(?i)corrupt|checksum|sha256"):
        DataSet.create("fragile-ref", f"s3://{bucket}/{key}", "sft")


def test_uploaded_object_is_collected_with_its_last_version(backend, write_jsonl) -> None:
    from airegistry.dataset import parse_s3_uri
    from airegistry.session import default_session

    ds = DataSet.create("collected", str(write_jsonl("t.jsonl", SFT_ROWS)), "sft")
    location = parse_s3_uri(ds.source)
    objects = default_session().objects
    assert objects.exists(*location)
    assert ds.delete() is True
    assert not objects.exists(*location)
