"""`cargotrace deploy init`: the secrets a new installation needs, written once, never over existing ones.

In the deployment folder (`deploy/` of a checkout, which the compose file reads):
- `secrets/db_password`, `secrets/ingest_mqtt_password`: random, readable by their owner only;
- `mosquitto/certs/ca.crt` and `ca.key`: the installation's own certificate authority (ECDSA P-256, ten
  years); gateways pin `ca.crt` (`tls_ca_file`) and authenticate with their passwords over TLS;
- `mosquitto/certs/server.crt` and `server.key`: the broker's certificate for the names and addresses
  it is reached at (also the API's behind nginx), signed by that CA, 825 days;
- `mosquitto/cargotrace.passwd`: the broker's password file with the `ingest` user (gateways are added
  by `cargotrace gateway provision`).
"""

from __future__ import annotations

import ipaddress
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from firmware_configs.broker_credentials import hash_password, new_password

CA_DAYS, SERVER_DAYS = 3650, 825  # 825: the longest server certificate lifetime clients still accept
PRIVATE, PUBLIC = 0o600, 0o644


class AlreadyThere(Exception):
    """Files of an earlier installation: replacing them would lock out every gateway and key holder."""


def init(folder: Path, hosts: list[str], organisation: str = "cargotrace") -> list[Path]:
    """Writes the files; returns them. Raises AlreadyThere, naming them, when any exists."""
    ingest_password = new_password()
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate(ca_key, ca_key.public_key(), _name(f"{organisation} installation CA", organisation), None,
                      CA_DAYS, hosts=[])
    server = _certificate(ca_key, server_key.public_key(), _name(hosts[0], organisation), ca, SERVER_DAYS, hosts)
    files: dict[str, tuple[bytes, int]] = {
        "secrets/db_password": (new_password().encode(), PRIVATE),
        "secrets/ingest_mqtt_password": (ingest_password.encode(), PRIVATE),
        "mosquitto/certs/ca.key": (_pem_key(ca_key), PRIVATE),
        "mosquitto/certs/ca.crt": (ca.public_bytes(serialization.Encoding.PEM), PUBLIC),
        "mosquitto/certs/server.key": (_pem_key(server_key), PRIVATE),
        "mosquitto/certs/server.crt": (server.public_bytes(serialization.Encoding.PEM), PUBLIC),
        "mosquitto/cargotrace.passwd": (f"ingest:{hash_password(ingest_password)}\n".encode(), PRIVATE),
    }
    paths = {folder / name: content for name, content in files.items()}
    there = [str(path) for path in paths if path.exists()]
    if there:
        raise AlreadyThere(f"{', '.join(there)} already exist: this installation has its secrets (move them away "
                           f"first to start over: every gateway and the broker must then get the new ones)")
    for path, (content, mode) in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700 if path.parent.name == "secrets" else 0o755)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(descriptor, "wb") as out:
            out.write(content)
    return list(paths)


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(signer: ec.EllipticCurvePrivateKey, public: ec.EllipticCurvePublicKey, subject: x509.Name,
                 issuer: x509.Certificate | None, days: int, hosts: list[str]) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer.subject if issuer else subject).public_key(public)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=days))
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False))
    if issuer is None:  # the CA
        builder = (builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                                key_encipherment=False, data_encipherment=False,
                                                key_agreement=False, key_cert_sign=True, crl_sign=True,
                                                encipher_only=False, decipher_only=False), critical=True))
    else:
        builder = (builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.SubjectAlternativeName([_alt_name(h) for h in hosts]), critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
                                  critical=False))
    return builder.sign(signer, hashes.SHA256())


def _alt_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
