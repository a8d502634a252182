"""PolicyEngine on an OPA server, through opa-python-client.

The same bundles the embedded engine serves can be decided by an OPA server
run as a sidecar of each gateway process (`opa run --server`, see README).
The adapter is deliberately small:

- `prepare()` replaces the sidecar's govgw modules with the bundle's, via
  the Policy API, uploading each module exactly as written
  (`update_policy_from_string(..., rego_compat=False)`: the client would
  otherwise retry a rejected module after rewriting it to Rego v1, and a
  policy must never be served other than as it was checked and signed).
  It then reads every module back and refuses a server copy that differs.
- `evaluate()` keeps the data document (the bundle's data plus the grants the
  gateway supplies) in step with a root `PUT /v1/data`, and asks for the
  plan with `query_rule` (`POST /v1/data/govgw/decision/plan`).

Both run under one lock, and the gateway calls them from its event loop, so
no decision reads a half-replaced policy or data document. An OPA that is
down or answers an error denies (the Decider turns any exception into
POLICY_ERROR): the gateway fails closed.

The sidecar must serve one gateway process only: two processes uploading
their versions to one OPA would replace each other's modules.

Running with a real OPA sidecar (one per gateway process, loopback only):

    opa run --server --addr 127.0.0.1:8181 \
        --authorization=off --log-level error          # OPA 1.x: Rego v1 by default
    GOVGW_POLICY_BACKEND=opa GOVGW_OPA_URL=http://127.0.0.1:8181 govgw serve ...
    govgw policy test policies/ --opa-url http://127.0.0.1:8282   # on a scratch OPA

The gateway uploads the active version at start and on every activation;
do not give the sidecar bundles or policies of its own. Version checks,
signatures, history and impact previews work the same on both backends
(they run on the embedded engine in a child process).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from opa_client.opa import OpaClient

from gateway.policy.bundle import PolicyBundle, canonical_json
from gateway.policy.check import RegoSuite, RegoTestResult

ENTRYPOINT = "data.govgw.decision.plan"
MODULE_PREFIX = "govgw/"  # policy ids this adapter owns on the server
TEST_PREFIX = "govgw-tests/"


class OpaError(RuntimeError):
    """The OPA server refused or changed what we gave it."""


def client_for(url: str, *, timeout: float = 2.0, token: str | None = None) -> OpaClient:
    """An OpaClient for http(s)://host:port."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"OPA url: expected http(s)://HOST:PORT, got {url!r}")
    return OpaClient(
        host=parts.hostname,
        port=parts.port or 8181,
        ssl=parts.scheme == "https",
        token=token,
        timeout=timeout,
        retries=0,  # a decision waits for no retry: an error denies
    )


def _rule_path(entrypoint: str) -> tuple[str, str]:
    package, _, rule = entrypoint.removeprefix("data.").rpartition(".")
    return package, rule


def upload_modules(client: OpaClient, modules: Mapping[str, str], prefix: str) -> None:
    """Replace the modules under `prefix` with `modules`, verbatim, and check they are."""
    for policy_id in client.get_policies_list():
        if policy_id.startswith(prefix):
            client.delete_policy(policy_id)
    for path, source in sorted(modules.items()):
        client.update_policy_from_string(source, prefix + path, rego_compat=False)
    for path, source in modules.items():
        raw = client.get_policy(prefix + path).get("result", {}).get("raw")
        if raw != source:
            raise OpaError(f"the OPA server holds {path} other than it was uploaded")


class OpaEngine:
    """PolicyEngine on an OPA sidecar."""

    def __init__(
        self, bundle: PolicyBundle, client: OpaClient, *, entrypoint: str = ENTRYPOINT
    ) -> None:
        self.bundle = bundle
        self.version = bundle.version
        self.client = client
        self.package, self.rule = _rule_path(entrypoint)
        self._lock = threading.Lock()
        self._data_key: str | None = None
        self._extra: tuple[Mapping[str, Any], str] | None = None

    def prepare(self) -> None:
        with self._lock:
            self._data_key = None
            upload_modules(self.client, self.bundle.modules, MODULE_PREFIX)

    def evaluate(self, input: Mapping[str, Any], extra_data: Mapping[str, Any]) -> Any:
        key = self._key(extra_data)
        with self._lock:
            if self._data_key != key:
                clash = self.bundle.data.keys() & extra_data.keys()
                if clash:
                    raise ValueError(f"extra data would replace bundle data: {sorted(clash)}")
                # Root PUT: one request replaces the whole data document atomically.
                self.client.update_or_create_data({**self.bundle.data, **extra_data}, "")
                self._data_key = key
            answer = self.client.query_rule(dict(input), self.package, self.rule)
        return answer.get("result")

    def _key(self, extra_data: Mapping[str, Any]) -> str:
        seen = self._extra
        if seen is not None and seen[0] is extra_data:
            return seen[1]
        key = hashlib.sha256(canonical_json(dict(extra_data))).hexdigest()
        self._extra = (extra_data, key)
        return key


def run_suite_on_opa(bundle: PolicyBundle, client: OpaClient) -> RegoSuite:
    """The bundle's `test_` rules evaluated by the OPA server (no coverage: OPA's REST API has none).

    `bundle` must hold the test modules (load_bundle(..., include_tests=True)).
    """
    from gateway.policy.check import rego_test_names
    from gateway.policy.engine import compile_modules

    names = rego_test_names(bundle, compile_modules(bundle.modules))
    if any(p.startswith(MODULE_PREFIX) for p in client.get_policies_list()):
        # Its serving modules would clash with the bundle's copies (two `default plan`s).
        raise OpaError("this OPA server serves a gateway: run the tests on a scratch OPA")
    upload_modules(client, bundle.modules, TEST_PREFIX)
    try:
        client.update_or_create_data({"grants": [], **bundle.data}, "")
        results = []
        for name in names:
            package, _, rule = name.rpartition(".")
            try:
                value = client.query_rule({}, package, rule).get("result")
            except Exception as e:
                results.append(RegoTestResult(name, False, f"{type(e).__name__}: {e}"[:300]))
                continue
            if value is True:
                results.append(RegoTestResult(name, True))
            else:
                results.append(
                    RegoTestResult(name, False, "undefined" if value is None else "false")
                )
        return RegoSuite(results)
    finally:
        upload_modules(client, {}, TEST_PREFIX)
