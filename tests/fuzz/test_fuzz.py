"""The seeded wire fuzzer (``tests.fuzz.fuzzer``) in the suite: no 5xx from bad input.

``AIREGISTRY_FUZZ_COUNT`` (default 3,000) and ``AIREGISTRY_FUZZ_SEED`` size and seed the
run; ``python -m tests.fuzz.fuzzer --count N --seed S`` runs a larger one outside pytest.
The figures are printed (``pytest -s``) and attached to the test's report properties.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fuzz.fuzzer import run_fuzz

pytestmark = pytest.mark.slow


def test_no_request_gets_a_5xx(tmp_path: Path, record_property: pytest.RecordProperty) -> None:
    count = int(os.environ.get("AIREGISTRY_FUZZ_COUNT", "3000"))
    seed = int(os.environ.get("AIREGISTRY_FUZZ_SEED", "20240611"))
    report = run_fuzz(count, seed, tmp_path)
    figures = report.figures()
    print(figures)
    record_property("fuzz", figures)
    assert report.sent == count
    assert not report.failures, figures + "\n" + "\n".join(report.failures[:20])
    assert report.server_errors_logged == 0, figures
