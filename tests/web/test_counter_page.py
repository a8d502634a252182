"""The counter page in a real browser (headless Chromium, Playwright) against a real
gateway on loopback: a clerk's day from the first sign-in to signing out."""

from __future__ import annotations

import base64
import contextlib
import json
import stat
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect
from stdnum.cn import ric

from clients.receipts import SignedReceipt, load_public_keys, verify_receipt
from tests.support import Harness, free_port
from tests.web.conftest import (
    HALL,
    WebServer,
    add_clerk,
    first_sign_in,
    govgw,
    sign_in,
    start_web,
    stop,
)
from web.pages import slip_qr

PURPOSE = "户籍业务办理"


def wrong_check_digit(id_number: str) -> str:
    good = ric.calc_check_digit(id_number[:17] + "0")
    return id_number[:17] + ("1" if good != "1" else "2")


def verify(page: Page, url: str, name: str, id_number: str, purpose: str = PURPOSE) -> None:
    page.goto(url + "/verify/identity")
    page.fill("input[name=name]", name)
    page.fill("input[name=id_number]", id_number)
    page.select_option("select[name=purpose]", purpose)
    page.click("#submit")


@pytest.mark.requirement("R14")
def test_a_clerks_day_in_the_browser(
    web: WebServer, page: Page, gateway: Harness, tmp_path: Path
) -> None:
    """R14: the citizen is verified by the name and number on their ID document alone;
    the answer is 一致/不一致 with a signed receipt, the number shown masked."""
    adult = gateway.demo["adult_resident"]
    shots = tmp_path / "screenshots"
    first_sign_in(page, web, "clerk-li", "窗口密码-2026-li")
    page.screenshot(path=shots / "1-identity-form.png")

    # A true pair: 一致 in large type, the ID number masked, the receipt offered.
    verify(page, web.url, adult["name"], adult["id_number"])
    expect(page.locator("#verdict")).to_have_text("一致")
    body = page.content()
    assert adult["id_number"] not in body and adult["name"] not in body
    masked = adult["id_number"][:4] + "*" * 10 + adult["id_number"][-4:]
    assert masked in body
    page.screenshot(path=shots / "2-match.png")
    receipt_id = page.locator("#receipt-id").inner_text()
    # The gateway's trail names the clerk who made the check (the operator).
    checked = [r for r in gateway.audit_records() if r.get("receipt_id") == receipt_id]
    assert checked and all(r["operator"] == "clerk-li" for r in checked), checked
    link = page.locator("#receipt-json")
    assert "receipt" in (link.get_attribute("href") or "")
    with page.expect_download() as dl:
        link.click()
    saved = tmp_path / "receipt.json"
    dl.value.save_as(saved)
    text = saved.read_text()
    assert adult["id_number"] not in text and adult["name"] not in text
    keys = load_public_keys(gateway.data_dir / "keys" / "receipt-keys.json")
    claims = verify_receipt(SignedReceipt.from_json(json.loads(text)), keys)
    assert claims["outcome"] == "MATCH" and claims["receipt_id"] == receipt_id
    assert claims["caller"] == HALL and claims["action"] == "verify.identity"
    payload = SignedReceipt.from_json(json.loads(text)).payload.decode()
    assert adult["id_number"] not in payload and adult["name"] not in payload
    # ... and the command the inspector uses accepts the same file.
    out = govgw("receipt", "verify", "--key-file",
                str(gateway.data_dir / "keys" / "receipt-keys.json"), str(saved))  # fmt: skip
    assert out.returncode == 0 and "receipt VALID" in out.stdout, out.stderr

    # The printable slip carries the receipt in a QR code.
    page.goto(f"{web.url}/receipts/{receipt_id}/slip")
    expect(page.locator("#slip-receipt-id")).to_have_text(receipt_id)
    # The QR code is the downloaded receipt file, no more (segno encodes deterministically).
    assert page.locator("#slip-qr").get_attribute("src") == slip_qr(json.loads(text))
    page.screenshot(path=shots / "3-slip.png")

    # A wrong name: 不一致.
    verify(page, web.url, adult["name"] + "某", adult["id_number"])
    expect(page.locator("#verdict")).to_have_text("不一致")
    page.screenshot(path=shots / "4-no-match.png")

    # A wrong check digit is caught before anything is sent, and shown at the field.
    verify(page, web.url, adult["name"], wrong_check_digit(adult["id_number"]))
    expect(page.locator("#id_number-error")).to_contain_text("校验位")
    expect(page.locator("#verdict")).to_have_count(0)
    page.screenshot(path=shots / "5-field-error.png")

    # The gateway's own BadRequest lands at its field too: a purpose carrying an ID number.
    page.fill("input[name=id_number]", adult["id_number"])
    page.select_option("select[name=purpose]", "__other__")
    page.fill("input[name=purpose_other]", "核验" + adult["id_number"])
    page.click("#submit")
    expect(page.locator("#purpose-error")).to_be_visible()
    expect(page.locator("#verdict")).to_have_count(0)

    # The receipt check: the downloaded file valid, a tampered one invalid.
    page.goto(web.url + "/receipt-check")
    page.fill("textarea[name=receipt]", text)
    page.click("#submit")
    expect(page.locator("#receipt-verdict")).to_have_text("回执有效")
    tampered = json.loads(text) | {"receipt_id": "rcpt_forged"}
    page.fill("textarea[name=receipt]", json.dumps(tampered))
    page.click("#submit")
    expect(page.locator("#receipt-verdict")).to_have_text("回执无效")

    # The clerk's recent checks: answers and receipt ids, nothing personal.
    page.goto(web.url + "/checks")
    rows = page.locator("#checks tbody tr")
    expect(rows).to_have_count(2)
    table = page.locator("#checks").inner_text()
    assert receipt_id in table and "一致" in table and "不一致" in table and PURPOSE in table
    assert adult["id_number"] not in table and adult["name"] not in table
    page.screenshot(path=shots / "6-checks.png")

    # Sign out: the pages ask for a sign-in again.
    page.click("#logout")
    page.wait_for_url("**/login")
    page.goto(web.url + "/checks")
    page.wait_for_url("**/login")
    assert len(list(shots.glob("*.png"))) == 6


def test_attribute_checks_answer_yes_or_no_per_predicate(
    web: WebServer, page: Page, gateway: Harness
) -> None:
    adult = gateway.demo["adult_resident"]
    first_sign_in(page, web, "clerk-attr", "窗口密码-2026-attr")
    page.goto(web.url + "/verify/attributes")
    page.fill("input[name=subject]", adult["id_number"])
    page.check("input[name=check_age]")
    page.fill("input[name=age]", "18")
    page.check("input[name=check_region]")
    page.fill("input[name=region]", "99")
    page.select_option("select[name=purpose]", PURPOSE)
    page.click("#submit")
    expect(page.locator("#verdict")).to_have_text("不全符合")
    results = page.locator(".results").inner_text()
    assert "年满 18 周岁：是" in results and "户籍在行政区划 99 内：否" in results
    assert adult["id_number"] not in page.content()

    # An enterprise (统一社会信用代码) and its licence.
    entity = gateway.demo["active_entity"]
    page.goto(web.url + "/verify/attributes")
    page.fill("input[name=subject]", entity["uscc"])
    page.check("input[name=check_licence]")
    page.fill("input[name=licence_type]", entity["licence_type"])
    page.select_option("select[name=purpose]", "核实交易对象")
    page.click("#submit")
    expect(page.locator("#verdict")).to_have_text("全部符合")
    assert f"持有有效的 {entity['licence_type']}：是" in page.locator(".results").inner_text()


@pytest.mark.requirement("R12")
def test_forms_without_the_csrf_token_are_refused(web: WebServer, gateway: Harness) -> None:
    """R12 (access authentication): a plain POST, with or without the session cookie,
    is 403 without the form's token."""
    adult = gateway.demo["adult_resident"]
    one_time = add_clerk(web.data_dir, "clerk-csrf")
    with httpx.Client(base_url=web.url) as http:
        r = http.post("/login", data={"username": "clerk-csrf", "password": one_time})
        assert r.status_code == 403
        http.get("/login")  # a session (and its token) now exists; still none is sent
        r = http.post("/login", data={"username": "clerk-csrf", "password": one_time,
                                      "csrf_token": "forged"})  # fmt: skip
        assert r.status_code == 403
        r = http.post("/verify/identity", data={"name": adult["name"],
                      "id_number": adult["id_number"], "purpose": PURPOSE})  # fmt: skip
        assert r.status_code in (303, 403)  # not signed in: sent to sign in, never answered
        assert "一致" not in r.text


@pytest.mark.requirement("R12")
def test_five_failed_sign_ins_lock_the_account(web: WebServer, page: Page) -> None:
    one_time = add_clerk(web.data_dir, "clerk-wang")
    for i in range(5):
        sign_in(page, web.url, "clerk-wang", f"wrong-password-{i}")
        expect(page.locator("#form-error")).to_be_visible()
    expect(page.locator("#form-error")).to_contain_text("锁定")
    # Now even the right password is refused until the window has passed.
    sign_in(page, web.url, "clerk-wang", one_time)
    expect(page.locator("#form-error")).to_contain_text("锁定")
    assert page.url.endswith("/login")


def test_an_unreachable_gateway_is_said_plainly(
    tmp_path: Path, page: Page, gateway: Harness
) -> None:
    closed = f"127.0.0.1:{free_port()}"  # nothing listens there
    server = start_web(tmp_path, closed, gateway.keys[HALL])
    try:
        first_sign_in(page, server, "clerk-zhao", "窗口密码-2026-zhao")
        adult = gateway.demo["adult_resident"]
        verify(page, server.url, adult["name"], adult["id_number"])
        expect(page.locator("#form-error")).to_contain_text("核验服务暂时不可用")
        page.screenshot(path=tmp_path / "unavailable.png")
        assert "Traceback" not in server.log_text()
    finally:
        stop(server)


def _cookie_texts(page: Page) -> list[str]:
    """Each cookie's value and, for the signed session, its decoded content."""
    out = []
    for c in page.context.cookies():
        out.append(c["value"])
        head = c["value"].split(".")[0]
        with contextlib.suppress(ValueError):
            out.append(base64.b64decode(head + "=" * (-len(head) % 4)).decode("utf-8", "replace"))
    return out


@pytest.mark.requirement("R7")
def test_nothing_personal_in_the_web_data_dir_logs_or_cookies(
    web: WebServer, page: Page, gateway: Harness, gateway_logs, tmp_path: Path
) -> None:
    """R7: the page releases and keeps nothing raw: after matches, a mismatch, a field
    error and a refused purpose, no name or ID number is in the web data directory
    (every file, the SQLite bytes included), the web server's log, the gateway's log
    or the cookies."""
    adult = gateway.demo["adult_resident"]
    # A citizen's number typed into the username field: a failed sign-in, not kept as typed.
    sign_in(page, web.url, adult["id_number"], "not-a-password")
    expect(page.locator("#form-error")).to_be_visible()
    first_sign_in(page, web, "clerk-sun", "窗口密码-2026-sun")
    cookies = _cookie_texts(page)
    verify(page, web.url, adult["name"], adult["id_number"])
    expect(page.locator("#verdict")).to_have_text("一致")
    cookies += _cookie_texts(page)
    verify(page, web.url, adult["name"] + "某", adult["id_number"])
    expect(page.locator("#verdict")).to_have_text("不一致")
    bad = wrong_check_digit(adult["id_number"])
    verify(page, web.url, adult["name"], bad)
    expect(page.locator("#id_number-error")).to_be_visible()
    cookies += _cookie_texts(page)
    page.goto(web.url + "/checks")
    page.goto(web.url + "/receipts/" + page.locator("#checks a").first.inner_text() + "/slip")
    cookies += _cookie_texts(page)
    assert any('"user"' in c for c in cookies)  # the decoding did find the session content

    secrets_ = [adult["id_number"], bad, adult["name"], adult["name"] + "某"]
    files = [p for p in web.data_dir.rglob("*") if p.is_file()]
    assert {"web.sqlite", "session-secret", "receipt-keys.json"} <= {p.name for p in files}
    assert stat.S_IMODE(web.data_dir.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files), files
    blobs = {str(p): p.read_bytes() for p in files}
    blobs["web log"] = web.log.read_bytes()
    blobs["gateway log"] = gateway_logs.text.encode()
    blobs["cookies"] = "\n".join(cookies).encode()
    assert b"receipt" in blobs["web log"] or b"check kind" in blobs["web log"]
    for where, data in blobs.items():
        for value in secrets_:
            assert value.encode() not in data, f"{where} holds a name or ID number"
            assert value.lower().encode() not in data, where
