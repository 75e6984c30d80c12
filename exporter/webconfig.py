"""The exporter-toolkit web configuration: TLS, client certificates, basic auth, headers, rate limit.

The same file format, meanings and validation rules as every Prometheus
exporter's ``--web.config.file`` (exporter-toolkit ``web/tls_config.go`` and
``web/handler.go``). ``Watcher`` re-reads it when it changes: a bad edit keeps
the last good configuration and logs why.
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
import time
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import yaml

from . import webtls
from .config import ConfigError, mapping
from .webtls import CIPHERS, CLIENT_AUTH, CURVES, HTTP2_REQUIRED, TLS_VERSIONS, TLSSettings

log = logging.getLogger(__name__)

TOP = ("tls_server_config", "http_server_config", "rate_limit", "basic_auth_users")
TLS_KEYS = ("cert", "key", "client_ca", "cert_file", "key_file", "client_auth_type", "client_ca_file",
            "client_allowed_sans", "min_version", "max_version", "cipher_suites", "curve_preferences",
            "prefer_server_cipher_suites")
# The toolkit's settable headers; a tuple lists the only values it allows.
HEADERS = {"Strict-Transport-Security": None, "X-Content-Type-Options": ("nosniff",),
           "X-Frame-Options": ("deny", "sameorigin"), "X-XSS-Protection": None, "Content-Security-Policy": None}
BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}")
GO_DURATION = re.compile(r"[-+]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)")
GO_TERM = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@functools.cache
def _dummy_hash() -> bytes:
    """A hash checked for unknown users, so the time taken does not tell who exists."""
    return bcrypt.hashpw(os.urandom(16), bcrypt.gensalt(10))


@dataclass
class WebConfig:
    tls: TLSSettings | None = None  # None: plain HTTP, as the toolkit when no cert, key, CA or policy is set
    headers: dict[str, str] = field(default_factory=dict)
    users: dict[str, bytes] = field(default_factory=dict)
    rate_limit: tuple[float, int] | None = None  # (seconds between requests, burst)
    http2: bool = True
    context: ssl.SSLContext | None = field(default=None, repr=False)  # built from tls at load
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
        return self.context

    def approximations(self) -> list[str]:
        """Settings in force that OpenSSL, through Python's ssl, applies differently from Go."""
        tls, found = self.tls, []
        if tls and tls.cipher_suites and tls.max_version == "TLS13":
            found.append("cipher_suites: TLS 1.3 suites are not restricted and OpenSSL chooses among them")
        if tls and tls.min_version in ("TLS10", "TLS11"):
            found.append(f"min_version {tls.min_version}: OpenSSL's security level may still refuse it")
        return found


class RateLimiter:
    """The toolkit's rate_limit: one token bucket for all requests, full at start (Go's rate.Limiter)."""

    def __init__(self, interval: float, burst: int):
        self.per_second, self.burst = 1.0 / interval, max(burst, 0)
        self.tokens, self.last = float(self.burst), time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.per_second)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False  # with burst 0 that is every request, as in Go


def _fail(where: str, key: str, what: str) -> ConfigError:
    return ConfigError(f"{where}{key}: {what}")


def _text(value: object, where: str, key: str) -> str:
    """A YAML scalar as Go reads it into a string field: its text; null is empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise _fail(where, key, "expected a string")


def _names(value: object, where: str, key: str, known: dict | None = None, what: str = "") -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise _fail(where, key, "expected a list")
    names = tuple(_text(item, where, key) for item in value)
    for name in names:
        if known is not None and name not in known:
            raise _fail(where, key, f"unknown {what} {name!r}; accepted: {', '.join(known)}")
    return names


def _bool(value: object, where: str, key: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _fail(where, key, "expected true or false")
    return value


def _join(base: Path, path: str) -> str:
    return str(base / path) if path else ""


def _tls(raw: object, where: str, base: Path) -> TLSSettings | None:
    """tls_server_config, checked as the toolkit checks it; None when it asks for no TLS at all."""
    tls = mapping(raw, "tls_server_config", where, TLS_KEYS)
    key = lambda name: f"tls_server_config.{name}"  # noqa: E731
    text = {name: _text(tls.get(name), where, key(name)) for name in
            ("cert", "key", "client_ca", "cert_file", "key_file", "client_auth_type", "client_ca_file")}
    versions = {}
    for name, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        versions[name] = _text(tls.get(name), where, key(name)) or default
        if versions[name] not in TLS_VERSIONS:
            raise _fail(where, key(name),
                        f"unknown TLS version {versions[name]!r}; accepted: {', '.join(TLS_VERSIONS)}")
    settings = TLSSettings(
        cert_file=_join(base, text["cert_file"]), cert=text["cert"], key_file=_join(base, text["key_file"]),
        key=text["key"], client_ca_file=_join(base, text["client_ca_file"]), client_ca=text["client_ca"],
        client_auth_type=text["client_auth_type"] or "NoClientCert",
        client_allowed_sans=_names(tls.get("client_allowed_sans"), where, key("client_allowed_sans")),
        cipher_suites=_names(tls.get("cipher_suites"), where, key("cipher_suites"), CIPHERS, "cipher") or (),
        curve_preferences=_names(tls.get("curve_preferences"), where, key("curve_preferences"), CURVES, "curve") or (),
        prefer_server_cipher_suites=_bool(tls.get("prefer_server_cipher_suites"), where,
                                          key("prefer_server_cipher_suites"), True),
        **versions)
    if not any(text[name] for name in ("cert", "key", "client_ca", "cert_file", "key_file", "client_auth_type",
                                       "client_ca_file")):
        return None
    if not (settings.cert_file or settings.cert):
        raise _fail(where, key("cert_file"), "missing: TLS needs cert_file or cert (inline PEM)")
    if not (settings.key_file or settings.key):
        raise _fail(where, key("key_file"), "missing: TLS needs key_file or key (inline PEM)")
    if settings.client_auth_type not in CLIENT_AUTH:
        raise _fail(where, key("client_auth_type"),
                    f"{settings.client_auth_type!r}; accepted: {', '.join(CLIENT_AUTH)}")
    if (settings.client_ca_file or settings.client_ca) and settings.client_auth_type == "NoClientCert":
        raise _fail(where, key("client_ca_file" if settings.client_ca_file else "client_ca"),
                    "client CAs given but client_auth_type is NoClientCert; set a client_auth_type")
    if TLS_VERSIONS[settings.min_version] > TLS_VERSIONS[settings.max_version]:
        raise _fail(where, key("min_version"), "is above max_version: no client could connect")
    return settings


def _headers(raw: object, where: str) -> dict[str, str]:
    headers = {}
    for name, value in mapping(raw, "http_server_config.headers", where, HEADERS).items():
        key = f"http_server_config.headers.{name}"
        text = _text(value, where, key)
        if HEADERS[name] is not None and text not in HEADERS[name]:
            raise _fail(where, key, f"invalid value; accepted: {', '.join(HEADERS[name])}")
        if "\n" in text or "\r" in text:
            raise _fail(where, key, "expected a one-line string")
        headers[name] = text
    return headers


def _go_duration(value: object, where: str, key: str) -> float:
    """Seconds from a Go duration ('1s', '1m30s'); a bare integer is nanoseconds, as Go's YAML reads it."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value / 1e9
    if not isinstance(value, str) or not GO_DURATION.fullmatch(value):
        raise _fail(where, key, "expected a duration such as 1s, 500ms or 1m30s")
    sign = -1.0 if value.startswith("-") else 1.0
    return sign * sum(float(number) * GO_UNITS[unit] for number, unit in GO_TERM.findall(value))


def _rate_limit(raw: object, where: str) -> tuple[float, int] | None:
    limit = mapping(raw, "rate_limit", where, ("interval", "burst"))
    interval, burst = (0 if limit.get(k) is None else limit[k] for k in ("interval", "burst"))  # null: Go's zero
    interval = _go_duration(interval, where, "rate_limit.interval")
    if not isinstance(burst, int) or isinstance(burst, bool):
        raise _fail(where, "rate_limit.burst", "expected an integer")
    return (interval, burst) if interval > 0 else None  # the toolkit: 0 turns it off; Go's Every(<0) never limits


def _users(raw: object, where: str) -> dict[str, bytes]:
    users = mapping(raw, "basic_auth_users", where)
    hashes = {}
    for user, hashed in users.items():
        name = _text(user, where, "basic_auth_users")
        if ":" in name or not isinstance(hashed, str) or not BCRYPT.fullmatch(hashed):
            raise _fail(where, f"basic_auth_users.{name}", "expected a bcrypt hash ($2y$...) for a user name "
                        "without ':', e.g. from htpasswd -nBC 10 USER")
        hashes[name] = hashed.encode()
    return hashes


def parse(raw: object, where: str = "", base: Path = Path(".")) -> WebConfig:
    top = mapping(raw, "", where, TOP)
    tls = _tls(top.get("tls_server_config"), where, base)
    http = mapping(top.get("http_server_config"), "http_server_config", where, ("headers", "http2"))
    http2 = _bool(http.get("http2"), where, "http_server_config.http2", True)
    if tls and http2 and tls.cipher_suites and TLS_VERSIONS[tls.min_version] < ssl.TLSVersion.TLSv1_3 \
            and not set(HTTP2_REQUIRED) & set(tls.cipher_suites):  # Go's net/http refuses to start so
        raise _fail(where, "tls_server_config.cipher_suites", f"with http2 on (the default) the list needs "
                    f"{' or '.join(HTTP2_REQUIRED)}; or set http_server_config.http2: false")
    config = WebConfig(tls, _headers(http.get("headers"), where), _users(top.get("basic_auth_users"), where),
                       _rate_limit(top.get("rate_limit"), where), http2)
    if tls:
        try:
            config.context = webtls.server_context(tls)
        except webtls.SettingError as err:
            raise _fail(where, f"tls_server_config.{err.key}", err.what) from None
    return config


def load(path: str | Path) -> WebConfig:
    where = f"{path}: "
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{where}cannot read the web config: {getattr(err, 'strerror', None) or err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise ConfigError(f"{where}{'line %d: ' % (mark.line + 1) if mark else ''}invalid YAML") from None
    return parse(raw, where, Path(path).resolve().parent)


class Watcher:
    """The web config in force, re-read by ``refresh`` when the file changes.

    Each reload builds a new SSL context that the server uses for new
    connections, as the toolkit re-reads its file for every new connection.
    The rate-limit bucket carries over a reload that leaves rate_limit alone.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._config = load(self.path)
        self._stamp = self._mtime()
        self._limiter = self._bucket(self._config)
        self._warn(self._config, [])

    @staticmethod
    def _bucket(config: WebConfig) -> RateLimiter | None:
        return RateLimiter(*config.rate_limit) if config.rate_limit else None

    @staticmethod
    def _warn(config: WebConfig, before: list[str]) -> None:
        """One line naming what Python's ssl cannot apply exactly (docs/security.md has the detail)."""
        found = config.approximations()
        if found and found != before:
            log.warning("web config: settings applied differently from the exporter-toolkit",
                        extra={"settings": "; ".join(found)})

    def _mtime(self) -> tuple:
        """Change stamps of the file and the PEM files it names: a renewed certificate reloads too."""
        stamps = []
        for path in [self.path, *(self._config.tls.files() if self._config.tls else [])]:
            try:
                st = os.stat(path)
                stamps.append((st.st_mtime_ns, st.st_size))
            except OSError:
                stamps.append(None)
        return tuple(stamps)

    def ssl_context(self) -> ssl.SSLContext | None:
        return self._config.context

    def current(self) -> WebConfig:
        return self._config

    def admit(self) -> bool:
        """False when rate_limit says this request is one too many."""
        return self._limiter is None or self._limiter.allow()

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
        except ConfigError as err:
            log.error("web config not reloaded, keeping the last good one", extra={"err": str(err)})
            return self._config
        log.info("web config reloaded", extra={"file": str(self.path)})
        self._warn(fresh, self._config.approximations())
        if fresh.rate_limit != self._config.rate_limit:
            self._limiter = self._bucket(fresh)
        self._config = fresh
        self._stamp = self._mtime()  # now over the PEM files the fresh config names
        return fresh
