"""What an import job does for each kind of hub content.

A DataSet import streams its object (from the registry's own store, or from any S3
bucket) through the validator and records statistics; an evaluator import checks that
its reference resolves. Both turn every failure into an ``ImportFailed`` outcome with
a reason a person can act on; nothing here raises for bad data.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import closing
from typing import Any, BinaryIO

from airegistry.jobs.runner import ImportOutcome, JobContext
from airegistry.stats_markdown import render_stats_markdown

# (bucket, key) -> (stream, size or None, recorded sha256 or None)
SourceOpener = Callable[[str, str], tuple[BinaryIO, int | None, str | None]]
# reference -> True (exists), False (ours but missing), None (not ours: cannot check)
ReferenceChecker = Callable[[str], bool | None]


class SourceMissingError(Exception):
    """The referenced object does not exist (or cannot be reached)."""


def keyword_value(keywords: list[str], prefix: str) -> str | None:
    for keyword in keywords:
        if keyword.startswith(prefix):
            return keyword[len(prefix) :]
    return None


def make_dataset_importer(open_source: SourceOpener, max_bytes: int) -> Callable[[JobContext], ImportOutcome]:
    def run(ctx: JobContext) -> ImportOutcome:
        from airegistry.formats import ValidationLimits, validate

        document = json.loads(ctx.content.document)
        bucket, key = document["DatasetS3Bucket"], document["DatasetS3Prefix"]
        uri = f"s3://{bucket}/{key}"
        keywords = json.loads(ctx.content.search_keywords)
        technique = keyword_value(keywords, "customization_technique:")
        try:
            stream, size, recorded_sha256 = open_source(bucket, key)
        except SourceMissingError as exc:
            return ImportOutcome("ImportFailed", f"Cannot read the dataset source {uri}: {exc}")
        try:
            with closing(stream):
                report = validate(
                    stream,
                    technique=technique,
                    filename=key,
                    size_hint=size,
                    limits=ValidationLimits(max_bytes=max_bytes),
                    compute_sha256=recorded_sha256 is None,
                )
        except (ValueError, OSError) as exc:
            return ImportOutcome("ImportFailed", f"Dataset {uri} could not be imported: {exc}")
        stats: dict[str, Any] = report.to_dict()
        stats.pop("errors", None)
        stats.pop("warnings", None)
        stats["sha256"] = report.sha256 or recorded_sha256
        stats["source"] = uri
        markdown = render_stats_markdown(ctx.content.markdown, stats)
        if report.valid:
            return ImportOutcome("Available", None, stats, markdown)
        return ImportOutcome("ImportFailed", report.summary(max_chars=1024), stats, markdown)

    return run


def make_evaluator_importer(
    check_function: ReferenceChecker, check_object: Callable[[str, str], bool]
) -> Callable[[JobContext], ImportOutcome]:
    def run(ctx: JobContext) -> ImportOutcome:
        document = json.loads(ctx.content.document)
        content = json.loads(document["JsonContent"])
        reference: str = content["Reference"]
        if reference.startswith("arn:aws:lambda:"):
            found = check_function(reference)
            if found is False:
                return ImportOutcome(
                    "ImportFailed", f"The function {reference} does not exist in this registry."
                )
            return ImportOutcome("Available")
        if reference.startswith("s3://"):
            bucket, _, key = reference[5:].partition("/")
            if not check_object(bucket, key):
                return ImportOutcome("ImportFailed", f"The evaluator object {reference} does not exist.")
            return ImportOutcome("Available")
        return ImportOutcome(
            "ImportFailed",
            f"Unsupported evaluator reference {reference!r}: expected a Lambda ARN or an s3:// URI.",
        )

    return run
