"""The load tester's HTTP client: aiohttp, set up for many cheap concurrent POSTs to one target.

Why a library: a load tester pointed at any URL (a NodePort, an ingress, a proxy) meets chunked and
compressed bodies, keep-alive rules, interim 1xx answers, TLS and odd servers; aiohttp's parser and
connection pool handle them, a hand-written one has to be kept up with each.

What is set up for a load tester, and why:
- the address is resolved once (`resolve_target`), and the session's resolver returns it, so no
  request waits on DNS; TLS still verifies the certificate against the host name of the URL;
- no connection limit in the pool: the sender's --max-inflight is the cap, and a pool limit would make
  a due request wait for a free connection, a hidden closed loop (coordinated omission);
- keep-alive when the server allows it, a fresh connection per request when it answers
  `Connection: close` (the inference service does, so new replicas get traffic at once);
- no cookies (a sticky-session cookie from an ingress would pin the load to one replica), no
  redirects followed (a 3xx is an answer to count), no proxy from the environment, no aiohttp
  timeouts: the caller's one deadline (asyncio.timeout) covers connect, send and the whole body.
"""

from __future__ import annotations

import asyncio
import errno
import json
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.http_exceptions import HttpProcessingError
from yarl import URL  # aiohttp's URL type (one of its dependencies)

from loadtester.images import Photo

USER_AGENT = "resnet18-loadtester/2"
# An idle keep-alive connection is dropped after this long, below common servers' own idle timeouts
# (gunicorn 2 s, uvicorn 5 s, nginx 75 s): a server closing a connection just as it is reused would cost
# a POST, which is not idempotent and so is never retried.
IDLE_CONNECTION_S = 1.0


class UnreachableError(RuntimeError):
    """The service cannot be reached at all before the run starts."""


@dataclass(frozen=True)
class Target:
    url: str            # base URL as given
    path: str           # request path (endpoint)
    address: str        # IP address, resolved once so no request waits on DNS
    port: int
    host_header: str
    tls: bool

    @property
    def request_url(self) -> str:
        """The URL each POST goes to: the host name stays, for the Host header and TLS verification."""
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, self.path, "", ""))


def resolve_target(url: str, endpoint: str) -> Target:
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    host = parts.hostname or ""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnreachableError(f"cannot reach {url}: the host name {host!r} does not resolve ({exc.strerror})") from None
    address = infos[0][4][0]
    host_header = parts.netloc.rsplit("@", 1)[-1]
    prefix = parts.path.rstrip("/")
    return Target(url=url, path=prefix + endpoint, address=address, port=port, host_header=host_header, tls=tls)


def probe(target: Target, timeout_s: float = 5.0) -> None:
    """Open (and close) one TCP connection, so an unreachable URL fails before the replay starts."""
    try:
        with socket.create_connection((target.address, target.port), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise UnreachableError(f"cannot reach {target.url} ({target.address}:{target.port}): {reason}. "
                               "Is the service running and is --url right?") from None


@dataclass
class Reply:
    status: int
    done_at: float                       # event-loop time the last byte arrived
    server_timings_ms: dict | None       # from Server-Timing (or the JSON body's timings_ms)


def parse_server_timing(value: str) -> dict:
    """`queue;dur=1.2, preprocess;dur=3.4` -> {"queue": 1.2, "preprocess": 3.4} (ms)."""
    timings = {}
    for metric in value.split(","):
        name, *params = metric.strip().split(";")
        for param in params:
            key, _, number = param.strip().partition("=")
            if key.strip().lower() == "dur":
                try:
                    timings[name.strip()] = float(number.strip().strip('"'))
                except ValueError:
                    pass
    return timings


def server_timings(status: int, header: str | None, body: bytes | bytearray) -> dict | None:
    """The server's own timings: its Server-Timing header, else a 2xx JSON body's `timings_ms`."""
    if header:
        return parse_server_timing(header)
    if not (200 <= status < 300 and body[:1] == b"{"):
        return None
    try:
        timings = json.loads(body).get("timings_ms")
        return {k: float(v) for k, v in timings.items()} if isinstance(timings, dict) else None
    except (ValueError, AttributeError, TypeError):
        return None


_RESET_ERRNOS = frozenset({errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE})


def failure_kind(exc: BaseException) -> str:
    """The outcome kind of a request that raised `exc` (the kinds of docs/loadtester.md).

    Covers aiohttp's exceptions and the built-in ones (the benchmark's baseline client raises those).
    """
    if isinstance(exc, aiohttp.ClientConnectorError):
        # Connecting failed: refused, timed out, TLS or DNS, as the socket said. (getattr: in aiohttp < 3.10
        # a certificate error has no os_error, and then counts as the OSError it also is.)
        exc = getattr(exc, "os_error", None) or exc
    if isinstance(exc, TimeoutError):  # also aiohttp's ServerTimeoutError
        return "timeout"
    code = getattr(exc, "errno", None) if isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError) else None
    if isinstance(exc, ConnectionRefusedError) or code == errno.ECONNREFUSED:
        return "conn_refused"
    # A clean close before the answer (ServerDisconnectedError), a body cut short (ClientPayloadError), a reset.
    if (isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, ConnectionResetError,
                         ConnectionAbortedError, BrokenPipeError)) or code in _RESET_ERRNOS):
        return "conn_reset"
    # aiohttp reports an unparsable response head as ClientResponseError (we never raise_for_status).
    if isinstance(exc, (aiohttp.ClientResponseError, HttpProcessingError)):
        return "protocol_error"
    if isinstance(exc, (aiohttp.ClientError, OSError)):  # ssl.SSLError is an OSError
        return "conn_error"
    return "client_error"


class _PinnedResolver(AbstractResolver):
    """Answers every look-up with the address resolved before the run: DNS is never on a request's path."""

    def __init__(self, address: str):
        self._address = address
        self._family = socket.AF_INET6 if ":" in address else socket.AF_INET

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[dict]:
        # aiohttp's ResolveResult (a plain dict, so aiohttp 3.9, which has no such type, takes it too)
        return [{"hostname": host, "host": self._address, "port": port, "family": self._family, "proto": 0,
                 "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        pass


@dataclass(frozen=True)
class Prepared:
    """One photo's POST, built once: the body and its headers are shared by every request that sends it."""

    body: bytes
    headers: dict


class Client:
    """Sends POSTs to one target over one aiohttp session (create it, and close it, in the running loop)."""

    def __init__(self, target: Target):
        self.target = target
        self._url = URL(target.request_url)  # parsed once, not per request
        self._loop = asyncio.get_running_loop()
        connector = aiohttp.TCPConnector(
            limit=0, resolver=_PinnedResolver(target.address), use_dns_cache=False,
            keepalive_timeout=IDLE_CONNECTION_S,
            # A fresh default context: the system's CAs (and SSL_CERT_FILE) as they are when the run starts.
            ssl=ssl.create_default_context() if target.tls else True)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None), cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            # No Accept-Encoding: the server answers as it did for the previous client (a compressed answer
            # is still decoded), and the load tester spends no CPU on decompression by asking for it.
            skip_auto_headers=("Accept-Encoding",))

    @staticmethod
    def prepare(photo: Photo) -> Prepared:
        return Prepared(photo.data, {"Content-Type": photo.content_type})

    async def post(self, request: Prepared) -> Reply:
        """One POST, its whole body read; raises what aiohttp raises (`failure_kind` names it)."""
        async with self._session.post(self._url, data=request.body, headers=request.headers,
                                      allow_redirects=False) as response:
            body = await response.read()
            done_at = self._loop.time()  # the last byte is in
            return Reply(response.status, done_at,
                         server_timings(response.status, response.headers.get("Server-Timing"), body))

    async def close(self) -> None:
        await self._session.close()
