"""How the UI is served: `airegistry ui` (127.0.0.1, one-time link) and `server --no-auth`."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ui.conftest import clean_env, start_server, stop

pytestmark = pytest.mark.slow


def _start_ui_command(home: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "airegistry.cli.main", "ui", "--home", str(home), "--port", "0"],
        env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"(http://127\.0\.0\.1:\d+/ui/login\?token=[\w-]+)", line)
        if match:
            return proc, match[1]
    proc.kill()
    raise AssertionError("no sign-in link printed:\n" + "".join(lines))


def test_ui_command_prints_a_one_time_link(browser_context: Any, tmp_path: Path, shots: Path) -> None:
    proc, link = _start_ui_command(tmp_path / "home")
    try:
        base = link.split("/ui/")[0]
        assert httpx.get(base + "/").status_code == 307  # standalone: / leads to /ui/
        browser_context.clear_cookies()
        page = browser_context.new_page()
        page.goto(link)
        assert page.url == base + "/ui/"
        assert page.locator("h1").inner_text() == "Overview"
        assert "registry is empty" in page.locator("#recent").inner_text()
        page.screenshot(path=str(shots / "ui-empty-overview.png"))
        # The link works once: another browser (no cookie) is refused.
        browser_context.clear_cookies()
        response = page.goto(link)
        assert response is not None and response.status == 401
        assert "already used" in page.locator("p.error").inner_text()
        page.goto(base + "/ui/datasets")
        assert "/ui/login" in page.url
        page.close()
    finally:
        stop(proc)


def test_ui_command_listens_on_loopback_only(tmp_path: Path) -> None:
    proc, link = _start_ui_command(tmp_path / "home")
    try:
        port = int(link.split(":")[2].split("/")[0])
        out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True)
        if out.returncode != 0:
            pytest.skip("ss is not available to list listening sockets")
        listeners = [line.split()[3] for line in out.stdout.splitlines() if line.strip()]
        assert listeners == [f"127.0.0.1:{port}"]
    finally:
        stop(proc)


def test_no_auth_server_opens_the_ui_with_a_warning(browser_context: Any, tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc, url, log = start_server(home, no_auth=True)
    try:
        browser_context.clear_cookies()
        page = browser_context.new_page()
        page.goto(url + "/ui/datasets")
        assert page.url == url + "/ui/datasets"
        warning = page.locator(".banner.warn").inner_text()
        assert "authentication is DISABLED (--no-auth)" in warning
        assert page.locator("text=Sign out").count() == 0
        # CSRF still applies to state-changing requests.
        response = page.request.post(url + "/ui/datasets/x/delete", form={"version": "1.0.0"})
        assert response.status == 403
        page.close()
    finally:
        stop(proc)
    assert "authentication is DISABLED" in log.read_text()
