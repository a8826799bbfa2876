"""The UI under test: a real `airegistry server` process on a free 127.0.0.1 port, over a
seeded home, and Debian's Chromium driven by Playwright.

Chromium comes from the system (the Makefile installs Debian's ``chromium``); Playwright's
own browser download cannot work offline. Without the binary the browser tests skip
locally, but fail under CI=true: a CI run must never pass by skipping them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ACCESS_KEY = "AKIDUITEST0000000001"
SECRET_KEY = "ui-test-secret-0123456789abcdefghijklmn"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("AIREGISTRY_CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _require_browser() -> str:
    path = chromium_path()
    try:
        import playwright  # noqa: F401
    except ImportError:
        path = None
    if path is None:
        message = ("Chromium or Playwright is missing: install Debian's chromium (make system-deps) "
                   "and the dev extras (make install)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}. Browser tests must run in CI.")
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIREGISTRY_", "AWS_"))}
    env["AWS_DEFAULT_REGION"] = "us-east-1"
    env.update(extra)
    return env


@dataclass
class UIServer:
    url: str
    home: Path
    proc: subprocess.Popen
    log: Path
    data: dict[str, Any]

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def start_server(home: Path, *, no_auth: bool = False) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = home.parent / f"server-{port}.log"
    args = [sys.executable, "-m", "airegistry.cli.main", "server", "--home", str(home),
            "--port", str(port), "--log-level", "warning"]
    if no_auth:
        args.append("--no-auth")
    env = clean_env(AIREGISTRY_SERVER_KEYS=f"{ACCESS_KEY}:{SECRET_KEY}")
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("server exited:\n" + log.read_text()[-3000:])
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url, log
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("server did not start:\n" + log.read_text()[-3000:])


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@contextlib.contextmanager
def seeding_environment() -> Iterator[None]:
    """Seed a home under the environment the server process gets (clean_env): same region,
    so the same hub name, and no hub or bucket overrides. The homes are closed after: the
    server process owns them from then on."""
    from airegistry.home import close_homes

    saved = {k: os.environ.pop(k) for k in list(os.environ)
             if k.startswith(("AIREGISTRY_HUB", "AIREGISTRY_BUCKET", "AIREGISTRY_ENDPOINT_URL",
                              "AWS_REGION", "AWS_DEFAULT_REGION"))}
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    try:
        yield
    finally:
        os.environ.pop("AWS_DEFAULT_REGION", None)
        os.environ.update(saved)
        close_homes()


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIServer]:
    """One seeded server for the browser tests of this worker process."""
    from tests.ui import seed

    root = tmp_path_factory.mktemp("ui")
    home = root / "home"
    with seeding_environment():
        data = seed.build(home, root / "files")
    proc, url, log = start_server(home)
    try:
        yield UIServer(url, home, proc, log, data)
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    path = _require_browser()
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=path, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900}, accept_downloads=True,
        )
        try:
            yield context
        finally:
            context.close()


@contextlib.contextmanager
def open_tab(browser_context: Any) -> Iterator[Any]:
    """A fresh tab with no cookies; every dialog (alert) a page opens is recorded."""
    browser_context.clear_cookies()
    tab = browser_context.new_page()
    tab.dialogs = []
    tab.on("dialog", lambda d: (tab.dialogs.append(d.message), d.dismiss()))
    tab.set_default_timeout(15_000)
    try:
        yield tab
    finally:
        tab.close()


@pytest.fixture
def page(browser_context: Any, ui_server: UIServer) -> Iterator[Any]:
    with open_tab(browser_context) as tab:
        yield tab


@pytest.fixture
def logged_in(page: Any, ui_server: UIServer) -> Any:
    login(page, ui_server.url)
    return page


def login(page: Any, url: str, key: str = ACCESS_KEY, secret: str = SECRET_KEY) -> None:
    page.goto(url + "/ui/login")
    page.fill("input[name=access_key_id]", key)
    page.fill("input[name=secret_access_key]", secret)
    page.click("button[type=submit]")
    page.wait_for_load_state()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Screenshots of the main pages (AIREGISTRY_UI_SHOTS=DIR keeps them somewhere else)."""
    target = os.environ.get("AIREGISTRY_UI_SHOTS")
    path = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path
