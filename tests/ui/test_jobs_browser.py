"""The training-job pages in a real Chromium against a real `airegistry server` process.

The jobs are real: trained through the SDK on the tiny model (``tests/ui/jobs_seed.py``)
once per test run, in a template home that every xdist worker copies for its own server,
and one more started with ``wait=False`` against the server and stopped from its page.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import (
    ACCESS_KEY,
    SECRET_KEY,
    UIServer,
    login,
    open_tab,
    seeding_environment,
    start_server,
    stop,
)
from tests.ui.jobs_seed import FILLER_JOBS, RL_STEPS, SFT_STEPS

pytest.importorskip("trl")
pytestmark = pytest.mark.slow

JOBS = FILLER_JOBS + 4  # filler, the SFT and RLVR runs, the failed run, the imported job


def _shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory every xdist worker of this run shares (its own base dir when alone)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def jobs_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The trained home, built once per run by whichever worker comes first."""
    shared = _shared_dir(tmp_path_factory)
    template = shared / "ui-jobs-template"
    with open(shared / "ui-jobs-template.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (template / "data.json").exists():
            from tests.ui import jobs_seed

            shutil.rmtree(template, ignore_errors=True)
            with seeding_environment():
                data = jobs_seed.build(template / "home", template / "files")
            (template / "data.json").write_text(json.dumps(data))
    return template / "home", json.loads((template / "data.json").read_text())


@pytest.fixture(scope="module")
def jobs_server(jobs_template: tuple[Path, dict[str, Any]],
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIServer]:
    source, data = jobs_template
    home = tmp_path_factory.mktemp("ui-jobs") / "home"
    shutil.copytree(source, home)
    proc, url, log = start_server(home)
    try:
        yield UIServer(url, home, proc, log, data)
    finally:
        stop(proc)


@pytest.fixture
def tab(browser_context: Any, jobs_server: UIServer) -> Iterator[Any]:
    with open_tab(browser_context) as page:
        login(page, jobs_server.url)
        yield page


def _shot(page: Any, shots: Path, name: str) -> None:
    page.screenshot(path=str(shots / f"ui-{name}.png"), full_page=True)


def _no_script_ran(page: Any) -> None:
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.dialogs == []


def _heading(page: Any) -> list[str]:
    """The page's h1 as its parts (name, version, status)."""
    return page.locator("h1").inner_text().split("\n")


def _names(page: Any) -> list[str]:
    return page.locator("table#jobs td.name a").all_inner_texts()


def test_job_list_pages_and_filters(tab: Any, jobs_server: UIServer, shots: Path) -> None:
    page, data = tab, jobs_server.data
    page.goto(jobs_server.url + "/ui/jobs")
    newest = [data["hostile"], data["failed"], data["rlvr"], data["sft"]]
    assert _names(page)[:5] == [*newest, f"filler-job-{FILLER_JOBS - 1:02d}"]
    assert len(_names(page)) == 25
    assert page.locator(".pager .where").inner_text() == "Page 1"
    _shot(page, shots, "jobs")
    page.click(".pager a[rel=next]")
    assert page.locator(".pager .where").inner_text() == "Page 2"
    assert _names(page) == [f"filler-job-{i:02d}" for i in range(JOBS - 25 - 1, -1, -1)]
    assert page.locator(".pager a[rel=next]").count() == 0
    page.go_back()
    assert page.locator(".pager .where").inner_text() == "Page 1"
    page.go_forward()
    page.click(".pager a[rel=first]")
    assert _names(page)[0] == data["hostile"]

    page.select_option("select[name=status]", "Failed")
    page.click("form.filters button")
    assert _names(page) == [data["hostile"], data["failed"]]
    assert page.locator("table#jobs .status").all_inner_texts() == ["Failed", "Failed"]
    page.goto(jobs_server.url + "/ui/jobs?name=rlvr")
    assert _names(page) == [data["failed"], data["rlvr"]]
    # A token belongs to its filters; a forged one is refused, as a page.
    page.goto(jobs_server.url + "/ui/jobs")
    token = re.search(r"token=([^&]+)", page.locator(".pager a[rel=next]").get_attribute("href"))[1]
    for query in (f"status=Completed&token={token}", "token=not-a-token", "status=Running"):
        response = page.goto(jobs_server.url + "/ui/jobs?" + query)
        assert response is not None and response.status == 400, query
        assert page.locator("h1").inner_text() == "Bad request"


def test_sft_job_curves_lineage_and_model(tab: Any, jobs_server: UIServer, shots: Path) -> None:
    page, data = tab, jobs_server.data
    page.goto(jobs_server.url + "/ui/")
    page.click("text=Training jobs")
    page.click(f"#jobs a:text('{data['sft']}')")
    assert page.locator("h1 .status").inner_text() == "Completed"
    assert f"Step {SFT_STEPS} of {SFT_STEPS} · 1 of 2 epochs done" in page.locator("#progress").inner_text()
    loss = page.locator("#curves svg.line").first
    assert loss.locator("polyline.series").count() == 2  # loss and eval_loss
    assert len(loss.locator("polyline.series").first.get_attribute("points").split()) == SFT_STEPS
    assert loss.locator("circle.dot").count() == SFT_STEPS + 1
    assert "loss, step 6: " in loss.locator("circle.dot").nth(SFT_STEPS - 1).locator("title").text_content()
    legend = page.locator("#curves .legend").first.inner_text()
    assert "loss" in legend and "eval_loss" in legend
    finals = page.locator("#final-metrics").inner_text()
    assert "train_loss" in finals and "eval_loss" in finals
    assert "max_steps\n6" in page.locator("#hyperparameters").inner_text()
    assert "team: équipe-ml" in page.locator("#details").inner_text()
    assert f"step {SFT_STEPS}:" in page.locator("#logs pre.log").inner_text()
    assert page.locator("#stop").count() == 0  # a finished job has nothing to stop
    versions = page.locator("#lineage .versions-line").inner_text()
    assert "trl " in versions and "torch " in versions
    _shot(page, shots, "job")

    # Lineage: the exact dataset versions, then the registered model and back.
    links = page.locator("#lineage a.dataset-link")
    assert links.all_inner_texts() == ["qa-train v1.0.0", "qa-valid v1.0.0"]
    links.first.click()
    page.wait_for_url(re.compile(r".*/ui/datasets/qa-train\?version=1\.0\.0$"))
    assert _heading(page)[:2] == ["qa-train", "v1.0.0"]
    page.go_back()
    page.click("#model-link")
    page.wait_for_url(re.compile(r".*/ui/models/tiny-chat\?version=1\.0\.0$"))
    assert _heading(page)[:3] == ["tiny-chat", "v1.0.0", "Available"]
    files = page.locator("#files").inner_text()
    assert "adapter_model.safetensors" in files and "tokenizer.json" in files
    assert page.locator("#lineage a.dataset-link").first.get_attribute("href") == \
        "/ui/datasets/qa-train?version=1.0.0"
    page.click("#job-link")
    assert _heading(page)[0] == data["sft"]
    # Stopping a finished job is refused (with the page's own CSRF token).
    token = page.locator("input[name=csrf_token]").first.input_value()
    response = page.request.post(jobs_server.url + f"/ui/jobs/{data['sft']}/stop",
                                 form={"csrf_token": token})
    assert response.status == 400 and "cannot be stopped" in response.text()


def test_rlvr_job_reward_curve_and_evaluator(tab: Any, jobs_server: UIServer) -> None:
    page, data = tab, jobs_server.data
    page.goto(jobs_server.url + f"/ui/jobs/{data['rlvr']}")
    titles = page.locator("#curves .field h3").all_inner_texts()
    assert titles == ["Loss", "Reward", "Learning rate"]
    reward = page.locator("#curves svg.line").nth(1)
    assert len(reward.locator("polyline.series").first.get_attribute("points").split()) == RL_STEPS
    assert "reward" in page.locator("#curves .legend").nth(1).inner_text()
    assert "reward_items" in page.locator("#final-metrics").inner_text()
    page.click("#details a.evaluator-link")
    page.wait_for_url(re.compile(r".*/ui/evaluators/adds-up\?version=1\.0\.0$"))
    assert _heading(page)[:2] == ["adds-up", "v1.0.0"]
    page.go_back()
    page.click("#lineage a.dataset-link")
    page.wait_for_url(re.compile(r".*/ui/datasets/rl-prompts\?version=1\.0\.0$"))


def test_failed_and_hostile_jobs_stay_text(tab: Any, jobs_server: UIServer) -> None:
    page, data = tab, jobs_server.data
    page.goto(jobs_server.url + "/ui/")
    failed_list = page.locator("#failed-jobs").inner_text()
    assert data["failed"] in failed_list and data["hostile"] in failed_list
    assert "No job is running" in page.locator("#running-jobs").inner_text()
    page.click(f"#failed-jobs a:text('{data['failed']}')")
    reason = page.locator("#failure-reason").inner_text()
    assert "failed on every one of" in reason and '<img src="x" onerror=' in reason
    assert "<script>" in page.locator("#logs pre.log").inner_text()
    assert page.locator("#failure-reason img, #logs img, #logs script").count() == 0
    assert "Model\nnone" in page.locator("#details").inner_text()  # no model registered
    _no_script_ran(page)

    page.goto(jobs_server.url + f"/ui/jobs/{data['hostile']}")
    assert "<script>" in page.locator("#hyperparameters").inner_text()
    assert page.locator("#failure-reason").inner_text().startswith('<img src="x"')
    assert "team: équipe données" in page.locator("#details").inner_text()
    # No lineage file: the channel's dataset version still links, and nothing else breaks.
    assert page.locator("#lineage a.dataset-link").all_inner_texts() == ["qa-train v1.0.0"]
    assert "No step metrics logged" in page.locator("#curves").inner_text()
    _no_script_ran(page)

    for path, shown in (("/ui/jobs/no-such-job", "no-such-job"),
                        ("/ui/jobs/%3Cimg%20src%3Dx%20onerror%3D%22window.__xss%3D1%22%3E", "<img src=x"),
                        ("/ui/models/no-such-model", "no-such-model")):
        response = page.goto(jobs_server.url + path)
        assert response is not None and response.status == 404, path
        assert page.locator("h1").inner_text() == "Not found"
        assert shown in page.locator("p.message").inner_text()
        _no_script_ran(page)


def test_stop_a_running_job_from_its_page(tab: Any, jobs_server: UIServer,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from airegistry.session import Session
    from airegistry.train import process as processes
    from airegistry.train.sft_trainer import SFTTrainer

    page, url = tab, jobs_server.url
    # The training process reports to the server, as a user's would.
    for key, value in {"AIREGISTRY_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                       "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_CONFIG_FILE": os.devnull,
                       "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                       "AIREGISTRY_TRAINING_HEARTBEAT_SECONDS": "0.3"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    session = Session(endpoint_url=url, region_name="us-east-1")
    job = SFTTrainer(model=jobs_server.data["model"], training_dataset="qa-train",
                     hyperparameters={"max_steps": 5000, "per_device_train_batch_size": 2},
                     base_job_name="long", sagemaker_session=session).train(wait=False)
    name = job.training_job_name
    process = processes.launched(name)
    try:
        page.goto(url + "/ui/")
        assert name in page.locator("#running-jobs").inner_text()
        deadline = time.monotonic() + 120
        while True:  # the page shows the steps once the process has loaded and started
            page.goto(url + f"/ui/jobs/{name}")
            done = page.locator("#done")
            if done.count() and int(done.inner_text().replace(",", "")) >= 2:
                break
            assert process.poll() is None and time.monotonic() < deadline, jobs_server.log_tail()
            time.sleep(0.5)
        assert page.locator("h1 .status").inner_text() == "InProgress"
        # Without the form's token the stop is refused.
        response = page.request.post(url + f"/ui/jobs/{name}/stop", form={})
        assert response.status == 403
        page.click("#stop button")
        assert f"Asked training job {name} to stop" in page.locator(".banner.ok").inner_text()
        # The page polls while the job runs and reloads once it has ended.
        page.wait_for_selector("h1 .s-stopped", timeout=120_000)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    assert "not registered" in page.locator("#details").inner_text()
    step = int(page.locator("#done").inner_text().replace(",", ""))
    assert 2 <= step < 5000
    statuses = page.locator("ol.transitions li strong").all_inner_texts()
    assert statuses[-2:] == ["Stopping", "Stopped"]
    assert page.locator("#stop").count() == 0
