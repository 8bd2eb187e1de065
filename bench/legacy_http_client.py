"""The load tester's previous HTTP client, kept ONLY as the baseline of bench/bench_loadtester.py.

The load tester sends with aiohttp (loadtester/http_client.py). This is the hand-written HTTP/1.1
client on asyncio protocols it replaced: pre-encoded requests written in one call, responses parsed
just enough (status, framing, Connection, Server-Timing), idle keep-alive connections reused. The
benchmark replays the same schedules through both, alternating, to show what the library costs per
request. Its code is the old module's; the parts both share (Target, Reply, ProtocolError, the
Server-Timing reader) are imported from loadtester.http_client, and its interface (prepare, async
close) is the new client's. Nothing but the benchmark (and its test) uses it: do not build on it.
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

from loadtester.http_client import ProtocolError, Reply, Target, server_timings
from loadtester.images import Photo

_MAX_HEAD_BYTES = 64 * 1024
_USER_AGENT = "resnet18-loadtester/1"


class EmptyReply(ConnectionResetError):
    """The connection closed before a single byte of the response arrived."""


def encode_post(target: Target, photo: Photo) -> bytes:
    head = (f"POST {target.path} HTTP/1.1\r\nHost: {target.host_header}\r\nUser-Agent: {_USER_AGENT}\r\n"
            f"Accept: application/json\r\nContent-Type: {photo.content_type}\r\n"
            f"Content-Length: {len(photo.data)}\r\n\r\n")
    return head.encode("latin-1") + photo.data


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
        header = self._headers.get(b"server-timing")
        timings = server_timings(self._status, header.decode("latin-1") if header else None, self._buf)
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


class Client:
    """Sends requests to one target, reusing idle keep-alive connections when there are any.

    Same interface as loadtester.http_client.Client, so the sender takes either (`client_factory`).
    """

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

    def prepare(self, photo: Photo) -> bytes:
        return encode_post(self.target, photo)

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

    async def close(self) -> None:
        for conn in self._idle:
            conn.abort()
        self._idle.clear()
