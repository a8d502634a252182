"""The counter page under test: `govgw web` in a child process (uvicorn, the real
CLI) against the shared real gateway, and headless Chromium driven by Playwright."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.support import Harness, free_port

CHROMIUM = "/usr/bin/chromium"  # Debian's package (make browser); no browser downloads
HALL = "counter-wenchuan"


def govgw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clients.cli", *args], capture_output=True, text=True, check=False
    )


def add_clerk(web_dir: Path, username: str) -> str:
    """`govgw web clerks add`; the one-time password is the last word printed."""
    out = govgw("web", "clerks", "add", "--data-dir", str(web_dir), "--username", username,
                "--caller", HALL)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[-1]


@dataclass
class WebServer:
    url: str
    data_dir: Path
    log: Path
    proc: subprocess.Popen[bytes]

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def key_file(path: Path, key: str, mode: int = 0o600) -> Path:
    path.write_text(key + "\n")
    os.chmod(path, mode)
    return path


def start_web(tmp_path: Path, gateway_target: str, api_key: str, *extra: str) -> WebServer:
    web_dir = tmp_path / "web"
    keyf = key_file(tmp_path / "hall.key", api_key)
    port = free_port()
    log = tmp_path / "web.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "clients.cli", "web", "--data-dir", str(web_dir),
             "--gateway", gateway_target, "--api-key-file", str(keyf),
             "--listen", f"127.0.0.1:{port}", *extra],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:  # up when it accepts connections (not a timed assertion: a start-up wait)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("govgw web did not start:\n" + log.read_text()) from None
            time.sleep(0.1)
    return WebServer(f"http://127.0.0.1:{port}", web_dir, log, proc)


def stop(server: WebServer) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


@pytest.fixture
def web(tmp_path: Path, gateway: Harness) -> Iterator[WebServer]:
    server = start_web(tmp_path, gateway.target, gateway.keys[HALL])
    yield server
    stop(server)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Per module, not per session: Playwright's sync API keeps an event loop running
    # in the main thread while it is open, and a later test's asyncio.run would fail.
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(accept_downloads=True, locale="zh-CN")
    context.set_default_timeout(15_000)
    p = context.new_page()
    yield p
    context.close()


def sign_in(page: Page, url: str, username: str, password: str) -> None:
    page.goto(url + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def first_sign_in(page: Page, web: WebServer, username: str, new_password: str) -> None:
    """A new clerk: one-time password, then their own."""
    one_time = add_clerk(web.data_dir, username)
    sign_in(page, web.url, username, one_time)
    page.wait_for_url("**/password")
    page.fill("input[name=password]", one_time)
    page.fill("input[name=new_password]", new_password)
    page.fill("input[name=new_password_confirm]", new_password)
    page.click("button[type=submit]")
    page.wait_for_url("**/verify/identity")
