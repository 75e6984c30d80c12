"""exporter-toolkit's own web-config test files, each run through the real exporter (``serve``).

The files and what the toolkit does with each are in ../shared/peers/exporter-toolkit-testdata
(EXPECTED.tsv, read here at test time, never copied). A ``start`` file must start a real server
that answers a request honouring the file (TLS with its certificates, a client certificate where
the file requires one, the toolkit tests' user and password); a ``refuse`` file must give exit
status 2 and one line naming the key. Where a ``.bad`` file starts, the toolkit refuses at the
connection (client_allowed_sans, rate_limit): checked here too, with the other behaviours the
toolkit's tls_config_test.go checks on the same files (ciphers, curves, versions, client auth).
"""

from __future__ import annotations

import base64
import http.client
import os
import socket
import ssl
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.web_harness import LoggedExporter
from tests.support import ROOT, free_port, run_exporter, unavailable, wait_for

CORPUS = Path(os.environ.get("TOOLKIT_TESTDATA", ROOT.parent / "shared" / "peers" / "exporter-toolkit-testdata"))
PREFIX = "dtr-sizing-exporter: error: "
USER, PASSWORD = "dave", "dave123"  # the toolkit's web/tls_config_test.go TestUsers
CARDS = 38


def expected() -> list[tuple[str, str]]:
    try:
        lines = (CORPUS / "EXPECTED.tsv").read_text().splitlines()
    except OSError:
        return []
    return [tuple(line.split("\t")) for line in lines if line.strip()]


def corpus_missing():
    unavailable(f"exporter-toolkit test data not found at {CORPUS} (set TOOLKIT_TESTDATA)")


CASES = expected()
MISSING = [pytest.param(None, id="corpus-missing")]  # a failure in CI, not an empty (skipped) parameter set
STARTS = [name for name, outcome in CASES if outcome == "start"] or MISSING
REFUSALS = [name for name, outcome in CASES if outcome == "refuse"] or MISSING

# the key each refusal must name (the toolkit's own reason in the comment)
NAMED = {
    "web_config_auth_clientCAs_invalid.bad.yml": "client_ca_file",  # no such file / CA without policy
    "web_config_auth_user_list_invalid.bad.yml": "basic_auth_users.john",  # not a bcrypt hash
    "web_config_headers_content_type_options.bad.yml": "X-Content-Type-Options",  # invalid value
    "web_config_headers_extra_header.bad.yml": "Content-Type",  # header can not be configured
    "web_config_headers_frame_options.bad.yml": "X-Frame-Options",  # invalid value
    "web_config_junk.yml": "top level",  # YAML error
    "web_config_junk_key.yml": "cert_filse",  # YAML error: unknown field
    "web_config_noAuth.bad.yml": "client_ca_file",  # client CAs without a client auth policy
    "web_config_noAuth_certPath_empty.bad.yml": "cert_file",  # missing one of cert or cert_file
    "web_config_noAuth_certPath_invalid.bad.yml": "cert_file",  # no such file
    "web_config_noAuth_certPath_keyPath_empty.bad.yml": "cert_file",  # missing one of cert or cert_file
    "web_config_noAuth_certPath_keyPath_invalid.bad.yml": "cert_file",  # no such file
    "web_config_noAuth_cert_empty.bad.yml": "cert_file",  # missing one of cert or cert_file
    "web_config_noAuth_inventedCiphers.bad.yml": "cipher_suites",  # unknown cipher
    "web_config_noAuth_inventedCurves.bad.yml": "curve_preferences",  # unknown curve
    "web_config_noAuth_keyPath_empty.bad.yml": "key_file",  # missing one of key or key_file
    "web_config_noAuth_keyPath_invalid.bad.yml": "cert_file",  # no such file (its cert_file is missing too)
    "web_config_noAuth_key_empty.bad.yml": "key_file",  # missing one of key or key_file
    "web_config_noAuth_noHTTP2Cipher.bad.yml": "cipher_suites",  # missing an HTTP/2-required cipher
    "web_config_noAuth_wrongTLSVersion.bad.yml": "min_version",  # unknown TLS version
}


def test_the_whole_corpus_is_there():
    if not CASES:
        corpus_missing()
    assert len(CASES) == CARDS and len(set(CASES)) == CARDS
    assert all((CORPUS / name).is_file() for name, _ in CASES)
    assert {n for n, outcome in CASES if outcome == "refuse"} == set(NAMED)


# --- a client that honours a file ---

class Client:
    """How to talk to an exporter serving one corpus file, derived from the file itself."""

    def __init__(self, name: str):
        self.path = CORPUS / name
        raw = yaml.safe_load(self.path.read_text()) or {}
        self.tls = raw.get("tls_server_config") or {}
        self.https = bool(self.tls.get("cert") or self.tls.get("cert_file"))
        self.auth = (USER, PASSWORD) if raw.get("basic_auth_users") else None
        self.headers = (raw.get("http_server_config") or {}).get("headers") or {}

    def served_cert(self) -> str:
        return self.tls.get("cert") or (CORPUS / self.tls["cert_file"]).read_text()

    def default_client_cert(self) -> str | None:
        """A client certificate where the file requires one: its own CA when that is a client certificate."""
        if self.tls.get("client_auth_type") not in ("RequireAnyClientCert", "RequireAndVerifyClientCert"):
            return None
        ca = self.tls.get("client_ca_file", "")
        return ca[:-len(".pem")] if ca.startswith("client") else "client_selfsigned"

    def context(self, client_cert: str | None = "default", **tweaks) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        # pinned to the served certificate: OpenSSL, unlike Go, refuses the corpus CA chain for a server
        # (its CAs carry only anyExtendedKeyUsage), so the client trusts the leaf the file names
        context.load_verify_locations(cadata=self.served_cert())
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        cert = self.default_client_cert() if client_cert == "default" else client_cert
        if cert:
            context.load_cert_chain(CORPUS / f"{cert}.pem", CORPUS / f"{cert}.key")
        if "ciphers" in tweaks:
            context.set_ciphers(tweaks["ciphers"])
        if "curve" in tweaks:
            context.set_ecdh_curve(tweaks["curve"])
        if "max_version" in tweaks:
            context.maximum_version = tweaks["max_version"]
        return context

    def get(self, port: int, path: str = "/metrics", auth="default", context: ssl.SSLContext | None = None,
            **kwargs) -> http.client.HTTPResponse:
        if self.https:
            conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context or self.context(**kwargs))
        else:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        auth = self.auth if auth == "default" else auth
        headers = {"Authorization": "Basic " + base64.b64encode(":".join(auth).encode()).decode()} if auth else {}
        conn.request("GET", path, headers=headers)
        tls = conn.sock.cipher() if self.https else None
        answer = conn.getresponse()
        answer.body, answer.tls = answer.read(), tls
        conn.close()
        return answer


def refused_at_connection(client: Client, port: int, **kwargs) -> bool:
    """No HTTP answer: the handshake fails, or the server closes the connection without one."""
    try:
        client.get(port, **kwargs)
    except (ssl.SSLError, ConnectionError, http.client.HTTPException, OSError):
        return True
    return False


# --- what each start file is expected to answer, and the behaviours checked on it ---

def answers(status: int):
    return lambda client, port: client.get(port).status == status


def handshake_then_closed(client: Client, port: int) -> bool:
    """Up and talking TLS, yet the client certificate without an allowed SAN gets no answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with client.context().wrap_socket(raw, server_hostname="127.0.0.1"):
            pass
    return refused_at_connection(client, port)


PROBES = {"web_config_rate_limiter_one_second.yaml": answers(429),  # burst 0: every request is one too many
          "web_config_auth_client_san.bad.yaml": handshake_then_closed}


def check_users(client, port):
    assert client.get(port, auth=None).status == 401
    assert client.get(port, auth=(USER, "bad")).status == 401
    assert client.get(port, auth=("nonexistent", "nonexistent")).status == 401
    assert client.get(port, auth=("carol", "carol123")).status == 200


def check_headers(client, port):
    answer = client.get(port)
    for name, value in client.headers.items():
        assert answer.getheader(name) == str(value), name
    assert answer.getheader("X-XSS-Protection") == "1"  # an integer in the YAML, a string to Go


def check_some_ciphers(client, port):
    """Server order (prefer_server_cipher_suites defaults to true); no common cipher, no handshake."""
    both = "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256"
    assert client.get(port, ciphers=both).tls[0] == "ECDHE-RSA-AES128-GCM-SHA256"
    assert client.get(port, ciphers="ECDHE-RSA-AES128-GCM-SHA256").status == 200
    assert refused_at_connection(client, port, ciphers="ECDHE-RSA-AES256-SHA", max_version=ssl.TLSVersion.TLSv1_2)


def check_client_order(client, port):
    """prefer_server_cipher_suites: false: the client's first choice wins over the file's order."""
    answer = client.get(port, ciphers="ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384")
    assert answer.tls[0] == "ECDHE-RSA-AES128-GCM-SHA256"


def check_some_curves(client, port):
    assert client.get(port, curve="secp521r1").status == 200
    assert refused_at_connection(client, port, curve="secp384r1")  # no common curve


def check_no_http2(client, port):
    answer = client.get(port)
    assert answer.tls[:2] == ("ECDHE-RSA-AES256-GCM-SHA384", "TLSv1.2")


def check_verify_if_given(client, port):
    """Go's VerifyClientCertIfGiven without a CA: no certificate is fine, an unverifiable one is not."""
    assert refused_at_connection(client, port, client_cert="client_selfsigned")


def check_require_any(client, port):
    """Go's RequireAnyClientCert: any certificate, self-signed and unknown included; none is refused."""
    assert client.get(port, client_cert="client2_selfsigned").status == 200
    assert refused_at_connection(client, port, client_cert=None)


def check_require_and_verify(client, port):
    assert refused_at_connection(client, port, client_cert="client2_selfsigned")  # not signed by the CA given
    assert refused_at_connection(client, port, client_cert=None)


def check_allowed_san(client, port):
    assert refused_at_connection(client, port, client_cert="client_selfsigned")  # trusted by no CA given


def check_not_limited(client, port):
    assert all(client.get(port).status == 200 for _ in range(11))  # interval 0: no rate limit


def check_limited(client, port):
    assert all(client.get(port).status == 429 for _ in range(10))


CHECKS = {
    "web_config_users.good.yml": check_users,
    "web_config_users_noTLS.good.yml": check_users,
    "web_config_headers.good.yml": check_headers,
    "web_config_noAuth_someCiphers.good.yml": check_some_ciphers,
    "web_config_noAuth_someCiphers_noOrder.good.yml": check_client_order,
    "web_config_noAuth_someCurves.good.yml": check_some_curves,
    "web_config_noAuth_noHTTP2.good.yml": check_no_http2,
    "web_config_noAuth.good.yml": check_verify_if_given,
    "tls_config_noAuth.requireanyclientcert.good.yml": check_require_any,
    "tls_config_noAuth.requireandverifyclientcert.good.yml": check_require_and_verify,
    "web_config_auth_client_san.good.yaml": check_allowed_san,
    "web_config_rate_limiter_nonblocking.yaml": check_not_limited,
    "web_config_rate_limiter_one_second.yaml": check_limited,
}


@pytest.mark.parametrize("name", STARTS)
def test_start_file_serves_as_the_toolkit_would(tmp_path, name):
    if name is None:
        corpus_missing()
    client = Client(name)
    probe = PROBES.get(name, answers(200))
    with LoggedExporter("--web.config.file", str(client.path), log_path=tmp_path / "log",
                        scheme="https" if client.https else "http",
                        probe=lambda e: probe(client, e.port)) as exporter:
        CHECKS.get(name, lambda *_: None)(client, exporter.port)
        assert exporter.proc.poll() is None
        assert "Traceback" not in exporter.log() and "level=error" not in exporter.log()


@pytest.mark.parametrize("name", REFUSALS)
def test_refuse_file_is_one_line_naming_the_key(name):
    if name is None:
        corpus_missing()
    done = run_exporter("serve", "--web.config.file", str(CORPUS / name),
                        "--web.listen-address", f"127.0.0.1:{free_port()}", timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(PREFIX), done.stderr
    assert "Traceback" not in done.stderr
    assert NAMED[name] in lines[0], lines[0]


# --- beyond the corpus: behaviours its files do not reach ---

def test_rate_limit_bucket_refills(tmp_path):
    config = tmp_path / "web.yml"
    config.write_text("rate_limit:\n  interval: 400ms\n  burst: 2\n"
                      "http_server_config:\n  headers:\n    X-Frame-Options: deny\n")
    client = Client.__new__(Client)
    client.https, client.auth = False, None
    with LoggedExporter("--web.config.file", str(config), log_path=tmp_path / "log",
                        probe=lambda e: True) as exporter:
        wait_for(lambda: client.get(exporter.port, "/-/healthy").status == 200, timeout=30, what="first answer")
        time.sleep(0.9)  # the bucket is full again (2 tokens)
        statuses = [client.get(exporter.port, "/-/healthy") for _ in range(3)]
        assert [a.status for a in statuses] == [200, 200, 429]
        assert statuses[2].getheader("X-Frame-Options") == "deny"  # the configured headers on a 429 too
        time.sleep(0.5)
        assert client.get(exporter.port, "/-/healthy").status == 200


def test_one_start_line_names_what_python_ssl_applies_differently(tmp_path):
    name = "web_config_noAuth_allCiphers.good.yml"
    if not CASES:
        corpus_missing()
    client = Client(name)
    with LoggedExporter("--web.config.file", str(client.path), log_path=tmp_path / "log", scheme="https",
                        probe=lambda e: client.get(e.port).status == 200) as exporter:
        lines = [line for line in exporter.log().splitlines() if "applied differently" in line]
    assert len(lines) == 1 and "level=warn" in lines[0] and "cipher_suites" in lines[0]


def test_reload_applies_a_new_client_policy_to_new_connections(tmp_path):
    """The toolkit reads its file for every new connection: a changed policy and CA apply, the old CA goes."""
    if not CASES:
        corpus_missing()
    config = tmp_path / "web.yml"
    tls = {"cert_file": str(CORPUS / "server.crt"), "key_file": str(CORPUS / "server.key"),
           "client_auth_type": "RequireAndVerifyClientCert", "client_ca_file": str(CORPUS / "client2_selfsigned.pem")}
    config.write_text(yaml.safe_dump({"tls_server_config": tls}))
    client = Client("tls_config_noAuth.requireandverifyclientcert.good.yml")
    with LoggedExporter("--web.config.file", str(config), log_path=tmp_path / "log", scheme="https",
                        probe=lambda e: client.get(e.port, client_cert="client2_selfsigned").status == 200) as exporter:
        assert refused_at_connection(client, exporter.port, client_cert="client_selfsigned")
        tls["client_ca_file"] = str(CORPUS / "client_selfsigned.pem")
        config.write_text(yaml.safe_dump({"tls_server_config": tls}))
        wait_for(lambda: client.get(exporter.port, client_cert="client_selfsigned").status == 200, timeout=10,
                 what="the new client CA")
        assert refused_at_connection(client, exporter.port, client_cert="client2_selfsigned")  # the old CA is gone
        tls.update(client_auth_type="RequireAnyClientCert")
        del tls["client_ca_file"]
        config.write_text(yaml.safe_dump({"tls_server_config": tls}))
        wait_for(lambda: client.get(exporter.port, client_cert="client2_selfsigned").status == 200, timeout=10,
                 what="any client certificate")
        assert exporter.proc.poll() is None
