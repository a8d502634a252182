"""SM2 libraries side by side: the standard's example, and signatures/verifications per CPU second.

    PYTHONPATH=$PWD /work/main/.venv/bin/python -m bench.sm2 [--seconds 2]

Every candidate that is installed is measured (the project's venv has
tongsuopy, the one the gateway uses, and gmalg, the tests' independent check;
the others can be installed into a scratch venv to compare, see
docs/crypto.md). For each: whether it verifies the GB/T 32918 example (r, s)
under the example's public key, whether a changed message fails, and whether
its signatures verify in another implementation; then signatures and
verifications per second of process CPU time (steadier than wall time on a
shared machine) over a receipt-sized payload. Ed25519 (`cryptography`) is
measured beside them as the baseline the gateway signs with today.
"""

from __future__ import annotations

import argparse
import importlib
import secrets
import time
from collections.abc import Callable

D = 0x3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8
PX = 0x09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020
PY = 0xCCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13
R = 0xF5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3
S = 0xB1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
MESSAGE = b"message digest"
UID = b"1234567812345678"
POINT = b"\x04" + PX.to_bytes(32, "big") + PY.to_bytes(32, "big")
# A receipt payload's size and shape (canonical JSON claims, ~300 bytes).
PAYLOAD = (
    b'{"action":"verify.identity","alg":"sm2","caller":"counter-wenchuan",'
    b'"dataset":"population.basic","issued_at":"2026-12-04T08:00:00.000000Z",'
    b'"outcome":"MATCH","policy_version":"pv-0123456789ab",'
    b'"receipt_id":"rcpt_0123456789abcdef0123000000000001",'
    b'"subject_commitment":"' + b"ab" * 32 + b'"}'
)

# A library: (sign(msg) -> (r, s), verify(msg, r, s) -> bool) built for the example's key.
Lib = tuple[Callable[[bytes], tuple[int, int]], Callable[[bytes, int, int], bool]]


def _b32(n: int) -> bytes:
    return n.to_bytes(32, "big")


def tongsuopy() -> Lib:
    from cryptography.hazmat.primitives.asymmetric.utils import (
        decode_dss_signature,
        encode_dss_signature,
    )

    from contract.signing import InvalidSignature, Sm2PrivateKey

    key = Sm2PrivateKey.from_scalar(D)
    pub = key.public_key()

    def verify(msg: bytes, r: int, s: int) -> bool:
        try:
            pub.verify(encode_dss_signature(r, s), msg)
        except InvalidSignature:
            return False
        return True

    return (lambda msg: decode_dss_signature(key.sign(msg))), verify


def gmalg() -> Lib:
    import gmalg as g

    sm2 = g.SM2(_b32(D), UID, POINT)

    def sign(msg: bytes) -> tuple[int, int]:
        r, s = sm2.sign(msg)
        return int.from_bytes(r, "big"), int.from_bytes(s, "big")

    return sign, lambda msg, r, s: sm2.verify(msg, _b32(r), _b32(s))


def gmssl() -> Lib:
    from gmssl import sm2 as g

    sm2 = g.CryptSM2(private_key=f"{D:064x}", public_key=f"{PX:064x}{PY:064x}")

    def sign(msg: bytes) -> tuple[int, int]:
        sig = sm2.sign_with_sm3(msg)
        return int(sig[:64], 16), int(sig[64:], 16)

    return sign, lambda msg, r, s: sm2.verify_with_sm3(f"{r:064x}{s:064x}", msg)


def snowland_smx() -> Lib:
    from pysmx.SM2 import Sign, Verify

    pub_hex = f"{PX:064x}{PY:064x}"

    def sign(msg: bytes) -> tuple[int, int]:
        k = f"{secrets.randbelow(N - 1) + 1:064x}"  # the caller brings the nonce here
        sig = Sign(msg, _b32(D), k, 64, Hexstr=0, uid=UID)
        return int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")

    def verify(msg: bytes, r: int, s: int) -> bool:
        return bool(Verify(_b32(r) + _b32(s), msg, pub_hex, 64, Hexstr=0, uid=UID))

    return sign, verify


CANDIDATES: dict[str, Callable[[], Lib]] = {
    "tongsuopy": tongsuopy,
    "gmalg": gmalg,
    "gmssl": gmssl,
    "snowland-smx": snowland_smx,
}
MODULES = {"tongsuopy": "tongsuopy", "gmalg": "gmalg", "gmssl": "gmssl", "snowland-smx": "pysmx"}


def per_cpu_second(fn: Callable[[], object], seconds: float) -> float:
    n, t0 = 0, time.process_time()
    while time.process_time() - t0 < seconds:
        fn()
        n += 1
    return n / (time.process_time() - t0)


def ed25519_rates(seconds: float) -> tuple[float, float]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pub, sig = key.public_key(), key.sign(PAYLOAD)
    return (
        per_cpu_second(lambda: key.sign(PAYLOAD), seconds),
        per_cpu_second(lambda: pub.verify(sig, PAYLOAD), seconds),
    )


def receipt_issue_cost(seconds: float) -> dict[str, float]:
    """CPU microseconds per ReceiptSigner.issue, for a key ring of each suite."""
    import tempfile
    from datetime import UTC, datetime
    from pathlib import Path

    from gateway import keys
    from gateway.crypto import DEFAULT_SUITE, SM_SUITE
    from gateway.receipts import ReceiptSigner

    costs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for suite in (DEFAULT_SUITE, SM_SUITE):
            ring = keys.generate(Path(tmp) / f"{suite.replace('/', '_')}.json", suite)
            signer = ReceiptSigner(ring.receipt_key)
            now = datetime.now(UTC)

            def issue(signer: ReceiptSigner = signer, now: datetime = now) -> object:
                return signer.issue(
                    caller="bench-agency",
                    action="verify.identity",
                    outcome="MATCH",
                    dataset="population.basic",
                    subject="51322119900101123X",
                    policy_version="pv-0123456789ab",
                    issued_at=now,
                )

            costs[signer.algorithm] = 1e6 / per_cpu_second(issue, seconds)
    return costs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="CPU seconds per measurement")
    args = ap.parse_args()
    libs: dict[str, Lib] = {}
    for name, build in CANDIDATES.items():
        try:
            importlib.import_module(MODULES[name])
        except ImportError:
            print(f"{name:<13} not installed")
            continue
        libs[name] = build()
    print(
        f"{'library':<13} {'std r,s':>8} {'tampered':>9} {'cross-check':>12}"
        f" {'sign/s':>9} {'verify/s':>9}"
    )
    for name, (sign, verify) in libs.items():
        std = verify(MESSAGE, R, S)
        tampered = verify(MESSAGE + b"!", R, S)
        # Our signature verified by every other installed implementation, and theirs by us.
        others = [v for n, (_, v) in libs.items() if n != name]
        r, s = sign(PAYLOAD)
        cross = all(v(PAYLOAD, r, s) for v in others) and all(
            verify(PAYLOAD, *libs[n][0](PAYLOAD)) for n in libs if n != name
        )
        signs = per_cpu_second(lambda sign=sign: sign(PAYLOAD), args.seconds)
        verifies = per_cpu_second(lambda v=verify, r=r, s=s: v(PAYLOAD, r, s), args.seconds)
        print(
            f"{name:<13} {'ok' if std else 'FAIL':>8} {'fails' if not tampered else 'PASSES':>9}"
            f" {('ok' if cross else 'FAIL') if others else '-':>12} {signs:>9.0f} {verifies:>9.0f}"
        )
    signs, verifies = ed25519_rates(args.seconds)
    print(f"{'ed25519':<13} {'-':>8} {'-':>9} {'-':>12} {signs:>9.0f} {verifies:>9.0f}")
    try:
        costs = receipt_issue_cost(args.seconds)
    except ImportError:  # a scratch venv with the libraries only
        return
    print(
        "ReceiptSigner.issue, CPU per receipt: "
        + ", ".join(f"{alg} {us:.0f} us" for alg, us in costs.items())
    )


if __name__ == "__main__":
    main()
