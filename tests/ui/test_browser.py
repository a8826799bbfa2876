"""The web UI in a real Chromium against a real `airegistry server` process.

What a person does: sign in, look around, page, open datasets of every format, read why
an import failed, try an evaluator, run an evaluation. Hostile content is checked where
it matters: in the browser (a script that ran would set ``window.__xss`` or open a dialog).
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ui.conftest import ACCESS_KEY, SECRET_KEY, UIServer, login
from tests.ui.seed import FILLER

pytestmark = pytest.mark.slow


def _shot(page: Any, shots: Path, name: str) -> None:
    page.screenshot(path=str(shots / f"ui-{name}.png"), full_page=True)


def _no_script_ran(page: Any) -> None:
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.dialogs == []


# -- access -------------------------------------------------------------------------------------


def test_unauthenticated_goes_to_login_and_back(page: Any, ui_server: UIServer, shots: Path) -> None:
    page.goto(ui_server.url + "/ui/datasets?status=ImportFailed")
    assert "/ui/login" in page.url
    assert page.locator("h1").inner_text() == "Sign in to airegistry"
    _shot(page, shots, "login")
    page.fill("input[name=access_key_id]", ACCESS_KEY)
    page.fill("input[name=secret_access_key]", SECRET_KEY)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/ui/datasets\?status=ImportFailed$"))
    assert page.locator("table#datasets tbody tr").count() == 1
    cookie = next(c for c in page.context.cookies() if c["name"] == "airegistry_ui")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert cookie["expires"] > 0  # a session with an expiry, not a browser-lifetime cookie


def test_wrong_secret_and_unknown_key_are_refused(page: Any, ui_server: UIServer) -> None:
    for key, secret in ((ACCESS_KEY, SECRET_KEY + "x"), ("AKIDNOSUCHKEY0000000", SECRET_KEY)):
        login(page, ui_server.url, key, secret)
        assert "/ui/login" in page.url
        assert "not right" in page.locator("p.error").inner_text()
    page.goto(ui_server.url + "/ui/")
    assert "/ui/login" in page.url


def test_logout_ends_the_session(logged_in: Any, ui_server: UIServer) -> None:
    logged_in.goto(ui_server.url + "/ui/")
    logged_in.click("text=Sign out")
    logged_in.wait_for_url(re.compile(r".*/ui/login$"))
    logged_in.goto(ui_server.url + "/ui/evaluators")
    assert "/ui/login" in logged_in.url


def test_post_without_csrf_token_is_403(logged_in: Any, ui_server: UIServer) -> None:
    page = logged_in
    # The request carries the session cookie (same browser context) but no token.
    response = page.request.post(ui_server.url + "/ui/evaluators/length-reward/try",
                                 form={"prompt": "p", "response": "r"})
    assert response.status == 403
    assert "Access denied" in response.text()
    response = page.request.post(ui_server.url + "/ui/evaluators/length-reward/try",
                                 form={"prompt": "p", "csrf_token": "forged-token-" + "x" * 30})
    assert response.status == 403
    # And from the page itself: the form with its hidden token removed.
    page.goto(ui_server.url + "/ui/evaluators/length-reward")
    page.evaluate("document.querySelector('#try form.event input[name=csrf_token]').remove()")
    page.click("#try form.event button[type=submit]")
    assert page.locator("h1").inner_text() == "Access denied"
    # Nothing was recorded: the page shows no try result.
    page.goto(ui_server.url + "/ui/evaluators/length-reward")
    assert page.locator("#try-result").count() == 0


# -- browsing -----------------------------------------------------------------------------------


def test_overview_counts_and_failed_imports(logged_in: Any, ui_server: UIServer, shots: Path) -> None:
    page = logged_in
    page.goto(ui_server.url + "/ui/")
    names = page.locator("#count-datasets .big .n").inner_text()
    assert names == f"{FILLER + 10:,}"
    assert page.locator("#count-evaluators .big .n").inner_text() == "2"
    assert page.locator("#failed tbody tr").count() == 1
    assert "broken-import" in page.locator("#failed").inner_text()
    assert "judge-prompt" in page.locator("#recent").inner_text()
    _shot(page, shots, "overview")
    page.click("#failed a:text('broken-import')")
    page.wait_for_url(re.compile(r".*/ui/datasets/broken-import\?version=1\.0\.0$"))


def test_page_through_ten_thousand_datasets(logged_in: Any, ui_server: UIServer, shots: Path) -> None:
    page = logged_in
    page.goto(ui_server.url + "/ui/datasets")
    total = FILLER + 10
    pages = -(-total // 50)
    assert page.locator("h1 .count").inner_text() == f"{total:,}"
    assert page.locator(".pager .where").inner_text() == f"Page 1 of {pages}"
    assert page.locator("table#datasets tbody tr").count() == 50
    _shot(page, shots, "datasets")
    page.select_option("select[name=order]", "name")
    page.click("form.filters button")
    page.click(".pager a[rel=last]")
    assert page.locator(".pager .where").inner_text() == f"Page {pages} of {pages}"
    last_names = page.locator("table#datasets td.name a").all_inner_texts()
    assert last_names[-1] == "to-delete"
    page.click(".pager a[rel=prev]")
    assert page.locator(".pager .where").inner_text() == f"Page {pages - 1} of {pages}"
    page.go_back()
    assert page.locator(".pager .where").inner_text() == f"Page {pages} of {pages}"
    page.go_forward()
    assert page.locator(".pager .where").inner_text() == f"Page {pages - 1} of {pages}"
    # A deep page by URL, and the filters.
    page.goto(ui_server.url + "/ui/datasets?order=name&page=100")
    first = page.locator("table#datasets td.name a").first.inner_text()
    before_filler = 3  # broken-import, chat-sft, converse-sft sort before "filler-"
    assert first == f"filler-{99 * 50 - before_filler:05d}"
    page.goto(ui_server.url + "/ui/datasets")
    page.fill("input[name=name]", "filler-0999")
    page.click("form.filters button")
    assert page.locator("table#datasets tbody tr").count() == 10
    assert page.locator(".pager").count() == 0
    page.goto(ui_server.url + "/ui/datasets?technique=dpo")
    assert page.locator("table#datasets td.name a").all_inner_texts() == ["prefs-dpo"]


FORMAT_CHECKS = {
    "sft-pc": (".layout-blocks .block h4", "Question 1: what is 1 + 1?"),
    "chat-sft": (".conversation .role-assistant", "Hi 1!"),
    "converse-sft": (".conversation .role-assistant", "1 is a number."),
    "prefs-dpo": (".sides .label-chosen", "Hello, and welcome!"),
    "prompts-csv": (".layout-json pre.json", "Solve 1 * 3"),
    "io-json": (".layout-blocks .block h4", "in 1"),
    "pc-parquet": (".layout-blocks .block h4", "pq prompt 1"),
}


@pytest.mark.parametrize("name", sorted(FORMAT_CHECKS))
def test_each_format_renders_its_rows(logged_in: Any, ui_server: UIServer, shots: Path,
                                      name: str) -> None:
    page = logged_in
    page.goto(ui_server.url + f"/ui/datasets/{name}")
    selector, first_text = FORMAT_CHECKS[name]
    assert page.locator(f"#preview {selector}").count() >= 1
    first_row = page.locator("#preview article.row").first
    assert first_text in first_row.inner_text()
    assert page.locator("#statistics svg.hist rect.bar").count() >= 1
    _shot(page, shots, f"dataset-{name}")


@pytest.mark.parametrize(("name", "unit", "second_page_first"), [
    ("sft-pc", "line", "Question 51: what is 51 + 51?"),
    ("pc-parquet", "row", "pq prompt 51"),
    ("prompts-csv", "row", "Solve 51 * 3"),
    ("io-json", "row", "in 51"),
])
def test_row_preview_pages_by_offset(logged_in: Any, ui_server: UIServer, name: str, unit: str,
                                     second_page_first: str) -> None:
    page = logged_in
    page.goto(ui_server.url + f"/ui/datasets/{name}")
    assert page.locator("#preview article.row").count() == 50
    page.click("#preview .pager a[rel=next]")
    assert "row=51" in page.url
    if name != "pc-parquet":  # text formats resume at a byte offset, not by re-reading
        assert re.search(r"[?&]at=\d+", page.url)
    first = page.locator("#preview article.row").first
    assert first.locator("header .num").inner_text() == f"{unit} 51"
    assert second_page_first in first.inner_text()
    page.go_back()
    assert page.locator("#preview article.row header .num").first.inner_text() == f"{unit} 1"


def test_failed_import_lists_its_line_numbers(logged_in: Any, ui_server: UIServer, shots: Path) -> None:
    page = logged_in
    page.goto(ui_server.url + "/ui/datasets/broken-import")
    assert page.locator("#failure-lines li").all_inner_texts() == ["line 2", "line 4"]
    details = page.locator("#failure ul.details").inner_text()
    assert "line 2 $.completion" in details and "line 4" in details
    assert page.locator("#preview article.row.bad").count() == 2
    _shot(page, shots, "failed-import")
    page.click("#failure-lines a:text('line 4')")
    row = page.locator("#row-4")
    assert "not valid JSON" in row.inner_text()
    assert "{not json" in row.locator("pre.raw").inner_text()


def test_hostile_content_stays_text(logged_in: Any, ui_server: UIServer) -> None:
    page = logged_in
    page.goto(ui_server.url + "/ui/datasets/hostile")
    blocks = page.locator("#preview article.row").first.locator(".text").all_inner_texts()
    assert blocks[0].startswith("<script>") and "onerror=" in blocks[1]
    assert "<img" in page.locator("p.lead").inner_text()  # the description, as text
    _no_script_ran(page)
    page.goto(ui_server.url + "/ui/datasets?name=hostile")
    _no_script_ran(page)
    # Reward details with markup, shown after a try.
    page.goto(ui_server.url + "/ui/evaluators/length-reward?dataset=hostile&row=1")
    page.click("#try form.event button[type=submit]")
    assert "onerror" in page.locator("#try-result pre.json").inner_text()
    _no_script_ran(page)
    page.goto(ui_server.url + "/ui/evaluators/judge-prompt")
    assert "<b>not bold</b>" in page.locator("pre.template").inner_text()
    assert page.locator("pre.template b").count() == 0
    _no_script_ran(page)


def test_names_with_dots_and_unicode_are_not_found_pages(logged_in: Any, ui_server: UIServer) -> None:
    page = logged_in
    for path, shown in (("/ui/datasets/a..b", "a..b"), ("/ui/datasets/データ", "データ"),
                        ("/ui/evaluators/..%2F..%2Fregistry.db", None)):
        response = page.goto(ui_server.url + path)
        assert response is not None and response.status == 404, path
        assert page.locator("h1").inner_text() == "Not found"
        if shown:
            assert shown in page.locator("p.message").inner_text()
        assert "Traceback" not in page.content()
    response = page.goto(ui_server.url + "/ui/datasets/sft-pc?version=..%2F1")
    assert response is not None and response.status == 400
    assert page.locator("h1").inner_text() == "Bad request"
    page.goto(ui_server.url + "/ui/datasets/sft-pc")
    assert "Données d'entraînement ✓" in page.locator("p.lead").inner_text()
    assert "言語: 日本語" in page.locator("dl.meta").inner_text()


def test_download_is_the_stored_file(logged_in: Any, ui_server: UIServer) -> None:
    page = logged_in
    page.goto(ui_server.url + "/ui/datasets/prompts-csv")
    with page.expect_download() as info:
        page.click("a:text('Download')")
    data = Path(info.value.path()).read_bytes()
    assert data.startswith(b"prompt\r\nSolve 1 * 3") and data.count(b"\n") == 71
    assert info.value.suggested_filename == "prompts-csv-1.0.0.csv"


def test_delete_a_version_after_confirming(logged_in: Any, ui_server: UIServer) -> None:
    page = logged_in
    page.goto(ui_server.url + "/ui/datasets/to-delete?version=2.0.0")
    page.click("a:text('Delete this version')")
    assert "Delete dataset to-delete version 2.0.0?" in page.locator("h1").inner_text()
    page.click("button.danger")
    assert "Deleted dataset to-delete version 2.0.0." in page.locator(".banner.ok").inner_text()
    assert page.url.endswith("/ui/datasets/to-delete")  # back on the dataset, now at 1.0.0
    assert page.locator("h1 .version").inner_text() == "v1.0.0"
    response = page.goto(ui_server.url + "/ui/datasets/to-delete?version=2.0.0")
    assert response is not None and response.status == 404


# -- evaluators ---------------------------------------------------------------------------------


def test_try_an_evaluator_on_a_dataset_row(logged_in: Any, ui_server: UIServer, shots: Path) -> None:
    page = logged_in
    page.goto(ui_server.url + "/ui/evaluators/length-reward")
    assert "def lambda_handler" in page.locator("#source div.code").inner_text()
    assert page.locator("#source div.code span").count() > 5  # highlighted tokens
    page.fill("#try input[name=dataset]", "sft-pc")
    page.fill("#try input[name=row]", "3")
    page.click("#try form.pick button")
    assert page.locator("textarea[name=prompt]").input_value() == "Question 3: what is 3 + 3?"
    response = page.locator("textarea[name=response]").input_value()
    assert response == "It is very very very 6."
    page.click("#try form.event button[type=submit]")
    assert page.locator("#reward").inner_text() == f"{len(response) / 40:.4f}"
    assert "latency" in page.locator("#try-result").inner_text()
    assert "try=" in page.url
    assert page.locator("#try form.pick input[name=dataset]").input_value() == "sft-pc"
    _shot(page, shots, "evaluator-try")
    # A handler error is a result on the page, not a crash.
    page.fill("textarea[name=extra]", "[1, 2]")
    page.click("#try form.event button[type=submit]")
    assert page.locator("h1").inner_text() == "Bad request"
    page.go_back()
    assert page.locator("#reward").count() == 1


def test_reward_prompt_shows_placeholders_and_judge_errors(logged_in: Any, ui_server: UIServer) -> None:
    page = logged_in
    page.goto(ui_server.url + "/ui/evaluators/judge-prompt")
    assert page.locator("pre.template mark.ph").all_inner_texts() == ["{prompt}", "{response}"]
    page.fill("textarea[name=prompt]", "2+2?")
    page.fill("textarea[name=response]", "4")
    page.click("#try form.event button[type=submit]")
    result = page.locator("#try-result")
    assert "error" in result.inner_text()  # no judge endpoint is configured in the test server


def test_evaluate_a_dataset_shows_the_distribution(logged_in: Any, ui_server: UIServer,
                                                   shots: Path) -> None:
    page = logged_in
    page.goto(ui_server.url + "/ui/evaluators/length-reward")
    page.fill("#evaluate input[name=dataset]", "sft-pc")
    page.fill("#evaluate input[name=limit]", "100")
    page.click("#evaluate button[type=submit]")
    assert "/ui/evaluations/" in page.url
    page.wait_for_selector("#distribution svg", timeout=60_000)
    assert page.locator("#state").inner_text() == "done"
    assert page.locator("#distribution rect.bar").count() == 20
    completions = ["It is " + "very " * (i % 9) + f"{2 * i}." for i in range(1, 101)]
    rewards = [min(1.0, len(c) / 40) for c in completions]
    assert page.locator("#mean").inner_text() == f"{statistics.fmean(rewards):.4f}"
    lowest = page.locator("#lowest article.row")
    assert lowest.count() == 10
    assert f"reward {min(rewards):.4f}" in lowest.first.inner_text()
    _shot(page, shots, "evaluation")
    run_url = page.url
    page.goto(ui_server.url + "/ui/evaluators/length-reward")
    page.click("#evaluate table a")
    assert page.url == run_url


def test_errors_are_pages(logged_in: Any, ui_server: UIServer) -> None:
    page = logged_in
    for path, status, title in (("/ui/nowhere", 404, "Not found"),
                                ("/ui/evaluations/" + "A" * 22, 404, "Not found"),
                                ("/ui/datasets?page=abc", 400, "Bad request"),
                                ("/ui/datasets?status=<b>", 400, "Bad request")):
        response = page.goto(ui_server.url + path)
        assert response is not None and response.status == status, path
        assert page.locator("h1").inner_text() == title
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
    _no_script_ran(page)


def test_every_response_has_the_csp_and_no_inline_script(ui_server: UIServer) -> None:
    with httpx.Client(base_url=ui_server.url) as client:
        response = client.get("/ui/login")
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "<script>" not in response.text
        assert re.search(r"\son[a-z]+=", response.text) is None
        assert client.get("/ui/static/ui.css").status_code == 200
        # /ui is the UI, everything else is still the S3 wire.
        assert client.get("/ui").status_code == 307
        assert client.get("/").headers["content-type"] == "application/xml"
