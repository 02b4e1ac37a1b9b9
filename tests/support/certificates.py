"""Certificates made in the test with ``cryptography``: a CA, server and client certificates
issued by it, written as PEM files, and client TLS contexts that trust the CA.

EC P-256 keys (fast to generate); certificates carry the extensions a strict verifier expects
(basic constraints, key usage, extended key usage, subject and authority key identifiers), and
a server certificate names its hosts in the subject alternative name.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_DAY = datetime.timedelta(days=1)


@attrs.frozen(kw_only=True)
class PemFiles:
    """A certificate and its private key, as PEM files."""

    certificate: Path
    private_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _key_usage(*, authority: bool) -> x509.KeyUsage:
    """Signatures; certificate and CRL signing too for a CA."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=authority,
        crl_sign=authority,
        encipher_only=False,
        decipher_only=False,
    )


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


@attrs.define(eq=False)
class CertificateAuthority:
    """A self-signed CA in ``directory``: its certificate is ``certificate_path``."""

    directory: Path
    name: str
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def certificate_path(self) -> Path:
        return self.directory / f"{self.name}-ca.pem"

    @classmethod
    def create(cls, directory: Path, name: str = "test") -> CertificateAuthority:
        """Make a CA named ``name`` and write its certificate."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        subject = _name(f"{name} test CA")
        public = key.public_key()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + 30 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(authority=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256())
        )
        authority = cls(directory=directory, name=name, key=key, certificate=certificate)
        authority.certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return authority

    def issue(
        self,
        common_name: str,
        *,
        hosts: tuple[str, ...] = (),
        client: bool = False,
        expired: bool = False,
    ) -> PemFiles:
        """A certificate for a server (``hosts`` in its SAN) or a ``client``, with its key."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - (3 * _DAY if expired else _DAY))
            .not_valid_after(now - _DAY if expired else now + 30 * _DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(authority=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if hosts:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_san(host) for host in hosts]), critical=False
            )
        certificate = builder.sign(self.key, hashes.SHA256())
        files = PemFiles(
            certificate=self.directory / f"{self.name}-{common_name}.pem",
            private_key=self.directory / f"{self.name}-{common_name}-key.pem",
        )
        files.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        _write_key(key, files.private_key)
        return files

    def issue_server(self, common_name: str = "server") -> PemFiles:
        """A server certificate for 127.0.0.1 and localhost."""
        return self.issue(common_name, hosts=("127.0.0.1", "localhost"))

    def issue_client(self, common_name: str = "client") -> PemFiles:
        """A client certificate (extended key usage clientAuth)."""
        return self.issue(common_name, client=True)


def client_context(
    authority: CertificateAuthority,
    *,
    certificate: PemFiles | None = None,
    maximum_version: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    """A client context trusting only ``authority``, presenting ``certificate`` if given."""
    context = ssl.create_default_context(cafile=str(authority.certificate_path))
    if certificate is not None:
        context.load_cert_chain(str(certificate.certificate), str(certificate.private_key))
    if maximum_version is not None:
        context.maximum_version = maximum_version
    return context
