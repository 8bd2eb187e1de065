"""The sender against real HTTP servers on 127.0.0.1: timing accuracy, open loop, errors by kind.

The servers are the stub server (loadtester/stub_server.py, a separate process answering after a
known delay) and, for malformed or unusual answers, a tiny socket server in a thread that replies
with canned bytes.
"""

from __future__ import annotations

import asyncio
import gzip
import socketserver
import threading

import numpy as np
import pytest

from loadtester.config import BUNDLED_IMAGES
from loadtester.http_client import Client, parse_server_timing, resolve_target
from loadtester.images import load_images
from loadtester.schedule import build_schedule
from loadtester.sender import Replayer
from support import free_port, start_stub_server

PHOTOS = load_images(BUNDLED_IMAGES)


def replay(url: str, rates, timeout_s: float = 10.0, max_inflight: int = 1000, arrivals: str = "uniform",
           speedup: float = 1.0, client_factory=Client):
    schedule = build_schedule(rates, arrivals=arrivals, seed=1, speedup=speedup)
    replayer = Replayer(resolve_target(url, "/predict"), schedule, PHOTOS, timeout_s=timeout_s,
                        max_inflight=max_inflight, client_factory=client_factory)
    asyncio.run(replayer.run())
    return replayer.result_table()


@pytest.fixture(scope="module")
def stub_50ms(tmp_path_factory):
    child = start_stub_server(tmp_path_factory.mktemp("stub50"), delay_ms=50)
    yield child.extra["url"]
    child.stop()


def test_latency_matches_a_known_server_delay(stub_50ms):
    table = replay(stub_50ms, [30.0] * 3)
    assert (table.kind == "ok").all() and len(table) == 90
    # Never below the server's delay (that would mean the clock starts late)...
    assert table.latency_ms.min() >= 50.0
    # ...and close above it: connect + loopback + the event loop, generous for a busy 2-core machine.
    assert np.median(table.latency_ms) <= 50.0 + 40.0
    assert np.median(table.server_model_ms) == 50.0, "Server-Timing parsed into the records"
    np.testing.assert_allclose(table.latency_ms, table.service_ms + table.send_lag_ms, atol=0.01)


def test_offered_rate_matches_the_trace_within_2_percent(stub_50ms):
    rates = [100.0] * 4
    table = replay(stub_50ms, rates)
    assert len(table) == 400 and (table.kind == "ok").all()
    planned = (len(table) - 1) / (table.scheduled_s[-1] - table.scheduled_s[0])
    achieved = (len(table) - 1) / (np.nanmax(table.sent_s) - np.nanmin(table.sent_s))
    assert achieved == pytest.approx(planned, rel=0.02)
    assert np.bincount(table.trace_second).tolist() == [100] * 4


def test_a_slow_server_does_not_slow_the_sender(tmp_path):
    """Open loop: with 2-s answers, a closed-loop client would send a handful; this one sends all on time.

    A sender that waited for answers would send late by about a whole answer (2 s) from the first batch of
    connections on; the bounds are relative to that. The largest lag is allowed a quarter of it: on a busy
    2-core machine one stall of the process (up to 300 ms measured beside a busy core) delays a few sends."""
    delay_ms = 2000.0
    slow = start_stub_server(tmp_path, delay_ms=delay_ms)
    try:
        table = replay(slow.extra["url"], [40.0] * 2)
    finally:
        slow.stop()
    assert len(table) == 80 and (table.kind == "ok").all()
    lag_ms = table.send_lag_ms
    assert np.median(lag_ms) < 0.01 * delay_ms, "requests left on schedule while ~80 were in flight"
    assert lag_ms.max() < 0.25 * delay_ms, np.sort(lag_ms)[-5:]
    assert np.nanmax(table.sent_s) - np.nanmin(table.sent_s) == pytest.approx(
        table.scheduled_s[-1] - table.scheduled_s[0], abs=0.1)
    assert table.latency_ms.min() >= 2000.0


def test_max_inflight_drops_instead_of_delaying(tmp_path):
    slow = start_stub_server(tmp_path, delay_ms=1500)
    try:
        table = replay(slow.extra["url"], [20.0] * 2, max_inflight=10, speedup=2.0)
    finally:
        slow.stop()
    kinds = table.kind.tolist()
    assert kinds[:10] == ["ok"] * 10
    assert kinds[10:] == ["dropped_client"] * 30
    assert np.isnan(table.sent_s[10:]).all()
    assert np.percentile(table.send_lag_ms[:10], 99) < 100.0


STATUS_SERVERS = [
    ("overloaded-503", {"status": 503}, "rejected_503", 503),
    ("deadline-504", {"status": 504}, "deadline_504", 504),
    ("bad-request-400", {"status": 400}, "http_4xx", 400),
    ("server-error-500", {"status": 500}, "http_5xx", 500),
    ("keep-alive-ok", {"keep_alive": True}, "ok", 200),
]


@pytest.mark.parametrize("server, kind, status", [s[1:] for s in STATUS_SERVERS], ids=[s[0] for s in STATUS_SERVERS])
def test_answers_are_counted_by_kind(tmp_path, server, kind, status):
    stub = start_stub_server(tmp_path, **server)
    try:
        table = replay(stub.extra["url"], [20.0, 20.0], speedup=4.0)
    finally:
        stub.stop()
    assert table.kind.tolist() == [kind] * 40
    assert table.status.tolist() == [status] * 40


def test_timeouts_are_counted_not_fatal(tmp_path):
    stub = start_stub_server(tmp_path, delay_ms=5000)
    try:
        table = replay(stub.extra["url"], [10.0], timeout_s=0.3, speedup=2.0)
    finally:
        stub.stop()
    assert table.kind.tolist() == ["timeout"] * 10
    assert (table.service_ms >= 300.0).all() and (table.service_ms < 3000.0).all()


def test_connection_refused_is_counted():
    table = replay(f"http://127.0.0.1:{free_port()}", [10.0], speedup=5.0)
    assert table.kind.tolist() == ["conn_refused"] * 10
    assert (table.status == 0).all()


class _CannedServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def canned_server(reply: bytes):
    """A server in a thread that reads one request and answers `reply` verbatim, then closes."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = self.request.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            while len(body) < length:
                body += self.request.recv(65536)
            if reply:
                self.request.sendall(reply)

    server = _CannedServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


CANNED = [
    ("content-length", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", "ok", 200),
    ("chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", "ok", 200),
    ("body-until-close", b"HTTP/1.0 200 OK\r\n\r\n{\"x\": 1}", "ok", 200),
    ("interim-100-first", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", "ok", 201),
    # What a proxy or an odd server may send, which aiohttp's parser handles.
    ("chunked-extensions-trailer", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;x=y\r\n{\r\n1\r\n}\r\n"
                                   b"0\r\nX-Trailer: 1\r\n\r\n", "ok", 200),
    ("bare-lf-line-ends", b"HTTP/1.1 200 OK\nContent-Length: 2\n\n{}", "ok", 200),
    ("not-http", b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "protocol_error", 0),
    ("garbage-status-code", b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n", "protocol_error", 0),
    ("garbage-chunk-size", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
     "protocol_error", 0),
    ("garbage-content-length", b"HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\n{}", "protocol_error", 0),
    ("closed-silently", b"", "conn_reset", 0),
    ("cut-mid-head", b"HTTP/1.1 200 OK\r\nContent-Len", "conn_reset", 0),
    ("cut-mid-body", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial", "conn_reset", 0),
    ("cut-mid-chunk", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"part", "conn_reset", 0),
]


@pytest.mark.parametrize("reply, kind, status", [c[1:] for c in CANNED], ids=[c[0] for c in CANNED])
def test_response_framing(reply, kind, status):
    server = canned_server(reply)
    try:
        table = replay(f"http://127.0.0.1:{server.server_address[1]}", [3.0], timeout_s=5.0, speedup=5.0)
    finally:
        server.shutdown()
        server.server_close()
    assert table.kind.tolist() == [kind] * 3
    assert table.status.tolist() == [status] * 3


JSON_BODY = b'{"predictions": [], "timings_ms": {"queue": 1.0, "preprocess": 2.0, "model": 3.0}}'
JSON_ANSWERS = [
    ("content-length", b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(JSON_BODY) + JSON_BODY),
    ("chunked-in-pieces", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
     + b"".join(b"%x\r\n%s\r\n" % (len(JSON_BODY[k:k + 10]), JSON_BODY[k:k + 10]) for k in range(0, len(JSON_BODY), 10))
     + b"0\r\n\r\n"),
    ("gzip-encoded", b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
     % len(gzip.compress(JSON_BODY)) + gzip.compress(JSON_BODY)),
]


@pytest.mark.parametrize("reply", [a[1] for a in JSON_ANSWERS], ids=[a[0] for a in JSON_ANSWERS])
def test_timings_from_json_body_when_no_header(reply):
    """Read from the whole body, however it was framed or encoded."""
    server = canned_server(reply)
    try:
        table = replay(f"http://127.0.0.1:{server.server_address[1]}", [2.0], speedup=5.0)
    finally:
        server.shutdown()
        server.server_close()
    assert table.server_queue_ms.tolist() == [1.0, 1.0]
    assert table.server_model_ms.tolist() == [3.0, 3.0]


SERVER_TIMING = [
    ("service-format", "queue;dur=1.2, preprocess;dur=3.4, model;dur=20.1",
     {"queue": 1.2, "preprocess": 3.4, "model": 20.1}),
    ("with-description", 'model;desc="ResNet";dur=7', {"model": 7.0}),
    ("no-duration", "cache, model;dur=2", {"model": 2.0}),
    ("garbage-duration", "model;dur=fast", {}),
]


@pytest.mark.parametrize("header, expected", [s[1:] for s in SERVER_TIMING], ids=[s[0] for s in SERVER_TIMING])
def test_server_timing_header(header, expected):
    assert parse_server_timing(header) == expected
