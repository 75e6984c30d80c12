"""The TLS side of the web config: Go's names mapped to OpenSSL, and the server's SSL context.

The exporter-toolkit hands its settings to Go's crypto/tls; here they go to
OpenSSL through Python's ``ssl``. Two Go behaviours have no ``ssl`` API:
accepting a client certificate without verifying it (``RequestClientCert``,
``RequireAnyClientCert``) and a list of curves. For those the context's own
``SSL_CTX`` is reached through ``ctypes`` (``_OpenSSL``), checked before use.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import re
import ssl
from dataclasses import dataclass, field

# Go's crypto/tls.CipherSuites() (Go 1.25, the toolkit's), by OpenSSL name; None: a TLS 1.3 suite,
# which Go does not let a config restrict either.
CIPHERS = {
    "TLS_AES_128_GCM_SHA256": None,
    "TLS_AES_256_GCM_SHA384": None,
    "TLS_CHACHA20_POLY1305_SHA256": None,
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
# Go's net/http refuses to serve HTTP/2 with a TLS 1.2 cipher list that has neither of these.
HTTP2_REQUIRED = ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")
CURVES = {"CurveP256": "P-256", "CurveP384": "P-384", "CurveP521": "P-521", "X25519": "X25519"}
TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# name: (Python's verify mode, whether a certificate is taken without verifying it, as Go does)
CLIENT_AUTH = {
    "NoClientCert": (ssl.CERT_NONE, False),
    "RequestClientCert": (ssl.CERT_OPTIONAL, True),
    "RequireAnyClientCert": (ssl.CERT_REQUIRED, True),
    "RequireClientCert": (ssl.CERT_REQUIRED, True),  # the toolkit's old name for RequireAnyClientCert
    "VerifyClientCertIfGiven": (ssl.CERT_OPTIONAL, False),
    "RequireAndVerifyClientCert": (ssl.CERT_REQUIRED, False),
}
PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


class SettingError(ValueError):
    """A TLS setting that cannot be applied: the key (under tls_server_config) and why."""

    def __init__(self, key: str, what: str):
        super().__init__(f"{key}: {what}")
        self.key, self.what = key, what


@dataclass(frozen=True)
class TLSSettings:
    """tls_server_config with the toolkit's defaults; paths already joined to the file's directory."""
    cert_file: str = ""
    cert: str = ""
    key_file: str = ""
    key: str = field(default="", repr=False)
    client_ca_file: str = ""
    client_ca: str = ""
    client_auth_type: str = "NoClientCert"
    client_allowed_sans: tuple[str, ...] | None = None
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    curve_preferences: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True

    def files(self) -> list[str]:
        return [p for p in (self.cert_file, self.key_file, self.client_ca_file) if p]


class ServerContext(ssl.SSLContext):
    """An SSL context that also carries the SAN rule checked once the handshake is done."""
    allowed_sans: tuple[str, ...] | None = None


def _pem(path: str, inline: str, key: str) -> bytes:
    if not path:
        return inline.encode()
    try:
        with open(path, "rb") as file:
            return file.read()
    except (OSError, ValueError) as err:
        raise SettingError(key, f"cannot read {path}: {getattr(err, 'strerror', None) or err}") from None


def _load_pair(context: ssl.SSLContext, cert: bytes, key: bytes, name: str, key_name: str) -> None:
    """Loads PEM text without writing it to disk: ssl only reads files, so an anonymous memory file."""
    fds = []
    try:
        for data in (cert, key):
            fd = os.memfd_create("web-config-pem", os.MFD_CLOEXEC)
            fds.append(fd)
            os.write(fd, data)
        # an encrypted key gets an empty password, never OpenSSL's prompt on the terminal
        context.load_cert_chain(*(f"/proc/self/fd/{fd}" for fd in fds), password=lambda: b"")
    except (OSError, ValueError) as err:
        raise SettingError(name, f"cannot load the certificate with {key_name}: {err}") from None
    finally:
        for fd in fds:
            os.close(fd)


def _client_cas(context: ssl.SSLContext, tls: TLSSettings) -> None:
    """Go's rule: the CAs given, else the system's; like Go, a PEM block that is not a certificate is skipped."""
    if not (tls.client_ca_file or tls.client_ca):
        context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        return
    text = _pem(tls.client_ca_file, tls.client_ca, "client_ca_file").decode("latin-1")
    for block in PEM_CERT.findall(text):
        try:
            context.load_verify_locations(cadata=block)
        except (ssl.SSLError, ValueError):
            pass


def _ciphers(context: ssl.SSLContext, tls: TLSSettings) -> None:
    names = [CIPHERS[name] for name in tls.cipher_suites if CIPHERS[name]]
    if not names:  # only TLS 1.3 names: no TLS 1.2 suite is allowed, so TLS 1.2 cannot be negotiated
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        return
    try:
        context.set_ciphers(":".join(names))
    except ssl.SSLError as err:
        raise SettingError("cipher_suites", f"OpenSSL refuses the list: {err}") from None


def server_context(tls: TLSSettings) -> ServerContext:
    """A fresh context for these settings; raises SettingError naming the key at fault."""
    context = ServerContext(ssl.PROTOCOL_TLS_SERVER)
    _load_pair(context, _pem(tls.cert_file, tls.cert, "cert_file"), _pem(tls.key_file, tls.key, "key_file"),
               "cert_file" if tls.cert_file else "cert", "key_file" if tls.key_file else "key (inline)")
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = TLS_VERSIONS[tls.max_version]
    if tls.cipher_suites:
        _ciphers(context, tls)
    if not tls.prefer_server_cipher_suites:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    mode, unverified = CLIENT_AUTH[tls.client_auth_type]
    if mode != ssl.CERT_NONE:
        _client_cas(context, tls)
    context.verify_mode = mode
    if unverified or tls.curve_preferences:
        openssl = _OpenSSL.of(context)
        if openssl is None:
            raise SettingError("client_auth_type" if unverified else "curve_preferences",
                               "this Python's ssl gives no way to apply it (needs CPython with a shared OpenSSL)")
        if unverified:
            openssl.accept_any_certificate(mode)
        if tls.curve_preferences:
            openssl.groups([CURVES[c] for c in tls.curve_preferences])
    if mode != ssl.CERT_NONE:
        context.allowed_sans = tls.client_allowed_sans
    return context


def client_allowed(ssl_object: ssl.SSLObject | None) -> bool:
    """client_allowed_sans: the client certificate must carry one of the names (DNS, e-mail, IP, URI)."""
    allowed = getattr(ssl_object.context, "allowed_sans", None) if ssl_object is not None else None
    if allowed is None:
        return True
    for kind, value in (ssl_object.getpeercert() or {}).get("subjectAltName", ()):
        if kind == "IP Address":
            try:
                value = str(ipaddress.ip_address(value.strip()))  # Go's spelling: 2001:db8::1, not 2001:DB8:0:...
            except ValueError:
                continue
        if kind in ("DNS", "email", "IP Address", "URI") and value in allowed:
            return True
    return False


_VERIFY_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


@_VERIFY_CALLBACK
def _accept(preverify_ok: int, store: int) -> int:
    """OpenSSL's verify callback saying yes: Go's RequireAnyClientCert takes any certificate."""
    return 1


class _OpenSSL:
    """The SSL_CTX behind a Python SSLContext, for the two settings ssl has no API for."""

    SSL_CTRL_SET_GROUPS_LIST = 92
    SSL_VERIFY_PEER, SSL_VERIFY_FAIL_IF_NO_PEER_CERT = 1, 2
    _lib: ctypes.CDLL | None = None

    def __init__(self, lib: ctypes.CDLL, ctx: int):
        self.lib, self.ctx = lib, ctx

    @classmethod
    def _library(cls) -> ctypes.CDLL:
        if cls._lib is None:
            import _ssl  # the module's own handle: its OpenSSL, never a second copy from the system
            lib = ctypes.CDLL(getattr(_ssl, "__file__", None))
            lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
            lib.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VERIFY_CALLBACK]
            lib.SSL_CTX_set_verify.restype = None
            lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_char_p]
            lib.SSL_CTX_ctrl.restype = ctypes.c_long
            cls._lib = lib
        return cls._lib

    @classmethod
    def of(cls, context: ssl.SSLContext) -> "_OpenSSL | None":
        """CPython keeps the SSL_CTX pointer right after the object header; trusted only if it reads back
        the verify mode Python set, under both settings."""
        try:
            lib = cls._library()
            ctx = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
            mode = context.verify_mode
            seen = []
            for probe in (ssl.CERT_REQUIRED, ssl.CERT_NONE):
                context.verify_mode = probe
                seen.append(lib.SSL_CTX_get_verify_mode(ctx))
            context.verify_mode = mode
        except (OSError, AttributeError, TypeError):
            return None
        return cls(lib, ctx) if ctx and seen == [3, 0] else None

    def accept_any_certificate(self, mode: ssl.VerifyMode) -> None:
        flags = self.SSL_VERIFY_PEER | (self.SSL_VERIFY_FAIL_IF_NO_PEER_CERT if mode == ssl.CERT_REQUIRED else 0)
        self.lib.SSL_CTX_set_verify(self.ctx, flags, _accept)

    def groups(self, names: list[str]) -> None:
        if self.lib.SSL_CTX_ctrl(self.ctx, self.SSL_CTRL_SET_GROUPS_LIST, 0, ":".join(names).encode()) != 1:
            raise SettingError("curve_preferences", f"OpenSSL refuses {', '.join(names)}")
