"""TLS material for mTLS: a private CA, the server certificate, client certificates.

Generated at setup into `<data-dir>/tls/`; nothing is committed. Client
certificates carry the caller id as their common name, which is how
`gateway.auth` maps a certificate to a caller.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.files import write_private

VALIDITY = dt.timedelta(days=825)


@dataclass(frozen=True)
class CertPair:
    cert_pem: bytes
    key_pem: bytes


def tls_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "tls"


def _write(path: Path, data: bytes) -> None:
    # Certificates too are owner-only (R12), not only keys: everything in a data
    # directory is, and only this user's processes read them.
    write_private(path, data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _issue(
    subject_cn: str,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server_names: tuple[str, ...] = (),
    client: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])
    issuer_name, issuer_key = issuer if issuer else (name, key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server_names:
        sans: list[x509.GeneralName] = []
        for n in server_names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    if client:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256()), key


def ensure_server_material(
    data_dir: Path, names: tuple[str, ...] = ("localhost", "127.0.0.1")
) -> Path:
    """Create the CA and the server certificate once; returns the tls directory."""
    d = tls_dir(data_dir)
    if (d / "ca.crt").exists() and (d / "server.crt").exists():
        return d
    ca_cert, ca_key = _issue("govgw private CA", None, ca=True)
    server_cert, server_key = _issue("govgw gateway", (ca_cert.subject, ca_key), server_names=names)
    _write(d / "ca.key", _key_pem(ca_key))
    _write(d / "ca.crt", ca_cert.public_bytes(serialization.Encoding.PEM))
    _write(d / "server.key", _key_pem(server_key))
    _write(d / "server.crt", server_cert.public_bytes(serialization.Encoding.PEM))
    return d


def issue_client_cert(data_dir: Path, caller_id: str) -> CertPair:
    d = ensure_server_material(data_dir)
    ca_cert = x509.load_pem_x509_certificate((d / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((d / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    cert, key = _issue(caller_id, (ca_cert.subject, ca_key), client=True)
    return CertPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def write_client_cert(data_dir: Path, caller_id: str, out_dir: Path) -> tuple[Path, Path]:
    pair = issue_client_cert(data_dir, caller_id)
    cert_path, key_path = Path(out_dir) / f"{caller_id}.crt", Path(out_dir) / f"{caller_id}.key"
    _write(cert_path, pair.cert_pem)
    _write(key_path, pair.key_pem)
    return cert_path, key_path
