"""A fast stand-in for the inference service: answers every request after a fixed delay.

For trying the load tester without a model, for its benchmark, and for tests that need a server
whose latency is known exactly:

    python -m loadtester.stub_server --port 8001 --delay-ms 50

It answers like the service (JSON body, Server-Timing header, `Connection: close` unless
--keep-alive), handles any number of concurrent requests (the delay is an asyncio sleep, not a
busy worker), and can answer with another status (--status 503) to exercise error handling.
`GET /stats` returns how many requests it has answered or is answering.

With --capacity-rps it behaves like one replica of known capacity instead: a single FIFO server that
takes exactly 1/capacity seconds per request (after --delay-ms), so it saturates at that rate, queues
beyond it, and answers 503 at once when --queue-limit requests already wait. The capacity probe's tests
use it: what it finds can be checked against the truth.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error",
            503: "Service Unavailable", 504: "Gateway Timeout"}


class _StubProtocol(asyncio.Protocol):
    def __init__(self, server: "StubServer"):
        self.server = server
        self.buf = bytearray()
        self.transport = None
        self.busy = False

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buf += data
        if not self.busy:
            self._next()

    def _next(self):
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        length = 0
        for line in bytes(self.buf[:end]).split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(self.buf) < end + 4 + length:
            return
        is_stats = bytes(self.buf[:12]).startswith(b"GET /stats ")
        del self.buf[:end + 4 + length]
        self.busy = True
        if is_stats:
            body = json.dumps({"requests": self.server.requests}).encode()
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                                 + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
            self.transport.close()
            return
        self.server.requests += 1
        delay_s = self.server.delay_ms / 1000.0
        if self.server.capacity_rps:
            delay_s, rejected = self.server.queue_for_service(delay_s)
            if rejected:
                self.transport.write(self.server.rejection)
                self.transport.close()
                return
        if delay_s > 0:
            asyncio.get_running_loop().call_later(delay_s, self._respond)
        else:
            self._respond()

    def _respond(self):
        if self.transport.is_closing():
            return
        server = self.server
        self.transport.write(server.response)
        self.busy = False
        if not server.keep_alive:
            self.transport.close()
        elif self.buf:
            self._next()


class StubServer:
    def __init__(self, delay_ms: float = 0.0, status: int = 200, keep_alive: bool = False,
                 capacity_rps: float = 0.0, queue_limit: int = 0):
        self.delay_ms = delay_ms
        self.keep_alive = keep_alive
        self.capacity_rps = capacity_rps
        self.queue_limit = queue_limit
        self.requests = 0
        self._busy_until = 0.0
        model_ms = 1000.0 / capacity_rps if capacity_rps else delay_ms
        self.response = _response(status, keep_alive, model_ms)
        self.rejection = _response(503, False, 0.0)

    def queue_for_service(self, delay_s: float) -> tuple[float, bool]:
        """(seconds until this request's answer, whether it is rejected): one FIFO server at capacity_rps."""
        now = asyncio.get_running_loop().time()
        start = max(now, self._busy_until)
        if self.queue_limit and (start - now) * self.capacity_rps >= self.queue_limit:
            return 0.0, True
        self._busy_until = start + 1.0 / self.capacity_rps
        return self._busy_until - now + delay_s, False

    async def serve(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _StubProtocol(self), host, port, backlog=4096, reuse_address=True)
        print(f"stub server listening on http://{host}:{port} (delay {self.delay_ms:g} ms, "
              f"{'keep-alive' if self.keep_alive else 'Connection: close'})", flush=True)
        async with server:
            await server.serve_forever()


def _response(status: int, keep_alive: bool, model_ms: float) -> bytes:
    if status == 200:
        body = json.dumps({"model": "resnet18", "weights": "stub",
                           "predictions": [{"index": 0, "label": "stub", "score": 1.0}],
                           "timings_ms": {"queue": 0.0, "preprocess": 0.0, "model": model_ms}}).encode()
    else:
        body = json.dumps({"error": f"stub status {status}"}).encode()
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"Server-Timing: queue;dur=0.0, preprocess;dur=0.0, model;dur={model_ms:g}\r\n"
            + ("Retry-After: 1\r\n" if status == 503 else "")
            + ("Connection: keep-alive\r\n" if keep_alive else "Connection: close\r\n") + "\r\n")
    return head.encode() + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8001, help="TCP port (default: 8001)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="delay before every answer, ms (default: 0)")
    parser.add_argument("--status", type=int, default=200, help="HTTP status of every answer (default: 200)")
    parser.add_argument("--keep-alive", action="store_true", help="keep connections open (default: close each)")
    parser.add_argument("--capacity-rps", type=float, default=0.0,
                        help="serve like one replica of this capacity: one request at a time, 1/capacity s each "
                             "(default: 0, every request in parallel)")
    parser.add_argument("--queue-limit", type=int, default=0,
                        help="with --capacity-rps: answer 503 when this many requests wait (default: 0, no limit)")
    args = parser.parse_args(argv)
    if args.delay_ms < 0 or not 100 <= args.status <= 599 or not 0 < args.port < 65536:
        parser.error("--delay-ms must be >= 0, --status within 100..599, --port within 1..65535")
    if args.capacity_rps < 0 or args.queue_limit < 0:
        parser.error("--capacity-rps and --queue-limit must be >= 0")
    try:
        asyncio.run(StubServer(args.delay_ms, args.status, args.keep_alive, args.capacity_rps,
                               args.queue_limit).serve(args.host, args.port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
