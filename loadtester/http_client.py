"""A small HTTP/1.1 client on asyncio protocols, built for many cheap concurrent POSTs.

Why not requests/urllib3: an open-loop sender needs hundreds of requests in flight at once without
a thread each, and a few hundred microseconds of CPU per request at most. Requests are pre-encoded
bytes written in one call; responses are parsed just enough (status, framing, Connection,
Server-Timing). Connections are reused when the server allows it; when it answers
`Connection: close` (the inference service does, so new replicas get traffic) each request gets a
fresh connection, which is what that server wants.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from loadtester.images import Photo

_MAX_HEAD_BYTES = 64 * 1024
_USER_AGENT = "resnet18-loadtester/1"


class UnreachableError(RuntimeError):
    """The service cannot be reached at all before the run starts."""


class ProtocolError(Exception):
    """The peer answered something that is not a valid HTTP/1.x response."""


class EmptyReply(ConnectionResetError):
    """The connection closed before a single byte of the response arrived."""


@dataclass(frozen=True)
class Target:
    url: str            # base URL as given
    path: str           # request path (endpoint)
    address: str        # IP address, resolved once so no request waits on DNS
    port: int
    host_header: str
    tls: bool

    def encode_post(self, photo: Photo) -> bytes:
        head = (f"POST {self.path} HTTP/1.1\r\nHost: {self.host_header}\r\nUser-Agent: {_USER_AGENT}\r\n"
                f"Accept: application/json\r\nContent-Type: {photo.content_type}\r\n"
                f"Content-Length: {len(photo.data)}\r\n\r\n")
        return head.encode("latin-1") + photo.data


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


class _Connection(asyncio.Protocol):
    """One TCP connection carrying one exchange at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._future: asyncio.Future | None = None
        self._reset()

    def _reset(self) -> None:
        self._buf = bytearray()
        self._status = 0
        self._headers: dict[bytes, bytes] | None = None
        self._remaining = -1          # body bytes still expected; -1 = until close
        self._chunked = False
        self._got_bytes = False
        self.keep_alive = False

    # asyncio callbacks
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._future is None or self._future.done():
            return  # bytes nobody asked for: the connection will not be reused
        self._got_bytes = True
        self._buf += data
        try:
            self._parse()
        except ProtocolError as exc:
            self._fail(exc)

    def eof_received(self):
        return False  # close our side too

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self._future is not None and not self._future.done():
            if self._headers is not None and self._remaining == -1 and not self._chunked:
                self._finish()  # body delimited by the close
            elif not self._got_bytes:
                self._fail(EmptyReply("connection closed before any response"))
            elif isinstance(exc, Exception):
                self._fail(exc)
            else:
                self._fail(ConnectionResetError("connection closed in the middle of the response"))

    # exchange
    def send(self, request: bytes) -> asyncio.Future:
        self._reset()
        self._future = self._loop.create_future()
        self.transport.write(request)
        return self._future

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, exc: BaseException) -> None:
        self.keep_alive = False
        if not self._future.done():
            self._future.set_exception(exc)

    def _finish(self) -> None:
        done_at = self._loop.time()
        timings = None
        headers = self._headers
        header = headers.get(b"server-timing")
        if header:
            timings = parse_server_timing(header.decode("latin-1"))
        elif 200 <= self._status < 300 and self._buf[:1] == b"{":
            timings = _timings_from_json(bytes(self._buf))
        if not self._future.done():
            self._future.set_result(Reply(self._status, done_at, timings))

    def _parse(self) -> None:
        if self._headers is None:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > _MAX_HEAD_BYTES:
                    raise ProtocolError("response head too long")
                return
            self._read_head(bytes(self._buf[:end]))
            del self._buf[:end + 4]
            if self._headers is None:  # an interim 1xx response: the real one follows
                return self._parse()
        if self._chunked:
            if self._chunks_complete():
                self._finish()
        elif self._remaining >= 0 and len(self._buf) >= self._remaining:
            self._finish()

    def _read_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"bad status line {lines[0][:80]!r}")
        status = int(parts[1])
        if 100 <= status < 200:
            return
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        self._status = status
        self._headers = headers
        connection = headers.get(b"connection", b"").lower()
        http11 = parts[0] == b"HTTP/1.1"
        self.keep_alive = (b"keep-alive" in connection) if not http11 else (b"close" not in connection)
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            self._chunked = True
        elif status in (204, 304):
            self._remaining = 0
        elif b"content-length" in headers:
            try:
                self._remaining = int(headers[b"content-length"])
            except ValueError:
                raise ProtocolError("bad Content-Length") from None
        else:
            self._remaining = -1
            self.keep_alive = False

    def _chunks_complete(self) -> bool:
        """True once the terminating zero-size chunk (and trailers) are in the buffer."""
        pos, buf = 0, self._buf
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                return False
            try:
                size = int(bytes(buf[pos:line_end]).split(b";")[0].strip(), 16)
            except ValueError:
                raise ProtocolError("bad chunk size") from None
            if size == 0:
                return buf.find(b"\r\n\r\n", line_end) >= 0 or buf.endswith(b"\r\n", line_end + 2)
            pos = line_end + 2 + size + 2
            if pos > len(buf):
                return False


def _timings_from_json(body: bytes) -> dict | None:
    try:
        timings = json.loads(body).get("timings_ms")
        return {k: float(v) for k, v in timings.items()} if isinstance(timings, dict) else None
    except (ValueError, AttributeError, TypeError):
        return None


class Client:
    """Sends requests to one target, reusing idle keep-alive connections when there are any."""

    def __init__(self, target: Target):
        self.target = target
        self._loop = asyncio.get_running_loop()
        self._idle: list[_Connection] = []
        self._ssl = ssl.create_default_context() if target.tls else None
        # TLS checks the certificate against the name in the URL, not the address it resolved to.
        self._server_hostname = urlsplit(target.url).hostname if target.tls else None

    async def _connect(self) -> _Connection:
        _, conn = await self._loop.create_connection(
            lambda: _Connection(self._loop), self.target.address, self.target.port, ssl=self._ssl,
            server_hostname=self._server_hostname)
        return conn

    async def post(self, request: bytes) -> Reply:
        conn = None
        while self._idle:
            candidate = self._idle.pop()
            if not candidate.closed:
                conn = candidate
                break
        reused = conn is not None
        if conn is None:
            conn = await self._connect()
        try:
            try:
                reply = await conn.send(request)
            except EmptyReply:
                if not reused:
                    raise
                # The server closed an idle keep-alive connection just as we reused it: the request
                # never reached it, so sending it again on a fresh connection is safe.
                conn.abort()
                conn = await self._connect()
                reply = await conn.send(request)
        except BaseException:
            conn.abort()
            raise
        if conn.keep_alive and not conn.closed:
            self._idle.append(conn)
        else:
            conn.transport.close()
        return reply

    def close(self) -> None:
        for conn in self._idle:
            conn.abort()
        self._idle.clear()
