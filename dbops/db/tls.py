"""TLS for the embedded cluster: a private certificate authority and a server certificate.

:func:`ensure_server_tls` keeps, in one directory (``.dbops/tls/``), a CA certificate and key
and a server certificate and key signed by that CA (EC P-256), for the names the embedded server
answers on (``localhost``, ``127.0.0.1``, ``::1``). It creates them once and reuses them; it
writes new ones only when a file is missing, the CA or the server certificate expires within
``renew_before``, the server certificate is not signed by the CA on disk, or its names differ.
Clients verify the server against the CA file (``sslmode=verify-full&sslrootcert=...``).

Private keys are written with mode 0600 (the server key owned by the OS user running the
server) and never leave this module but as a file path: no key material is returned or logged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "DEFAULT_DNS_NAMES",
    "DEFAULT_IP_ADDRESSES",
    "TlsFiles",
    "certificate_names",
    "ensure_server_tls",
    "issue_server_certificate",
    "new_certificate_authority",
]

#: Names of the embedded server, as a client may connect to it.
DEFAULT_DNS_NAMES = ("localhost",)
DEFAULT_IP_ADDRESSES = ("127.0.0.1", "::1")
CA_DAYS = 3650
SERVER_DAYS = 397
RENEW_BEFORE = dt.timedelta(days=30)

_CA_CERT = "ca.crt"
_CA_KEY = "ca.key"
_SERVER_CERT = "server.crt"
_SERVER_KEY = "server.key"


@dataclass(frozen=True)
class TlsFiles:
    """Where the TLS files of a cluster are, and how long the server certificate is valid.

    Attributes:
        directory: the directory holding the four files.
        ca_cert: the CA certificate (public; clients use it as ``sslrootcert``).
        ca_key: the CA private key (0600, owned by the user running dbops).
        server_cert: the server certificate (``ssl_cert_file``).
        server_key: the server private key (``ssl_key_file``; 0600, owned by the server user).
        not_after: end of validity of the server certificate (UTC).
        renewed: True when this call wrote a new server certificate (the server must reload).
    """

    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    not_after: dt.datetime
    renewed: bool


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write(path: Path, data: bytes, *, mode: int, owner: tuple[int, int] | None) -> None:
    """Write ``data`` atomically; the file has ``mode`` (and ``owner``) before it holds data."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        if owner is not None:
            os.fchown(fd, *owner)
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def new_certificate_authority(
    cert_file: Path,
    key_file: Path,
    *,
    common_name: str = "dbops embedded cluster CA",
    days: int = CA_DAYS,
) -> dt.datetime:
    """Write a self-signed CA (EC P-256) to ``cert_file`` and ``key_file``; return its expiry."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(key_file, _key_pem(key), mode=0o600, owner=None)
    _write(cert_file, cert.public_bytes(serialization.Encoding.PEM), mode=0o644, owner=None)
    return cert.not_valid_after_utc


def issue_server_certificate(
    ca_cert_file: Path,
    ca_key_file: Path,
    cert_file: Path,
    key_file: Path,
    *,
    dns_names: Sequence[str] = DEFAULT_DNS_NAMES,
    ip_addresses: Sequence[str] = DEFAULT_IP_ADDRESSES,
    days: int = SERVER_DAYS,
    owner: tuple[int, int] | None = None,
) -> dt.datetime:
    """Sign a server certificate for ``dns_names`` and ``ip_addresses`` with the CA on disk.

    Args:
        ca_cert_file: the CA certificate (PEM).
        ca_key_file: the CA private key (PEM, unencrypted).
        cert_file: where the server certificate goes (0644).
        key_file: where the server key goes (0600).
        dns_names: DNS names of the subjectAltName (the first is also the common name).
        ip_addresses: IP addresses of the subjectAltName.
        days: validity from now.
        owner: ``(uid, gid)`` of the server's OS user: PostgreSQL refuses a key file it does
            not own unless root owns it with mode 0640.

    Returns:
        The end of validity of the new certificate (UTC).
    """
    ca_cert = x509.load_pem_x509_certificate(ca_cert_file.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_file.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):  # pragma: no cover - our own files
        raise TypeError("the CA key is not an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    common = dns_names[0] if dns_names else (ip_addresses[0] if ip_addresses else "dbops")
    alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(key_file, _key_pem(key), mode=0o600, owner=owner)
    _write(cert_file, cert.public_bytes(serialization.Encoding.PEM), mode=0o644, owner=owner)
    return cert.not_valid_after_utc


def certificate_names(cert_file: Path) -> tuple[frozenset[str], frozenset[str]]:
    """The DNS names and IP addresses (normalized text) of a certificate's subjectAltName."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return frozenset(), frozenset()
    dns = frozenset(san.get_values_for_type(x509.DNSName))
    ips = frozenset(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    return dns, ips


def _ca_usable(cert_file: Path, key_file: Path, renew_before: dt.timedelta) -> bool:
    if not (cert_file.is_file() and key_file.is_file()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except ValueError:
        return False
    return cert.not_valid_after_utc - _now() > renew_before


def _server_usable(
    files: TlsFiles, renew_before: dt.timedelta, dns: frozenset[str], ips: frozenset[str]
) -> bool:
    if not (files.server_cert.is_file() and files.server_key.is_file()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
        ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    if cert.not_valid_after_utc - _now() <= renew_before:
        return False
    return certificate_names(files.server_cert) == (dns, ips)


def ensure_server_tls(
    directory: Path,
    *,
    owner: tuple[int, int] | None = None,
    dns_names: Sequence[str] = DEFAULT_DNS_NAMES,
    ip_addresses: Sequence[str] = DEFAULT_IP_ADDRESSES,
    renew_before: dt.timedelta = RENEW_BEFORE,
) -> TlsFiles:
    """The CA and server certificate in ``directory``, created or renewed only when needed.

    Args:
        directory: where the files live (created 0755: the server user must reach its files).
        owner: ``(uid, gid)`` owning the server certificate and key (the server's OS user when
            dbops runs as root); ``None`` keeps the current user.
        dns_names: DNS names the server certificate must hold.
        ip_addresses: IP addresses the server certificate must hold.
        renew_before: a certificate expiring sooner than this is replaced (a new CA also
            means a new server certificate).

    Not safe against a concurrent call on the same directory: the embedded cluster calls it
    under its own file lock.
    """
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    ca_cert, ca_key = directory / _CA_CERT, directory / _CA_KEY
    server_cert, server_key = directory / _SERVER_CERT, directory / _SERVER_KEY
    new_ca = not _ca_usable(ca_cert, ca_key, renew_before)
    if new_ca:
        new_certificate_authority(ca_cert, ca_key)
    wanted_dns = frozenset(dns_names)
    wanted_ips = frozenset(str(ipaddress.ip_address(a)) for a in ip_addresses)
    files = TlsFiles(
        directory=directory,
        ca_cert=ca_cert,
        ca_key=ca_key,
        server_cert=server_cert,
        server_key=server_key,
        not_after=_now(),
        renewed=False,
    )
    if not new_ca and _server_usable(files, renew_before, wanted_dns, wanted_ips):
        cert = x509.load_pem_x509_certificate(server_cert.read_bytes())
        if owner is not None:
            with contextlib.suppress(OSError):
                os.chown(server_key, *owner)
                os.chown(server_cert, *owner)
        return dataclasses.replace(files, not_after=cert.not_valid_after_utc)
    not_after = issue_server_certificate(
        ca_cert,
        ca_key,
        server_cert,
        server_key,
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        owner=owner,
    )
    return dataclasses.replace(files, not_after=not_after, renewed=True)
