"""Certificates made for a test with the real ``openssl`` CLI: a CA, a server and clients."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support import require


@dataclass
class Certs:
    ca: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path  # a client certificate signed by a CA the server does not trust
    rogue_key: Path


def _openssl(*args: str) -> None:
    subprocess.run([require("openssl"), *args], check=True, capture_output=True, timeout=30)


def _key(path: Path) -> Path:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))
    return path


def _ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = _key(directory / f"{name}.key"), directory / f"{name}.crt"
    _openssl("req", "-x509", "-new", "-key", str(key), "-subj", f"/CN={name}", "-days", "2", "-out", str(cert),
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    return cert, key


def _leaf(directory: Path, name: str, ca: tuple[Path, Path], extensions: str) -> tuple[Path, Path]:
    key, csr, cert = _key(directory / f"{name}.key"), directory / f"{name}.csr", directory / f"{name}.crt"
    ext = directory / f"{name}.ext"
    ext.write_text(extensions)
    _openssl("req", "-new", "-key", str(key), "-subj", f"/CN={name}", "-out", str(csr))
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
             "-days", "2", "-extfile", str(ext), "-out", str(cert))
    return cert, key


def make(directory: Path) -> Certs:
    ca, rogue_ca = _ca(directory, "test-ca"), _ca(directory, "rogue-ca")
    server = _leaf(directory, "server", ca, "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    client = _leaf(directory, "client", ca, "extendedKeyUsage=clientAuth\n")
    rogue = _leaf(directory, "rogue", rogue_ca, "extendedKeyUsage=clientAuth\n")
    return Certs(*ca, *server, *client, *rogue)


def server_leaf(directory: Path, name: str, certs: Certs) -> tuple[Path, Path]:
    """Another server certificate from the same CA (a renewal)."""
    return _leaf(directory, name, (certs.ca, certs.ca_key),
                 "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
