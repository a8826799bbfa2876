"""Service-model validation: what boto3 checks plus what only the service checks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from airegistry.hub.botocore_model import (
    OperationError,
    isolated_botocore_session,
    java_pattern,
    operation_model,
    sagemaker_model,
    validate_params,
)

NAME_PATTERN = "[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
TAG_PATTERN = "([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)"


def describe(**overrides: object) -> dict:
    params: dict = {"HubName": "my-hub", "HubContentType": "DataSet", "HubContentName": "ds-1"}
    params.update(overrides)
    return params


def imported(**overrides: object) -> dict:
    params: dict = {
        "HubName": "my-hub",
        "HubContentType": "DataSet",
        "HubContentName": "ds-1",
        "DocumentSchemaVersion": "2.0.0",
        "HubContentDocument": '{"DatasetType": "Training"}',
    }
    params.update(overrides)
    return params


def rejected(operation: str, params: dict) -> OperationError:
    with pytest.raises(OperationError) as info:
        validate_params(operation, params)
    assert info.value.code == "ValidationException"
    assert info.value.status == 400
    return info.value


# ------------------------------------------------------------------------ model


def test_model_is_loaded_once() -> None:
    assert sagemaker_model() is sagemaker_model()
    assert sagemaker_model().metadata["protocol"] == "json"
    assert sagemaker_model().metadata["targetPrefix"] == "SageMaker"


def test_unknown_operation() -> None:
    with pytest.raises(OperationError) as info:
        operation_model("DescribeNothing")
    assert info.value.code == "UnknownOperationException"
    assert "DescribeNothing" in info.value.message
    with pytest.raises(OperationError) as info:
        validate_params("DescribeNothing", {})
    assert info.value.code == "UnknownOperationException"


def test_operation_error_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        OperationError("", "x")
    with pytest.raises(ValueError):
        OperationError("ValidationException", "x", status=200)
    err = OperationError("AccessDeniedException", "no", 403)
    assert (err.code, err.message, err.status) == ("AccessDeniedException", "no", 403)


def test_isolated_session_ignores_broken_aws_configuration(tmp_path) -> None:
    """A missing profile or a corrupt ~/.aws/config must not break the registry."""
    bad = tmp_path / "config"
    bad.write_text("[profile broken\nthis is not ini")
    env = dict(os.environ, AWS_PROFILE="does-not-exist", AWS_CONFIG_FILE=str(bad),
               AWS_SHARED_CREDENTIALS_FILE=str(bad))
    code = textwrap.dedent(
        """
        from airegistry.hub.botocore_model import isolated_botocore_session
        m = isolated_botocore_session().get_service_model("sagemaker")
        print(m.service_name)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "sagemaker"
    # and in this process the helper returns independent sessions
    assert isolated_botocore_session() is not isolated_botocore_session()


# ----------------------------------------------------------- the model's limits


def test_model_limits_the_tests_rely_on() -> None:
    """Pin the numbers the issue talks about to what the model really says."""
    op = operation_model("ImportHubContent").input_shape.members
    assert op["HubContentDocument"].metadata["max"] == 327680
    assert op["HubContentName"].metadata["max"] == 63
    assert op["HubContentName"].metadata["pattern"] == NAME_PATTERN
    assert op["Tags"].metadata["max"] == 50
    lst = operation_model("ListHubContents").input_shape.members
    assert (lst["MaxResults"].metadata["min"], lst["MaxResults"].metadata["max"]) == (1, 100)


# ------------------------------------------------------------- Java patterns


def test_every_pattern_of_the_model_translates() -> None:
    model = sagemaker_model()
    patterns = {
        model.shape_for(name).metadata["pattern"]
        for name in model.shape_names
        if "pattern" in model.shape_for(name).metadata
    }
    assert len(patterns) > 100
    untranslated = sorted(p for p in patterns if java_pattern(p) is None)
    assert untranslated == []


def test_patterns_match_the_whole_value() -> None:
    name = java_pattern(NAME_PATTERN)
    assert name is not None
    assert name.fullmatch("my-dataset-1")
    for bad in ["../x", "x/../y", "a b", "-a", "a-", "a_b", "", "a\n"]:
        assert name.fullmatch(bad) is None, bad


def test_dot_does_not_match_line_terminators_like_java() -> None:
    dot = java_pattern(".*")
    assert dot is not None
    assert dot.fullmatch('{"a": 1}')
    for terminator in ["\n", "\r", "\u0085", "\u2028", "\u2029"]:
        assert dot.fullmatch(f"a{terminator}b") is None, repr(terminator)


def test_unicode_categories() -> None:
    tag = java_pattern(TAG_PATTERN)
    assert tag is not None
    for ok in ["team:ml", "Équipe données", "日本語", "٣٤", "a@b.c/d=e+f-g_h", "\u3000"]:
        assert tag.fullmatch(ok), ok
    for bad in ["semi;colon", "tab\there", "emoji😀", "quote'", "new\nline"]:
        assert tag.fullmatch(bad) is None, bad


def test_posix_class_and_ascii_shorthands() -> None:
    alnum = java_pattern("[\\p{Alnum}\\-]+")
    assert alnum is not None
    assert alnum.fullmatch("us-east-1")
    assert alnum.fullmatch("é") is None
    word = java_pattern("\\w+")
    assert word is not None
    assert word.fullmatch("abc_1")
    assert word.fullmatch("é") is None  # Java's \w is ASCII-only


def test_surrogate_pair_range_means_supplementary_code_points() -> None:
    xml = java_pattern("[\\u0020-\\uD7FF\\uE000-\\uFFFD\\uD800\\uDC00-\\uDBFF\\uDFFF\\t]*")
    assert xml is not None
    assert xml.fullmatch("plain text\twith emoji 😀")
    assert xml.fullmatch("bell\x07") is None


def test_quantified_end_anchor() -> None:
    quantified = java_pattern("([\\p{L}\\p{Z}\\p{N}_.:\\/=+\\-@]*)${1,128}")
    assert quantified is not None
    assert quantified.fullmatch("key/with:chars")
    assert quantified.fullmatch("bad;") is None


def test_untranslatable_pattern_is_reported_not_fatal(caplog) -> None:
    assert java_pattern("\\Qliteral\\E") is None
    assert java_pattern("[a-z&&[^aeiou]]") is None
    assert java_pattern("\\p{javaLowerCase}") is None
    assert "not enforced" in caplog.text


# ------------------------------------------------------ what boto3 checks itself


def test_missing_required_member_is_named() -> None:
    params = describe()
    del params["HubName"]
    err = rejected("DescribeHubContent", params)
    assert 'Missing required parameter in input: "HubName"' in err.message


def test_unknown_member_is_named() -> None:
    err = rejected("DescribeHubContent", describe(Colour="blue"))
    assert 'Unknown parameter in input: "Colour"' in err.message


def test_wrong_type_is_named() -> None:
    err = rejected("ListHubContents", {"HubName": "h", "HubContentType": "DataSet",
                                       "MaxResults": "ten"})
    assert "MaxResults" in err.message
    err = rejected("DescribeHubContent", describe(HubContentName=5))
    assert "HubContentName" in err.message


def test_minimums_are_checked() -> None:
    err = rejected("ListHubContents", {"HubName": "h", "HubContentType": "DataSet",
                                       "MaxResults": 0})
    assert "MaxResults" in err.message
    err = rejected("DescribeHubContent", describe(HubContentVersion="1.0"))
    assert "HubContentVersion" in err.message


def test_not_a_mapping() -> None:
    err = rejected("DescribeHub", ["HubName", "x"])  # type: ignore[arg-type]
    assert "JSON object" in err.message


# ------------------------------------------------ what only the service checks


def test_message_format_matches_aws() -> None:
    err = rejected("DescribeHubContent", describe(HubContentName="x/../y"))
    assert err.message == (
        "1 validation error detected: Value 'x/../y' at 'hubContentName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: "
        "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"
    )


@pytest.mark.parametrize("name", ["../x", "a b", "a" * 64, "x/../y", "..", "a\x00b"])
def test_hostile_or_overlong_names(name: str) -> None:
    err = rejected("ImportHubContent", imported(HubContentName=name))
    assert "'hubContentName'" in err.message


def test_longest_valid_name_passes() -> None:
    validate_params("ImportHubContent", imported(HubContentName="a" * 63))
    validate_params("ImportHubContent", imported(HubContentName="a-b--c9"))


def test_name_length_and_pattern_are_both_reported_for_a_long_bad_name() -> None:
    err = rejected("DescribeHubContent", describe(HubContentName="a" * 64))
    assert "Member must have length less than or equal to 63" in err.message


def test_document_limit_is_the_models() -> None:
    validate_params("ImportHubContent", imported(HubContentDocument="x" * 327680))
    err = rejected("ImportHubContent", imported(HubContentDocument="x" * 327681))
    assert "'hubContentDocument'" in err.message
    assert "Member must have length less than or equal to 327680" in err.message
    assert len(err.message) < 2000  # the 320 KB value is not echoed back whole


def test_document_with_raw_newline_is_refused() -> None:
    err = rejected("ImportHubContent", imported(HubContentDocument='{\n"a": 1}'))
    assert "'hubContentDocument'" in err.message
    assert "regular expression pattern: ^.*$" in err.message


@pytest.mark.parametrize("value,ok", [(1, True), (100, True), (101, False)])
def test_max_results_range(value: int, ok: bool) -> None:
    params = {"HubName": "h", "HubContentType": "DataSet", "MaxResults": value}
    if ok:
        validate_params("ListHubContents", params)
    else:
        err = rejected("ListHubContents", params)
        assert err.message == (
            "1 validation error detected: Value '101' at 'maxResults' failed to satisfy "
            "constraint: Member must have value less than or equal to 100"
        )


def test_enum_violation() -> None:
    err = rejected("DescribeHubContent", describe(HubContentType="Foo"))
    assert err.message == (
        "1 validation error detected: Value 'Foo' at 'hubContentType' failed to satisfy "
        "constraint: Member must satisfy enum value set: "
        "[Model, Notebook, ModelReference, DataSet, JsonDoc]"
    )


def test_str_enum_members_are_accepted() -> None:
    import enum

    class ContentType(str, enum.Enum):
        DATASET = "DataSet"

    validate_params("DescribeHubContent", describe(HubContentType=ContentType.DATASET))


def test_several_errors_are_counted_and_listed() -> None:
    err = rejected(
        "DescribeHubContent",
        describe(HubContentType="Foo", HubContentName="a b", HubName="bad/hub"),
    )
    assert err.message.startswith("3 validation errors detected: ")
    for path in ("'hubName'", "'hubContentType'", "'hubContentName'"):
        assert path in err.message


def test_nested_list_members_use_aws_paths() -> None:
    tags = [{"Key": "ok", "Value": "fine"}, {"Key": "team", "Value": "semi;colon"}]
    err = rejected("ImportHubContent", imported(Tags=tags))
    assert "at 'tags.2.member.value'" in err.message


def test_list_maximum() -> None:
    tags = [{"Key": f"k{i}", "Value": "v"} for i in range(51)]
    err = rejected("ImportHubContent", imported(Tags=tags))
    assert "at 'tags'" in err.message
    assert "Member must have length less than or equal to 50" in err.message
    validate_params("ImportHubContent", imported(Tags=tags[:50]))


def test_keywords_must_be_lower_case_for_hubs() -> None:
    err = rejected("CreateHub", {"HubName": "h", "HubDescription": "d",
                                 "HubSearchKeywords": ["Upper"]})
    assert "at 'hubSearchKeywords.1.member'" in err.message


def test_hub_arn_is_accepted_where_the_model_allows_it() -> None:
    validate_params("DescribeHub", {"HubName": "arn:aws:sagemaker:us-east-1:123456789012:hub/my-hub"})
    err = rejected("DescribeHub",
                   {"HubName": "arn:aws:sagemaker:us-east-1:123456789012:hub/../etc"})
    assert "'hubName'" in err.message


def test_unpaired_surrogate_is_refused_and_the_message_stays_encodable() -> None:
    err = rejected("ImportHubContent", imported(HubContentDescription="bad \ud800 text"))
    assert "'hubContentDescription'" in err.message
    err.message.encode("utf-8")


def test_timestamps_accept_datetimes_and_strings() -> None:
    from datetime import datetime, timezone

    validate_params("ListHubContents", {"HubName": "h", "HubContentType": "DataSet",
                                        "CreationTimeAfter": datetime.now(timezone.utc),
                                        "CreationTimeBefore": "2024-01-01T00:00:00Z"})
    err = rejected("ListHubContents", {"HubName": "h", "HubContentType": "DataSet",
                                       "CreationTimeAfter": "not a date"})
    assert "CreationTimeAfter" in err.message


def test_hostile_pattern_input_is_cheap() -> None:
    """Patterns are not run on values already too long; unbounded ones stay linear."""
    rejected("DescribeHubContent", describe(HubContentName="a" + "-" * 300_000 + "!"))
    rejected("DescribeHub", {"HubName": "arn:aws:sagemaker:" + "a-" * 200_000 + ":"})
