"""Measure the inference pod's memory on the real process, to size its request and limit.

    .venv/bin/python k8s/measure_memory.py [--weights random|imagenet] [--requests 200] [--concurrency 16]

Starts the service as one pod runs it (gunicorn master + 1 worker, TORCH_THREADS=1) on a free 127.0.0.1
port, sends a mix of ordinary photos and 12-megapixel JPEGs concurrently, and prints the resident memory
of master and worker from /proc/<pid>/status (VmRSS now, VmHWM at peak, which psutil does not report;
RssAnon is what only swap or the OOM killer can take back, RssFile is mapped libraries the kernel can
reclaim). The container's memory limit must cover the peak with headroom.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import sys
import tempfile
import time
from pathlib import Path

import requests

from loadtester.images import synthetic_jpeg
from processes.children import child_pids
from processes.services import start_gunicorn

FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssFile")


def memory_mib(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in FIELDS:
            values[key] = int(rest.split()[0]) // 1024
    return values


def report(label: str, pids: list[int]) -> None:
    per = {pid: memory_mib(pid) for pid in pids}
    total = {k: sum(v[k] for v in per.values()) for k in FIELDS}
    print(f"{label:>12}: " + "  ".join(f"{k} {total[k]} MiB" for k in FIELDS)
          + "   (" + ", ".join(f"pid {p}: {v['VmHWM']} MiB peak" for p, v in per.items()) + ")")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="random")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    images = [synthetic_jpeg((640, 480), seed=i) for i in range(4)] + \
             [synthetic_jpeg((4000, 3000), seed=9)] * 4
    with tempfile.TemporaryDirectory() as tmp:
        service = start_gunicorn(Path(tmp), workers=1, settings={
            "MODEL_WEIGHTS": args.weights, "TORCH_THREADS": "1", "WARMUP_BATCHES": "2",
            "MODEL_CACHE_DIR": str(Path(tmp) / "model-cache")})
        try:
            pids = [service.pid] + child_pids(service.pid)
            report("started", pids)
            url = service.extra["url"] + "/predict"

            def send(i: int) -> int:
                return requests.post(url, data=images[i % len(images)], headers={"Content-Type": "image/jpeg"},
                                     timeout=120).status_code

            started = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
                codes = list(pool.map(send, range(args.requests)))
            print(f"{args.requests} requests in {time.monotonic() - started:.1f}s, status codes "
                  f"{ {c: codes.count(c) for c in sorted(set(codes))} }")
            report("after load", pids)
        finally:
            service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
