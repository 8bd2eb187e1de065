"""The load tester's HTTP client (aiohttp) through the sender: connection reuse, TLS, failure kinds.

Servers are http.server instances on free 127.0.0.1 ports (tests/support.py's LocalHTTPServer), one
per case, closed when the case ends.
"""

from __future__ import annotations

import errno
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler
from types import SimpleNamespace

import aiohttp
import pytest
from yarl import URL

from loadtester.http_client import failure_kind, resolve_target
from support import LocalHTTPServer, tool_binary
from test_loadtester_sender import replay

BODY = b'{"predictions": []}'


def counting_handler(stats: dict, version: str = "HTTP/1.1", close: bool = False, chunked: bool = False):
    """A handler that counts connections and requests in `stats`, answering as told."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = version

        def setup(self):
            super().setup()
            with lock:
                stats["connections"] += 1

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                stats["requests"] += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Server-Timing", "model;dur=1")
            if close:
                self.send_header("Connection", "close")
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for piece in (BODY[:5], BODY[5:]):  # separate writes: the body arrives in pieces
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                self.wfile.write(BODY)

    return Handler


CONNECTIONS = [
    # (server behaviour, reuses connections)
    ("keep-alive", {}, True),
    ("keep-alive-chunked", {"chunked": True}, True),
    ("connection-close", {"close": True}, False),
    ("http-1.0", {"version": "HTTP/1.0"}, False),
]


@pytest.mark.parametrize("server, reuses", [c[1:] for c in CONNECTIONS], ids=[c[0] for c in CONNECTIONS])
def test_connections_are_reused_exactly_when_the_server_allows_it(server, reuses):
    stats = {"connections": 0, "requests": 0}
    httpd = LocalHTTPServer(counting_handler(stats, **server))
    try:
        table = replay(httpd.url, [10.0, 10.0], speedup=2.0)  # 20 requests, 50 ms apart
    finally:
        httpd.close()
    assert table.kind.tolist() == ["ok"] * 20 and stats["requests"] == 20
    assert table.server_model_ms.tolist() == [1.0] * 20
    if reuses:
        assert stats["connections"] <= 5, stats  # one, unless an answer was still on its way at the next send
    else:
        assert stats["connections"] == 20, stats


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for the name `localhost` only (not for 127.0.0.1)."""
    folder = tmp_path_factory.mktemp("tls")
    openssl = tool_binary("openssl", "install OpenSSL (Debian: apt-get install openssl)")
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem"), "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return folder / "cert.pem", folder / "key.pem"


TLS = [
    # (host in the URL, certificate trusted, kind)
    ("trusted-name-matches", "localhost", True, "ok"),
    ("untrusted", "localhost", False, "conn_error"),
    ("trusted-name-differs", "127.0.0.1", True, "conn_error"),  # verified against the URL's name, not the address
]


@pytest.mark.parametrize("host, trusted, kind", [t[1:] for t in TLS], ids=[t[0] for t in TLS])
def test_tls_is_verified_against_the_host_name_of_the_url(certificate, monkeypatch, host, trusted, kind):
    cert, key = certificate
    if trusted:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # read when the client makes its TLS context
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    address = resolve_target("https://localhost", "/").address
    httpd = LocalHTTPServer(counting_handler({"connections": 0, "requests": 0}), ssl_context=context, host=address)
    try:
        table = replay(f"https://{host}:{httpd.port}", [3.0], timeout_s=5.0, speedup=3.0)
    finally:
        httpd.close()
    assert table.kind.tolist() == [kind] * 3


_KEY = SimpleNamespace(host="127.0.0.1", port=1, ssl=False)
_INFO = aiohttp.RequestInfo(url=URL("http://x/"), method="POST", headers={},
                            real_url=URL("http://x/"))
FAILURES = [
    ("our-deadline", TimeoutError(), "timeout"),
    ("aiohttp-timeout", aiohttp.ServerTimeoutError(), "timeout"),
    ("refused-connecting", aiohttp.ClientConnectorError(_KEY, ConnectionRefusedError(errno.ECONNREFUSED, "x")),
     "conn_refused"),
    ("connect-timed-out", aiohttp.ClientConnectorError(_KEY, TimeoutError(errno.ETIMEDOUT, "x")), "timeout"),
    ("dns-failed", aiohttp.ClientConnectorError(_KEY, OSError(-2, "Name or service not known")), "conn_error"),
    ("closed-before-answer", aiohttp.ServerDisconnectedError(), "conn_reset"),
    ("body-cut-short", aiohttp.ClientPayloadError("Response payload is not completed"), "conn_reset"),
    ("reset-while-sending", aiohttp.ClientOSError(errno.ECONNRESET, "reset"), "conn_reset"),
    ("broken-pipe", aiohttp.ClientOSError(errno.EPIPE, "pipe"), "conn_reset"),
    ("unparsable-head", aiohttp.ClientResponseError(_INFO, (), status=400, message="Invalid status"),
     "protocol_error"),
    ("certificate-rejected", ssl.SSLCertVerificationError(1, "certificate verify failed"), "conn_error"),
    ("other-network-error", aiohttp.ClientOSError(errno.ENETUNREACH, "unreachable"), "conn_error"),
    ("reset-by-peer", ConnectionResetError(errno.ECONNRESET, "x"), "conn_reset"),
    ("refused-by-the-os", ConnectionRefusedError(errno.ECONNREFUSED, "x"), "conn_refused"),
    ("a-bug", KeyError("x"), "client_error"),
]


@pytest.mark.parametrize("exc, kind", [f[1:] for f in FAILURES], ids=[f[0] for f in FAILURES])
def test_failures_map_onto_the_outcome_kinds(exc, kind):
    assert failure_kind(exc) == kind

