"""The SageMaker JSON 1.1 wire: decoding, validation, dispatch, output and errors."""

from __future__ import annotations

import enum
import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airegistry.hub.botocore_model import OperationError
from airegistry.hub.json_protocol import CONTENT_TYPE, SageMakerWire

T0 = datetime(2024, 5, 6, 7, 8, 9, 250000, tzinfo=timezone.utc)


class Status(str, enum.Enum):
    AVAILABLE = "Available"


class Recorder:
    """Fake handlers that remember what they were given and answer canned outputs."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict]] = []
        self.describe_output: dict[str, Any] = {}
        self.raise_on_describe: BaseException | None = None

    def handlers(self) -> dict:
        return {
            "DescribeHubContent": self.describe,
            "ListHubContents": self.list_contents,
            "ImportHubContent": self.import_content,
            "DeleteHub": self.delete_hub,
            "CreateHub": self.create_hub,
        }

    def describe(self, params: dict) -> dict:
        self.received.append(("DescribeHubContent", params))
        if self.raise_on_describe is not None:
            raise self.raise_on_describe
        out = {
            "HubContentName": params["HubContentName"],
            "HubContentArn": "arn:aws:sagemaker:us-east-1:123456789012:hub-content/h/DataSet/x/1.0.0",
            "HubContentVersion": "1.0.0",
            "HubContentType": params["HubContentType"],
            "DocumentSchemaVersion": "2.0.0",
            "HubName": params["HubName"],
            "HubArn": "arn:aws:sagemaker:us-east-1:123456789012:hub/h",
            "HubContentDocument": "{}",
            "HubContentStatus": "Available",
            "CreationTime": T0,
        }
        out.update(self.describe_output)
        return out

    def list_contents(self, params: dict) -> dict:
        self.received.append(("ListHubContents", params))
        return {"HubContentSummaries": []}

    def import_content(self, params: dict) -> dict:
        self.received.append(("ImportHubContent", params))
        return {"HubArn": "arn:h", "HubContentArn": "arn:c"}

    def delete_hub(self, params: dict) -> None:
        self.received.append(("DeleteHub", params))
        return None

    def create_hub(self, params: dict) -> dict:
        self.received.append(("CreateHub", params))
        raise OperationError("ResourceInUse", f"Hub {params['HubName']} already exists.")


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def wire(rec: Recorder) -> SageMakerWire:
    return SageMakerWire(rec.handlers())


def send(wire: SageMakerWire, op: str | None, payload: Any) -> tuple[int, dict[str, str], dict]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    target = None if op is None else (op if "." in op else f"SageMaker.{op}")
    status, headers, data = wire.handle(target, body)
    assert headers["Content-Type"] == CONTENT_TYPE
    assert headers["x-amzn-RequestId"]
    return status, headers, json.loads(data)


def expect_error(result: tuple[int, dict[str, str], dict], code: str, status: int = 400) -> str:
    got_status, headers, body = result
    assert (got_status, body.get("__type")) == (status, code), body
    assert headers["x-amzn-ErrorType"] == code
    assert set(body) == {"__type", "message"}
    return body["message"]


DESCRIBE = {"HubName": "h", "HubContentType": "DataSet", "HubContentName": "ds"}


def importing(**overrides: Any) -> dict:
    params = {"HubName": "h", "HubContentType": "DataSet", "HubContentName": "ds",
              "DocumentSchemaVersion": "2.0.0", "HubContentDocument": "{}"}
    params.update(overrides)
    return params


# ------------------------------------------------------------------- target


@pytest.mark.parametrize(
    "target",
    ["SageMaker.DescribeNothing", "SageMaker.CreateModel", "DynamoDB_20120810.GetItem",
     "SageMaker.", "SageMaker.Describe Hub", "describehubcontent"],
)
def test_unknown_target(wire: SageMakerWire, rec: Recorder, target: str) -> None:
    message = expect_error(send(wire, target, DESCRIBE), "UnknownOperationException")
    assert "not supported" in message
    assert rec.received == []


@pytest.mark.parametrize("target", [None, ""])
def test_missing_target(wire: SageMakerWire, target: str | None) -> None:
    status, headers, data = wire.handle(target, b"{}")
    assert status == 400
    assert headers["x-amzn-ErrorType"] == "UnknownOperationException"
    assert json.loads(data)["__type"] == "UnknownOperationException"
    assert "X-Amz-Target" in json.loads(data)["message"]


def test_operation_known_to_sagemaker_but_not_registered(wire: SageMakerWire) -> None:
    message = expect_error(send(wire, "DescribeHub", {"HubName": "h"}), "UnknownOperationException")
    assert message == "Operation DescribeHub is not supported"


def test_handlers_must_name_real_operations() -> None:
    with pytest.raises(ValueError, match="DescribeNothing"):
        SageMakerWire({"DescribeNothing": lambda p: {}})
    with pytest.raises(TypeError):
        SageMakerWire({"DescribeHub": "not callable"})  # type: ignore[dict-item]


# --------------------------------------------------------------------- body


@pytest.mark.parametrize(
    "body",
    [b'{"HubName": ', b"not json", b'{"HubName": "h",}', b"\xff\xfe{}", b'{"MaxResults": NaN}',
     b"[" * 100_000 + b"]" * 100_000, b'{"MaxResults": 1' + b"0" * 5000 + b"}"],
    ids=["truncated", "garbage", "trailing-comma", "not-utf8", "nan", "deep-nesting", "huge-int"],
)
def test_malformed_json(wire: SageMakerWire, rec: Recorder, body: bytes) -> None:
    expect_error(send(wire, "ListHubContents", body), "SerializationException")
    assert rec.received == []


@pytest.mark.parametrize("payload", [[DESCRIBE], "DescribeHubContent", 42, None])
def test_body_must_be_an_object(wire: SageMakerWire, payload: Any) -> None:
    message = expect_error(send(wire, "DescribeHubContent", payload), "SerializationException")
    assert "JSON object" in message


def test_body_may_be_any_bytes_like(wire: SageMakerWire, rec: Recorder) -> None:
    raw = json.dumps(DESCRIBE).encode()
    for body in (bytearray(raw), memoryview(raw)):
        status, _, _ = wire.handle("SageMaker.DescribeHubContent", body)  # type: ignore[arg-type]
        assert status == 200
    assert len(rec.received) == 2


def test_empty_body_is_an_empty_object(wire: SageMakerWire, rec: Recorder) -> None:
    message = expect_error(send(wire, "DescribeHubContent", b""), "ValidationException")
    assert "HubName" in message


def test_oversized_body_is_refused_unparsed(rec: Recorder) -> None:
    wire = SageMakerWire(rec.handlers(), max_body_bytes=1000)
    message = expect_error(
        send(wire, "ImportHubContent", importing(HubContentDocument="x" * 2000)),
        "RequestEntityTooLargeException", 413,
    )
    assert "1000" in message
    assert rec.received == []


# ------------------------------------------------------------ members and types


def test_unknown_member(wire: SageMakerWire, rec: Recorder) -> None:
    message = expect_error(send(wire, "DescribeHubContent", {**DESCRIBE, "Colour": "blue"}),
                           "ValidationException")
    assert '"Colour"' in message
    assert rec.received == []


def test_missing_required_member(wire: SageMakerWire) -> None:
    message = expect_error(send(wire, "DescribeHubContent", {"HubName": "h", "HubContentType": "DataSet"}),
                           "ValidationException")
    assert '"HubContentName"' in message


def test_null_member_counts_as_absent(wire: SageMakerWire, rec: Recorder) -> None:
    message = expect_error(send(wire, "DescribeHubContent", {**DESCRIBE, "HubContentName": None}),
                           "ValidationException")
    assert '"HubContentName"' in message
    status, _, _ = send(wire, "DescribeHubContent", {**DESCRIBE, "HubContentVersion": None})
    assert status == 200
    assert "HubContentVersion" not in rec.received[-1][1]


@pytest.mark.parametrize(
    "member,value",
    [("MaxResults", "10"), ("MaxResults", 10.5), ("MaxResults", True), ("HubName", 7),
     ("HubName", ["h"]), ("CreationTimeAfter", True), ("CreationTimeAfter", [1]),
     ("MaxResults", 2**40)],
)
def test_wrong_type(wire: SageMakerWire, rec: Recorder, member: str, value: Any) -> None:
    payload = {"HubName": "h", "HubContentType": "DataSet", member: value}
    message = expect_error(send(wire, "ListHubContents", payload), "SerializationException")
    assert member in message
    assert rec.received == []


@pytest.mark.parametrize("name", ["../x", "a b", "a" * 64, "x/../y", "ds\n"])
def test_name_violating_the_model(wire: SageMakerWire, rec: Recorder, name: str) -> None:
    message = expect_error(send(wire, "ImportHubContent", importing(HubContentName=name)),
                           "ValidationException")
    assert "at 'hubContentName' failed to satisfy constraint" in message
    assert rec.received == []


def test_document_size_limit_is_the_models(wire: SageMakerWire, rec: Recorder) -> None:
    status, _, _ = send(wire, "ImportHubContent", importing(HubContentDocument="d" * 327_680))
    assert status == 200
    message = expect_error(send(wire, "ImportHubContent", importing(HubContentDocument="d" * 327_681)),
                           "ValidationException")
    assert "Member must have length less than or equal to 327680" in message


@pytest.mark.parametrize("value,status", [(0, 400), (1, 200), (100, 200), (101, 400)])
def test_max_results_range(wire: SageMakerWire, value: int, status: int) -> None:
    got, _, body = send(wire, "ListHubContents",
                        {"HubName": "h", "HubContentType": "DataSet", "MaxResults": value})
    assert got == status
    if status == 400:
        assert body["__type"] == "ValidationException"
        assert "MaxResults" in body["message"] or "maxResults" in body["message"]


def test_enum_violation(wire: SageMakerWire) -> None:
    message = expect_error(send(wire, "DescribeHubContent", {**DESCRIBE, "HubContentType": "Foo"}),
                           "ValidationException")
    assert "Value 'Foo' at 'hubContentType'" in message
    assert "enum value set: [Model, Notebook, ModelReference, DataSet, JsonDoc]" in message


def test_unpaired_surrogate_is_a_client_error(wire: SageMakerWire) -> None:
    body = b'{"HubName":"h","HubContentType":"DataSet","HubContentName":"ds",' \
           b'"DocumentSchemaVersion":"2.0.0","HubContentDocument":"{}",' \
           b'"HubContentDescription":"bad \\ud800"}'
    expect_error(send(wire, "ImportHubContent", body), "ValidationException")


# ---------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    "wire_value",
    [T0.timestamp(), "2024-05-06T07:08:09.250Z", "2024-05-06T09:08:09.250+02:00",
     "2024-05-06T07:08:09.250", str(T0.timestamp())],
    ids=["epoch-number", "iso-z", "iso-offset", "iso-naive", "epoch-string"],
)
def test_timestamps_arrive_as_aware_utc(wire: SageMakerWire, rec: Recorder, wire_value: Any) -> None:
    status, _, _ = send(wire, "ListHubContents",
                        {"HubName": "h", "HubContentType": "DataSet", "CreationTimeAfter": wire_value})
    assert status == 200
    received = rec.received[-1][1]["CreationTimeAfter"]
    assert received == T0
    assert received.utcoffset() == timedelta(0)


def test_integer_epoch(wire: SageMakerWire, rec: Recorder) -> None:
    send(wire, "ListHubContents", {"HubName": "h", "HubContentType": "DataSet",
                                   "CreationTimeBefore": 1_700_000_000})
    assert rec.received[-1][1]["CreationTimeBefore"] == datetime(2023, 11, 14, 22, 13, 20,
                                                                 tzinfo=timezone.utc)


@pytest.mark.parametrize("bad", ["yesterday", "2024-13-45T00:00:00Z", 1e300])
def test_bad_timestamps(wire: SageMakerWire, bad: Any) -> None:
    message = expect_error(send(wire, "ListHubContents", {"HubName": "h", "HubContentType": "DataSet",
                                                         "CreationTimeAfter": bad}),
                           "SerializationException")
    assert "CreationTimeAfter" in message


# ------------------------------------------------------------------- output


def test_output_is_filtered_to_the_shape(wire: SageMakerWire, rec: Recorder) -> None:
    rec.describe_output = {
        "Internal": "secret row id",
        "FailureReason": None,
        "LastModifiedTime": datetime(2024, 5, 6, 7, 8, 10),  # naive: taken as UTC
        "HubContentStatus": Status.AVAILABLE,
        "HubContentSearchKeywords": ["a", None, "b"],
        "HubContentDependencies": [{"DependencyOriginPath": "s3://b/k", "Junk": 1}],
    }
    status, _, body = send(wire, "DescribeHubContent", DESCRIBE)
    assert status == 200
    assert "Internal" not in body
    assert "FailureReason" not in body
    assert body["CreationTime"] == pytest.approx(T0.timestamp())
    assert isinstance(body["CreationTime"], float)
    assert body["LastModifiedTime"] == datetime(2024, 5, 6, 7, 8, 10, tzinfo=timezone.utc).timestamp()
    assert body["HubContentStatus"] == "Available"
    assert body["HubContentSearchKeywords"] == ["a", "b"]
    assert body["HubContentDependencies"] == [{"DependencyOriginPath": "s3://b/k"}]


def test_operation_without_output_returns_empty_object(wire: SageMakerWire, rec: Recorder) -> None:
    status, _, body = send(wire, "DeleteHub", {"HubName": "h"})
    assert (status, body) == (200, {})
    assert rec.received == [("DeleteHub", {"HubName": "h"})]


def test_request_ids_are_unique(wire: SageMakerWire) -> None:
    ids = {send(wire, "DescribeHubContent", DESCRIBE)[1]["x-amzn-RequestId"] for _ in range(5)}
    ids.add(send(wire, "Nope", {})[1]["x-amzn-RequestId"])
    assert len(ids) == 6


# ------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "error",
    [OperationError("ResourceNotFound", "Hub content ds does not exist."),
     OperationError("ResourceInUse", "busy"),
     OperationError("ResourceLimitExceeded", "too many"),
     OperationError("AccessDeniedException", "no", 403),
     OperationError("ValidationException", "bad version")],
)
def test_handler_operation_error(wire: SageMakerWire, rec: Recorder, error: OperationError) -> None:
    rec.raise_on_describe = error
    message = expect_error(send(wire, "DescribeHubContent", DESCRIBE), error.code, error.status)
    assert message == error.message


def test_handler_crash_is_a_generic_500(wire: SageMakerWire, rec: Recorder,
                                        caplog: pytest.LogCaptureFixture) -> None:
    rec.raise_on_describe = KeyError("/home/alice/.airegistry/registry.db row 17")
    with caplog.at_level(logging.ERROR, logger="airegistry.hub.json_protocol"):
        status, headers, body = send(wire, "DescribeHubContent", DESCRIBE)
    message = expect_error((status, headers, body), "InternalFailure", 500)
    assert "alice" not in message and "KeyError" not in message and "Traceback" not in message
    assert headers["x-amzn-RequestId"] in message
    assert "KeyError" in caplog.text  # the traceback is logged for operators
    assert headers["x-amzn-RequestId"] in caplog.text


def test_handler_returning_garbage_is_a_500(wire: SageMakerWire, rec: Recorder) -> None:
    rec.describe_output = {"CreationTime": "last tuesday"}
    expect_error(send(wire, "DescribeHubContent", DESCRIBE), "InternalFailure", 500)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_epoch_output_is_a_500_not_a_null(wire: SageMakerWire, rec: Recorder,
                                                     value: float) -> None:
    # the body encoder writes NaN as null; the shape encoder refuses it before that
    rec.describe_output = {"CreationTime": value}
    expect_error(send(wire, "DescribeHubContent", DESCRIBE), "InternalFailure", 500)


def test_lone_surrogates_in_output_and_errors_are_escaped(wire: SageMakerWire,
                                                         rec: Recorder) -> None:
    rec.describe_output = {"HubContentDescription": "bad \udfff"}
    status, _, body = send(wire, "DescribeHubContent", DESCRIBE)
    assert status == 200 and body["HubContentDescription"] == "bad \udfff"
    rec.describe_output = {}
    rec.raise_on_describe = OperationError("ResourceNotFound", "no such \ud800 thing")
    message = expect_error(send(wire, "DescribeHubContent", DESCRIBE), "ResourceNotFound")
    assert message == "no such \ud800 thing"


def test_non_ascii_output_is_utf8_json(wire: SageMakerWire, rec: Recorder) -> None:
    rec.describe_output = {"HubContentDescription": "r\u00e9sum\u00e9 \u2603 \U0001f600 \"q\" \\"}
    status, _, body = send(wire, "DescribeHubContent", DESCRIBE)
    assert status == 200
    assert body["HubContentDescription"] == "r\u00e9sum\u00e9 \u2603 \U0001f600 \"q\" \\"


# ----------------------------------------------------------------- call()


def test_call_validates_like_the_wire(wire: SageMakerWire, rec: Recorder) -> None:
    with pytest.raises(OperationError) as info:
        wire.call("DescribeHubContent", {**DESCRIBE, "HubContentName": "../x"})
    assert info.value.code == "ValidationException"
    assert "'hubContentName'" in info.value.message
    with pytest.raises(OperationError) as info:
        wire.call("DescribeHub", {"HubName": "h"})
    assert info.value.code == "UnknownOperationException"
    assert rec.received == []


def test_call_normalises_input_and_filters_output(wire: SageMakerWire, rec: Recorder) -> None:
    rec.describe_output = {"Extra": 1, "LastModifiedTime": None}
    out = wire.call("DescribeHubContent", DESCRIBE)
    assert out["CreationTime"] == T0 and out["CreationTime"].tzinfo is not None
    assert "Extra" not in out and "LastModifiedTime" not in out
    local = datetime(2024, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=5)))
    wire.call("ListHubContents", {"HubName": "h", "HubContentType": "DataSet",
                                  "CreationTimeAfter": local,
                                  "CreationTimeBefore": "2024-02-01T00:00:00Z"})
    params = rec.received[-1][1]
    assert params["CreationTimeAfter"] == local
    assert params["CreationTimeAfter"].utcoffset() == timedelta(0)
    assert params["CreationTimeBefore"] == datetime(2024, 2, 1, tzinfo=timezone.utc)


def test_call_does_not_hand_the_callers_objects_to_the_handler(wire: SageMakerWire,
                                                              rec: Recorder) -> None:
    tags = [{"Key": "k", "Value": "v"}]
    wire.call("ImportHubContent", importing(Tags=tags))
    received = rec.received[-1][1]["Tags"]
    assert received == tags and received is not tags and received[0] is not tags[0]


def test_call_propagates_operation_errors(wire: SageMakerWire) -> None:
    with pytest.raises(OperationError) as info:
        wire.call("CreateHub", {"HubName": "h", "HubDescription": "d"})
    assert info.value.code == "ResourceInUse"
