"""Self-signed TLS material for ZooKeeper's secureClientPort.

ZooKeeper reads PEM key/trust stores (type inferred from the .pem
extension), so no keytool run is needed. One certificate, valid for
127.0.0.1 and localhost, serves as server cert, client cert and CA:

    files = make_tls_files(tmp_path)
    ZooKeeperServer(keystore=files.keystore, truststore=files.cert, ...)
    KazooClient(server.secure_hosts, use_ssl=True, ca=str(files.cert),
                certfile=str(files.cert), keyfile=str(files.key))

Needs the `cryptography` package.
"""

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TlsFiles:
    cert: Path  # certificate; also the CA / trust store
    key: Path  # unencrypted PKCS#8 private key
    keystore: Path  # key + cert in one PEM file, for ssl.keyStore.location


def make_tls_files(directory: Path | str, common_name: str = "localhost") -> TlsFiles:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    files = TlsFiles(directory / "cert.pem", directory / "key.pem", directory / "keystore.pem")
    files.cert.write_bytes(cert_pem)
    files.key.write_bytes(key_pem)
    files.keystore.write_bytes(key_pem + cert_pem)
    return files
