"""A probe beside the load generator: the service's own answer time, with no client queue in it.

The load generator is one asyncio event loop. When a batch's eight answers arrive together it parses them
one after the other, so an answer that lands meanwhile is timed a few milliseconds late: a client's delay
that its "from the send" figure still holds (on a Zen 5, 503 p99 9.3 ms through the load generator against
5.1 ms through this probe, in the same run). The probe is a process of its own on the load generator's core
that sends Poisson-timed POSTs one at a time over blocking sockets (`Connection: close`, as the load
generator's are) and times each from `connect()` to the answer's first byte: the service's time, with
only the kernel's loopback between.

    python -m bench.probe PORT RATE_RPS SECONDS SEED IMAGE...   # prints [[status, ms], ...] as JSON
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.clients import Sample
from loadtester.schedule import build_schedule
from processes.children import PYTHON, REPO


def request_bytes(body: bytes, content_type: str = "image/jpeg") -> bytes:
    head = (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode("ascii") + body


def status_of(first_bytes: bytes) -> int:
    """The status code of an HTTP/1.x status line (0 when there is none: the connection closed early)."""
    parts = first_bytes.split(b" ", 2)
    return int(parts[1]) if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit() else 0


def one(port: int, request: bytes, timeout_s: float = 60.0) -> tuple[int, float]:
    """(status, ms from connect() to the first byte of the answer); the rest of the answer is read and dropped."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(request)
        first = sock.recv(64)
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        while first and len(first) < 16:   # a status line split across reads
            more = sock.recv(64)
            if not more:
                break
            first += more
        while sock.recv(65536):
            pass
    return status_of(first), elapsed_ms


def probe(port: int, rate_rps: float, seconds: float, seed: int, bodies: list[bytes]) -> list[tuple[int, float]]:
    """Poisson arrivals at `rate_rps` for `seconds` (the load tester's schedule), one request at a time (a
    late one goes at once)."""
    schedule = build_schedule([rate_rps] * math.ceil(seconds), seed=seed, duration_s=seconds)
    requests = [request_bytes(b) for b in bodies]
    results = []
    start = time.perf_counter()
    for offset_s in schedule.offsets_s:
        wait_s = start + offset_s - time.perf_counter()
        if wait_s > 0:
            time.sleep(wait_s)
        sent = time.perf_counter()
        try:
            results.append(one(port, requests[len(results) % len(requests)]))
        except OSError:   # refused, reset or timed out: counted as no answer (status 0), never a lost run
            results.append((0, (time.perf_counter() - sent) * 1000.0))
    return results


def start(port: int, rate_rps: float, seconds: float, seed: int, images: list[Path]) -> subprocess.Popen:
    """The probe as a child process (it inherits the caller's CPU affinity); `collect` its answers."""
    args = [PYTHON, "-m", "bench.probe", str(port), f"{rate_rps:.3f}", f"{seconds:g}", str(seed), *map(str, images)]
    return subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, text=True)


def collect(proc: subprocess.Popen, timeout_s: float) -> list[tuple[int, float]]:
    out, _ = proc.communicate(timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(f"the probe exited with {proc.returncode}")
    return [(int(status), float(ms)) for status, ms in json.loads(out)]


def as_sample(results: list[tuple[int, float]], elapsed_s: float) -> Sample:
    """The probe's answers as a Sample: its time from the send is also its latency (it has no schedule to lag)."""
    seconds = [ms / 1000.0 for _, ms in results]
    return Sample(latencies_s=seconds, from_send_s=seconds, send_lag_s=[0.0] * len(results),
                  statuses=[status for status, _ in results], elapsed_s=elapsed_s)


def main(argv: list[str]) -> None:
    if len(argv) < 5:
        raise SystemExit(__doc__.strip().splitlines()[-1].strip())
    try:
        port, rate, seconds, seed = int(argv[0]), float(argv[1]), float(argv[2]), int(argv[3])
    except ValueError as exc:
        raise SystemExit(f"PORT and SEED must be integers, RATE_RPS and SECONDS numbers: {exc}") from None
    if rate <= 0 or seconds <= 0:
        raise SystemExit(f"RATE_RPS and SECONDS must be > 0 (got {argv[1]!r}, {argv[2]!r})")
    print(json.dumps(probe(port, rate, seconds, seed, [Path(p).read_bytes() for p in argv[4:]])))


if __name__ == "__main__":
    main(sys.argv[1:])
