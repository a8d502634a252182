"""Sessions, cookies, files and the hall's key, in process (Starlette's TestClient on
the real app; a clock the test moves instead of waiting)."""

from __future__ import annotations

import logging
import re
import stat
import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():
    # Starlette 1.x would have httpx2 under its TestClient; httpx (pinned) still works.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from tests.support import free_port
from tests.web.conftest import govgw, key_file
from web.app import WebSettings, create_app
from web.cli import read_api_key
from web.forms import id_number_error, mask_id
from web.store import WebStore

NEW_PASSWORD = "窗口密码-2026-idle"


def csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, html
    return m.group(1)


def app_client(web_dir: Path, clock: list[float], **kw: object) -> TestClient:
    settings = WebSettings(
        data_dir=web_dir,
        gateway=f"127.0.0.1:{free_port()}",  # no call reaches it in these tests
        api_key="unused",
        clock=lambda: clock[0],
        **kw,  # type: ignore[arg-type]
    )
    return TestClient(create_app(settings), base_url="http://counter.test", follow_redirects=False)


def signed_in(http: TestClient, web_dir: Path, username: str) -> None:
    store = WebStore(web_dir)
    one_time = store.add_clerk(username, "counter-wenchuan")
    store.close()
    token = csrf(http.get("/login").text)
    r = http.post("/login", data={"username": username, "password": one_time, "csrf_token": token})
    assert r.status_code == 303 and r.headers["location"] == "/password"
    token = csrf(http.get("/password").text)
    r = http.post("/password", data={"password": one_time, "new_password": NEW_PASSWORD,
                                     "new_password_confirm": NEW_PASSWORD, "csrf_token": token})  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == "/verify/identity"


@pytest.mark.requirement("R12")
def test_an_idle_session_ends_and_the_clerk_is_told(tmp_path: Path) -> None:
    clock = [1_000_000.0]
    with app_client(tmp_path / "web", clock, idle_s=15 * 60) as http:
        signed_in(http, tmp_path / "web", "clerk-idle")
        clock[0] += 14 * 60
        assert http.get("/checks").status_code == 200  # activity keeps it alive
        clock[0] += 14 * 60
        assert http.get("/checks").status_code == 200
        clock[0] += 15 * 60 + 1
        r = http.get("/checks")
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert "长时间未操作" in http.get("/login").text


def test_the_first_sign_in_must_set_a_new_password_first(tmp_path: Path) -> None:
    clock = [1_000_000.0]
    web_dir = tmp_path / "web"
    with app_client(web_dir, clock) as http:
        store = WebStore(web_dir)
        one_time = store.add_clerk("clerk-new", "counter-wenchuan")
        store.close()
        token = csrf(http.get("/login").text)
        http.post(
            "/login", data={"username": "clerk-new", "password": one_time, "csrf_token": token}
        )
        # Every page leads to the password form until a password is set.
        assert http.get("/verify/identity").headers["location"] == "/password"
        token = csrf(http.get("/password").text)
        r = http.post("/password", data={"password": one_time, "new_password": "short",
                                         "new_password_confirm": "other", "csrf_token": token})  # fmt: skip
        assert r.status_code == 400
        assert 'id="new_password-error"' in r.text and 'id="new_password_confirm-error"' in r.text
        assert http.get("/verify/identity").headers["location"] == "/password"


def test_the_session_cookie_is_httponly_strict_and_secure_under_tls(tmp_path: Path) -> None:
    for tls in (False, True):
        with app_client(tmp_path / f"web-{tls}", [0.0], tls=tls) as http:
            cookie = http.get("/login").headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert ("secure" in cookie.split(";")[-1] or "; secure" in cookie) is tls


def test_the_data_directory_is_owner_only(tmp_path: Path) -> None:
    web_dir = tmp_path / "web"
    out = govgw("web", "clerks", "add", "--data-dir", str(web_dir), "--username", "u1",
                "--caller", "counter-wenchuan")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.split()[-1]) >= 16  # the one-time password, last word
    with app_client(web_dir, [0.0]) as http:
        http.get("/login")
    assert stat.S_IMODE(web_dir.stat().st_mode) == 0o700
    files = [p for p in web_dir.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"web.sqlite", "session-secret"}
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    again = govgw("web", "clerks", "add", "--data-dir", str(web_dir), "--username", "u1",
                  "--caller", "counter-wenchuan")  # fmt: skip
    assert again.returncode == 1 and "exists already" in again.stderr


def test_an_api_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    loose = key_file(tmp_path / "hall.key", "k" * 32, mode=0o644)
    with pytest.raises(ValueError, match="readable by others"):
        read_api_key(loose)
    out = govgw("web", "--data-dir", str(tmp_path / "web"), "--gateway", "127.0.0.1:1",
                "--api-key-file", str(loose), "--listen", f"127.0.0.1:{free_port()}")  # fmt: skip
    assert out.returncode == 1 and "chmod 600" in out.stderr
    assert read_api_key(key_file(tmp_path / "ok.key", "k" * 32)) == "k" * 32


def test_id_numbers_are_checked_before_sending_and_shown_masked() -> None:
    good = "11010519491231002X"
    assert id_number_error(good) == ""
    assert "校验位" in id_number_error(good[:17] + "1")
    assert "18 位" in id_number_error(good[:10])
    assert mask_id(good) == "1101**********002X"
    assert good not in id_number_error(good[:17] + "1")


def test_a_defect_answers_500_and_logs_one_line_without_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    web_dir = tmp_path / "web"
    with app_client(web_dir, [1_000_000.0]) as http:
        signed_in(http, web_dir, "clerk-defect")
        http.app.state.counter.store.close()  # the database gone from under the page
        with caplog.at_level(logging.ERROR, logger="govgw.web"):
            r = http.get("/checks")  # the TestClient re-raises anything that escapes
    assert r.status_code == 500 and "系统内部错误" in r.text
    (record,) = [r for r in caplog.records if r.name == "govgw.web" and r.levelno >= logging.ERROR]
    assert record.getMessage() == "page failed: ProgrammingError on /checks"
    assert record.exc_info is None
