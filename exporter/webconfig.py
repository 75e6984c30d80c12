"""The exporter-toolkit web configuration: TLS, client certificates, basic auth, headers.

The same file format as every Prometheus exporter's ``--web.config.file``.
``Watcher`` re-reads it when it changes: a bad edit keeps the last good
configuration and logs why.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import functools
import hmac
import logging
import os
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import yaml

from .config import ConfigError

log = logging.getLogger(__name__)

CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
TLS_KEYS = ("cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version")
HEADERS = ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "X-XSS-Protection",
           "Strict-Transport-Security")
TOP = ("tls_server_config", "http_server_config", "basic_auth_users")
BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}")


@functools.cache
def _dummy_hash() -> bytes:
    """A hash checked for unknown users, so the time taken does not tell who exists."""
    return bcrypt.hashpw(os.urandom(16), bcrypt.gensalt(10))


@dataclass
class WebConfig:
    tls: dict[str, object] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    users: dict[str, bytes] = field(default_factory=dict)
    # replaced, never mutated: the event loop reads it while a bcrypt thread adds to it
    _verified: frozenset[bytes] = field(default_factory=frozenset, repr=False)

    def _credentials(self, header: str | None) -> tuple[str, str, bytes, bytes] | None:
        """(user, password, hash, cache key) from an Authorization header, None when malformed."""
        if not header or not header.lower().startswith("basic "):
            return None
        try:
            user, sep, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if not sep:
            return None
        hashed = self.users.get(user, b"")
        key = hashlib.sha256(hashed + b"\0" + user.encode() + b"\0" + password.encode()).digest()
        return user, password, hashed, key

    def cached(self, header: str | None) -> bool | None:
        """The answer when it needs no bcrypt (no users, malformed, cached); None when it does."""
        if not self.users:
            return True
        found = self._credentials(header)
        if found is None:
            return False
        if any(hmac.compare_digest(found[3], seen) for seen in self._verified):
            return True
        return None

    def authorized(self, header: str | None) -> bool:
        """Basic auth against the bcrypt hashes; a verified password is cached by its digest."""
        known = self.cached(header)
        if known is not None:
            return known
        user, password, hashed, key = self._credentials(header)
        try:
            # an unknown user still costs one bcrypt, so timing does not tell who exists
            good = bcrypt.checkpw(password.encode(), hashed or _dummy_hash()) and user in self.users
        except ValueError:
            good = False
        if good:
            self._verified = self._verified | {key}
        return good

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.apply_tls(context)
        return context

    def apply_tls(self, context: ssl.SSLContext) -> None:
        tls = self.tls
        context.load_cert_chain(tls["cert_file"], tls["key_file"])
        context.minimum_version = TLS_VERSIONS[tls.get("min_version", "TLS12")]
        if "max_version" in tls:
            context.maximum_version = TLS_VERSIONS[tls["max_version"]]
        if tls.get("client_ca_file"):
            context.load_verify_locations(tls["client_ca_file"])
        context.verify_mode = CLIENT_AUTH[tls.get("client_auth_type", "NoClientCert")]


def _fail(where: str, key: str, what: str) -> ConfigError:
    return ConfigError(f"{where}{key}: {what}")


def _mapping(value: object, where: str, key: str, accepted: tuple[str, ...]) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(where, key, "expected a mapping")
    for name in value:
        if name not in accepted:
            raise _fail(where, f"{key}.{name}" if key else str(name), f"unknown key; accepted: {', '.join(accepted)}")
    return value


def parse(raw: object, where: str = "", base: Path = Path(".")) -> WebConfig:
    top = _mapping(raw, where, "", TOP)
    tls = _mapping(top.get("tls_server_config"), where, "tls_server_config", TLS_KEYS)
    if tls:
        for key in ("cert_file", "key_file"):
            if not isinstance(tls.get(key), str):
                raise _fail(where, f"tls_server_config.{key}", "required with TLS: the path of a PEM file")
        tls = dict(tls)
        for key in ("cert_file", "key_file", "client_ca_file"):
            if isinstance(tls.get(key), str):
                tls[key] = str(base / tls[key])
        auth = tls.get("client_auth_type", "NoClientCert")
        if auth not in CLIENT_AUTH:
            raise _fail(where, "tls_server_config.client_auth_type", f"{auth!r}; accepted: {', '.join(CLIENT_AUTH)}")
        if auth in ("RequireAndVerifyClientCert", "VerifyClientCertIfGiven") and not tls.get("client_ca_file"):
            raise _fail(where, "tls_server_config.client_ca_file", f"required with client_auth_type {auth}")
        for key in ("min_version", "max_version"):
            if key in tls and tls[key] not in TLS_VERSIONS:
                raise _fail(where, f"tls_server_config.{key}", f"{tls[key]!r}; accepted: {', '.join(TLS_VERSIONS)}")
        if TLS_VERSIONS[tls.get("min_version", "TLS12")] > TLS_VERSIONS[tls.get("max_version", "TLS13")]:
            raise _fail(where, "tls_server_config.min_version", "is above max_version: no client could connect")
    http = _mapping(top.get("http_server_config"), where, "http_server_config", ("headers", "http2"))
    if not isinstance(http.get("http2", True), bool):  # accepted for compatibility; this server speaks HTTP/1.1
        raise _fail(where, "http_server_config.http2", "expected true or false")
    headers = _mapping(http.get("headers"), where, "http_server_config.headers", HEADERS)
    for name, value in headers.items():
        if not isinstance(value, str) or "\n" in value or "\r" in value:
            raise _fail(where, f"http_server_config.headers.{name}", "expected a one-line string")
    raw_users = top.get("basic_auth_users")
    users = _mapping(raw_users, where, "basic_auth_users", tuple(raw_users) if isinstance(raw_users, dict) else ())
    hashes = {}
    for user, hashed in users.items():
        if not isinstance(user, str) or not user or ":" in user or \
                not isinstance(hashed, str) or not BCRYPT.fullmatch(hashed):
            raise _fail(where, f"basic_auth_users.{user}", "expected a bcrypt hash ($2y$...), "
                        "e.g. from htpasswd -nBC 10 USER")
        hashes[user] = hashed.encode()
    config = WebConfig(tls, dict(headers), hashes)
    if tls:
        try:
            config.ssl_context()
        except (OSError, ssl.SSLError) as err:
            raise _fail(where, "tls_server_config", f"cannot load the certificate or key: {err}") from None
    return config


def load(path: str | Path) -> WebConfig:
    where = f"{path}: "
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{where}cannot read the web config: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise ConfigError(f"{where}{'line %d: ' % (mark.line + 1) if mark else ''}invalid YAML") from None
    return parse(raw, where, Path(path).resolve().parent)


class Watcher:
    """The web config in force, re-read by ``refresh`` when the file changes.

    ``refresh`` runs on the server's event loop, the thread that also uses the
    live SSL context, so a certificate rotation never races a handshake.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._config = load(self.path)
        self._stamp = self._mtime()
        self._context: ssl.SSLContext | None = None

    def _mtime(self) -> tuple:
        """Change stamps of the file and the PEM files it names: a renewed certificate reloads too."""
        paths = [self.path] + [Path(self._config.tls[k]) for k in ("cert_file", "key_file", "client_ca_file")
                               if self._config.tls.get(k)]
        stamps = []
        for path in paths:
            try:
                st = os.stat(path)
                stamps.append((st.st_mtime_ns, st.st_size))
            except OSError:
                stamps.append(None)
        return tuple(stamps)

    def ssl_context(self) -> ssl.SSLContext | None:
        self._context = self._config.ssl_context()
        return self._context

    def current(self) -> WebConfig:
        return self._config

    def refresh(self) -> WebConfig:
        """Re-read the file if it changed since the last look; the server calls this once a second."""
        stamp = self._mtime()
        if stamp == self._stamp:
            return self._config
        self._stamp = stamp
        try:
            fresh = load(self.path)
            if bool(fresh.tls) != bool(self._config.tls):
                raise ConfigError("turning TLS on or off needs a restart")
            if self._context is not None:
                fresh.apply_tls(self._context)
        except (ConfigError, OSError, ssl.SSLError) as err:
            log.error("web config not reloaded, keeping the last good one", extra={"err": str(err)})
            return self._config
        log.info("web config reloaded", extra={"file": str(self.path)})
        self._config = fresh
        self._stamp = self._mtime()  # now over the PEM files the fresh config names
        return fresh
