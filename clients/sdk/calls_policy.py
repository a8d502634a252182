"""The SDK's policy administration methods (PolicyAdminService; callers of kind admin).

Bundles are read from a policy directory (every *.rego and data/*.json), and
signed here, with the administrator's Ed25519 key, when one is given: the
private key never leaves this process.
"""

from __future__ import annotations

import base64
from pathlib import Path

from google.protobuf import duration_pb2
from govgw.v1 import policy_admin_pb2 as pb

from clients.sdk.call import Call, Prepared
from clients.sdk.calls import answer


def bundle(directory: Path) -> pb.PolicyBundle:
    from gateway.policy.bundle import read_policy_files

    files = read_policy_files(Path(directory))
    return pb.PolicyBundle(
        files=[pb.PolicyFile(path=p, content=b) for p, b in sorted(files.items())]
    )


def _validate(directory: Path) -> Prepared:
    return Prepared(pb.ValidateRequest(bundle=bundle(directory)))


def _test(directory: Path, *, min_coverage: float = 0.0) -> Prepared:
    return Prepared(pb.TestRequest(bundle=bundle(directory), min_coverage=min_coverage))


def _impact(candidate: Path, *, window_s: float = 86400, max_examples: int = 0) -> Prepared:
    window = duration_pb2.Duration()
    window.FromNanoseconds(int(window_s * 1e9))
    return Prepared(
        pb.ImpactRequest(candidate=bundle(candidate), window=window, max_examples=max_examples)
    )


def _activate(
    *,
    reason: str,
    candidate: Path | None = None,
    version: str = "",
    sign_key: Path | None = None,
    key_id: str = "",
) -> Prepared:
    request = pb.ActivateRequest(reason=reason)
    if candidate is not None:
        request.bundle.CopyFrom(bundle(candidate))
    elif version:
        request.version = version
    if sign_key is not None:
        from gateway.policy.bundle import read_policy_files
        from gateway.policy.versions import load_private_key, sign_files

        if candidate is None:
            raise ValueError("sign_key: signing needs the candidate directory")
        sig = sign_files(read_policy_files(candidate), load_private_key(sign_key), key_id)
        request.signature.CopyFrom(
            pb.BundleSignature(key_id=key_id, signature=base64.b64decode(sig.value))
        )
    return Prepared(request)


def _rollback(*, reason: str, version: str = "") -> Prepared:
    return Prepared(pb.RollbackRequest(version=version, reason=reason))


def _list_versions() -> Prepared:
    return Prepared(pb.ListVersionsRequest())


VALIDATE_POLICY = Call("policy_admin", "Validate", _validate, answer)
TEST_POLICY = Call("policy_admin", "Test", _test, answer)
POLICY_IMPACT = Call("policy_admin", "Impact", _impact, answer)
ACTIVATE_POLICY = Call("policy_admin", "Activate", _activate, answer)
ROLLBACK_POLICY = Call("policy_admin", "Rollback", _rollback, answer)
LIST_POLICY_VERSIONS = Call("policy_admin", "ListVersions", _list_versions, answer)
