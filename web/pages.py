"""The page handlers: sign-in, the first password, identity and attribute checks,
receipts (JSON file and printable slip), the receipt check, the clerk's recent checks."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import segno
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from web import forms
from web.gateway_client import Answer, CallFailed

if TYPE_CHECKING:
    from web.counter import Counter

log = logging.getLogger("govgw.web")
MIN_PASSWORD = 10


def forbidden() -> Response:
    return PlainTextResponse("403 表单已失效（CSRF 校验失败），请刷新页面后重试。", status_code=403)


def slip_qr(receipt: dict[str, str]) -> str:
    """The slip's QR code (an SVG data URI): the receipt file itself, compact JSON, so an
    inspector scans it into a file and checks it offline (`govgw receipt verify`)."""
    # Not the commitment's salt: the slip leaves the counter, and salt with receipt lets
    # anyone find the ID number by trying them all (docs/receipts.md).
    shown = {k: v for k, v in receipt.items() if k != "commitment_salt"}
    data = json.dumps(shown, sort_keys=True, separators=(",", ":"))
    return str(segno.make(data, error="m").svg_data_uri(scale=4, border=4))


def verdict(answer: Answer) -> str:
    if answer.kind == "identity":
        return "一致" if answer.matched else "不一致"
    return "全部符合" if answer.matched else "不全符合"


def routes(c: Counter) -> list[Route]:
    async def home(request: Request) -> Response:
        return RedirectResponse("/verify/identity", status_code=303)

    # -- sign-in -------------------------------------------------------------------
    async def login(request: Request) -> Response:
        if request.method == "GET":
            expired = request.session.pop("expired", False)
            notice = "长时间未操作，已自动退出，请重新登录。" if expired else ""
            return c.render(request, "login.html", notice=notice, username="")
        values = await c.form(request)
        if values is None:
            return forbidden()
        username, password = values.get("username", "").strip(), values.get("password", "")
        s = c.settings
        now = s.clock()
        since = now - s.lockout_window_s
        locked = f"该账户登录失败次数过多，已锁定 {int(s.lockout_window_s // 60)} 分钟，请稍后再试或联系管理员。"
        failures = await c.call(c.store.failures_since, username, since)
        # Only a clerk's username is logged: whatever else was typed there may be personal.
        known = await c.call(c.store.clerk, username) is not None
        shown = username if known else "(not a clerk)"
        if failures >= s.lockout_failures:
            log.warning("sign-in refused: locked user=%s", shown)
            return c.render(request, "login.html", 403, error=locked, username=username)
        clerk = await c.call(c.store.check_password, username, password)
        if clerk is None:
            await c.call(c.store.add_failure, username, now, since)
            left = s.lockout_failures - failures - 1
            log.warning("sign-in failed user=%s", shown)
            error = locked if left <= 0 else f"用户名或密码错误（还可尝试 {left} 次）。"
            return c.render(request, "login.html", 401, error=error, username=username)
        await c.call(c.store.clear_failures, username)
        request.session.clear()  # a fresh session (and CSRF token) for the signed-in clerk
        request.session.update(user=clerk.username, seen=now, must_change=clerk.must_change)
        log.info("sign-in user=%s", clerk.username)
        target = "/password" if clerk.must_change else "/verify/identity"
        return RedirectResponse(target, status_code=303)

    async def logout(request: Request) -> Response:
        if await c.form(request) is None:
            return forbidden()
        log.info("sign-out user=%s", request.session.get("user", ""))
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    async def password(request: Request) -> Response:
        user = c.clerk(request)
        if user is None:
            return RedirectResponse("/login", status_code=303)
        first = bool(request.session.get("must_change"))
        if request.method == "GET":
            return c.render(request, "password.html", first=first, errors={})
        values = await c.form(request)
        if values is None:
            return forbidden()
        errors: dict[str, str] = {}
        new = values.get("new_password", "")
        if await c.call(c.store.check_password, user, values.get("password", "")) is None:
            errors["password"] = "当前密码（或一次性密码）不正确"
        if len(new) < MIN_PASSWORD:
            errors["new_password"] = f"新密码至少 {MIN_PASSWORD} 个字符"
        elif new == values.get("password", ""):
            errors["new_password"] = "新密码不能与一次性密码相同"
        if new != values.get("new_password_confirm", ""):
            errors["new_password_confirm"] = "两次输入的新密码不一致"
        if errors:
            return c.render(request, "password.html", 400, first=first, errors=errors)
        await c.call(c.store.set_password, user, new)
        request.session["must_change"] = False
        log.info("password set user=%s", user)
        return RedirectResponse("/verify/identity", status_code=303)

    # -- checks ----------------------------------------------------------------------
    def answered(
        request: Request, user: str, answer: Answer, purpose: str, shown: dict
    ) -> Response:
        label = verdict(answer)
        log.info("check kind=%s user=%s receipt=%s", answer.kind, user, answer.receipt_id)
        return c.render(
            request,
            "answer.html",
            answer=answer,
            label=label,
            purpose=purpose,
            shown=shown,
            results=[(forms.predicate_text(k), v) for k, v in answer.results.items()],
        )

    async def identity(request: Request) -> Response:
        user = c.signed_in(request)
        if isinstance(user, Response):
            return user
        if request.method == "GET":
            return c.render(request, "identity.html", form=forms.Form({}), purposes=c.purposes)
        values = await c.form(request)
        if values is None:
            return forbidden()
        form, purpose = forms.identity_form(values)
        if not form.errors:
            try:
                answer = await c.call(
                    c.gateway.verify_identity,
                    user,
                    form.get("name"),
                    form.get("id_number"),
                    purpose,
                )
            except CallFailed as failed:
                form.errors.update(failed.fields)
                return c.render(
                    request, "identity.html", 503 if failed.unavailable else 400,
                    form=form, purposes=c.purposes, error=failed.message,
                    request_id=failed.request_id,
                )  # fmt: skip
            await record(user, answer, purpose)
            shown = {
                "姓名": forms.mask_name(form.get("name")),
                "身份证号码": forms.mask_id(form.get("id_number")),
            }
            return answered(request, user, answer, purpose, shown)
        return c.render(request, "identity.html", 400, form=form, purposes=c.purposes)

    async def attributes(request: Request) -> Response:
        user = c.signed_in(request)
        if isinstance(user, Response):
            return user
        if request.method == "GET":
            return c.render(request, "attributes.html", form=forms.Form({}), purposes=c.purposes)
        values = await c.form(request)
        if values is None:
            return forbidden()
        form, purpose, predicates = forms.attribute_form(values)
        if not form.errors:
            try:
                answer = await c.call(
                    c.gateway.verify_attributes, user, form.get("subject"), predicates, purpose
                )
            except CallFailed as failed:
                form.errors.update(failed.fields)
                return c.render(
                    request, "attributes.html", 503 if failed.unavailable else 400,
                    form=form, purposes=c.purposes, error=failed.message,
                    request_id=failed.request_id,
                )  # fmt: skip
            await record(user, answer, purpose)
            shown = {"核验对象": forms.mask_id(form.get("subject"))}
            return answered(request, user, answer, purpose, shown)
        return c.render(request, "attributes.html", 400, form=form, purposes=c.purposes)

    async def record(user: str, answer: Answer, purpose: str) -> None:
        """The clerk's recent checks keep the answer and its receipt, nothing personal."""
        if answer.receipt is not None:
            await c.call(
                c.store.add_check, user, answer.kind, purpose, verdict(answer), answer.receipt
            )

    # -- receipts --------------------------------------------------------------------
    async def receipt_file(request: Request) -> Response:
        user = c.signed_in(request)
        if isinstance(user, Response):
            return user
        rid = request.path_params["receipt_id"]
        doc = await c.call(c.store.receipt, user, rid)
        if doc is None:
            return PlainTextResponse("未找到该回执（只能查看本人的核验回执）。", status_code=404)
        return JSONResponse(
            doc, headers={"content-disposition": f'attachment; filename="receipt-{rid}.json"'}
        )

    async def receipt_slip(request: Request) -> Response:
        user = c.signed_in(request)
        if isinstance(user, Response):
            return user
        rid = request.path_params["receipt_id"]
        doc = await c.call(c.store.receipt, user, rid)
        if doc is None:
            return PlainTextResponse("未找到该回执（只能查看本人的核验回执）。", status_code=404)
        check = await c.call(c.gateway.check_receipt, json.dumps(doc))
        return c.render(request, "slip.html", receipt=doc, claims=check.claims, qr=slip_qr(doc))

    async def receipt_check(request: Request) -> Response:
        user = c.signed_in(request)
        if isinstance(user, Response):
            return user
        if request.method == "GET":
            return c.render(request, "receipt_check.html", result=None, text="")
        values = await c.form(request)
        if values is None:
            return forbidden()
        text = values.get("receipt", "")
        result = await c.call(c.gateway.check_receipt, text)
        return c.render(request, "receipt_check.html", result=result, text=text)

    async def checks(request: Request) -> Response:
        user = c.signed_in(request)
        if isinstance(user, Response):
            return user
        rows = await c.call(c.store.recent_checks, user)
        return c.render(request, "checks.html", rows=rows)

    both = ["GET", "POST"]
    return [
        Route("/", home),
        Route("/login", login, methods=both),
        Route("/logout", logout, methods=["POST"]),
        Route("/password", password, methods=both),
        Route("/verify/identity", identity, methods=both),
        Route("/verify/attributes", attributes, methods=both),
        Route("/receipts/{receipt_id}/receipt.json", receipt_file),
        Route("/receipts/{receipt_id}/slip", receipt_slip),
        Route("/receipt-check", receipt_check, methods=both),
        Route("/checks", checks),
    ]
