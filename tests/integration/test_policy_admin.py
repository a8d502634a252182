"""PolicyAdminService through a real server: roles, precise errors, activation under load,
other processes following within a second, signatures, impact, last good version."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from govgw.v1 import policy_admin_pb2 as pb

from clients.sdk import GovgwClient, GovgwClientError, PolicyAdminClient
from clients.sdk.calls_policy import bundle
from gateway import admin
from gateway.policy.serving import policy_store
from gateway.policy.versions import generate_key
from tests.support import Harness, expect_error, free_port, make_data_dir, serve_subprocess, start

POLICIES = Path(__file__).resolve().parents[2] / "policies"
PURPOSE = "社会保障待遇资格认证"
PHONE_MASK = '"share": {"operator": "mask", "params": {"keep_first": 3, "keep_last": 4}}'
INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


def candidate(root: Path, name: str, *, raw_phone: bool = False, lockout: bool = False) -> Path:
    """A copy of the shipped policies: raw phones for agencies, or administrators locked out."""
    d = root / name
    shutil.copytree(POLICIES, d)
    if raw_phone:
        cat = d / "data" / "catalog.json"
        cat.write_text(cat.read_text().replace(PHONE_MASK, '"share": {"operator": "keep"}', 1))
        shutil.rmtree(d / "tests")  # the shipped tests pin the masked phone
        (d / "tests").mkdir()
        (d / "tests" / "smoke_test.rego").write_text(
            "package govgw.smoke_test\nimport rego.v1\ntest_known if data.govgw.callers.kinds\n"
        )
    if lockout:
        rego = d / "admin.rego"
        rego.write_text(
            rego.read_text().replace("else := plans.allow({})", 'else := plans.deny("NO", "no")')
        )
    return d


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    data_dir = tmp_path_factory.mktemp("policy-admin") / "data"
    keys, demo = make_data_dir(data_dir, persons=30, entities=10)
    keys["admin"] = admin.callers_add(data_dir, "policy-admin", "admin", "大数据局", "513200")[
        "api_key"
    ]
    h = start(data_dir, keys, demo)
    yield h
    h.stop()


@pytest.fixture(scope="module")
def cands(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("candidates")
    return {
        "same": candidate(root, "same"),
        "raw": candidate(root, "raw", raw_phone=True),
        "lockout": candidate(root, "lockout", lockout=True),
    }


def admin_client(h: Harness, caller: str = "admin") -> _Admin:
    c = _Admin(h.target, api_key=h.keys[caller], timeout_s=60)
    h.clients.append(c)
    return c


def phone_treatment(c: GovgwClient, h: Harness) -> tuple[str, str]:
    r = c.lookup(
        "population.basic", h.demo["adult_resident"]["id_number"], ["phone"], purpose=PURPOSE
    )
    return r.policy_version, r.records[0]["phone"].treatment


IDEMPOTENT = (("idempotency-key", "activate-raw-0000000001"),)


class _Admin(PolicyAdminClient):
    def activate_with(self, metadata: tuple, cand: Path, reason: str):
        from govgw.v1 import policy_admin_pb2 as pb

        request = pb.ActivateRequest(bundle=bundle(cand), reason=reason)
        return self.stub("policy_admin").Activate(
            request, metadata=(*self._metadata, *metadata), timeout=self.timeout_s
        )


def start_attached(data_dir: Path, keys: dict[str, str], demo: dict) -> Harness:
    """A server as `govgw serve` builds it: with limits, oracle and replay protection."""
    from gateway.app import attach, build_parts
    from gateway.config import ServeConfig
    from gateway.server import GatewayServer

    cfg = ServeConfig(data_dir=data_dir, listen="127.0.0.1:0", grace_s=1)
    server = GatewayServer(cfg, attach(build_parts(cfg), cfg))
    server.start()
    return Harness(data_dir, cfg, server.parts, server, keys, demo)


def ensure_baseline(h: Harness) -> str:
    """Make the shipped policy the active version (activating it first if needed)."""
    a = admin_client(h)
    shipped = a.validate_policy(POLICIES).version
    if a.list_policy_versions().active_version != shipped:
        try:
            a.activate_policy(version=shipped, reason="回到基线")
        except GovgwClientError as e:
            assert e.reason == "VERSION_NOT_FOUND"
            a.activate_policy(candidate=POLICIES, reason="回到基线")
    return shipped


def test_only_administrators_administer_and_they_read_no_records(gw: Harness) -> None:
    e = expect_error(
        admin_client(gw, "agency-civil").list_policy_versions,
        grpc.StatusCode.PERMISSION_DENIED,
        "ADMIN_ROLE_REQUIRED",
    )
    assert e.message
    expect_error(
        PolicyAdminClient(gw.target).list_policy_versions,
        grpc.StatusCode.UNAUTHENTICATED,
        "CREDENTIALS_MISSING",
    )
    expect_error(
        lambda: admin_client(gw).lookup(
            "population.basic", gw.demo["adult_resident"]["id_number"], purpose=PURPOSE
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "ADMIN_NO_DATA_ACCESS",
    )
    # a refused administrative call runs nothing slow and is audited like any call
    expect_error(
        lambda: admin_client(gw, "counter-wenchuan").validate_policy(POLICIES),
        grpc.StatusCode.PERMISSION_DENIED,
        "ADMIN_ROLE_REQUIRED",
    )
    actions = [(r["action"], r["caller"], r["outcome"]) for r in gw.audit_records()]
    assert ("policy.validate", "counter-wenchuan", "PERMISSION_DENIED") in actions
    assert ("policy.read", "agency-civil", "PERMISSION_DENIED") in actions


def test_bad_requests_name_the_field(gw: Harness) -> None:
    from govgw.v1 import policy_admin_pb2 as pb

    a = admin_client(gw)
    expect_error(
        lambda: a._call(a.stub("policy_admin").Validate, pb.ValidateRequest()),
        INVALID,
        "BUNDLE_EMPTY",
        ["bundle.files"],
    )
    bad = pb.PolicyBundle(
        files=[
            pb.PolicyFile(path="../escape.rego", content=b"x"),
            pb.PolicyFile(path="data/x.json", content=b"{}"),
            pb.PolicyFile(path="data/x.json", content=b"{}"),
        ]
    )
    expect_error(
        lambda: a._call(a.stub("policy_admin").Test, pb.TestRequest(bundle=bad, min_coverage=120)),
        INVALID,
        "POLICY_PATH_INVALID",
        ["bundle.files[0].path", "bundle.files[2].path", "min_coverage"],
    )
    expect_error(
        lambda: a.activate_policy(candidate=POLICIES, reason=""),
        INVALID,
        "REASON_MISSING",
        ["reason"],
    )
    expect_error(
        lambda: a.activate_policy(version="v1", reason="x"), INVALID, "VERSION_INVALID", ["version"]
    )
    expect_error(
        lambda: a.activate_policy(version="pv-000000000000", reason="x"),
        grpc.StatusCode.NOT_FOUND,
        "VERSION_NOT_FOUND",
        ["version"],
    )
    expect_error(
        lambda: a.rollback_policy(version="pv-000000000000", reason="x"),
        PRECONDITION,
        "VERSION_NEVER_ACTIVE",
        ["version"],
    )
    expect_error(
        lambda: a._call(a.stub("policy_admin").Activate, pb.ActivateRequest(reason="x")),
        INVALID,
        "POLICY_SOURCE_MISSING",
        ["bundle"],
    )


def test_impact_authenticates_before_it_reads_the_window(gw: Harness) -> None:
    from google.protobuf import duration_pb2
    from govgw.v1 import policy_admin_pb2 as pb

    huge = pb.ImpactRequest(
        candidate=bundle(POLICIES),
        window=duration_pb2.Duration(seconds=2**63 - 1),
    )
    # no credentials: refused before any byte of the request is looked at
    anonymous = PolicyAdminClient(gw.target)
    gw.clients.append(anonymous)
    expect_error(
        lambda: anonymous._call(anonymous.stub("policy_admin").Impact, huge),
        grpc.StatusCode.UNAUTHENTICATED,
        "CREDENTIALS_MISSING",
    )
    # an administrator: a Duration beyond the well-known type's range names the field
    a = admin_client(gw)
    expect_error(
        lambda: a._call(a.stub("policy_admin").Impact, huge),
        INVALID,
        "DURATION_OUT_OF_RANGE",
        ["window"],
    )
    # the largest Duration in range converts, and is a window too long
    longest = pb.ImpactRequest(
        candidate=huge.candidate, window=duration_pb2.Duration(seconds=315_576_000_000)
    )
    expect_error(
        lambda: a._call(a.stub("policy_admin").Impact, longest),
        INVALID,
        "WINDOW_INVALID",
        ["window"],
    )
    refused = [
        (r["caller"], r["outcome"], r["reason"])
        for r in gw.audit_records()
        if r["action"] == "policy.impact"
    ]
    assert ("", "UNAUTHENTICATED", "CREDENTIALS_MISSING") in refused
    assert ("policy-admin", "INVALID_ARGUMENT", "DURATION_OUT_OF_RANGE") in refused


def test_validate_and_test_report_problems_with_file_and_line(gw: Harness, tmp_path: Path) -> None:
    a = admin_client(gw)
    ok = a.validate_policy(POLICIES)
    assert ok.valid and ok.version.startswith("pv-") and not ok.problems
    broken = tmp_path / "broken"
    shutil.copytree(POLICIES, broken)
    (broken / "regions.rego").write_text(
        (broken / "regions.rego").read_text().replace("else := {}", 'else := {"t": time.now_ns()}')
    )
    cat = json.loads((broken / "data" / "catalog.json").read_text())
    cat["datasets"]["credit.record"]["legal_basis"] = ""
    (broken / "data" / "catalog.json").write_text(json.dumps(cat, ensure_ascii=False, indent=1))
    r = a.validate_policy(broken)
    assert not r.valid
    found = {(p.kind, p.file, p.rule) for p in r.problems}
    assert ("builtin", "regions.rego", "constraints") in found
    assert ("data", "data/catalog.json", 'datasets["credit.record"].legal_basis') in found
    assert all(p.line > 0 for p in r.problems)

    t = a.test_policy(POLICIES, min_coverage=90)
    assert t.passed and t.coverage_percent >= 90 and len(t.results) >= 60
    assert {f.file for f in t.files} >= {"share.rego", "decision.rego"}
    (broken / "regions.rego").write_text((POLICIES / "regions.rego").read_text())
    (broken / "tests" / "fail_test.rego").write_text(
        "package govgw.fail_test\nimport rego.v1\ntest_fails if false\n"
    )
    shutil.copy(POLICIES / "data" / "catalog.json", broken / "data" / "catalog.json")
    t = a.test_policy(broken)
    failed = [x.name for x in t.results if not x.passed]
    assert not t.passed and failed == ["govgw.fail_test.test_fails"]


def test_a_policy_that_would_lock_administrators_out_is_refused(gw: Harness, cands) -> None:
    e = expect_error(
        lambda: admin_client(gw).activate_policy(candidate=cands["lockout"], reason="锁定测试"),
        PRECONDITION,
        "POLICY_INVALID",
    )
    assert {v.reason for v in e.violations} == {"POLICY_LOCKOUT"}


def test_activation_under_load_is_atomic_and_rolls_back(gw: Harness, cands) -> None:
    shipped = ensure_baseline(gw)
    a = admin_client(gw)
    stop = threading.Event()
    seen: list[tuple[str, str]] = []
    errors: list[Exception] = []

    def traffic() -> None:
        c = gw.client("agency-civil")
        while not stop.is_set():
            try:
                seen.append(phone_treatment(c, gw))
            except Exception as e:  # any failure during a swap is a test failure
                errors.append(e)

    workers = [threading.Thread(target=traffic) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        time.sleep(0.3)
        act = a.activate_policy(candidate=cands["raw"], reason="部门可见完整电话（测试）")
        raw = act.version.version
        assert act.serving_version == raw and act.entry.previous == shipped
        # this process switched before the call returned
        assert phone_treatment(gw.client("agency-civil"), gw) == (raw, "keep")
        time.sleep(0.3)
        rb = a.rollback_policy(reason="撤回测试")
        assert rb.version.version == shipped and rb.serving_version == shipped
        assert phone_treatment(gw.client("agency-civil"), gw) == (shipped, "mask")
        time.sleep(0.2)
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert errors == []
    assert len(seen) > 20
    # every answer is wholly one version: raw phones only ever under the raw version
    assert set(seen) == {(shipped, "mask"), (raw, "keep")}
    listing = a.list_policy_versions()
    entries = [(h.action, h.version, h.actor) for h in listing.history]
    assert ("activate", raw, "policy-admin") in entries and (
        "rollback",
        shipped,
        "policy-admin",
    ) in entries
    last = listing.history[-1]
    # A reason is desensitized free text; while policy_admin._reason still resolves it as
    # a purpose it is stored with the generic purpose code (validation.free_text drops it).
    assert last.reason == "撤回测试"
    assert last.request_id.startswith("req_") and last.at is not None
    assert listing.active_version == listing.serving_version == shipped


def test_impact_reports_fields_newly_unmasked_per_dataset_and_caller(gw: Harness, cands) -> None:
    ensure_baseline(gw)
    c = gw.client("agency-civil")
    for _ in range(3):
        phone_treatment(c, gw)
    r = admin_client(gw).policy_impact(cands["raw"], window_s=3600, max_examples=2)
    assert r.candidate_version != r.current_version
    assert r.totals["field_unmasked"] >= 3 and "allow_to_deny" not in r.totals
    g = next(
        g
        for g in r.groups
        if (g.change, g.dataset, g.caller) == ("field_unmasked", "population.basic", "agency-civil")
    )
    assert g.count >= 3 and g.names["phone"] == g.count and len(g.examples) == 2
    ex = g.examples[0]
    assert (ex.before.fields["phone"], ex.after.fields["phone"]) == ("mask", "keep")
    audited = {rec["request_id"] for rec in gw.audit_records()}
    assert ex.request_id in audited and ex.requested_fields == ("phone",)
    same = admin_client(gw).policy_impact(cands["same"], window_s=3600)
    assert same.decisions_changed == 0 and same.decisions_compared > 0


def test_another_gateway_process_switches_within_a_second(
    gw: Harness, cands, tmp_path: Path
) -> None:
    """A second `govgw serve` sharing the policy store follows an activation made here."""
    shipped = ensure_baseline(gw)
    other_dir = tmp_path / "other"
    keys, _ = make_data_dir(other_dir, persons=30, entities=10)
    (other_dir / "policy").symlink_to(gw.data_dir / "policy", target_is_directory=True)
    port = free_port()
    proc = serve_subprocess(other_dir, port)
    try:
        other = GovgwClient(f"127.0.0.1:{port}", api_key=keys["agency-civil"])
        assert phone_treatment(other, gw) == (shipped, "mask")
        act = admin_client(gw).activate_policy(candidate=cands["raw"], reason="多进程切换")
        switched = time.monotonic()
        while phone_treatment(other, gw)[0] != act.version.version:
            assert time.monotonic() - switched < 1.0, "the other process did not switch in 1 s"
            time.sleep(0.02)
        waited = time.monotonic() - switched
        assert phone_treatment(other, gw) == (act.version.version, "keep")
        admin_client(gw).rollback_policy(reason="回到基线")
        other.close()
        print(f"other process switched {waited * 1000:.0f} ms after Activate returned")
    finally:
        proc.terminate()
        proc.wait(10)


# Administrator keys may be Ed25519 or SM2 (GB/T 32918).
@pytest.mark.parametrize("algorithm", ["ed25519", "sm2"])
def test_signatures_when_required(gw: Harness, tmp_path: Path, algorithm: str) -> None:
    ensure_baseline(gw)
    store = policy_store(gw.data_dir)
    # Key ids of their own: trust.json keeps the other run's keys.
    alice, mallory = f"alice-{algorithm}", f"mallory-{algorithm}"
    # And content of its own: a version keeps the signature it was first stored with.
    raw = candidate(tmp_path, "raw", raw_phone=True)
    smoke = raw / "tests" / "smoke_test.rego"
    smoke.write_text(smoke.read_text() + f"# signed with {algorithm}\n")
    priv, pub = generate_key(tmp_path / "keys", alice, algorithm)
    other_priv, _ = generate_key(tmp_path / "keys", mallory, algorithm)
    store.set_trust(key_id=alice, public_key_pem=pub.read_text(), require_signature=True)
    a = admin_client(gw)
    try:
        expect_error(
            lambda: a.activate_policy(candidate=raw, reason="未签名"),
            PRECONDITION,
            "SIGNATURE_REQUIRED",
            ["signature"],
        )
        expect_error(
            lambda: a.activate_policy(
                candidate=raw, reason="签名", sign_key=other_priv, key_id=mallory
            ),
            grpc.StatusCode.PERMISSION_DENIED,
            "SIGNATURE_KEY_UNTRUSTED",
            ["signature.key_id"],
        )
        expect_error(
            lambda: a.activate_policy(
                candidate=raw, reason="签名", sign_key=other_priv, key_id=alice
            ),
            INVALID,
            "SIGNATURE_INVALID",
            ["signature.signature"],
        )
        # Bytes that are neither an Ed25519 signature nor an SM2 one's DER form.
        malformed = pb.ActivateRequest(
            reason="签名",
            bundle=bundle(raw),
            signature=pb.BundleSignature(key_id=alice, signature=b"\x30\x03\x02\x01\x01"),
        )
        expect_error(
            lambda: a._call(a.stub("policy_admin").Activate, malformed),
            INVALID,
            "SIGNATURE_MALFORMED",
            ["signature.signature"],
        )
        ok = a.activate_policy(candidate=raw, reason="签名", sign_key=priv, key_id=alice)
        assert ok.version.signed_by == alice and ok.serving_version == ok.version.version
        # the unsigned baseline cannot be rolled back to while signatures are required
        expect_error(lambda: a.rollback_policy(reason="回滚"), PRECONDITION, "SIGNATURE_REQUIRED")
        assert a.list_policy_versions().signatures_required
    finally:
        # Keep trusting alice: a present signature must verify even when signing is optional.
        store.set_trust(require_signature=False)
        a.rollback_policy(reason="回到基线")


def test_a_version_that_fails_to_load_leaves_the_last_good_one_serving(gw: Harness, cands) -> None:
    shipped = ensure_baseline(gw)
    store = policy_store(gw.data_dir)
    a = admin_client(gw)
    raw = a.activate_policy(candidate=cands["raw"], reason="准备").version.version
    a.rollback_policy(reason="回到基线")
    share = store.bundle_dir(raw) / "share.rego"
    original = share.read_bytes()
    share.write_bytes(original + b"\n# tampered on disk\n")
    try:
        store.set_active(raw, actor="someone", action="activate", reason="绕过服务")
        deadline = time.monotonic() + 2
        while not a.list_policy_versions().load_error:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        listing = a.list_policy_versions()
        assert listing.serving_version == shipped and raw in listing.load_error
        assert phone_treatment(gw.client("agency-civil"), gw) == (shipped, "mask")
    finally:
        share.write_bytes(original)
        store.set_active(shipped, actor="test", action="rollback", reason="恢复")


def test_a_restart_serves_the_active_version(gw: Harness, cands, tmp_path: Path) -> None:
    data_dir = tmp_path / "restart"
    keys, demo = make_data_dir(data_dir, persons=20, entities=5)
    keys["admin"] = admin.callers_add(data_dir, "policy-admin", "admin", "大数据局", "513200")[
        "api_key"
    ]
    h = start_attached(data_dir, keys, demo)
    try:
        a = admin_client(h)
        first = a.activate_with(IDEMPOTENT, cands["raw"], "重启前")
        again = a.activate_with(IDEMPOTENT, cands["raw"], "重启前")
        assert again == first  # a retried activation answers the same and switches nothing
        raw = first.version.version
        assert [e.action for e in a.list_policy_versions().history] == ["baseline", "activate"]
    finally:
        h.stop()
    h = start(data_dir, keys, demo)
    try:
        assert admin_client(h).list_policy_versions().serving_version == raw
    finally:
        h.stop()
    # the active version's files damaged while stopped: the last good one is served
    share = policy_store(data_dir).bundle_dir(raw) / "share.rego"
    share.write_bytes(share.read_bytes() + b"\n# damaged\n")
    h = start(data_dir, keys, demo)
    try:
        listing = admin_client(h).list_policy_versions()
        assert listing.active_version == raw and listing.serving_version != raw
        assert "does not load" in listing.load_error
    finally:
        h.stop()
